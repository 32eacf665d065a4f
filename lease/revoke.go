package lease

import (
	"context"
	"errors"
	"sync"
)

func (m *Manager) revokeAll(ctx context.Context) error {
	leases, toks := m.ledger.takeAll()
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
		if err := m.vault.revokeToken(ctx, t); err != nil {
			cerr, _ := classify(err)
			m.log.Warn("revoke token failed", "path", m.cfg.Auth.loginPath(), "error", cerr)
			errs = append(errs, &Error{Op: "revoke", Path: "auth/token/revoke-self", Err: cerr})
			continue
		}
		m.log.Info("token revoked", "path", m.cfg.Auth.loginPath())
	}
	return errors.Join(errs...)
}

// revokeConcurrency bounds parallel revocations at shutdown.
const revokeConcurrency = 8

// revokeOne revokes one held lease and reports it.
func (m *Manager) revokeOne(ctx context.Context, h *held) error {
	err := m.vault.revokeLease(ctx, h)
	if err == nil {
		m.report(h.event(EventRevoked))
		return nil
	}
	cerr, _ := classify(err)
	if errors.Is(cerr, ErrPermissionDenied) && h.owner != nil && h.owner.own {
		// Revoking leash's own token afterwards revokes the lease with it.
		m.log.Debug("lease revoked with its token", "name", h.id, "outputs", h.outputs, "path", h.path, "lease", h.fp)
		return nil
	}
	ev := h.event(EventFailed)
	ev.Op = "revoke"
	m.reportFailure(ev, cerr)
	return &Error{Op: "revoke", Path: h.path, Err: cerr}
}
