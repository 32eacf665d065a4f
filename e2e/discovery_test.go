package e2e

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
)

// A template whose secret path is computed from another secret's value
// follows that value at run time, as consul-template does: when the KV
// pointer names another database role, leash fetches that role's
// credentials, hands them over, stops renewing the old ones and revokes
// them once the child has switched (issue 18, item 1).
func TestComputedPathFollowsChangedValue(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	creds := dbCreds(t, srv, time.Hour, time.Hour)
	mount := strings.TrimSuffix(creds, "/creds/app")
	role := srv.Read(t, mount+"/roles/app")
	srv.Write(t, mount+"/roles/other", map[string]any{
		"db_name": "pg", "creation_statements": role.Data["creation_statements"],
		"default_ttl": "1h", "max_ttl": "1h",
	})
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/pick", map[string]any{"data": map[string]any{"role": "app"}})
	tmpl := filepath.Join(t.TempDir(), "db.tmpl")
	text := `{{ with secret "` + kv + `/data/pick" }}{{ with secret (printf "` + mount + `/creds/%s" .Data.data.role) }}{{ .Data.username }}{{ end }}{{ end }}`
	if err := os.WriteFile(tmpl, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--on-rotate", "signal", "--reload-grace", "100ms", "--static-refresh", "300ms",
		"-t", "db=" + tmpl, "--"}, watchArgs(t, "DB_FILE")...)
	lp := Start(t, vaultEnv(srv.Addr, srv.RootToken), args...)
	_, b := lp.Ready()
	if !strings.Contains(string(b), "-app-") {
		t.Fatalf("child read %q, want a username of role app", b)
	}
	if n := len(leaseIDs(t, srv, mount+"/creds/app")); n != 1 {
		t.Fatalf("Vault holds %d leases of role app, want 1", n)
	}

	srv.Write(t, kv+"/data/pick", map[string]any{"data": map[string]any{"role": "other"}})
	l := lp.Next(60 * time.Second)
	got, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(l, "reload "))
	if !strings.HasPrefix(l, "reload ") || err != nil || !strings.Contains(string(got), "-other-") {
		t.Fatalf("child said %q (%q), want a reload with a username of role other", l, got)
	}
	dropped := lp.WaitEvent("dropped", 1, 60*time.Second, nil)[0]
	if dropped.Path != mount+"/creds/app" || len(dropped.Outputs) != 1 || dropped.Outputs[0] != "db" || dropped.Lease == "" {
		t.Errorf("dropped record %+v, want role app's lease, output db", dropped)
	}
	lp.WaitEvent("retired", 1, 60*time.Second, func(r Record) bool { return r.Lease == dropped.Lease })
	if ids := leaseIDs(t, srv, mount+"/creds/app"); len(ids) != 0 {
		t.Errorf("Vault still holds %d leases of role app after the hand-over", len(ids))
	}
	if n := len(leaseIDs(t, srv, mount+"/creds/other")); n != 1 {
		t.Errorf("Vault holds %d leases of role other, want 1", n)
	}

	// Back to app: a fresh lease of role app, and other's retired.
	srv.Write(t, kv+"/data/pick", map[string]any{"data": map[string]any{"role": "app"}})
	if l := lp.Next(60 * time.Second); !strings.HasPrefix(l, "reload ") {
		t.Fatalf("child said %q, want a reload", l)
	}
	other := lp.WaitEvent("dropped", 2, 60*time.Second, nil)[1]
	if other.Path != mount+"/creds/other" {
		t.Errorf("second dropped record %+v, want role other's lease", other)
	}
	lp.WaitEvent("retired", 1, 60*time.Second, func(r Record) bool { return r.Lease == other.Lease })
	if ids := leaseIDs(t, srv, mount+"/creds/other"); len(ids) != 0 {
		t.Errorf("Vault still holds %d leases of role other after the hand-over back", len(ids))
	}
	lp.Signal(syscall.SIGTERM)
	if l := lp.Next(60 * time.Second); l != "term" {
		t.Errorf("child said %q, want term", l)
	}
	if code := lp.Exit(60 * time.Second); code != 0 {
		t.Errorf("leash exited %d", code)
	}
	for _, p := range []string{"app", "other"} {
		if ids := leaseIDs(t, srv, mount+"/creds/"+p); len(ids) != 0 {
			t.Errorf("role %s: %d leases left after exit", p, len(ids))
		}
	}
}
