package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
	"github.com/leash-dev/leash/internal/vaultproxy"
)

// Vault down past a credential's expiry: Run reports the loss (and main
// stops the child) a small margin before Vault's expiry, never after it,
// since at expiry Vault revokes the credential (drops the database role).
// Vault counts the renewed lease from when it handled the renewal, which
// is no earlier than when the proxy received the request: that arrival
// plus the ttl is the earliest Vault's expiry can be. Before, leash counted
// from when the answer arrived, so it reported the loss after Vault's
// expiry, and the bench's 40s:60s outage saw the child stopped 1.9-3.8s
// late.
func TestLostBeforeExpiryWhenVaultDown(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	db := testpg.Database(t)
	const ttl = 6 * time.Second
	creds := s.Database(t, db.VaultURL(), db.User, db.Password, ttl, time.Hour)
	p := vaultproxy.Start(t, s.Addr)
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{Specs: []Spec{{ID: "db", Path: creds}}})
	h.m.vault.client.SetAddress(p.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if _, err := h.m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- h.m.Run(ctx) }()
	// Down right after a renewal leash has seen answered, as in the bench.
	h.log.wait(t, "lease renewed: name=db", 1, 3*ttl)
	p.Down()
	var renewed vaultproxy.Request
	for _, q := range p.Log() {
		if q.Path == "sys/leases/renew" && q.Status/100 == 2 {
			renewed = q
		}
	}
	if renewed.Time.IsZero() {
		t.Fatal("the proxy saw no answered renewal")
	}
	earliestExpiry := renewed.Time.Add(ttl)
	var err error
	select {
	case err = <-errc:
	case <-time.After(3 * ttl):
		t.Fatalf("Run did not report the loss within %s; log:\n%s", 3*ttl, h.log.String())
	}
	lostAt := time.Now()
	var lost *LostError
	if !errors.As(err, &lost) || lost.ID != "db" {
		t.Fatalf("Run: %v, want a LostError for db", err)
	}
	t.Logf("loss reported %s before the earliest possible expiry", earliestExpiry.Sub(lostAt).Round(time.Millisecond))
	if late := lostAt.Sub(earliestExpiry); late > 0 {
		t.Errorf("loss reported %s after Vault's expiry (no earlier than the renewal's arrival + ttl); log:\n%s", late, h.log.String())
	}
	// The margin is a twentieth of this short lease (300ms); allow for the
	// renewal's round trip and a loaded machine, no more.
	if early := earliestExpiry.Sub(lostAt); early > defaultSchedule.lostBefore(ttl)+time.Second {
		t.Errorf("loss reported %s before expiry, want about %s", early, defaultSchedule.lostBefore(ttl))
	}
	if !lost.Expired.After(lostAt) {
		t.Errorf("LostError.Expired %s is not after the report", lost.Expired.Format(time.RFC3339Nano))
	}
}
