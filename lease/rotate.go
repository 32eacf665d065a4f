package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// runCall is work another goroutine asks Run to do (Rotate, Track): it
// touches the entries, which belong to Run's goroutine.
type runCall struct {
	do   func(context.Context) (*Snapshot, error)
	done chan<- callResult // buffered: Run never waits for the caller
}

type callResult struct {
	snap *Snapshot
	err  error
}

// inRun has Run do the work and waits for it; ctx cancels the wait.
func (m *Manager) inRun(ctx context.Context, do func(context.Context) (*Snapshot, error)) (*Snapshot, error) {
	done := make(chan callResult, 1)
	select {
	case m.calls <- runCall{do: do, done: done}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-done:
		return r.snap, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Rotate hands over new credentials now for the secrets named by their
// Spec.ID (every secret with a lease or an expiry when names is empty),
// exactly as at their scheduled hand-over point: Run issues them, emits
// the snapshot that holds them on Updates and keeps the old leases until
// Retire. It returns that snapshot (nil if nothing was issued). An
// unknown name, or one without an expiry (a static secret, re-read every
// StaticRefresh), fails with ErrNoRotation before anything is issued; a
// failed issue returns its error after the other secrets are handed over
// (the old credential stays, on its schedule). Rotate waits for Run to
// take the request and finish it; ctx cancels the wait.
func (m *Manager) Rotate(ctx context.Context, names []string) (*Snapshot, error) {
	return m.inRun(ctx, func(ctx context.Context) (*Snapshot, error) { return m.rotateNow(ctx, names) })
}

// rotateNow is Rotate's work, in Run's goroutine.
func (m *Manager) rotateNow(ctx context.Context, names []string) (*Snapshot, error) {
	changed, err := m.keeper.rotateNow(ctx, names)
	var snap *Snapshot
	if changed {
		snap = m.emit()
	}
	return snap, err
}

// rotateNow hands over new credentials for the entries named (see
// Rotate). It reports whether any entry's secret changed, and the
// failures.
func (k *keeper) rotateNow(ctx context.Context, names []string) (changed bool, err error) {
	var pick []*entry
	for _, e := range k.entries {
		if exp, _ := e.expiry(); len(names) == 0 && !exp.IsZero() {
			pick = append(pick, e)
		}
	}
	for _, n := range names {
		i := slices.IndexFunc(k.entries, func(e *entry) bool { return e.spec.ID == n })
		if i < 0 {
			return false, fmt.Errorf("rotate %s: %w: no secret of that name", n, ErrNoRotation)
		}
		e := k.entries[i]
		if exp, _ := e.expiry(); exp.IsZero() {
			return false, fmt.Errorf("rotate %s (%s): %w: it has no lease or expiry, and is re-read every %s", n, e.spec.Path, ErrNoRotation, k.plan.staticRefresh)
		}
		if !slices.Contains(pick, e) {
			pick = append(pick, e)
		}
	}
	if len(pick) == 0 {
		return false, fmt.Errorf("rotate: %w: no secret has a lease or an expiry", ErrNoRotation)
	}
	var errs []error
	for _, e := range pick {
		k.log.Info("rotation requested", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path, "lease", e.cur.Fingerprint)
		if _, bound := e.expiry(); bound && e.lease.owner == k.tokens.cur && k.auth.canLogin() && !k.relogin(ctx) {
			// A new credential from the same token would die with it
			// (as in entryStep); relogin logged why.
			errs = append(errs, fmt.Errorf("rotate %s: logging in again failed", e.spec.ID))
			continue
		}
		if err := k.rotate(ctx, e); err != nil {
			errs = append(errs, fmt.Errorf("rotate %s: %w", e.spec.ID, err))
			continue
		}
		changed = true
	}
	return changed, errors.Join(errs...)
}
