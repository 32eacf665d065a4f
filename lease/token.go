package lease

import (
	"context"
	"errors"
	"time"
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

// loginEvent is the event of a login (or a token lookup) that gave t.
func (m *Manager) loginEvent(t *token) Event {
	return Event{Kind: EventLogin, Path: m.cfg.Auth.loginPath(), TTL: t.ttl, ExpiresAt: t.expires, Next: t.next}
}

func (m *Manager) loggedIn(t *token) {
	m.report(m.loginEvent(t), "renewable", t.renewable)
}

// setToken makes t current. The previous token stops being renewed and its
// leases count as ending with it.
func (m *Manager) setToken(t *token) {
	old := m.tok
	m.tok = t
	m.ledger.setCurrent(t)
	if old != nil {
		old.hard = true
		old.next = time.Time{}
	}
	m.vault.client.SetToken(string(t.value))
	t.next = m.plan.tokenNext(t, m.cfg.Auth.canLogin(), m.now())
}

// warnTokenBound warns at startup when leases will die with a token that
// cannot be renewed or re-obtained (consul-template#1433).
func (m *Manager) warnTokenBound() {
	t := m.tok
	if m.cfg.Auth.canLogin() || !t.hard || t.expires.IsZero() {
		return
	}
	for _, e := range m.entries {
		if e.lease == nil {
			continue
		}
		if _, bound := e.expiry(); bound {
			m.log.Warn("token expires before lease and cannot be renewed or re-obtained; the lease dies with it",
				"name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path, "lease", e.cur.Fingerprint, "expires", fmtTime(t.expires))
		}
	}
}

// tokenCallCtx bounds a token request also by the earliest moment a
// credential counts as lost, so a hung token renewal cannot delay a
// fail-closed stop.
func (m *Manager) tokenCallCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	var first time.Time
	for _, e := range m.entries {
		first = earliest(first, m.plan.lostAt(e))
	}
	if !first.IsZero() {
		if left := first.Sub(m.now()); left < 30*time.Second {
			return context.WithTimeout(ctx, max(left, 0))
		}
	}
	return m.callCtx(ctx)
}

// tokenStep renews the current token or logs in again.
func (m *Manager) tokenStep(ctx context.Context, t *token) {
	now := m.now()
	if !t.hard && (t.failures == 0 || !m.cfg.Auth.canLogin() || now.Before(m.plan.sched.rotateAt(t.expires, m.plan.margin(t.ttl), t.r, t.issued))) {
		c, cancel := m.tokenCallCtx(ctx)
		err := m.renewToken(c, t)
		cancel()
		if err == nil {
			t.failures = 0
			t.next = m.plan.tokenNext(t, m.cfg.Auth.canLogin(), m.now())
			m.log.Debug("token renewed", "path", m.cfg.Auth.loginPath(), "ttl", t.expires.Sub(m.now()).Round(time.Second).String(), "expires", fmtTime(t.expires))
			if t.hard {
				if m.cfg.Auth.canLogin() {
					m.log.Info("token reached its max ttl; logging in again before it expires", "path", m.cfg.Auth.loginPath(), "expires", fmtTime(t.expires))
				} else {
					m.log.Warn("token reached its max ttl and cannot be re-obtained; its leases die with it", "path", m.cfg.Auth.loginPath(), "expires", fmtTime(t.expires))
				}
				m.replanAll()
			}
			return
		}
		cerr, _ := classify(err)
		if !(errors.Is(cerr, ErrPermissionDenied) && m.cfg.Auth.canRefresh()) {
			m.tokenFailed(t, "renew token", cerr)
			return
		}
		// The token is gone (revoked, or Vault lost it): log in again now.
	}
	if !m.cfg.Auth.canRefresh() {
		t.next = time.Time{}
		return
	}
	m.relogin(ctx)
}

func (m *Manager) tokenFailed(t *token, op string, err error) {
	var left time.Duration
	if !t.expires.IsZero() {
		left = t.expires.Sub(m.now())
	}
	d := m.plan.sched.retry(t.failures, left, m.rand())
	t.failures++
	t.next = m.now().Add(d)
	if !t.expires.IsZero() && t.next.After(t.expires) {
		t.next = t.expires
	}
	m.reportFailure(Event{Path: m.cfg.Auth.loginPath(), ExpiresAt: t.expires, Next: t.next, Op: op}, err, "attempt", t.failures, "backoff", d.String())
}

// relogin obtains a new token; leases of the old one are handed over in
// time because their expiry is now bound by it.
func (m *Manager) relogin(ctx context.Context) bool {
	c, cancel := m.tokenCallCtx(ctx)
	t, err := m.auth.login(c)
	cancel()
	if err != nil {
		cerr, _ := classify(err)
		m.tokenFailed(m.tok, "login", cerr)
		return false
	}
	if !m.cfg.Auth.canLogin() && t.value == m.tok.value {
		// --token-file still holds the same token: nothing new to switch
		// to. The next permission-denied failure reads the file again.
		m.log.Debug("token file unchanged", "path", m.cfg.Auth.loginPath())
		m.tok.next = time.Time{}
		return false
	}
	m.setToken(t)
	m.report(m.loginEvent(t))
	m.replanAll()
	return true
}

func (m *Manager) replanAll() {
	now := m.now()
	for _, e := range m.entries {
		if e.cur != nil && e.failures == 0 {
			e.next = m.plan.entryNext(e, now)
		}
	}
}
