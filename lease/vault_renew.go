package lease

import (
	"context"
	"errors"
	"time"
)

// renewToken renews t asking for its original ttl, and returns the new
// duration and whether Vault will renew it again.
func (v *vault) renewToken(ctx context.Context, t *token) (time.Duration, bool, error) {
	// Vault's cert method checks the connection's certificate again when
	// its token is renewed: that connection must present the certificate
	// on disk now, as a login does, not one a pooled connection was set up
	// with and which may have expired since.
	c, err := withToken(v.login, string(t.value))
	if err != nil {
		return 0, false, err
	}
	sec, err := c.Auth().Token().RenewSelfWithContext(ctx, int(t.ttl/time.Second))
	if err != nil {
		return 0, false, err
	}
	if sec == nil || sec.Auth == nil {
		return 0, false, errors.New("token renewal returned no auth")
	}
	return time.Duration(sec.Auth.LeaseDuration) * time.Second, sec.Auth.Renewable, nil
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
