package main

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/leash-dev/leash/lease"
)

// run checks flags, config, templates and the auth and Vault connection
// settings; with --online it also logs in and asks Vault whether every path
// is readable. Nothing is issued or started.
func (c *ValidateCmd) run(ctx context.Context, log hclog.Logger) error {
	_, lookup := scrubbedEnv(c.authConfig().CredentialVars())
	s, err := c.settings(lookup)
	if err != nil {
		return err
	}
	if len(s.plan.specs) > 0 {
		// New does not contact Vault, but checks what run would refuse at
		// start: the auth method's settings, VAULT_ADDR, the TLS files.
		mgr, err := lease.New(c.leaseConfig(s, log))
		if err != nil {
			return &configError{err}
		}
		if c.Online {
			if err := mgr.Check(ctx); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(os.Stdout, "ok: %d outputs from %d Vault paths\n", len(s.plan.outputs), len(s.plan.specs))
	return nil
}
