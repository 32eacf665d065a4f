package lease

import (
	"context"
	"errors"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// revoker revokes what the ledger gave up: the leases and tokens of a
// retired snapshot (Retire), or everything at Close and after a failed
// Start. It holds no state of its own; the ledger decides what to revoke.
type revoker struct {
	vault     *vault
	ledger    *ledger
	rep       *reporter
	log       hclog.Logger
	loginPath string // AuthConfig.loginPath, which token messages name
}

// retire revokes the leases and tokens ledger.retire let go of.
func (r *revoker) retire(ctx context.Context, leases []*held, toks []*token) {
	for _, h := range leases {
		if err := r.vault.revokeLease(ctx, h); err != nil {
			cerr, _ := classify(err)
			ev := h.event(EventFailed)
			ev.Op, ev.ExpiresAt = "retire", h.expires
			r.rep.reportFailure(ev, cerr)
			continue
		}
		r.rep.report(h.event(EventRetired))
	}
	for _, t := range toks {
		if err := r.vault.revokeToken(ctx, t); err != nil {
			cerr, _ := classify(err)
			r.log.Warn("revoke old token failed", "path", r.loginPath, "error", cerr)
			continue
		}
		r.log.Info("old token revoked", "path", r.loginPath)
	}
}

// all revokes everything the ledger holds: the leases, then the tokens
// leash logged in with.
func (r *revoker) all(ctx context.Context) error {
	leases, toks := r.ledger.takeAll()
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
			errs[i] = r.one(ctx, h)
		})
	}
	wg.Wait()
	for _, t := range toks {
		if err := r.vault.revokeToken(ctx, t); err != nil {
			cerr, _ := classify(err)
			r.log.Warn("revoke token failed", "path", r.loginPath, "error", cerr)
			errs = append(errs, &Error{Op: "revoke", Path: "auth/token/revoke-self", Err: cerr})
			continue
		}
		r.log.Info("token revoked", "path", r.loginPath)
	}
	return errors.Join(errs...)
}

// revokeConcurrency bounds parallel revocations at shutdown.
const revokeConcurrency = 8

// one revokes one held lease and reports it.
func (r *revoker) one(ctx context.Context, h *held) error {
	err := r.vault.revokeLease(ctx, h)
	if err == nil {
		r.rep.report(h.event(EventRevoked))
		return nil
	}
	cerr, _ := classify(err)
	if errors.Is(cerr, ErrPermissionDenied) && h.owner != nil && h.owner.own {
		// Revoking leash's own token afterwards revokes the lease with it.
		r.log.Debug("lease revoked with its token", "name", h.id, "outputs", h.outputs, "path", h.path, "lease", h.fp)
		return nil
	}
	ev := h.event(EventFailed)
	ev.Op = "revoke"
	r.rep.reportFailure(ev, cerr)
	return &Error{Op: "revoke", Path: h.path, Err: cerr}
}
