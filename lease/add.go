package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Add fetches specs the Manager does not hold yet and returns the snapshot
// with them, like Start. It is for the start-up only, after Start and
// before Run, on the same goroutine: main calls it for the secrets a
// template asks for once it has seen others (a path computed from a
// secret's value). Specs whose ID is already held are skipped. A failure
// is returned as from Start; what is already held stays held (Close
// revokes it).
func (m *Manager) Add(ctx context.Context, specs []Spec) (*Snapshot, error) {
	if err := m.keeper.addEntries(ctx, specs); err != nil {
		return nil, err
	}
	s, _ := m.ledger.publish(m.keeper.entries) // main's snapshot: not an update for Run
	return s, nil
}

// addEntries fetches the specs not held yet and appends them to the
// entries, for Add and Track. An entry whose fetch failed is not kept: it
// has nothing to renew or hand over, and the next call fetches it again.
func (k *keeper) addEntries(ctx context.Context, specs []Spec) error {
	var added []*entry
	for _, s := range specs {
		if s.ID == "" || s.Path == "" {
			return fmt.Errorf("lease: spec %q: ID and Path are required", s.ID)
		}
		if k.has(s.ID) {
			continue
		}
		e := &entry{spec: s}
		added = append(added, e)
		k.entries = append(k.entries, e)
	}
	if len(added) == 0 {
		return nil
	}
	st := newStartup(ctx, k.startupTimeout, k.log, k.clock)
	defer st.close()
	results, errs := k.fetchAll(st, added)
	k.applyAll(added, results)
	if err := firstError(errs); err != nil {
		k.entries = slices.DeleteFunc(k.entries, func(e *entry) bool { return e.cur == nil })
		if errors.Is(err, ErrPermissionDenied) {
			err = k.explainDenied(err)
		}
		return err
	}
	return nil
}

func (k *keeper) has(id string) bool {
	for _, e := range k.entries {
		if e.spec.ID == id {
			return true
		}
	}
	return false
}
