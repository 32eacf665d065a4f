package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/status"
	"github.com/leash-dev/leash/internal/testvault"
	"github.com/leash-dev/leash/internal/vaultproxy"
)

// getStatus fetches path from a leash status server on a Unix socket.
func getStatus(t *testing.T, sock, path string) (int, string) {
	t.Helper()
	client, base := status.Client(sock)
	resp, err := client.Get(base + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitStatus polls /healthz until it answers want (the server gives no
// event to wait on; the poll is bounded).
func waitHealth(t *testing.T, sock string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := getStatus(t, sock, "/healthz")
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz = %d %q, want %d", code, body, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStatusAuditAndHealth runs leash with the status server and the audit
// trail against a real Vault behind the fault proxy: the lease table matches
// Vault's own view, health flips to 503 while Vault is unreachable, and no
// secret byte appears in any endpoint or audit line.
func TestStatusAuditAndHealth(t *testing.T) {
	t.Parallel()
	srv := testvault.New(t)
	proxy := vaultproxy.Start(t, srv.Addr)
	create := srv.TokenRole(t, 30*time.Second)
	kv := srv.KV(t, 2)
	const kvSecret = "kv-secret-Qm7x"
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": kvSecret}})

	dir := t.TempDir()
	sock := filepath.Join(dir, "status.sock")
	auditPath := filepath.Join(dir, "audit.jsonl")
	cmd := leashCmd(t, "--status-addr", sock, "--audit-file", auditPath, "--log-level", "trace",
		"-s", "tok="+create+"?ttl=6s", "-s", "pw="+kv+"/app#password",
		"--on-rotate", "none", "--", "sh", "-c", "cat $TOK_FILE > /dev/null; exec sleep 600")
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+proxy.Addr(), "VAULT_TOKEN="+srv.RootToken)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitHealth(t, sock, http.StatusOK)

	// The lease table agrees with Vault.
	code, body := getStatus(t, sock, "/v1/leases")
	if code != http.StatusOK {
		t.Fatalf("/v1/leases: %d %s", code, body)
	}
	var table struct{ Leases []status.Lease }
	if err := json.Unmarshal([]byte(body), &table); err != nil {
		t.Fatal(err)
	}
	if len(table.Leases) != 2 {
		t.Fatalf("lease table has %d rows, want 2: %s", len(table.Leases), body)
	}
	ids := srv.LeaseIDs(t, create+"/")
	if len(ids) != 1 {
		t.Fatalf("Vault holds %d leases under %s, want 1", len(ids), create)
	}
	vaultExpire, _, ok := srv.LeaseLookup(t, ids[0])
	if !ok {
		t.Fatal("Vault does not know leash's lease")
	}
	var tokRow status.Lease
	for _, r := range table.Leases {
		if strings.HasPrefix(r.Path, create) {
			tokRow = r
		}
	}
	if tokRow.Fingerprint == "" || tokRow.Expires.IsZero() || tokRow.NextRenewal.IsZero() {
		t.Fatalf("token lease row incomplete: %+v", tokRow)
	}
	// Renewals may move Vault's expiry between the two reads; a renewal
	// extends by at most the 6 s TTL.
	if d := vaultExpire.Sub(tokRow.Expires); d < -time.Second || d > 7*time.Second {
		t.Errorf("status expiry %v, Vault's %v", tokRow.Expires, vaultExpire)
	}

	// Wait for a renewal (bounded poll: the table has no change event).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, b := getStatus(t, sock, "/v1/leases")
		if strings.Contains(b, `"renewals": 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewal within 30s: %s", b)
		}
	}

	// Health flips to 503 while Vault is unreachable past the threshold,
	// and back once it returns.
	if out, err := leashCmd(t, "status", "--check", "--status-addr", sock).Output(); err != nil || string(out) != "ok\n" {
		t.Errorf("leash status --check while healthy: %v %q", err, out)
	}
	proxy.Down()
	waitHealth(t, sock, http.StatusServiceUnavailable)
	if code, _ := exitStatus(t, leashCmd(t, "status", "--check", "--status-addr", sock)); code != 1 {
		t.Errorf("leash status --check while unhealthy exited %d, want 1", code)
	}
	proxy.Up()
	waitHealth(t, sock, http.StatusOK)

	code, metrics := getStatus(t, sock, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	sample := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eE]+$`)
	for _, line := range strings.Split(strings.TrimSpace(metrics), "\n") {
		if !strings.HasPrefix(line, "#") && !sample.MatchString(line) {
			t.Errorf("malformed metrics line %q", line)
		}
	}
	for _, want := range []string{"leash_lease_expiry_timestamp_seconds{", "leash_renewals_total{", "leash_failures_total{", "leash_vault_request_duration_seconds_count "} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// `leash status` prints the table.
	out, err := leashCmd(t, "status", "--status-addr", sock).Output()
	if err != nil || !strings.Contains(string(out), "RENEWALS") || !strings.Contains(string(out), kv+"/app") {
		t.Errorf("leash status: %v\n%s", err, out)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	// The audit trail: 0600, every line JSON, issuance, renewal, failure
	// and revocation recorded, no secret.
	fi, err := os.Stat(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %04o, want 0600", fi.Mode().Perm())
	}
	f, err := os.Open(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec status.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		events[rec.Event]++
	}
	for _, ev := range []string{"login", "issued", "renewed", "failed", "revoked", "child_start", "child_exit"} {
		if events[ev] == 0 {
			t.Errorf("audit trail has no %q event: %v", ev, events)
		}
	}
	raw, _ := os.ReadFile(auditPath)
	for _, secret := range []string{kvSecret, srv.RootToken} {
		for name, where := range map[string]string{"audit file": string(raw), "metrics": metrics, "lease table": body, "log": stderr.String()} {
			if strings.Contains(where, secret) {
				t.Errorf("a secret appears in the %s", name)
			}
		}
	}
}

// --audit-file naming a FIFO, with nobody reading it, or a device is a
// config error at once: a blocking open(2) of the FIFO would wait for a
// reader forever, and SIGTERM would not end it.
func TestAuditFileRefusesFIFOAndDevice(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "audit.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, kind string }{
		{"fifo", fifo, "a named pipe"},
		{"device", "/dev/null", "a character device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := leashCmd(t, "--audit-file", tc.path, "--", "true")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("leash --audit-file %s did not exit; stderr:\n%s", tc.path, stderr.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitConfig {
				t.Fatalf("leash = %v, want exit %d; stderr:\n%s", err, exitConfig, stderr.String())
			}
			if want := "--audit-file " + tc.path + ": not a regular file (" + tc.kind + ")"; !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
			}
		})
	}
}
