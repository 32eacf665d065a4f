package e2e

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
)

// TestPKICertTemplate: Vault Agent's pkiCert template, unchanged, against a
// real PKI engine. The child gets a certificate and its private key that
// form a pair, the key never reaches leash's stderr, and the certificate's
// lease is revoked on exit.
func TestPKICertTemplate(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	issue := srv.PKI(t, time.Hour)
	tmpl := filepath.Join(t.TempDir(), "tls.tmpl")
	// Fields concatenated, as Vault Agent's documentation writes them.
	text := `{{ with pkiCert "` + issue + `" "common_name=app.example.test" "ttl=10m" }}{{ .Cert }}{{ .CA }}{{ .Key }}{{ end }}`
	if err := os.WriteFile(tmpl, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := Command(t, "--log-level", "trace", "-t", "tls="+tmpl, "--", "sh", "-c", `cat "$TLS_FILE"`)
	cmd.Env = append(cmd.Env, vaultEnv(srv.Addr, srv.RootToken)...)
	out, stderr := Output(t, cmd)
	if _, err := tls.X509KeyPair(out, out); err != nil {
		t.Fatalf("the child did not get a certificate and its key: %v\n%s", err, out)
	}
	var key *pem.Block
	for rest := out; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if strings.Contains(b.Type, "PRIVATE KEY") {
			key = b
		}
	}
	if key == nil || strings.Contains(stderr, base64.StdEncoding.EncodeToString(key.Bytes)[:32]) {
		t.Errorf("no private key rendered, or its bytes are in leash's stderr")
	}
	if ids := srv.LeaseIDs(t, issue+"/"); len(ids) != 0 {
		t.Errorf("%d certificate leases left after exit", len(ids))
	}
}

// Many outputs: each gets its own descriptor and variable, in flag order.
func TestManyOutputs(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"k": "v"}})
	const n = 64
	var args []string
	for i := 0; i < n; i++ {
		args = append(args, "-s", fmt.Sprintf("o%d=%s/app#k", i, kv))
	}
	script := fmt.Sprintf(`for i in $(seq 0 %d); do eval "f=\$O${i}_FILE"; printf '%%s:%%s ' "$f" "$(cat "$f")"; done`, n-1)
	cmd := Command(t, append(append(args, "--"), "sh", "-c", script)...)
	cmd.Env = append(cmd.Env, vaultEnv(srv.Addr, srv.RootToken)...)
	out, _ := Output(t, cmd)
	var want strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&want, "/dev/fd/%d:v ", 3+i)
	}
	if string(out) != want.String() {
		t.Errorf("child saw:\n%s\nwant:\n%s", out, want.String())
	}
	if len(leaseIDs(t, srv, kv)) != 0 {
		t.Error("a KV read left a lease")
	}
}

// Two leash processes share a --dir parent: the second's stale-directory
// cleanup leaves the first's live directory alone (its flock is held).
func TestSharedDirParent(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "shared-parent"}})
	parent, err := os.MkdirTemp("/dev/shm", "leash-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	args := []string{"--delivery", "dir", "--dir", parent, "-s", "pw=" + kv + "/app#password", "--"}
	first := Start(t, vaultEnv(srv.Addr, srv.RootToken), append(args, watchArgs(t, "PW_FILE")...)...)
	first.Ready()
	for i := 0; i < 3; i++ {
		audit := filepath.Join(t.TempDir(), "audit.jsonl")
		cmd := Command(t, append([]string{"--audit-file", audit}, append(args, "true")...)...)
		cmd.Env = append(cmd.Env, vaultEnv(srv.Addr, srv.RootToken)...)
		if code, stderr := ExitStatus(t, cmd); code != 0 {
			t.Fatalf("second leash: exit %d; stderr:\n%s", code, stderr)
		}
		if removed := AuditRecords(t, audit, evStaleDirRemoved); len(removed) != 0 {
			t.Fatalf("second leash removed %+v", removed)
		}
	}
	first.Signal(syscall.SIGHUP) // the first child re-reads its file
	if l := first.Next(60 * time.Second); l != "reload "+base64.StdEncoding.EncodeToString([]byte("shared-parent")) {
		t.Errorf("first child after the others ran: %q", l)
	}
	first.Signal(syscall.SIGTERM)
	if code := first.Exit(60 * time.Second); code != 0 {
		t.Errorf("first leash exited %d", code)
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Errorf("parent not empty: %v", left)
	}
}

// leash killed with SIGKILL: the child dies with it (parent-death signal),
// the private directory stays behind, and the next leash using the same
// parent removes it.
func TestSIGKILLedLeash(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "stale-dir-secret"}})
	parent, err := os.MkdirTemp("/dev/shm", "leash-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	args := append([]string{"--delivery", "dir", "--dir", parent, "-s", "pw=" + kv + "/app#password", "--"}, watchArgs(t, "PW_FILE")...)
	lp := Start(t, vaultEnv(srv.Addr, srv.RootToken), args...)
	pid, got := lp.Ready()
	if string(got) != "stale-dir-secret" {
		t.Fatalf("child read %q", got)
	}
	lp.Signal(syscall.SIGKILL)
	lp.Exit(10 * time.Second)
	if !pidGone(t, pid, 5*time.Second) {
		t.Fatalf("child %d outlived a SIGKILLed leash", pid)
	}
	left, _ := os.ReadDir(parent)
	if len(left) != 1 {
		t.Fatalf("%d entries in the parent after SIGKILL, want the stale private dir", len(left))
	}
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	cmd := Command(t, "--audit-file", audit, "--delivery", "dir", "--dir", parent, "-s", "pw="+kv+"/app#password", "--", "true")
	cmd.Env = append(cmd.Env, vaultEnv(srv.Addr, srv.RootToken)...)
	if code, stderr := ExitStatus(t, cmd); code != 0 {
		t.Fatalf("second run: exit %d, stderr:\n%s", code, stderr)
	}
	stale := filepath.Join(parent, left[0].Name())
	if removed := AuditRecords(t, audit, evStaleDirRemoved); len(removed) != 1 || removed[0].Path != stale {
		t.Errorf("second run audited the removal of %+v, want %s", removed, stale)
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Errorf("parent not empty after the second run: %v", left)
	}
}
