package lease

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// token is a Vault token leash uses: the user's, or one it logged in for.
type token struct {
	value     secretString
	own       bool          // leash logged in: revoke it at Close; never revoke a user's token
	renewable bool          // Vault said it can be renewed
	ttl       time.Duration // as issued; renewals ask for this much
	issued    time.Time
	expires   time.Time // zero: never expires (root, or unknown)
	hard      bool      // expires can no longer move: not renewable, renewal capped, or replaced
	r         float64   // jitter drawn at login
	next      time.Time // next renew or re-login; zero: nothing to do
	failures  int
	leases    int // held leases it owns
}

// tokens is the token lifecycle: which token is current, when it is
// renewed or replaced by a new login, and what a failure does to that
// plan. Like the keeper, it belongs to the goroutine running Start, Add,
// Run or Check. What a new token means for the entries (their expiry may
// now be bound by it) is the keeper's: step and relogin report that the
// entries need planning again.
type tokens struct {
	auth   *auth
	vault  *vault
	plan   *planner
	ledger *ledger
	rep    *reporter
	log    hclog.Logger
	clock  *clock

	cur *token // current token
}

// event is the event of a login (or a token lookup) that gave t.
func (ts *tokens) event(t *token) Event {
	return Event{Kind: EventLogin, Path: ts.auth.cfg.loginPath(), TTL: t.ttl, ExpiresAt: t.expires, Next: t.next}
}

// loggedIn reports the start's login.
func (ts *tokens) loggedIn(t *token) {
	ts.rep.report(ts.event(t), "renewable", t.renewable)
}

// set makes t current. The previous token stops being renewed and its
// leases count as ending with it.
func (ts *tokens) set(t *token) {
	old := ts.cur
	ts.cur = t
	ts.ledger.setCurrent(t)
	if old != nil {
		old.hard = true
		old.next = time.Time{}
	}
	ts.vault.client.SetToken(string(t.value))
	ts.replan(t)
}

// replan plans t's next renewal or login from now.
func (ts *tokens) replan(t *token) {
	t.next = ts.plan.tokenNext(t, ts.auth.cfg.canLogin(), ts.clock.now())
}

// recheck has the current token checked at the next step, unless that is
// planned already: an entry's request was denied, and the token may be
// gone (revoked, or Vault lost its storage).
func (ts *tokens) recheck() {
	if now := ts.clock.now(); ts.cur.next.IsZero() || ts.cur.next.After(now) {
		ts.cur.next = now
	}
}

// callCtx bounds a token request also by lossAt, the earliest moment a
// credential counts as lost (zero: none), so that a hung token renewal
// cannot delay a fail-closed stop.
func (ts *tokens) callCtx(ctx context.Context, lossAt time.Time) (context.Context, context.CancelFunc) {
	if !lossAt.IsZero() {
		if left := lossAt.Sub(ts.clock.now()); left < 30*time.Second {
			return context.WithTimeout(ctx, max(left, 0))
		}
	}
	return callCtx(ctx)
}

// step renews the current token t or logs in again; lossAt bounds the
// requests (callCtx). It reports whether the entries need planning again:
// t's expiry became final, or a new token replaced it.
func (ts *tokens) step(ctx context.Context, t *token, lossAt time.Time) (replan bool) {
	a := ts.auth.cfg
	now := ts.clock.now()
	if !t.hard && (t.failures == 0 || !a.canLogin() || now.Before(ts.plan.sched.rotateAt(t.expires, ts.plan.margin(t.ttl), t.r, t.issued))) {
		c, cancel := ts.callCtx(ctx, lossAt)
		err := ts.renew(c, t)
		cancel()
		if err == nil {
			t.failures = 0
			ts.replan(t)
			ts.log.Debug("token renewed", "path", a.loginPath(), "ttl", t.expires.Sub(ts.clock.now()).Round(time.Second).String(), "expires", fmtTime(t.expires))
			if !t.hard {
				return false
			}
			if a.canLogin() {
				ts.log.Info("token reached its max ttl; logging in again before it expires", "path", a.loginPath(), "expires", fmtTime(t.expires))
			} else {
				ts.log.Warn("token reached its max ttl and cannot be re-obtained; its leases die with it", "path", a.loginPath(), "expires", fmtTime(t.expires))
			}
			return true
		}
		cerr, _ := classify(err)
		if !(errors.Is(cerr, ErrPermissionDenied) && a.canRefresh()) {
			ts.failed(t, "renew token", cerr)
			return false
		}
		// The token is gone (revoked, or Vault lost it): log in again now.
	}
	if !a.canRefresh() {
		t.next = time.Time{}
		return false
	}
	return ts.relogin(ctx, lossAt)
}

// renew renews t, asking for its original ttl.
func (ts *tokens) renew(ctx context.Context, t *token) error {
	ld, renewable, err := ts.vault.renewToken(ctx, t)
	if err != nil {
		return err
	}
	t.expires = ts.clock.now().Add(ld)
	t.renewable = renewable
	if ld < t.ttl || !t.renewable {
		t.hard = true // max TTL reached: only a new login extends leash's life
	}
	return nil
}

// failed plans the retry of a failed request for t and reports it.
func (ts *tokens) failed(t *token, op string, err error) {
	now := ts.clock.now()
	var left time.Duration
	if !t.expires.IsZero() {
		left = t.expires.Sub(now)
	}
	d := ts.plan.sched.retry(t.failures, left, ts.clock.rand())
	t.failures++
	t.next = now.Add(d)
	if !t.expires.IsZero() && t.next.After(t.expires) {
		t.next = t.expires
	}
	ts.rep.reportFailure(Event{Path: ts.auth.cfg.loginPath(), ExpiresAt: t.expires, Next: t.next, Op: op}, err, "attempt", t.failures, "backoff", d.String())
}

// relogin obtains a new token and makes it current; lossAt bounds the
// login (callCtx). It reports whether it did: the leases of the old token
// then need planning again, as their expiry is now bound by it.
func (ts *tokens) relogin(ctx context.Context, lossAt time.Time) bool {
	c, cancel := ts.callCtx(ctx, lossAt)
	t, err := ts.auth.login(c)
	cancel()
	if err != nil {
		cerr, _ := classify(err)
		ts.failed(ts.cur, "login", cerr)
		return false
	}
	if !ts.auth.cfg.canLogin() && t.value == ts.cur.value {
		// --token-file still holds the same token: nothing new to switch
		// to. The next permission-denied failure reads the file again.
		ts.log.Debug("token file unchanged", "path", ts.auth.cfg.loginPath())
		ts.cur.next = time.Time{}
		return false
	}
	ts.set(t)
	ts.rep.report(ts.event(t))
	return true
}

// start installs the start's token. For the token method the lookup
// that learns its ttl runs in the background (its failure fails the
// start, st.fail); done waits for it and plans the token. Other methods
// log in before it returns.
func (ts *tokens) start(st *startup) (done func() error, err error) {
	if !ts.auth.cfg.isTokenMethod() {
		var tok *token
		err := st.retry(st.sctx, "login", ts.auth.cfg.loginPath(), func(c context.Context) error {
			t, err := ts.auth.login(c)
			tok = t
			return err
		})
		if err != nil {
			return nil, err
		}
		ts.set(tok)
		ts.loggedIn(tok)
		return func() error { return nil }, nil
	}
	v, err := ts.auth.readUserToken()
	if err != nil {
		return nil, err
	}
	// Installed now so the fetches use it and their leases name it as
	// owner; planned again once the lookup has said when it expires.
	tok := &token{value: v}
	ts.set(tok)
	var lookup sync.WaitGroup
	var lookupErr error
	lookup.Go(func() {
		lookupErr = st.retry(st.sctx, "login", ts.auth.cfg.loginPath(), func(c context.Context) error {
			return ts.auth.lookupToken(c, tok)
		})
		if lookupErr != nil {
			st.fail() // the fetches cannot be trusted without a valid token
		}
	})
	return func() error {
		lookup.Wait()
		if lookupErr == nil {
			ts.replan(tok)
			ts.loggedIn(tok)
		}
		return lookupErr
	}, nil
}

// tokenStep has the token lifecycle renew or replace the current token.
func (k *keeper) tokenStep(ctx context.Context) {
	if k.tokens.step(ctx, k.tokens.cur, k.firstLoss()) {
		k.replanAll()
	}
}

// relogin logs in again and plans the entries anew; false if the login
// failed or gave no new token.
func (k *keeper) relogin(ctx context.Context) bool {
	if !k.tokens.relogin(ctx, k.firstLoss()) {
		return false
	}
	k.replanAll()
	return true
}

// firstLoss is the earliest moment an entry's credential counts as lost
// (zero: none), which bounds token requests.
func (k *keeper) firstLoss() time.Time {
	var first time.Time
	for _, e := range k.entries {
		first = earliest(first, k.plan.lostAt(e))
	}
	return first
}

// warnTokenBound warns at startup when leases will die with a token that
// cannot be renewed or re-obtained (consul-template#1433).
func (k *keeper) warnTokenBound() {
	t := k.tokens.cur
	if k.auth.canLogin() || !t.hard || t.expires.IsZero() {
		return
	}
	for _, e := range k.entries {
		if e.lease == nil {
			continue
		}
		if _, bound := e.expiry(); bound {
			k.log.Warn("token expires before lease and cannot be renewed or re-obtained; the lease dies with it",
				"name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path, "lease", e.cur.Fingerprint, "expires", fmtTime(t.expires))
		}
	}
}

func (k *keeper) replanAll() {
	now := k.clock.now()
	for _, e := range k.entries {
		if e.cur != nil && e.failures == 0 {
			e.next = k.plan.entryNext(e, now)
		}
	}
}
