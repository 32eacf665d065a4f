package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/status"
	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
)

// TestMetricsCountStartupRequests: after a start with a token lookup, a
// mount lookup and a KV read, the request histogram has counted them (it
// counted only renewals and rotations, so 0 here: issue 16).
func TestMetricsCountStartupRequests(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "pw-Hq2r"}})
	sock := filepath.Join(t.TempDir(), "status.sock")
	cmd := leashCmd(t, "--status-addr", sock, "-s", "pw="+kv+"/app#password", "--on-rotate", "none",
		"--", "sleep", "600")
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.RootToken)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitHealth(t, sock, http.StatusOK)
	_, metrics := getStatus(t, sock, "/metrics")
	m := regexp.MustCompile(`(?m)^leash_vault_request_duration_seconds_count (\d+)$`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no request count in /metrics:\n%s", metrics)
	}
	// lookup-self, sys/internal/ui/mounts, the read.
	if n, _ := strconv.Atoi(m[1]); n < 3 {
		t.Errorf("leash_vault_request_duration_seconds_count = %d after a login and a read, want >= 3; leash:\n%s", n, stderr.String())
	}
	if !strings.Contains(metrics, `leash_vault_request_duration_seconds_bucket{le="+Inf"} `+m[1]+"\n") {
		t.Errorf("+Inf bucket disagrees with the count:\n%s", metrics)
	}
}

// TestOutputNamesEverywhere: the names the user gave the outputs (db, pw)
// are in /v1/leases, the metrics' outputs label, every lease log line and
// every lease audit record; a secret feeding two outputs names both. They
// used to carry only the Vault path (issue 16).
func TestOutputNamesEverywhere(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	create := srv.TokenRole(t, time.Minute)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "pw-N4xe"}})
	dir := t.TempDir()
	sock := filepath.Join(dir, "status.sock")
	auditPath := filepath.Join(dir, "audit.jsonl")
	cmd := leashCmd(t, "--status-addr", sock, "--audit-file", auditPath, "--log-level", "trace",
		"-s", "tok="+create+"?ttl=6s", "-s", "app="+kv+"/app", "-s", "pw="+kv+"/app#password",
		"--on-rotate", "none", "--", "sleep", "600")
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.RootToken)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	waitHealth(t, sock, http.StatusOK)

	var table struct{ Leases []status.Lease }
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, body := getStatus(t, sock, "/v1/leases")
		if err := json.Unmarshal([]byte(body), &table); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(body, `"renewals": 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewal within 30s: %s", body)
		}
	}
	want := map[string][]string{kv + "/app": {"app", "pw"}}
	for _, r := range table.Leases {
		if strings.HasPrefix(r.Name, create) {
			want[r.Name] = []string{"tok"}
		}
	}
	for _, r := range table.Leases {
		if !slices.Equal(r.Outputs, want[r.Name]) {
			t.Errorf("/v1/leases row %s: outputs %q, want %q", r.Name, r.Outputs, want[r.Name])
		}
	}
	_, metrics := getStatus(t, sock, "/metrics")
	for _, w := range []string{`leash_renewals_total{name="` + create + `?ttl=6s",outputs="tok"}`,
		`leash_lease_next_renewal_timestamp_seconds{name="` + kv + `/app",outputs="app,pw",`} {
		if !strings.Contains(metrics, w) {
			t.Errorf("/metrics lacks %s:\n%s", w, metrics)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	lines := 0
	for _, l := range strings.Split(stderr.String(), "\n") {
		if !strings.Contains(l, " leash.lease: ") || !strings.Contains(l, " name=") {
			continue
		}
		lines++
		if !strings.Contains(l, ` outputs=["tok"]`) && !strings.Contains(l, ` outputs=["app", "pw"]`) {
			t.Errorf("lease log line without the output names: %s", l)
		}
	}
	if lines < 4 { // issued ×2, renewed, revoked
		t.Errorf("only %d lease log lines name a secret:\n%s", lines, stderr.String())
	}
	raw, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	records := 0
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var rec status.Record
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		if rec.Name == "" {
			continue
		}
		records++
		if !slices.Equal(rec.Outputs, want[rec.Name]) {
			t.Errorf("audit record %s %s: outputs %q, want %q", rec.Event, rec.Name, rec.Outputs, want[rec.Name])
		}
	}
	if records < 4 {
		t.Errorf("only %d audit records name a secret:\n%s", records, raw)
	}
}

// TestSecretsWithoutLeaseSaySo: a KV read and a static role are not
// "lease issued ... lease=\"\" expires=never" (issue 16): the log says
// what happened, and /v1/leases and leash status show the next read and,
// for the static role, Vault's next rotation.
func TestSecretsWithoutLeaseSaySo(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "pw-Zt6c"}})
	db := testpg.Database(t)
	// Roles are the server's, not the database's: a unique one, dropped after.
	role := "static_" + db.Name
	db.Exec(t, `CREATE ROLE `+role+` LOGIN`)
	t.Cleanup(func() { db.Exec(t, `DROP ROLE IF EXISTS `+role) })
	static := srv.StaticRole(t, db.VaultURL(), db.User, db.Password, role, time.Hour)
	sock := filepath.Join(t.TempDir(), "status.sock")
	cmd := leashCmd(t, "--status-addr", sock, "-s", "app="+kv+"/app", "-s", "db="+static,
		"--on-rotate", "none", "--", "sleep", "600")
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.RootToken)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	waitHealth(t, sock, http.StatusOK)

	_, body := getStatus(t, sock, "/v1/leases")
	var table struct{ Leases []status.Lease }
	if err := json.Unmarshal([]byte(body), &table); err != nil {
		t.Fatal(err)
	}
	for _, r := range table.Leases {
		want := map[string]string{kv + "/app": "secret", static: "static"}[r.Name]
		if r.Kind != want || r.NextRead.IsZero() || !r.NextRenewal.IsZero() || r.Fingerprint != "" {
			t.Errorf("row %s: kind %q next_read %s next_renewal %s, want kind %q and a next read only", r.Name, r.Kind, r.NextRead, r.NextRenewal, want)
		}
		if (want == "static") == r.NextRotation.IsZero() {
			t.Errorf("row %s: next_rotation %s", r.Name, r.NextRotation)
		}
		// Vault's hour-long period: the next rotation is about an hour away,
		// and the read is planned at --static-refresh (5m), before it.
		if want == "static" && (time.Until(r.NextRotation) < 50*time.Minute || time.Until(r.NextRead) > 6*time.Minute) {
			t.Errorf("static row: next rotation %s, next read %s", r.NextRotation, r.NextRead)
		}
	}
	if strings.Contains(body, `"fingerprint"`) {
		t.Errorf("rows without a lease show an empty lease: %s", body)
	}
	out, err := leashCmd(t, "status", "--status-addr", sock).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"none (static role, rotates ", "read "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("leash status lacks %q:\n%s", want, out)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	log := stderr.String()
	for _, want := range []string{"secret read: name=" + kv + "/app", "static credential read: name=" + static, "next_rotation=", "next_read="} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, `lease=""`) {
		t.Errorf("log shows an empty lease:\n%s", log)
	}
}
