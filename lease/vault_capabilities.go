package lease

import "context"

// capabilities returns the token's capabilities on path (best effort, for
// error messages and Check).
func (m *Manager) capabilities(ctx context.Context, path string) ([]string, error) {
	return m.client.Sys().CapabilitiesSelfWithContext(ctx, path)
}
