package lease

import "context"

// revokeToken revokes a token leash logged in with (never a user's).
func (m *Manager) revokeToken(ctx context.Context, t *token) error {
	if !t.own {
		return nil
	}
	c, err := m.clientWith(string(t.value))
	if err != nil {
		return err
	}
	return c.Auth().Token().RevokeSelfWithContext(ctx, "")
}

// revokeLease revokes h: a token credential revokes itself (the default
// policy allows revoke-self); a lease needs update on sys/leases/revoke.
func (m *Manager) revokeLease(ctx context.Context, h *held) error {
	if h.childTok != "" {
		c, err := m.clientWith(string(h.childTok))
		if err != nil {
			return err
		}
		return c.Auth().Token().RevokeSelfWithContext(ctx, "")
	}
	return m.client.Sys().RevokeWithContext(ctx, string(h.leaseID))
}
