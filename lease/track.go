package lease

import (
	"context"
	"slices"
)

// Track changes, while Run runs, which secrets the Manager keeps: it
// fetches the specs of add it does not hold yet (as Add does before Run)
// and stops renewing and re-reading the secrets whose Spec.ID is in drop.
// Main uses it for templates whose secret paths are computed from what
// Vault returned: when such a value changes, the template asks for other
// paths. Track publishes the snapshot with the change, on Updates too, and
// returns it. A dropped secret's lease is not revoked here: Retire of a
// snapshot that still holds it revokes it once the child has switched,
// as after a rotation. If a fetch fails, Track returns its error and
// drops nothing; what was fetched stays held for the next call. Track
// waits for Run to take the request and finish it; ctx cancels the wait.
func (m *Manager) Track(ctx context.Context, add []Spec, drop []string) (*Snapshot, error) {
	return m.inRun(ctx, func(ctx context.Context) (*Snapshot, error) { return m.track(ctx, add, drop) })
}

// track is Track's work, in Run's goroutine.
func (m *Manager) track(ctx context.Context, add []Spec, drop []string) (*Snapshot, error) {
	if err := m.keeper.track(ctx, add, drop); err != nil {
		return nil, err
	}
	return m.emit(), nil
}

// track fetches the specs of add not held yet and drops the entries whose
// Spec.ID is in drop, unless a fetch fails (see Track).
func (k *keeper) track(ctx context.Context, add []Spec, drop []string) error {
	// Run renews nothing while it fetches: its retries must end before a
	// credential it holds counts as lost.
	if first := k.firstLoss(); !first.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, max(first.Sub(k.clock.now()), 0))
		defer cancel()
	}
	if err := k.addEntries(ctx, add); err != nil {
		return err
	}
	for _, id := range drop {
		i := slices.IndexFunc(k.entries, func(e *entry) bool { return e.spec.ID == id })
		if i < 0 {
			continue
		}
		e := k.entries[i]
		k.rep.report(e.event(EventDropped))
		k.entries = slices.Delete(k.entries, i, i+1)
		if e.lease != nil {
			k.ledger.release(e.lease)
		}
	}
	return nil
}
