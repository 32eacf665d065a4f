package main

import (
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
	"github.com/leash-dev/leash/internal/vaultproxy"
)

// Vault down past the hand-over point but back before the lease expires:
// leash tries a new credential once renewals keep failing, but when Vault
// returns the old lease still renews, so it keeps it: the child is not
// disturbed and nothing is re-issued (vault#10918; make bench's outage run
// showed the earlier behaviour, a restart with a new credential).
func TestFaultOutagePastHandOverPoint(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	p := vaultproxy.Start(t, srv.Addr)
	creds := dbCreds(t, srv, 24*time.Second, time.Hour)
	args := append([]string{"--log-level", "debug", "--on-rotate", "signal", "--reload-grace", "200ms",
		"--rotate-before", "12s", "-s", "db=" + creds, "--"}, watchArgs(t, "DB_FILE")...)
	lp := startLeash(t, vaultEnv(p.Addr(), srv.RootToken), args...)
	lp.ready()
	p.Down()
	// The first attempt at a new credential means the hand-over point
	// (12 s before expiry) has passed with Vault unreachable.
	lp.waitLog("rotate failed", 1, 30*time.Second)
	p.Up()
	lp.waitLog("lease renewed", 1, 15*time.Second)
	noReissue(t, lp, p, creds)
}
