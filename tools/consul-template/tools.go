//go:build tools

// Package tools pins consul-template, a peer measured by `make bench`.
// It is never linked into leash.
package tools

import _ "github.com/hashicorp/consul-template"
