package lease

import "time"

// schedule holds the renewal and hand-over parameters. Its methods are pure
// functions of times, durations and a random number r in [0,1) drawn by the
// caller, so tests pin every point. A Manager carries its own copy (no
// package globals), tests change it per Manager.
type schedule struct {
	// renewJitter moves a renewal up to this fraction of the remaining
	// time earlier than two thirds.
	renewJitter float64
	// rotateJitter spreads hand-overs of a fleet over up to this fraction of
	// the margin (consul-template's pkiCert jitter was always 0 through an
	// integer division, so fleets rotated in lockstep).
	rotateJitter float64
	// minRotateBefore is the smallest hand-over margin: enough for a fetch
	// and a child reload even on short leases.
	minRotateBefore time.Duration
	// switchSlack is added to the child's switch time (Config.SwitchTime)
	// for the fetch and the delivery before the child is told (issue 16).
	switchSlack time.Duration
	// retryBase and retryMax bound the backoff after runtime failures.
	// retryMax is also how long leash may keep waiting after Vault is back.
	retryBase, retryMax time.Duration
	// Near a deadline the backoff ceiling shrinks to the time left divided
	// by retryShare, so several tries fit before it, but never below
	// retryFloor, so a failing instance never hammers Vault.
	retryShare int
	retryFloor time.Duration
	// lostMargin is how long before its expiry a credential without a
	// replacement counts as lost (the child is stopped): at most this, at
	// most a twentieth of the lease.
	lostMargin time.Duration
	// batchFraction of a lease's ttl is how much earlier than planned a
	// renewal or hand-over may run when Run is awake for another one.
	batchFraction float64
	// staticLag is how long after a static role's rotation time (its read's
	// ttl) leash reads it again: Vault Agent and consul-template wait the
	// ttl plus about a second too.
	staticLag time.Duration
	// Until staticWindow past the rotation time, a read that still finds
	// the old credential is repeated after a backoff from staticRetryBase
	// to staticRetryMax: Vault rotates at the first tick of its rotation
	// queue after the due time (every 5 s by default: two ticks fit the
	// window), and the old
	// password stops working at once, so the new one is wanted within a
	// second or so of the rotation.
	staticRetryBase, staticRetryMax, staticWindow time.Duration
}

var defaultSchedule = schedule{
	renewJitter:     0.15,
	rotateJitter:    0.25,
	minRotateBefore: 3 * time.Second,
	switchSlack:     time.Second,
	retryBase:       500 * time.Millisecond,
	retryMax:        10 * time.Second,
	retryShare:      8,
	retryFloor:      2 * time.Second,
	lostMargin:      time.Second,
	batchFraction:   0.01,
	staticLag:       time.Second,
	staticRetryBase: 250 * time.Millisecond,
	staticRetryMax:  time.Second,
	staticWindow:    10 * time.Second,
}

// renewAt returns when to renew a lease expiring at expires: about two
// thirds of the remaining time, up to renewJitter of it earlier, never later.
func (s schedule) renewAt(now, expires time.Time, r float64) time.Time {
	remaining := expires.Sub(now)
	if remaining <= 0 {
		return now
	}
	frac := 2.0/3.0 - s.renewJitter*r
	return now.Add(time.Duration(float64(remaining) * frac))
}

// batch returns how much earlier than planned an action on a lease of
// duration ttl may run to share a wake-up with another. Leases issued
// together (a start with many secrets) fall due within moments of each
// other; one wake-up each cost a timer, a scheduler round trip and two
// passes over the entries. Running early by at most 1% of the ttl keeps
// the action before its planned point (never later, so a renewal still
// comes before the hand-over point), adds at most about 1.5% renewals,
// and moves the spread of a fleet's renewals by at most 1% of the ttl.
// Static secrets (ttl 0) are not batched.
func (s schedule) batch(ttl time.Duration) time.Duration {
	return time.Duration(float64(ttl) * s.batchFraction)
}

// rotateBefore returns the hand-over margin for a lease of duration ttl:
// the configured duration, else fraction of ttl, else a third of ttl; at
// least minRotateBefore and switchFloor, but never more than rotateCap, so
// a fresh credential is not replaced at once (a loop of re-issues).
func (s schedule) rotateBefore(ttl, configured time.Duration, fraction float64, switchTime time.Duration) time.Duration {
	rb := configured
	if rb <= 0 && fraction > 0 {
		rb = time.Duration(float64(ttl) * fraction)
	}
	if rb <= 0 {
		rb = ttl / 3
	}
	rb = max(rb, s.minRotateBefore, s.switchFloor(ttl, switchTime))
	return min(rb, s.rotateCap(ttl, switchTime))
}

// switchFloor is the smallest margin that leaves the child switchTime to
// move to the new credential, plus switchSlack, before the old one counts
// as lost (lostBefore its expiry): with a 5 s reload grace the old lease
// must not end, nor Vault drop its database role, while the child may
// still use it (issue 16).
func (s schedule) switchFloor(ttl, switchTime time.Duration) time.Duration {
	if switchTime <= 0 {
		return 0
	}
	return switchTime + s.switchSlack + s.lostBefore(ttl)
}

// rotateCap is the largest hand-over margin for a lease of duration ttl:
// three quarters of it, and no more than leaves the child switchTime
// after the issue. The rotation loop waits out one switch (the reload
// grace) before it delivers the next credential, so a hand-over due
// sooner would reach the child late, when less than switchTime is left of
// the credential it replaces. A lease too short for both (tooShort) gets
// three quarters.
func (s schedule) rotateCap(ttl, switchTime time.Duration) time.Duration {
	c := ttl * 3 / 4
	if left := ttl - switchTime; switchTime > 0 && left < c && left >= s.switchFloor(ttl, switchTime) {
		c = left
	}
	return c
}

// tooShort reports whether a lease of duration ttl cannot leave the child
// switchTime both before the old credential's loss point and after the
// new one's issue: about twice switchTime plus two seconds.
func (s schedule) tooShort(ttl, switchTime time.Duration) bool {
	floor := s.switchFloor(ttl, switchTime)
	return ttl > 0 && switchTime > 0 && (floor > ttl*3/4 || floor > ttl-switchTime)
}

// rotateNotBefore is the earliest hand-over for a credential issued at
// issued with lease duration ttl: switchTime after the issue, so that the
// jitter never brings the next hand-over into the previous switch
// (rotateCap), unless the lease is too short for that.
func (s schedule) rotateNotBefore(issued time.Time, ttl, switchTime time.Duration) time.Time {
	if switchTime <= 0 || s.tooShort(ttl, switchTime) {
		return issued
	}
	return issued.Add(switchTime)
}

// rotateAt returns when to fetch the replacement for a credential expiring
// at expires: margin before expiry, moved earlier by up to rotateJitter of
// the margin, but not before notBefore (the issue time).
func (s schedule) rotateAt(expires time.Time, margin time.Duration, r float64, notBefore time.Time) time.Time {
	at := expires.Add(-margin - time.Duration(float64(margin)*s.rotateJitter*r))
	if at.Before(notBefore) {
		return notBefore
	}
	return at
}

// staticReadAt returns when to read a static role again. due is when Vault
// said it rotates the credential (zero: it did not say); stale counts the
// reads at or after due that still found the credential leash holds;
// refresh (--static-refresh) bounds every wait. ok is false once Vault has
// not rotated for staticWindow past due: leash stops retrying and reads
// again after refresh.
func (s schedule) staticReadAt(now, due time.Time, stale int, refresh time.Duration, r float64) (at time.Time, ok bool) {
	limit := now.Add(refresh)
	switch {
	case due.IsZero():
		return limit, true
	case stale == 0:
		at := due.Add(s.staticLag)
		if at.Before(now) {
			at = now
		}
		return earliest(at, limit), true
	case now.Sub(due) > s.staticWindow:
		return limit, false
	}
	return earliest(now.Add(backoff(stale-1, s.staticRetryBase, s.staticRetryMax, r)), limit), true
}

// backoff returns the wait before retry number attempt (0-based): doubling
// from base, capped at ceiling, with "equal jitter" (half fixed, half random)
// so retries of many instances spread out but never collapse to zero.
func backoff(attempt int, base, ceiling time.Duration, r float64) time.Duration {
	d := base
	for i := 0; i < attempt && d < ceiling; i++ {
		d *= 2
	}
	d = min(d, ceiling)
	return d/2 + time.Duration(float64(d/2)*r)
}

// retry returns the wait before runtime retry number attempt when left
// remains before the deadline that matters (the hand-over point while a
// renewal can still save the lease, else the credential's loss; 0 or less:
// none known). The ceiling is retryMax, or left/retryShare when that is
// smaller, but at least retryFloor.
func (s schedule) retry(attempt int, left time.Duration, r float64) time.Duration {
	ceiling := s.retryMax
	if left > 0 {
		ceiling = max(min(ceiling, left/time.Duration(s.retryShare)), min(s.retryFloor, ceiling))
	}
	return backoff(attempt, s.retryBase, ceiling, r)
}

// lostBefore returns how long before its expiry a credential of lease
// duration ttl counts as lost: lostMargin, at most a twentieth of ttl.
func (s schedule) lostBefore(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return s.lostMargin
	}
	return min(s.lostMargin, ttl/20)
}

// earliest returns the earliest non-zero time, or zero.
func earliest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if !t.IsZero() && (out.IsZero() || t.Before(out)) {
			out = t
		}
	}
	return out
}
