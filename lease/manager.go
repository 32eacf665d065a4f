package lease

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
)

// Manager fetches secrets and keeps them alive. Start, then Run in one
// goroutine; Retire and Updates may be used from others; Close after Run
// has returned.
type Manager struct {
	cfg    Config
	env    environ
	client *api.Client // carries the current token
	anon   *api.Client // no token: logins, and per-token clones
	// loginClient makes logins: anon, except for cert auth, where Vault
	// reads the certificate of the connection the login arrives on, and a
	// fresh connection presents the certificate now on disk.
	loginClient *api.Client
	log         hclog.Logger
	updates     chan *Snapshot
	rotates     chan rotateReq // Rotate's requests for Run

	// The schedule's clock and randomness (r in [0,1)); tests replace them.
	now  func() time.Time
	rand func() float64
	// sched holds the renewal, hand-over and retry parameters.
	sched schedule

	authMu    sync.Mutex // guards the approle unwrap cache
	wrapToken secretString
	unwrapped secretString

	// entries and the schedule fields of tokens belong to the goroutine
	// running Start, Run or Check. Network calls happen without mu, so
	// Retire never waits for a slow Vault request of Run.
	entries []*entry // in Spec order
	mounts  mountLookups
	due     []*entry // step's scratch list, kept to allocate once

	mu     sync.Mutex       // guards the fields below and token.leases
	tok    *token           // current token
	tokens []*token         // tokens leash logged in with and has not revoked
	held   map[string]*held // leases leash holds and has not revoked, by fingerprint
	snap   *Snapshot        // last emitted
	// pruneAt is no later than the earliest expiry in held (zero: none to
	// watch); prune recomputes it.
	pruneAt time.Time
}

// New validates cfg and builds a client from its environment. It does not
// contact Vault.
func New(cfg Config) (*Manager, error) {
	env := newEnviron(cfg.Env)
	if err := cfg.validate(env); err != nil {
		return nil, err
	}
	if cfg.StaticRefresh <= 0 {
		cfg.StaticRefresh = defaultStaticRefresh
	}
	if cfg.StartupTimeout <= 0 {
		cfg.StartupTimeout = defaultStartupTimeout
	}
	if cfg.RevokeTimeout <= 0 {
		cfg.RevokeTimeout = defaultRevokeTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	allow, _ := parseRedirectAllow(cfg.RedirectAllow) // validate checked it
	c, err := newClient(env, allow, false, log, cfg.OnRequest)
	if err != nil {
		return nil, err
	}
	if v, name := env.get("SKIP_VERIFY"); v != "" {
		if skip, _ := strconv.ParseBool(v); skip { // newClient checked it parses
			// Here, once: run and validate each build one Manager.
			log.Warn(name + " is set: Vault's TLS certificate is not verified, so anyone on the network path can impersonate Vault and take leash's token and secrets; set VAULT_CACERT instead")
		}
	}
	anon, err := c.Clone()
	if err != nil {
		return nil, err
	}
	anon.ClearToken() // Clone runs api.NewClient, which reads the process VAULT_TOKEN
	loginClient := anon
	if cfg.Auth.Method == "cert" {
		if loginClient, err = newClient(env, allow, true, log, cfg.OnRequest); err != nil {
			return nil, err
		}
	}
	m := &Manager{
		cfg: cfg, env: env, client: c, anon: anon, loginClient: loginClient, log: log,
		updates: make(chan *Snapshot, 1),
		rotates: make(chan rotateReq),
		now:     time.Now,
		rand:    rand.Float64,
		sched:   defaultSchedule,
		held:    map[string]*held{},
	}
	for _, s := range cfg.Specs {
		m.entries = append(m.entries, &entry{spec: s})
	}
	return m, nil
}

// ScrubEnv returns the names of environment variables holding Vault
// credentials (VAULT_TOKEN, BAO_TOKEN) so main keeps them from the child.
func (m *Manager) ScrubEnv() []string {
	var out []string
	for _, k := range []string{"VAULT_TOKEN", "BAO_TOKEN"} {
		if _, ok := m.env[k]; ok {
			out = append(out, k)
		}
	}
	return out
}

// Updates delivers each new snapshot after Start's. Buffer 1: a slow
// reader sees the latest snapshot, never a stale one.
func (m *Manager) Updates() <-chan *Snapshot { return m.updates }

func (m *Manager) currentToken() *token {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tok
}

// Start logs in and fetches every secret in parallel. Transient failures are
// retried until StartupTimeout (then ErrUnreachable); permanent ones fail at
// once. On failure everything already issued is revoked.
//
// With the token method the token is known before Vault is asked about it,
// so its lookup runs alongside the fetches: one round trip less before the
// child can start. Other methods log in first.
func (m *Manager) Start(ctx context.Context) (*Snapshot, error) {
	sctx, cancel := context.WithTimeout(ctx, m.cfg.StartupTimeout)
	defer cancel()
	// fctx stops retries once the start has failed. Requests already in
	// flight get abandonGrace to finish (rctx) so that a credential Vault
	// is issuing right now is seen and revoked, not orphaned until its TTL.
	fctx, fcancel := context.WithCancel(sctx)
	defer fcancel()
	rctx, rcancel := context.WithCancel(sctx)
	defer rcancel()
	stopGrace := context.AfterFunc(fctx, func() { time.AfterFunc(abandonGrace, rcancel) })
	defer stopGrace()

	var (
		tok      *token
		loginErr error
		lookup   sync.WaitGroup
	)
	if m.isTokenMethod() {
		v, err := m.readUserToken()
		if err != nil {
			return nil, err
		}
		// Installed now so the fetches use it and their leases name it as
		// owner; planned again once the lookup has said when it expires.
		tok = &token{value: v}
		m.setToken(tok)
		lookup.Go(func() {
			loginErr = m.retry(ctx, sctx, "login", m.loginPath(), func(c context.Context) error {
				return m.lookupToken(c, tok)
			})
			if loginErr != nil {
				fcancel() // the fetches cannot be trusted without a valid token
			}
		})
	} else {
		err := m.retry(ctx, sctx, "login", m.loginPath(), func(c context.Context) error {
			t, err := m.login(c)
			tok = t
			return err
		})
		if err != nil {
			return nil, err
		}
		m.setToken(tok)
		m.loggedIn(tok)
	}

	results := make([]*issued, len(m.entries))
	errs := make([]error, len(m.entries))
	var wg sync.WaitGroup
	for i, e := range m.entries {
		wg.Go(func() {
			op := "read"
			if e.spec.Params != nil {
				op = "write"
			}
			errs[i] = m.retry(ctx, fctx, op, e.spec.Path, func(context.Context) error {
				is, err := m.fetch(rctx, e)
				results[i] = is
				return err
			})
			if errs[i] != nil {
				fcancel() // fail fast: the child cannot start anyway
			}
		})
	}
	wg.Wait()
	lookup.Wait()

	if m.isTokenMethod() && loginErr == nil {
		m.planToken(tok, m.now())
		m.loggedIn(tok)
	}
	for i, e := range m.entries {
		if results[i] != nil {
			m.apply(e, results[i])
		}
	}
	err := loginErr // a bad token explains the fetches' failures
	if err == nil {
		err = firstError(errs)
	}
	if err != nil {
		if errors.Is(err, ErrPermissionDenied) && loginErr == nil {
			err = m.explainDenied(err)
		}
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.RevokeTimeout)
		defer ccancel()
		m.revokeAll(cctx)
		return nil, err
	}
	m.warnTokenBound()
	return m.emit(), nil
}

// abandonGrace is how long a failed start waits for requests in flight.
const abandonGrace = 2 * time.Second

func (m *Manager) loggedIn(t *token) {
	m.log.Info("logged in", "path", m.loginPath(), "ttl", t.ttl.String(), "renewable", t.renewable)
	m.event(Event{Kind: EventLogin, Path: m.loginPath(), TTL: t.ttl, ExpiresAt: t.expires, Next: t.next})
}

// firstError prefers a real failure over the cancellations it caused.
func firstError(errs []error) error {
	var canceled error
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, context.Canceled):
			canceled = err
		default:
			return err
		}
	}
	return canceled
}

// explainDenied adds the capabilities the token does hold on the path.
func (m *Manager) explainDenied(err error) error {
	var le *Error
	if !errors.As(err, &le) || le.Op == "login" {
		return err
	}
	need := "read"
	if le.Op == "write" {
		need = "update"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	path := le.Path
	for _, e := range m.entries {
		if e.spec.Path == le.Path && e.path != "" {
			path = e.path
		}
	}
	caps, cerr := m.capabilities(ctx, path)
	if cerr != nil {
		return err
	}
	return &Error{Op: le.Op, Path: le.Path, Err: fmt.Errorf("%w: token lacks %q on %s (has %v)", ErrPermissionDenied, need, path, caps)}
}

// retry runs fn until it succeeds, fails permanently, or sctx ends. outer is
// the caller's context: its cancellation is returned as is, while sctx's
// deadline means Vault stayed unreachable.
func (m *Manager) retry(outer, sctx context.Context, op, path string, fn func(context.Context) error) error {
	var last error
	for attempt := 0; ; attempt++ {
		err := fn(sctx)
		if err == nil {
			return nil
		}
		if outer.Err() != nil {
			return outer.Err()
		}
		cerr, transient := classify(err)
		if sctx.Err() != nil {
			if errors.Is(sctx.Err(), context.DeadlineExceeded) {
				if last == nil {
					last = cerr
				}
				return &Error{Op: op, Path: path, Err: fmt.Errorf("%w after %s: %w", ErrUnreachable, m.cfg.StartupTimeout, last)}
			}
			return sctx.Err()
		}
		if !transient {
			var le *Error
			if errors.As(cerr, &le) {
				return le
			}
			return &Error{Op: op, Path: path, Err: cerr}
		}
		last = cerr
		d := backoff(attempt, 250*time.Millisecond, 5*time.Second, m.rand())
		m.log.Warn("vault request failed, retrying", "path", path, "error", cerr, "attempt", attempt+1, "backoff", d.String())
		t := time.NewTimer(d)
		select {
		case <-sctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// setToken makes t current. The previous token stops being renewed and its
// leases count as ending with it.
func (m *Manager) setToken(t *token) {
	m.mu.Lock()
	old := m.tok
	m.tok = t
	if t.own {
		m.tokens = append(m.tokens, t)
	}
	m.mu.Unlock()
	if old != nil {
		old.hard = true
		old.next = time.Time{}
	}
	m.client.SetToken(string(t.value))
	m.planToken(t, m.now())
}

// planToken sets when the token needs attention: a renewal while it can be
// extended, else a new login before it expires (methods that can log in).
func (m *Manager) planToken(t *token, now time.Time) {
	switch {
	case t.expires.IsZero():
		t.next = time.Time{}
	case !t.hard:
		t.next = m.sched.renewAt(now, t.expires, t.r)
	case m.canLogin():
		t.next = m.sched.rotateAt(t.expires, m.rotateBefore(t.ttl), t.r, now)
	default:
		t.next = time.Time{}
	}
}

func (m *Manager) rotateBefore(ttl time.Duration) time.Duration {
	return m.sched.rotateBefore(ttl, m.cfg.RotateBefore, m.cfg.RotateFraction)
}

// apply installs a fetch result as the entry's current credential. The
// previous lease stays held until Retire. The next action is planned from
// the issue time, like the expiry: Start applies every result once the
// last fetch is back, and planning the first renewal from that moment
// shortened the renewal jitter's reach by the length of the start (with
// 1000 leases the jittered hand-over bound decided most first renewals,
// and their spread fell to 8% of the TTL).
func (m *Manager) apply(e *entry, is *issued) {
	e.cur = is.secret
	e.lease = is.lease
	e.leaseExp = is.leaseExp
	e.notAfter = is.notAfter
	e.renewable = is.renewable
	e.maxed = false
	e.ttl = is.ttl
	e.r = m.rand()
	e.failures = 0
	e.steady = false
	e.hash = is.hash
	if h := is.lease; h != nil {
		m.mu.Lock()
		m.held[h.fp] = h
		m.pruneAt = earliest(m.pruneAt, h.expires)
		if h.owner != nil {
			h.owner.leases++
		}
		m.mu.Unlock()
	}
	e.rot = is.rotation
	e.stale = 0
	e.stuck = false
	m.planEntry(e, is.secret.IssuedAt)
	exp, bound := e.expiry()
	if bound {
		is.secret.ExpiresAt = exp // not emitted yet: the token is the limit
	}
	switch {
	case is.rotation != nil:
		m.log.Info("static credential read", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path,
			"last_rotation", fmtTime(is.rotation.last), "next_rotation", fmtTime(is.rotation.next), "next_read", fmtTime(e.next))
	case is.lease == nil:
		// A KV secret, or a certificate without a lease: nothing to renew
		// or revoke, only to read again.
		m.log.Info("secret read", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path,
			"version", is.secret.Version, "expires", fmtTime(exp), "next_read", fmtTime(e.next))
	default:
		m.log.Info("lease issued", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path, "lease", is.secret.Fingerprint,
			"ttl", is.secret.LeaseDuration.String(), "expires", fmtTime(exp), "version", is.secret.Version)
	}
	m.event(Event{Kind: EventIssued, ID: e.spec.ID, Outputs: e.spec.Outputs, Path: e.spec.Path, Fingerprint: is.secret.Fingerprint,
		TTL: is.secret.LeaseDuration, ExpiresAt: exp, Next: e.next, Rotation: is.secret.NextRotation})
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
func (m *Manager) lostAt(e *entry) time.Time {
	exp, bound := e.expiry()
	if exp.IsZero() {
		return exp
	}
	ttl := e.ttl
	if bound {
		ttl = e.lease.owner.ttl // the token's life is what runs out
	}
	return exp.Add(-m.sched.lostBefore(ttl))
}

// rotatePoint is when to fetch a replacement for the entry.
func (m *Manager) rotatePoint(e *entry) time.Time {
	exp, _ := e.expiry()
	if exp.IsZero() {
		return time.Time{}
	}
	return m.sched.rotateAt(exp, m.rotateBefore(e.ttl), e.r, e.cur.IssuedAt)
}

// renewing reports whether the entry is kept alive by renewal rather than
// by hand-over.
func (e *entry) renewing() bool {
	_, bound := e.expiry()
	return e.lease != nil && e.renewable && !e.maxed && !bound
}

// planEntry sets the entry's next action after a success.
func (m *Manager) planEntry(e *entry, now time.Time) {
	exp, _ := e.expiry()
	switch {
	case exp.IsZero() && e.rot != nil:
		e.next, _ = m.sched.staticReadAt(now, e.rot.next, e.stale, m.cfg.StaticRefresh, e.r)
	case exp.IsZero():
		e.next = now.Add(m.cfg.StaticRefresh)
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
		r, bound := e.r, m.rotatePoint(e)
		if e.steady {
			r, bound = 0, exp.Add(-m.rotateBefore(e.ttl))
		}
		e.next = earliest(m.sched.renewAt(now, exp, r), bound)
		if e.next.Before(now) {
			e.next = now
		}
	default:
		e.next = m.rotatePoint(e)
	}
}

// warnTokenBound warns at startup when leases will die with a token that
// cannot be renewed or re-obtained (consul-template#1433).
func (m *Manager) warnTokenBound() {
	t := m.tok
	if m.canLogin() || !t.hard || t.expires.IsZero() {
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

// emit builds a snapshot of the current secrets and publishes it (latest wins).
func (m *Manager) emit() *Snapshot {
	m.mu.Lock()
	first := m.snap == nil
	seq := uint64(1)
	if !first {
		seq = m.snap.Seq + 1
	}
	s := &Snapshot{Seq: seq, Secrets: make(map[string]*Secret, len(m.entries))}
	for _, e := range m.entries {
		s.Secrets[e.spec.ID] = e.cur
		if e.lease != nil {
			e.lease.lastSeq = seq
		}
	}
	m.snap = s
	m.mu.Unlock()
	if !first {
		select {
		case m.updates <- s:
		default:
			select {
			case <-m.updates:
			default:
			}
			m.updates <- s
		}
	}
	return s
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

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
	if m.currentToken() == nil {
		return errors.New("lease: Run before a successful Start")
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	stepped := false
	for {
		now := m.now()
		next, lost := m.scan(now)
		if stepped {
			if ctx.Err() != nil {
				return nil
			}
			if lost != nil {
				exp, _ := lost.expiry()
				m.event(Event{Kind: EventLost, ID: lost.spec.ID, Outputs: lost.spec.Outputs, Path: lost.spec.Path, Fingerprint: lost.cur.Fingerprint, ExpiresAt: exp})
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
			m.step(ctx)
		case req := <-m.rotates:
			snap, err := m.rotateNow(ctx, req.names)
			req.done <- rotateResult{snap, err}
		}
		stepped = true
	}
}

// rotateReq is a Rotate call waiting for Run.
type rotateReq struct {
	names []string
	done  chan<- rotateResult // buffered: Run never waits for the caller
}

type rotateResult struct {
	snap *Snapshot
	err  error
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
	done := make(chan rotateResult, 1)
	select {
	case m.rotates <- rotateReq{names: names, done: done}:
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

// rotateNow is Rotate's work, in Run's goroutine.
func (m *Manager) rotateNow(ctx context.Context, names []string) (*Snapshot, error) {
	var pick []*entry
	for _, e := range m.entries {
		if exp, _ := e.expiry(); len(names) == 0 && !exp.IsZero() {
			pick = append(pick, e)
		}
	}
	for _, n := range names {
		i := slices.IndexFunc(m.entries, func(e *entry) bool { return e.spec.ID == n })
		if i < 0 {
			return nil, fmt.Errorf("rotate %s: %w: no secret of that name", n, ErrNoRotation)
		}
		e := m.entries[i]
		if exp, _ := e.expiry(); exp.IsZero() {
			return nil, fmt.Errorf("rotate %s (%s): %w: it has no lease or expiry, and is re-read every %s", n, e.spec.Path, ErrNoRotation, m.cfg.StaticRefresh)
		}
		if !slices.Contains(pick, e) {
			pick = append(pick, e)
		}
	}
	if len(pick) == 0 {
		return nil, fmt.Errorf("rotate: %w: no secret has a lease or an expiry", ErrNoRotation)
	}
	var errs []error
	changed := false
	for _, e := range pick {
		m.log.Info("rotation requested", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path, "lease", e.cur.Fingerprint)
		if _, bound := e.expiry(); bound && e.lease.owner == m.tok && m.canLogin() && !m.relogin(ctx) {
			// A new credential from the same token would die with it
			// (as in entryStep); relogin logged why.
			errs = append(errs, fmt.Errorf("rotate %s: logging in again failed", e.spec.ID))
			continue
		}
		if err := m.rotate(ctx, e); err != nil {
			errs = append(errs, fmt.Errorf("rotate %s: %w", e.spec.ID, err))
			continue
		}
		changed = true
	}
	var snap *Snapshot
	if changed {
		snap = m.emit()
	}
	return snap, errors.Join(errs...)
}

// scan returns when Run has to act next: the earliest planned action,
// the moment a credential counts as lost (lostAt, to report it) or
// held-lease expiry (to prune it); and the first entry, in Spec order,
// whose credential counts as lost at now.
func (m *Manager) scan(now time.Time) (next time.Time, lost *entry) {
	if m.tok != nil {
		next = m.tok.next
	}
	for _, e := range m.entries {
		next = earliest(next, e.next)
		if at := m.lostAt(e); !at.IsZero() {
			next = earliest(next, at)
			if lost == nil && !now.Before(at) {
				lost = e
			}
		}
	}
	m.mu.Lock()
	next = earliest(next, m.pruneAt)
	m.mu.Unlock()
	return next, lost
}

// step does everything that is due, and what falls due within an entry's
// batch window (see schedule.batch): leases issued close together then
// share one wake-up rather than one each.
func (m *Manager) step(ctx context.Context) {
	m.prune(m.now())
	if t := m.tok; !t.next.IsZero() && !m.now().Before(t.next) {
		m.tokenStep(ctx, t)
	}
	due := m.dueAt(m.now())
	changed := false
	for _, e := range due {
		if ctx.Err() != nil {
			break
		}
		if m.entryStep(ctx, e) {
			changed = true
		}
	}
	clear(due)
	m.due = due[:0]
	if changed {
		m.emit()
	}
}

// dueAt returns the entries to act on at now, earliest first, in m.due's
// storage (step clears it).
func (m *Manager) dueAt(now time.Time) []*entry {
	due := m.due[:0]
	for _, e := range m.entries {
		if e.next.IsZero() {
			continue
		}
		at := e.next
		if e.failures == 0 { // never shorten a retry backoff
			at = at.Add(-m.sched.batch(e.ttl))
		}
		if !now.Before(at) {
			due = append(due, e)
		}
	}
	slices.SortFunc(due, func(a, b *entry) int { return a.next.Compare(b.next) })
	return due
}

// prune forgets held leases that have expired on their own (never
// retired). It runs only once the earliest held expiry has passed.
func (m *Manager) prune(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pruneAt.IsZero() || now.Before(m.pruneAt) {
		return
	}
	m.pruneAt = time.Time{}
	for fp, h := range m.held {
		switch {
		case h.expires.IsZero():
		case now.Before(h.expires):
			m.pruneAt = earliest(m.pruneAt, h.expires)
		case !m.isCurrent(h):
			m.dropHeld(fp, h)
		}
		// A current credential past its expiry stays: Run reports its loss.
	}
}

func (m *Manager) isCurrent(h *held) bool {
	for _, e := range m.entries {
		if e.lease == h {
			return true
		}
	}
	return false
}

func (m *Manager) dropHeld(fp string, h *held) {
	delete(m.held, fp)
	if h.owner != nil {
		h.owner.leases--
	}
}

func (m *Manager) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 30*time.Second)
}

// tokenCallCtx bounds a token request also by the earliest moment a
// credential counts as lost, so a hung token renewal cannot delay a
// fail-closed stop.
func (m *Manager) tokenCallCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	var first time.Time
	for _, e := range m.entries {
		first = earliest(first, m.lostAt(e))
	}
	if !first.IsZero() {
		if left := first.Sub(m.now()); left < 30*time.Second {
			return context.WithTimeout(ctx, max(left, 0))
		}
	}
	return m.callCtx(ctx)
}

// entryCallCtx bounds a request for e also by the moment e's credential
// counts as lost: a hung Vault must not keep leash waiting past it, when
// the child has to be stopped (fail closed).
func (m *Manager) entryCallCtx(ctx context.Context, e *entry) (context.Context, context.CancelFunc) {
	if lost := m.lostAt(e); !lost.IsZero() {
		if left := lost.Sub(m.now()); left < 30*time.Second {
			return context.WithTimeout(ctx, max(left, 0))
		}
	}
	return m.callCtx(ctx)
}

// tokenStep renews the current token or logs in again.
func (m *Manager) tokenStep(ctx context.Context, t *token) {
	now := m.now()
	if !t.hard && (t.failures == 0 || !m.canLogin() || now.Before(m.sched.rotateAt(t.expires, m.rotateBefore(t.ttl), t.r, t.issued))) {
		c, cancel := m.tokenCallCtx(ctx)
		err := m.renewToken(c, t)
		cancel()
		if err == nil {
			t.failures = 0
			m.planToken(t, m.now())
			m.log.Debug("token renewed", "path", m.loginPath(), "ttl", t.expires.Sub(m.now()).Round(time.Second).String(), "expires", fmtTime(t.expires))
			if t.hard {
				if m.canLogin() {
					m.log.Info("token reached its max ttl; logging in again before it expires", "path", m.loginPath(), "expires", fmtTime(t.expires))
				} else {
					m.log.Warn("token reached its max ttl and cannot be re-obtained; its leases die with it", "path", m.loginPath(), "expires", fmtTime(t.expires))
				}
				m.replanAll()
			}
			return
		}
		cerr, _ := classify(err)
		if !(errors.Is(cerr, ErrPermissionDenied) && m.canRefresh()) {
			m.tokenFailed(t, "renew token", cerr)
			return
		}
		// The token is gone (revoked, or Vault lost it): log in again now.
	}
	if !m.canRefresh() {
		t.next = time.Time{}
		return
	}
	m.relogin(ctx)
}

func (m *Manager) tokenFailed(t *token, op string, err error) {
	m.event(Event{Kind: EventFailed, Path: m.loginPath(), ExpiresAt: t.expires, Op: op, Err: err.Error()})
	var left time.Duration
	if !t.expires.IsZero() {
		left = t.expires.Sub(m.now())
	}
	d := m.sched.retry(t.failures, left, m.rand())
	t.failures++
	t.next = m.now().Add(d)
	if !t.expires.IsZero() && t.next.After(t.expires) {
		t.next = t.expires
	}
	m.log.Warn(op+" failed", "path", m.loginPath(), "error", err, "attempt", t.failures, "backoff", d.String())
}

// relogin obtains a new token; leases of the old one are handed over in
// time because their expiry is now bound by it.
func (m *Manager) relogin(ctx context.Context) bool {
	c, cancel := m.tokenCallCtx(ctx)
	t, err := m.login(c)
	cancel()
	if err != nil {
		cerr, _ := classify(err)
		m.tokenFailed(m.tok, "login", cerr)
		return false
	}
	if !m.canLogin() && t.value == m.tok.value {
		// --token-file still holds the same token: nothing new to switch
		// to. The next permission-denied failure reads the file again.
		m.log.Debug("token file unchanged", "path", m.loginPath())
		m.tok.next = time.Time{}
		return false
	}
	m.setToken(t)
	m.log.Info("logged in again", "path", m.loginPath(), "ttl", t.ttl.String(), "expires", fmtTime(t.expires))
	m.event(Event{Kind: EventLogin, Path: m.loginPath(), TTL: t.ttl, ExpiresAt: t.expires, Next: t.next})
	m.replanAll()
	return true
}

func (m *Manager) replanAll() {
	now := m.now()
	for _, e := range m.entries {
		if e.cur != nil && e.failures == 0 {
			m.planEntry(e, now)
		}
	}
}

// entryStep renews, rotates or refreshes one entry. It reports whether the
// entry's secret changed.
func (m *Manager) entryStep(ctx context.Context, e *entry) bool {
	now := m.now()
	exp, bound := e.expiry()
	switch {
	case exp.IsZero():
		return m.refresh(ctx, e)
	case e.renewing() && (e.failures == 0 || now.Before(m.rotatePoint(e))):
		m.renew(ctx, e)
		return false
	case e.renewing():
		// Past the hand-over point after failed renewals (an outage): if
		// Vault is back and the lease still renews, keep it. Re-issuing
		// because of a blip is what vault#10918 complains about. Only when
		// Vault answers that it will not renew is a new credential fetched:
		// when it does not answer at all, it cannot issue one either, and
		// trying would only double the requests of an outage.
		err := m.renew(ctx, e)
		if err == nil {
			return false
		}
		if noAnswer(err) {
			m.log.Debug("vault did not answer; renewing again before trying a new credential",
				"name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path, "lease", e.cur.Fingerprint, "backoff", e.next.Sub(m.now()).Round(time.Millisecond).String())
			return false
		}
	}
	if bound && e.lease.owner == m.tok {
		// A new credential from the same token would die with it.
		if !m.canLogin() {
			e.next = m.lostAt(e) // nothing to do but report the loss then
			return false
		}
		if !m.relogin(ctx) {
			e.failures++
			e.next = earliest(m.tok.next, exp)
			return false
		}
	}
	return m.rotate(ctx, e) == nil
}

// renew extends the entry's lease. It returns nil on success, else Vault's
// or the transport's error (already logged and counted).
func (m *Manager) renew(ctx context.Context, e *entry) error {
	c, cancel := m.entryCallCtx(ctx, e)
	sent := m.now()
	ld, err := m.renewLease(c, e.lease, e.ttl)
	cancel()
	now := m.now()
	if err != nil {
		cerr, _ := classify(err)
		m.entryFailed(e, "renew", cerr)
		// Keep trying until the hand-over point; then rotate instead. A
		// failed renewal never re-issues while the lease is valid (vault#10918).
		if rp := m.rotatePoint(e); rp.After(now) && rp.Before(e.next) {
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
	m.planEntry(e, now)
	m.log.Info("lease renewed", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path, "lease", e.cur.Fingerprint,
		"ttl", ld.String(), "expires", fmtTime(e.leaseExp), "max_ttl_reached", e.maxed)
	exp, _ := e.expiry()
	m.event(Event{Kind: EventRenewed, ID: e.spec.ID, Outputs: e.spec.Outputs, Path: e.spec.Path, Fingerprint: e.cur.Fingerprint,
		TTL: ld, ExpiresAt: exp, Next: e.next})
	return nil
}

// rotate issues a new credential for e and makes it current; the old lease
// stays held until Retire. It returns the failure, already logged and
// counted.
func (m *Manager) rotate(ctx context.Context, e *entry) error {
	c, cancel := m.entryCallCtx(ctx, e)
	is, err := m.fetch(c, e)
	cancel()
	if err != nil {
		cerr, _ := classify(err)
		m.entryFailed(e, "rotate", cerr)
		return cerr
	}
	old := e.cur
	m.apply(e, is)
	m.log.Info("lease rotated", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path, "lease", is.secret.Fingerprint,
		"previous", old.Fingerprint, "ttl", is.secret.LeaseDuration.String(), "expires", fmtTime(is.secret.ExpiresAt))
	m.event(Event{Kind: EventRotated, ID: e.spec.ID, Outputs: e.spec.Outputs, Path: e.spec.Path, Fingerprint: is.secret.Fingerprint,
		TTL: is.secret.LeaseDuration, ExpiresAt: is.secret.ExpiresAt, Next: e.next})
	return nil
}

func (m *Manager) refresh(ctx context.Context, e *entry) bool {
	c, cancel := m.entryCallCtx(ctx, e)
	is, err := m.fetch(c, e)
	cancel()
	if err != nil {
		cerr, _ := classify(err)
		m.entryFailed(e, "refresh", cerr)
		if later := m.now().Add(min(m.cfg.StaticRefresh, m.sched.retryMax)); e.next.Before(later) {
			e.next = later
		}
		return false
	}
	e.failures = 0
	if is.hash == e.hash && is.lease == nil {
		var rot time.Time
		if e.rot != nil && is.rotation != nil {
			m.notRotated(e, is.rotation)
			rot = e.rot.next
		} else {
			e.next = m.now().Add(m.cfg.StaticRefresh)
			m.log.Trace("secret unchanged", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path, "version", is.secret.Version)
		}
		m.event(Event{Kind: EventUnchanged, ID: e.spec.ID, Outputs: e.spec.Outputs, Path: e.spec.Path, Next: e.next, Rotation: rot})
		return false
	}
	prev := e.rot
	m.apply(e, is)
	if r := is.rotation; r != nil {
		// How long after Vault's rotation leash has the new password
		// (the child gets it right after): the lag issue 16 is about.
		var lag time.Duration
		if !r.last.IsZero() && (prev == nil || r.last.After(prev.last)) {
			lag = is.secret.IssuedAt.Sub(r.last).Round(time.Millisecond)
		}
		m.log.Info("static credential rotated", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path,
			"last_rotation", fmtTime(r.last), "read_after", lag.String(), "next_rotation", fmtTime(r.next))
	} else {
		m.log.Info("secret changed", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path, "version", is.secret.Version)
	}
	m.event(Event{Kind: EventChanged, ID: e.spec.ID, Outputs: e.spec.Outputs, Path: e.spec.Path, Fingerprint: is.secret.Fingerprint,
		Next: e.next, Rotation: is.secret.NextRotation})
	return true
}

// notRotated plans the next read of a static role whose read r found the
// credential leash holds. While Vault's next rotation is still ahead, that
// is the plan; once its time has come, Vault rotates at its next queue
// tick, and the read is repeated briefly (schedule.staticReadAt) so the new
// password reaches the child within a second or so.
func (m *Manager) notRotated(e *entry, r *rotation) {
	now := m.now()
	if r.next.After(now.Add(m.sched.staticLag)) {
		e.rot, e.stale = r, 0 // not due yet (a --static-refresh read), or moved
	} else {
		e.stale++
	}
	next, ok := m.sched.staticReadAt(now, e.rot.next, e.stale, m.cfg.StaticRefresh, m.rand())
	e.next = next
	if !ok && !e.stuck {
		e.stuck = true
		m.log.Warn("vault has not rotated the static credential since its rotation time; reading it again after --static-refresh",
			"name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path, "rotation_due", fmtTime(e.rot.next), "next_read", fmtTime(next))
		return
	}
	m.log.Debug("static credential not rotated yet", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path,
		"rotation_due", fmtTime(e.rot.next), "attempt", e.stale, "backoff", next.Sub(now).Round(time.Millisecond).String())
}

func (m *Manager) entryFailed(e *entry, op string, err error) {
	if errors.Is(err, ErrPermissionDenied) && m.canRefresh() && (m.tok.next.IsZero() || m.tok.next.After(m.now())) {
		// The token may be gone (revoked, or Vault lost its storage): let
		// the token step check it now and log in again if so.
		m.tok.next = m.now()
	}
	now := m.now()
	// The deadline that matters: the hand-over point while renewing can
	// still keep the lease, else the loss. Retries get denser near it.
	deadline := m.lostAt(e)
	if rp := m.rotatePoint(e); e.renewing() && rp.After(now) {
		deadline = rp
	}
	var left time.Duration
	if !deadline.IsZero() {
		left = deadline.Sub(now)
	}
	d := m.sched.retry(e.failures, left, m.rand())
	e.failures++
	e.steady = false
	e.next = now.Add(d)
	if lost := m.lostAt(e); !lost.IsZero() && e.next.After(lost) {
		e.next = lost
	}
	level := hclog.Warn
	if errors.Is(err, ErrPermissionDenied) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnsupported) {
		level = hclog.Error
	}
	var fp string
	if e.cur != nil {
		fp = e.cur.Fingerprint
	}
	m.log.Log(level, op+" failed", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path, "lease", fp,
		"error", err, "attempt", e.failures, "backoff", d.String())
	exp, _ := e.expiry()
	m.event(Event{Kind: EventFailed, ID: e.spec.ID, Outputs: e.spec.Outputs, Path: e.spec.Path, Fingerprint: fp, ExpiresAt: exp,
		Next: e.next, Op: op, Err: err.Error()})
}

// Retire revokes the leases of old that the current snapshot no longer
// holds: call it once the child has switched to a newer snapshot. A lease
// that a snapshot newer than old still holds is kept, since the child may
// be on that one (a later snapshot may be waiting in Updates). Old login
// tokens left without leases are revoked too. Bounded by a short timeout.
func (m *Manager) Retire(old *Snapshot) {
	if old == nil {
		return
	}
	m.mu.Lock()
	keep := map[string]bool{}
	if m.snap != nil {
		for _, s := range m.snap.Secrets {
			keep[s.Fingerprint] = true
		}
	}
	var leases []*held
	for _, s := range old.Secrets {
		if s.Fingerprint == "" || keep[s.Fingerprint] {
			continue
		}
		if h, ok := m.held[s.Fingerprint]; ok && h.lastSeq <= old.Seq {
			m.dropHeld(s.Fingerprint, h)
			leases = append(leases, h)
		}
	}
	var toks []*token
	kept := m.tokens[:0]
	for _, t := range m.tokens {
		if t != m.tok && t.leases <= 0 {
			toks = append(toks, t)
		} else {
			kept = append(kept, t)
		}
	}
	m.tokens = kept
	m.mu.Unlock()
	if m.cfg.NoRevoke {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), retireTimeout)
	defer cancel()
	for _, h := range leases {
		if err := m.revokeLease(ctx, h); err != nil {
			cerr, _ := classify(err)
			m.log.Warn("retire failed; the lease expires on its own", "name", h.id, "outputs", h.outputs, "path", h.path,
				"lease", h.fp, "expires", fmtTime(h.expires), "error", cerr)
			m.event(Event{Kind: EventFailed, ID: h.id, Outputs: h.outputs, Path: h.path, Fingerprint: h.fp, ExpiresAt: h.expires, Op: "retire", Err: cerr.Error()})
			continue
		}
		m.log.Info("lease retired", "name", h.id, "outputs", h.outputs, "path", h.path, "lease", h.fp)
		m.event(Event{Kind: EventRetired, ID: h.id, Outputs: h.outputs, Path: h.path, Fingerprint: h.fp})
	}
	for _, t := range toks {
		if err := m.revokeToken(ctx, t); err != nil {
			cerr, _ := classify(err)
			m.log.Warn("revoke old token failed", "path", m.loginPath(), "error", cerr)
			continue
		}
		m.log.Info("old token revoked", "path", m.loginPath())
	}
}

// Close revokes every lease leash holds and the tokens it logged in with
// (never a token the user gave), unless NoRevoke. ctx bounds it, and so
// does Config.RevokeTimeout.
func (m *Manager) Close(ctx context.Context) error {
	if m.cfg.NoRevoke {
		m.log.Info("leaving leases in place (no-revoke)")
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.RevokeTimeout)
	defer cancel()
	return m.revokeAll(ctx)
}

func (m *Manager) revokeAll(ctx context.Context) error {
	m.mu.Lock()
	leases := make([]*held, 0, len(m.held))
	for fp, h := range m.held {
		leases = append(leases, h)
		m.dropHeld(fp, h)
	}
	toks := m.tokens
	m.tokens = nil
	m.mu.Unlock()
	// Revoke in parallel (bounded): each revocation is a round trip plus,
	// for database credentials, a DROP ROLE; one by one, ten leases took
	// 150 ms of a container's shutdown.
	errs := make([]error, len(leases))
	sem := make(chan struct{}, revokeConcurrency)
	var wg sync.WaitGroup
	for i, h := range leases {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = m.revokeOne(ctx, h)
		})
	}
	wg.Wait()
	for _, t := range toks {
		if err := m.revokeToken(ctx, t); err != nil {
			cerr, _ := classify(err)
			m.log.Warn("revoke token failed", "path", m.loginPath(), "error", cerr)
			errs = append(errs, &Error{Op: "revoke", Path: "auth/token/revoke-self", Err: cerr})
			continue
		}
		m.log.Info("token revoked", "path", m.loginPath())
	}
	return errors.Join(errs...)
}

// revokeConcurrency bounds parallel revocations at shutdown.
const revokeConcurrency = 8

// revokeOne revokes one held lease and reports it.
func (m *Manager) revokeOne(ctx context.Context, h *held) error {
	err := m.revokeLease(ctx, h)
	if err == nil {
		m.log.Info("lease revoked", "name", h.id, "outputs", h.outputs, "path", h.path, "lease", h.fp)
		m.event(Event{Kind: EventRevoked, ID: h.id, Outputs: h.outputs, Path: h.path, Fingerprint: h.fp})
		return nil
	}
	cerr, _ := classify(err)
	if errors.Is(cerr, ErrPermissionDenied) && h.owner != nil && h.owner.own {
		// Revoking leash's own token afterwards revokes the lease with it.
		m.log.Debug("lease revoked with its token", "name", h.id, "outputs", h.outputs, "path", h.path, "lease", h.fp)
		return nil
	}
	m.log.Warn("revoke failed", "name", h.id, "outputs", h.outputs, "path", h.path, "lease", h.fp, "error", cerr)
	m.event(Event{Kind: EventFailed, ID: h.id, Outputs: h.outputs, Path: h.path, Fingerprint: h.fp, Op: "revoke", Err: cerr.Error()})
	return &Error{Op: "revoke", Path: h.path, Err: cerr}
}

// Check logs in and verifies with sys/capabilities-self that the token may
// read (or write, for specs with Params) every spec's path.
func (m *Manager) Check(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, m.cfg.StartupTimeout)
	defer cancel()
	var tok *token
	if err := m.retry(ctx, sctx, "login", m.loginPath(), func(c context.Context) error {
		t, err := m.login(c)
		tok = t
		return err
	}); err != nil {
		return err
	}
	m.setToken(tok)
	defer func() {
		if tok.own {
			m.revokeToken(context.WithoutCancel(ctx), tok)
			m.mu.Lock()
			m.tokens = nil
			m.mu.Unlock()
		}
	}()
	var errs []error
	for _, e := range m.entries {
		need := []string{"read"}
		if e.spec.Params != nil {
			need = []string{"update", "create"}
		}
		var caps []string
		err := m.retry(ctx, sctx, "check", e.spec.Path, func(c context.Context) error {
			if err := m.resolve(c, e); err != nil {
				return err
			}
			var err error
			caps, err = m.capabilities(c, e.path)
			return err
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !hasAny(caps, append(need, "root")) {
			errs = append(errs, &Error{Op: "check", Path: e.spec.Path,
				Err: fmt.Errorf("%w: token lacks %q on %s (has %v)", ErrPermissionDenied, need[0], e.path, caps)})
		}
	}
	return errors.Join(errs...)
}

func hasAny(have, want []string) bool {
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}
