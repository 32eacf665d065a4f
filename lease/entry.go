package lease

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"
)

// keeper is the entries' lifecycle: it holds the entries, in Spec order,
// and renews, rotates and refreshes each when the planner says, with the
// fetcher's requests. A token's change is its business too, since the
// entries' expiry may be bound by the token: it has tokens renew or
// replace the token and plans the entries anew. Like tokens, it belongs
// to the goroutine running Start, Add, Run or Check.
type keeper struct {
	auth           AuthConfig    // whether leash can log in or refresh its token
	startupTimeout time.Duration // Config.StartupTimeout, for addEntries
	vault          *vault
	fetcher        *fetcher
	tokens         *tokens
	plan           *planner
	ledger         *ledger
	rep            *reporter
	log            hclog.Logger
	clock          *clock

	entries []*entry // in Spec order
	due     []*entry // step's scratch list, kept to allocate once
}

// isCurrent reports whether an entry's current credential is h.
func (k *keeper) isCurrent(h *held) bool {
	for _, e := range k.entries {
		if e.lease == h {
			return true
		}
	}
	return false
}

// apply installs a fetch result as the entry's current credential. The
// previous lease stays held until Retire. The next action is planned from
// the issue time, like the expiry: Start applies every result once the
// last fetch is back, and planning the first renewal from that moment
// shortened the renewal jitter's reach by the length of the start (with
// 1000 leases the jittered hand-over bound decided most first renewals,
// and their spread fell to 8% of the TTL).
func (k *keeper) apply(e *entry, is *issued) {
	e.cur = is.secret
	e.lease = is.lease
	e.leaseExp = is.leaseExp
	e.notAfter = is.notAfter
	e.renewable = is.renewable
	e.maxed = false
	e.ttl = is.ttl
	e.r = k.clock.rand()
	e.failures = 0
	e.steady = false
	e.hash = is.hash
	if is.lease != nil {
		k.ledger.hold(is.lease)
	}
	e.rot = is.rotation
	e.stale = 0
	e.stuck = false
	e.next = k.plan.entryNext(e, is.secret.IssuedAt)
	exp, bound := e.expiry()
	if bound {
		is.secret.ExpiresAt = exp // not emitted yet: the token is the limit
	}
	ev := e.event(EventIssued)
	ev.TTL, ev.ExpiresAt, ev.Next, ev.Rotation = is.secret.LeaseDuration, exp, e.next, is.secret.NextRotation
	if is.rotation != nil {
		k.rep.report(ev, "last_rotation", fmtTime(is.rotation.last))
		return
	}
	k.rep.report(ev, "version", is.secret.Version)
}

// entryStep renews, rotates or refreshes one entry. It reports whether the
// entry's secret changed.
func (k *keeper) entryStep(ctx context.Context, e *entry) bool {
	now := k.clock.now()
	exp, bound := e.expiry()
	switch {
	case exp.IsZero():
		return k.refresh(ctx, e)
	case e.renewing() && (e.failures == 0 || now.Before(k.plan.rotatePoint(e))):
		k.renew(ctx, e)
		return false
	case e.renewing():
		// Past the hand-over point after failed renewals (an outage): if
		// Vault is back and the lease still renews, keep it. Re-issuing
		// because of a blip is what vault#10918 complains about. Only when
		// Vault answers that it will not renew is a new credential fetched:
		// when it does not answer at all, it cannot issue one either, and
		// trying would only double the requests of an outage.
		err := k.renew(ctx, e)
		if err == nil {
			return false
		}
		if noAnswer(err) {
			ev := e.event(EventKept)
			ev.Next = e.next
			ev.ExpiresAt, _ = e.expiry()
			k.rep.report(ev, "backoff", e.next.Sub(k.clock.now()).Round(time.Millisecond).String())
			return false
		}
	}
	if bound && e.lease.owner == k.tokens.cur {
		// A new credential from the same token would die with it.
		if !k.auth.canLogin() {
			e.next = k.plan.lostAt(e) // nothing to do but report the loss then
			return false
		}
		if !k.relogin(ctx) {
			e.failures++
			e.next = earliest(k.tokens.cur.next, exp)
			return false
		}
	}
	return k.rotate(ctx, e) == nil
}

// renew extends the entry's lease. It returns nil on success, else Vault's
// or the transport's error (already logged and counted).
func (k *keeper) renew(ctx context.Context, e *entry) error {
	c, cancel := k.callCtx(ctx, e)
	sent := k.clock.now()
	ld, err := k.vault.renewLease(c, e.lease, e.ttl)
	cancel()
	now := k.clock.now()
	if err != nil {
		cerr, _ := classify(err)
		k.failed(e, "renew", cerr)
		// Keep trying until the hand-over point; then rotate instead. A
		// failed renewal never re-issues while the lease is valid (vault#10918).
		if rp := k.plan.rotatePoint(e); rp.After(now) && rp.Before(e.next) {
			e.next = rp
		}
		return err
	}
	// The renewal after one that followed failures is jittered again:
	// leases that recovered from an outage together are spread anew.
	e.steady = e.failures == 0
	e.failures = 0
	// Vault counts ld from when it handled the request, somewhere between
	// sent and now: counting from sent never overestimates the lease.
	e.leaseExp = sent.Add(ld)
	e.lease.expires = e.leaseExp
	if ld < e.ttl {
		e.maxed = true // max TTL ahead: hand over before it
	}
	e.next = k.plan.entryNext(e, now)
	ev := e.event(EventRenewed)
	ev.TTL, ev.Next = ld, e.next
	ev.ExpiresAt, _ = e.expiry()
	k.rep.report(ev, "max_ttl_reached", e.maxed)
	return nil
}

// rotate issues a new credential for e and makes it current; the old lease
// stays held until Retire. It returns the failure, already logged and
// counted.
func (k *keeper) rotate(ctx context.Context, e *entry) error {
	c, cancel := k.callCtx(ctx, e)
	is, err := k.fetcher.fetch(c, e)
	cancel()
	if err != nil {
		cerr, _ := classify(err)
		k.failed(e, "rotate", cerr)
		return cerr
	}
	old := e.cur
	k.apply(e, is)
	ev := e.event(EventRotated)
	ev.TTL, ev.ExpiresAt, ev.Next = is.secret.LeaseDuration, is.secret.ExpiresAt, e.next
	k.rep.report(ev, "previous", old.Fingerprint)
	return nil
}

func (k *keeper) refresh(ctx context.Context, e *entry) bool {
	c, cancel := k.callCtx(ctx, e)
	is, err := k.fetcher.fetch(c, e)
	cancel()
	if err != nil {
		cerr, _ := classify(err)
		k.failed(e, "refresh", cerr)
		if later := k.clock.now().Add(min(k.plan.staticRefresh, k.plan.sched.retryMax)); e.next.Before(later) {
			e.next = later
		}
		return false
	}
	e.failures = 0
	if is.hash == e.hash && is.lease == nil {
		ev := e.event(EventUnchanged)
		if e.rot != nil && is.rotation != nil {
			k.notRotated(e, is.rotation) // says why it reads again
			ev.Rotation = e.rot.next
		} else {
			e.next = k.clock.now().Add(k.plan.staticRefresh)
		}
		ev.Next = e.next
		k.rep.report(ev, "version", is.secret.Version)
		return false
	}
	prev := e.rot
	k.apply(e, is)
	ev := e.event(EventChanged)
	ev.Next, ev.Rotation = e.next, is.secret.NextRotation
	if r := is.rotation; r != nil {
		// How long after Vault's rotation leash has the new password
		// (the child gets it right after): the lag issue 16 is about.
		var lag time.Duration
		if !r.last.IsZero() && (prev == nil || r.last.After(prev.last)) {
			lag = is.secret.IssuedAt.Sub(r.last).Round(time.Millisecond)
		}
		k.rep.report(ev, "last_rotation", fmtTime(r.last), "read_after", lag.String())
	} else {
		k.rep.report(ev, "version", is.secret.Version)
	}
	return true
}

// notRotated plans the next read of a static role whose read r found the
// credential leash holds. While Vault's next rotation is still ahead, that
// is the plan; once its time has come, Vault rotates at its next queue
// tick, and the read is repeated briefly (schedule.staticReadAt) so the new
// password reaches the child within a second or so.
func (k *keeper) notRotated(e *entry, r *rotation) {
	now := k.clock.now()
	if r.next.After(now.Add(k.plan.sched.staticLag)) {
		e.rot, e.stale = r, 0 // not due yet (a --static-refresh read), or moved
	} else {
		e.stale++
	}
	next, ok := k.plan.sched.staticReadAt(now, e.rot.next, e.stale, k.plan.staticRefresh, k.clock.rand())
	e.next = next
	if !ok && !e.stuck {
		e.stuck = true
		k.log.Warn("vault has not rotated the static credential since its rotation time; reading it again after --static-refresh",
			e.keys("rotation_due", fmtTime(e.rot.next), "next_read", fmtTime(next))...)
		return
	}
	k.log.Debug("static credential not rotated yet",
		e.keys("rotation_due", fmtTime(e.rot.next), "attempt", e.stale, "backoff", next.Sub(now).Round(time.Millisecond).String())...)
}

func (k *keeper) failed(e *entry, op string, err error) {
	if errors.Is(err, ErrPermissionDenied) && k.auth.canRefresh() {
		// The token may be gone (revoked, or Vault lost its storage): let
		// the token step check it now and log in again if so.
		k.tokens.recheck()
	}
	now := k.clock.now()
	// The deadline that matters: the hand-over point while renewing can
	// still keep the lease, else the loss. Retries get denser near it.
	deadline := k.plan.lostAt(e)
	if rp := k.plan.rotatePoint(e); e.renewing() && rp.After(now) {
		deadline = rp
	}
	var left time.Duration
	if !deadline.IsZero() {
		left = deadline.Sub(now)
	}
	d := k.plan.sched.retry(e.failures, left, k.clock.rand())
	e.failures++
	e.steady = false
	e.next = now.Add(d)
	if lost := k.plan.lostAt(e); !lost.IsZero() && e.next.After(lost) {
		e.next = lost
	}
	ev := e.event(EventFailed)
	ev.Op, ev.Next = op, e.next
	ev.ExpiresAt, _ = e.expiry()
	k.rep.reportFailure(ev, err, "attempt", e.failures, "backoff", d.String())
}
