package main

import (
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
	"github.com/leash-dev/leash/internal/vaultproxy"
)

// Vault down past the hand-over point but back before the lease expires:
// when Vault returns the old lease still renews, so leash keeps it: the
// child is not disturbed and nothing is re-issued (vault#10918; make
// bench's outage run showed the earlier behaviour, a restart with a new
// credential). While Vault does not answer at all leash does not try a new
// credential either: it could not get one, and it would double the
// requests of the outage.
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
	// Past the hand-over point (12 s before expiry) with Vault unreachable,
	// leash renews again rather than fetching.
	lp.waitLog("vault did not answer; renewing again before trying a new credential", 1, 30*time.Second)
	p.Up()
	lp.waitLog("lease renewed", 1, 15*time.Second)
	noReissue(t, lp, p, creds)
	if n := lp.log.count("rotate failed"); n != 0 {
		t.Errorf("a new credential was tried %d times while Vault did not answer", n)
	}
}
