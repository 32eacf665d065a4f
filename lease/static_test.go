package lease

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
)

// A database static role on a PostgreSQL that checks passwords: Vault
// rotates the password every few seconds and the old one stops working at
// once. The Manager reads the role again when the read's ttl runs out and
// emits the new password (the old code re-read only every --static-refresh,
// 5 minutes, and the ttl counting down made every read look like a change),
// and each snapshot's password logs in. No snapshot repeats a password.
func TestStaticRoleFollowsRotation(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	db := testpg.NewCluster(t).Database(t)
	db.Exec(t, `CREATE ROLE app_static LOGIN PASSWORD 'before-vault'`)
	creds := s.StaticRole(t, db.VaultURL(), db.User, db.Password, "app_static", 6*time.Second)
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{
		Specs: []Spec{{ID: "db", Path: creds}},
	})
	snap, err := h.m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cur := snap.Secrets["db"]
	if cur.Fingerprint != "" || !cur.ExpiresAt.IsZero() || cur.NextRotation.IsZero() {
		t.Fatalf("static secret: fingerprint %q expires %s next rotation %s", cur.Fingerprint, cur.ExpiresAt, cur.NextRotation)
	}
	h.log.wait(t, "static credential read: name=db", 1, time.Second)
	h.run()
	seen := map[string]bool{str(t, cur, "password"): true}
	for i := range 2 {
		next := h.next(40 * time.Second).Secrets["db"]
		got := time.Now()
		pw := str(t, next, "password")
		if seen[pw] {
			t.Fatalf("snapshot %d repeats a password", i+2)
		}
		seen[pw] = true
		last, err := time.Parse(time.RFC3339Nano, str(t, next, "last_vault_rotation"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("rotation %d: leash had the new password %s after Vault's rotation", i+1, got.Sub(last).Round(time.Millisecond))
		if err := db.Connect("app_static", pw); err != nil {
			t.Fatalf("the password of rotation %d does not log in: %v", i+1, err)
		}
		if err := db.Connect("app_static", str(t, cur, "password")); err == nil {
			t.Fatalf("the password before rotation %d still logs in: no rotation happened", i+1)
		}
		if p, ok := next.Data.Map()["rotation_period"].(json.Number); !ok || p.String() != "6" {
			t.Errorf("rotation_period = %v, want 6", next.Data.Map()["rotation_period"])
		}
		cur = next
	}
	if n := h.log.count("static credential rotated: name=db"); n != 2 {
		t.Errorf("%d rotations logged, want 2; log:\n%s", n, h.log.String())
	}
}
