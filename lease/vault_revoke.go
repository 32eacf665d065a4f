package lease

import "context"

// revokeToken revokes a token leash logged in with (never a user's).
func (v *vault) revokeToken(ctx context.Context, t *token) error {
	if !t.own {
		return nil
	}
	c, err := v.clientWith(string(t.value))
	if err != nil {
		return err
	}
	return c.Auth().Token().RevokeSelfWithContext(ctx, "")
}

// revokeLease revokes h: a token credential revokes itself (the default
// policy allows revoke-self); a lease needs update on sys/leases/revoke.
func (v *vault) revokeLease(ctx context.Context, h *held) error {
	if h.childTok != "" {
		c, err := v.clientWith(string(h.childTok))
		if err != nil {
			return err
		}
		return c.Auth().Token().RevokeSelfWithContext(ctx, "")
	}
	return v.client.Sys().RevokeWithContext(ctx, string(h.leaseID))
}
