package lease

import (
	"crypto/sha256"
	"time"
)

// entry is the live state of one Spec.
type entry struct {
	spec     Spec
	path     string // request path (KV v2: with data/)
	resolved bool
	kv       int // 0 (not KV or unknown), 1, 2

	cur       *Secret
	lease     *held // nil: no lease (static, or a certificate without one)
	leaseExp  time.Time
	notAfter  time.Time
	renewable bool
	maxed     bool          // renewal no longer extends the lease
	steady    bool          // renewed since the last issue or failure: renew without jitter
	ttl       time.Duration // lease duration as issued; renewals ask for this
	r         float64       // jitter drawn at issue
	next      time.Time     // next action
	failures  int
	hash      [sha256.Size]byte

	rot   *rotation // static role: what the credential's read said; nil otherwise
	stale int       // static role: reads since rotation time that found the same credential
	stuck bool      // static role: warned that Vault did not rotate in time
}

// planner decides when an entry or a token needs attention next. Its
// methods are pure: functions of the entry's or token's state, the
// schedule and the configured margins, with the time passed in and the
// jitter drawn at issue (entry.r, token.r); Run's loop and the entry
// steps act on what they return.
type planner struct {
	sched          schedule
	rotateBefore   time.Duration // Config.RotateBefore
	rotateFraction float64       // Config.RotateFraction
	switchTime     time.Duration // Config.SwitchTime
	staticRefresh  time.Duration // Config.StaticRefresh, defaulted
}

// tokenNext is when the token needs attention: a renewal while it can be
// extended, else a new login before it expires (when leash can log in);
// zero for nothing to do.
func (p *planner) tokenNext(t *token, canLogin bool, now time.Time) time.Time {
	switch {
	case t.expires.IsZero():
		return time.Time{}
	case !t.hard:
		return p.sched.renewAt(now, t.expires, t.r)
	case canLogin:
		return p.sched.rotateAt(t.expires, p.margin(t.ttl), t.r, now)
	}
	return time.Time{}
}

// margin is the hand-over margin for a lease of duration ttl.
func (p *planner) margin(ttl time.Duration) time.Duration {
	return p.sched.rotateBefore(ttl, p.rotateBefore, p.rotateFraction, p.switchTime)
}

// expiry is when the entry's credential stops working: the lease, the
// certificate, or the owning token, whichever is first. bound reports that
// the token is the limit.
func (e *entry) expiry() (exp time.Time, bound bool) {
	exp = earliest(e.leaseExp, e.notAfter)
	if e.lease != nil && e.lease.owner != nil {
		o := e.lease.owner
		if o.hard && !o.expires.IsZero() && (exp.IsZero() || o.expires.Before(exp)) {
			return o.expires, true
		}
	}
	return exp, false
}

// lostAt is when the entry's credential counts as lost if nothing replaced
// or extended it: a small margin (schedule.lostBefore) before its expiry,
// because Vault revokes it at expiry (for a database credential, drops the
// role) and the child must have been told to stop by then. Zero: never.
func (p *planner) lostAt(e *entry) time.Time {
	exp, bound := e.expiry()
	if exp.IsZero() {
		return exp
	}
	ttl := e.ttl
	if bound {
		ttl = e.lease.owner.ttl // the token's life is what runs out
	}
	return exp.Add(-p.sched.lostBefore(ttl))
}

// rotatePoint is when to fetch a replacement for the entry.
func (p *planner) rotatePoint(e *entry) time.Time {
	exp, _ := e.expiry()
	if exp.IsZero() {
		return time.Time{}
	}
	return p.sched.rotateAt(exp, p.margin(e.ttl), e.r, p.sched.rotateNotBefore(e.cur.IssuedAt, e.ttl, p.switchTime))
}

// renewing reports whether the entry is kept alive by renewal rather than
// by hand-over.
func (e *entry) renewing() bool {
	_, bound := e.expiry()
	return e.lease != nil && e.renewable && !e.maxed && !bound
}

// entryNext is the entry's next action after a success at now.
func (p *planner) entryNext(e *entry, now time.Time) time.Time {
	exp, _ := e.expiry()
	switch {
	case exp.IsZero() && e.rot != nil:
		next, _ := p.sched.staticReadAt(now, e.rot.next, e.stale, p.staticRefresh, e.r)
		return next
	case exp.IsZero():
		return now.Add(p.staticRefresh)
	case e.renewing():
		// Renew at two thirds, or at the hand-over point if that comes
		// first: when Vault caps a renewal at max_ttl, what is left is then
		// still at least the hand-over margin. entryStep renews (not
		// rotates) at that point unless renewals are failing.
		//
		// Only the first renewal after an issue or a failure is jittered
		// (up to 15% of the remaining time earlier, and bounded by the
		// jittered hand-over point): that spreads leases issued or
		// recovered together, and their phases stay apart because every
		// later renewal comes the same two thirds after the one before,
		// bounded by the margin without its jitter. Jittering every
		// renewal cost 1.62 requests per lease per TTL instead of 1.5
		// (issue 9).
		r, bound := e.r, p.rotatePoint(e)
		if e.steady {
			r, bound = 0, exp.Add(-p.margin(e.ttl))
		}
		next := earliest(p.sched.renewAt(now, exp, r), bound)
		if next.Before(now) {
			return now
		}
		return next
	}
	return p.rotatePoint(e)
}

// warnTooShort warns once at start-up when leases are too short to leave
// the child its switch time before the old credential is lost and after
// the new one is issued (issue 16). source says where switchTime came from
// (Config.SwitchSource).
func (k *keeper) warnTooShort(switchTime time.Duration, source string) {
	var names []string
	var shortest time.Duration
	for _, e := range k.entries {
		if exp, _ := e.expiry(); exp.IsZero() || !k.plan.sched.tooShort(e.ttl, switchTime) {
			continue
		}
		if len(e.spec.Outputs) == 0 {
			names = append(names, e.spec.ID)
		}
		names = append(names, e.spec.Outputs...)
		if shortest == 0 || e.ttl < shortest {
			shortest = e.ttl
		}
	}
	if len(names) == 0 {
		return
	}
	src := source
	if src == "" {
		src = "the switch time " + switchTime.String()
	}
	k.log.Warn("lease too short for the child's switch time, which it needs before the old credential is lost and after the new one is issued; some hand-overs will leave the child less",
		"outputs", names, "ttl", shortest.String(), "hand_over_before", k.plan.margin(shortest).String(),
		"needed", k.plan.sched.switchFloor(shortest, switchTime).String(), "switch", src)
}
