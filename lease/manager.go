package lease

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Manager fetches secrets and keeps them alive. Start, then Run in one
// goroutine; Retire and Updates may be used from others; Close after Run
// has returned.
type Manager struct {
	cfg     Config
	vault   *vault
	log     hclog.Logger
	updates chan *Snapshot
	calls   chan runCall // Rotate's and Track's work for Run

	clock // the schedule's clock and randomness; tests replace them
	// plan holds the renewal, hand-over and retry parameters.
	plan planner

	auth *auth // logins and the user's token

	// tokens (the token lifecycle) and keeper (the entries' lifecycle)
	// belong to the goroutine running Start, Add, Run or Check.
	tokens *tokens
	keeper *keeper

	ledger  *ledger  // what leash holds, for Retire and Close
	revoker *revoker // revokes what the ledger gives up
	reporter
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
	v, err := newVault(env, cfg, log)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg: cfg, vault: v, log: log,
		updates: make(chan *Snapshot, 1),
		calls:   make(chan runCall),
		clock:   clock{now: time.Now, rand: rand.Float64},
		plan: planner{sched: defaultSchedule, rotateBefore: cfg.RotateBefore, rotateFraction: cfg.RotateFraction, switchTime: cfg.SwitchTime,
			staticRefresh: cfg.StaticRefresh},
		ledger: newLedger(),
	}
	fetch := &fetcher{vault: v, ledger: m.ledger, clock: &m.clock, log: log} // the entries' requests
	m.auth = &auth{cfg: cfg.Auth, env: env, vault: v, log: log, clock: &m.clock}
	m.reporter = reporter{onEvent: cfg.OnEvent, log: log, clock: &m.clock, ledger: m.ledger}
	m.revoker = &revoker{vault: v, ledger: m.ledger, rep: &m.reporter, log: log, loginPath: cfg.Auth.loginPath()}
	m.tokens = &tokens{auth: m.auth, vault: v, plan: &m.plan, ledger: m.ledger, rep: &m.reporter, log: log, clock: &m.clock}
	m.keeper = &keeper{auth: cfg.Auth, startupTimeout: cfg.StartupTimeout, vault: v, fetcher: fetch, tokens: m.tokens,
		plan: &m.plan, ledger: m.ledger, rep: &m.reporter, log: log, clock: &m.clock}
	for _, s := range cfg.Specs {
		m.keeper.entries = append(m.keeper.entries, &entry{spec: s})
	}
	return m, nil
}

// clock is where the Manager and its parts take the time and the jitter
// (r in [0,1)) from. The parts hold a pointer to the Manager's, so a test
// that replaces now or rand after New replaces them everywhere.
type clock struct {
	now  func() time.Time
	rand func() float64
}

// Updates delivers each new snapshot after Start's. Buffer 1: a slow
// reader sees the latest snapshot, never a stale one.
func (m *Manager) Updates() <-chan *Snapshot { return m.updates }

// Retire revokes the leases of old that the current snapshot no longer
// holds: call it once the child has switched to a newer snapshot. A lease
// that a snapshot newer than old still holds is kept, since the child may
// be on that one (a later snapshot may be waiting in Updates). Old login
// tokens left without leases are revoked too. Bounded by a short timeout.
func (m *Manager) Retire(old *Snapshot) {
	if old == nil {
		return
	}
	leases, toks := m.ledger.retire(old)
	if m.cfg.NoRevoke {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), retireTimeout)
	defer cancel()
	m.revoker.retire(ctx, leases, toks)
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
	return m.revoker.all(ctx)
}

// emit publishes a snapshot of the current secrets (latest wins).
func (m *Manager) emit() *Snapshot {
	s, first := m.ledger.publish(m.keeper.entries)
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
