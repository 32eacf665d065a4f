package lease

import "context"

// capabilities returns the token's capabilities on path (best effort, for
// error messages and Check).
func (v *vault) capabilities(ctx context.Context, path string) ([]string, error) {
	return v.client.Sys().CapabilitiesSelfWithContext(ctx, path)
}
