//go:build tools

// Package tools pins the Vault server used only as a test server.
// Vault is BUSL-licensed; it is never linked into leash.
package tools

import _ "github.com/hashicorp/vault"
