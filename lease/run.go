package lease

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Run renews, rotates and refreshes until ctx is done (then it returns nil).
// It returns a *LostError when a credential is about to expire with no
// replacement: a second before its expiry (at most a twentieth of the
// lease), counted from when leash sent the request that issued or renewed
// it, so never after Vault's own expiry.
//
// Between actions it sleeps on one timer set to the earliest of them: no
// polling, and no work while nothing is due. A wake-up costs two passes
// over the entries and allocates nothing (with 1000 leases it used to
// build a slice of every entry's and held lease's times, which made the
// loop and the garbage collector the larger part of leash's CPU).
func (m *Manager) Run(ctx context.Context) error {
	if m.ledger.current() == nil {
		return errors.New("lease: Run before a successful Start")
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	stepped := false
	for {
		now := m.now()
		next, lost := m.keeper.scan(now)
		if stepped {
			if ctx.Err() != nil {
				return nil
			}
			if lost != nil {
				exp, _ := lost.expiry()
				ev := lost.event(EventLost)
				ev.ExpiresAt = exp
				m.report(ev)
				return &LostError{ID: lost.spec.ID, Outputs: lost.spec.Outputs, Path: lost.spec.Path, Lease: lost.cur.Fingerprint, Expired: exp}
			}
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(now), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			if m.keeper.step(ctx) {
				m.emit()
			}
		case c := <-m.calls:
			snap, err := c.do(ctx)
			c.done <- callResult{snap, err}
		}
		stepped = true
	}
}

// scan returns when Run has to act next: the earliest planned action,
// the moment a credential counts as lost (lostAt, to report it) or
// held-lease expiry (to prune it); and the first entry, in Spec order,
// whose credential counts as lost at now.
func (k *keeper) scan(now time.Time) (next time.Time, lost *entry) {
	if t := k.tokens.cur; t != nil {
		next = t.next
	}
	for _, e := range k.entries {
		next = earliest(next, e.next)
		if at := k.plan.lostAt(e); !at.IsZero() {
			next = earliest(next, at)
			if lost == nil && !now.Before(at) {
				lost = e
			}
		}
	}
	next = earliest(next, k.ledger.nextPrune())
	return next, lost
}

// step does everything that is due, and what falls due within an entry's
// batch window (see schedule.batch): leases issued close together then
// share one wake-up rather than one each. It reports whether an entry's
// secret changed (Run then publishes a snapshot).
func (k *keeper) step(ctx context.Context) (changed bool) {
	k.ledger.prune(k.clock.now(), k.isCurrent)
	if t := k.tokens.cur; !t.next.IsZero() && !k.clock.now().Before(t.next) {
		k.tokenStep(ctx)
	}
	due := k.dueAt(k.clock.now())
	for _, e := range due {
		if ctx.Err() != nil {
			break
		}
		if k.entryStep(ctx, e) {
			changed = true
		}
	}
	clear(due)
	k.due = due[:0]
	return changed
}

// dueAt returns the entries to act on at now, earliest first, in k.due's
// storage (step clears it).
func (k *keeper) dueAt(now time.Time) []*entry {
	due := k.due[:0]
	for _, e := range k.entries {
		if e.next.IsZero() {
			continue
		}
		at := e.next
		if e.failures == 0 { // never shorten a retry backoff
			at = at.Add(-k.plan.sched.batch(e.ttl))
		}
		if !now.Before(at) {
			due = append(due, e)
		}
	}
	slices.SortFunc(due, func(a, b *entry) int { return a.next.Compare(b.next) })
	return due
}

// callCtx bounds one request to Vault.
func callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 30*time.Second)
}

// callCtx bounds a request for e also by the moment e's credential
// counts as lost: a hung Vault must not keep leash waiting past it, when
// the child has to be stopped (fail closed).
func (k *keeper) callCtx(ctx context.Context, e *entry) (context.Context, context.CancelFunc) {
	if lost := k.plan.lostAt(e); !lost.IsZero() {
		if left := lost.Sub(k.clock.now()); left < 30*time.Second {
			return context.WithTimeout(ctx, max(left, 0))
		}
	}
	return callCtx(ctx)
}
