package lease

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/api"
)

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
// policy allows revoke-self); a lease is revoked at
// sys/leases/revoke/LEASE_ID, which a policy can scope to leash's own
// secrets (sys/leases/revoke/database/creds/app/*, see README, "Security
// model"), and if that is denied, with the lease id in the body, which
// needs update on sys/leases/revoke itself and so on every lease.
func (v *vault) revokeLease(ctx context.Context, h *held) error {
	if h.childTok != "" {
		c, err := v.clientWith(string(h.childTok))
		if err != nil {
			return err
		}
		return c.Auth().Token().RevokeSelfWithContext(ctx, "")
	}
	id := string(h.leaseID)
	if pathSafe(id) {
		_, err := v.client.Logical().WriteWithContext(ctx, "sys/leases/revoke/"+id, nil)
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
			return err
		}
	}
	return v.client.Sys().RevokeWithContext(ctx, id)
}

// pathSafe reports whether a lease id can go in a request path as it is:
// vault/api resolves "." and ".." segments (path.Join), so a lease id with
// them would revoke at another path. Vault's ids have none.
func pathSafe(id string) bool {
	for _, seg := range strings.Split(id, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
