package lease

import (
	"context"
	"errors"
	"time"
)

// renewToken renews the current token, asking for its original ttl.
func (m *Manager) renewToken(ctx context.Context, t *token) error {
	// Vault's cert method checks the connection's certificate again when
	// its token is renewed: that connection must present the certificate
	// on disk now, as a login does, not one a pooled connection was set up
	// with and which may have expired since.
	c, err := withToken(m.vault.login, string(t.value))
	if err != nil {
		return err
	}
	inc := int(t.ttl / time.Second)
	sec, err := c.Auth().Token().RenewSelfWithContext(ctx, inc)
	if err != nil {
		return err
	}
	now := m.now()
	if sec == nil || sec.Auth == nil {
		return errors.New("token renewal returned no auth")
	}
	ld := time.Duration(sec.Auth.LeaseDuration) * time.Second
	t.expires = now.Add(ld)
	t.renewable = sec.Auth.Renewable
	if ld < t.ttl || !t.renewable {
		t.hard = true // max TTL reached: only a new login extends leash's life
	}
	return nil
}

// renewLease renews h asking for inc and returns the new duration.
func (v *vault) renewLease(ctx context.Context, h *held, inc time.Duration) (time.Duration, error) {
	secs := int(inc / time.Second)
	if h.childTok != "" {
		// As the child token on the shared client, without a Clone per
		// renewal (Clone re-runs vault/api's NewClient and DefaultConfig).
		sec, err := v.anon.Auth().Token().RenewTokenAsSelfWithContext(ctx, string(h.childTok), secs)
		if err != nil {
			return 0, err
		}
		if sec == nil || sec.Auth == nil {
			return 0, errors.New("token renewal returned no auth")
		}
		return time.Duration(sec.Auth.LeaseDuration) * time.Second, nil
	}
	sec, err := v.client.Sys().RenewWithContext(ctx, string(h.leaseID), secs)
	if err != nil {
		return 0, err
	}
	if sec == nil {
		return 0, errors.New("lease renewal returned nothing")
	}
	return time.Duration(sec.LeaseDuration) * time.Second, nil
}
