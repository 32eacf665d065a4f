package lease

import (
	"context"
	"errors"
	"fmt"
)

// Check logs in and verifies with sys/capabilities-self that the token may
// read (or write, for specs with Params) every spec's path.
func (m *Manager) Check(ctx context.Context) error {
	st := newStartup(ctx, m.cfg.StartupTimeout, m.log, &m.clock)
	defer st.close()
	var tok *token
	if err := st.retry(st.sctx, "login", m.cfg.Auth.loginPath(), func(c context.Context) error {
		t, err := m.auth.login(c)
		tok = t
		return err
	}); err != nil {
		return err
	}
	m.tokens.set(tok)
	defer func() {
		if tok.own {
			m.vault.revokeToken(context.WithoutCancel(ctx), tok)
			m.ledger.forgetTokens()
		}
	}()
	return m.keeper.check(st)
}

// check asks sys/capabilities-self whether the current token may do what
// each entry needs on its path (read; update or create for Params; list).
func (k *keeper) check(st *startup) error {
	var errs []error
	for _, e := range k.entries {
		need := []string{"read"}
		if e.spec.Params != nil {
			need = []string{"update", "create"}
		}
		if e.spec.List {
			need = []string{"list"}
		}
		var caps []string
		err := st.retry(st.sctx, "check", e.spec.Path, func(c context.Context) error {
			if err := k.fetcher.resolve(c, e); err != nil {
				return err
			}
			var err error
			caps, err = k.vault.capabilities(c, e.path)
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
