package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
)

// appScript is the child of TestLeavesStartDirectory, run as ./app.sh: it
// reports its pid, working directory, a file it finds there and its secret.
const appScript = `#!/bin/sh
trap 'exit 0' TERM
echo "start $$ $(pwd) $(cat marker) $(cat "$APP_FILE")"
sleep 600 &
wait
`

// TestLeavesStartDirectory (issue 23 item 3): leash started in a directory
// with relative paths for everything leaves that directory once the child
// runs (/proc/PID/cwd is /), as dumb-init does, yet keeps finding what those
// paths name: its re-logins read the AppRole files, a rotation restart runs
// ./app.sh again in the start directory, and at exit it removes its status
// and control sockets there.
func TestLeavesStartDirectory(t *testing.T) {
	t.Parallel()
	srv := testvault.NewTLS(t)
	kv := srv.KV(t, 1)
	srv.Write(t, kv+"/app", map[string]any{"v": "one"})
	policy := srv.Policy(t, `path "`+kv+`/*" { capabilities = ["read"] }`)
	// Tokens of 6 s: leash logs in again every few seconds, after it left.
	ar := srv.AppRole(t, []string{policy}, 6*time.Second, 6*time.Second, false)

	dir := t.TempDir()
	ca, err := os.ReadFile(srv.CACert)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"ca.pem": string(ca), "role-id": ar.RoleID, "secret-id": ar.SecretID, "marker": "found", "app.sh": appScript,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o700); err != nil {
			t.Fatal(err)
		}
	}

	cmd := Command(t, "--auth", "approle", "--auth-mount", ar.Mount, "--role-id-file", "role-id", "--secret-id-file", "./secret-id",
		"--audit-file", "audit.jsonl", "--status-addr", "./status.sock", "--control-socket", "ctl/leash.sock",
		"--on-rotate", "restart", "--kill-timeout", "2s", "--static-refresh", "1s", "-s", "app="+kv+"/app", "--", "./app.sh")
	cmd.Dir = dir
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_CACERT=ca.pem")
	p := StartCmd(t, cmd)

	started := func(want string) int {
		t.Helper()
		f := strings.SplitN(p.Next(60*time.Second), " ", 5)
		if len(f) != 5 || f[0] != "start" || f[2] != dir || f[3] != "found" || !strings.Contains(f[4], want) {
			t.Fatalf("child said %q, want start PID %s found {...%s...}", strings.Join(f, " "), dir, want)
		}
		pid, _ := strconv.Atoi(f[1])
		return pid
	}
	started(`"one"`)
	p.WaitEvent(evLogin, 2, 30*time.Second, nil)

	// A changed secret restarts ./app.sh, in the start directory.
	srv.Write(t, kv+"/app", map[string]any{"v": "two"})
	started(`"two"`)
	if cwd, err := os.Readlink("/proc/" + strconv.Itoa(p.Pid()) + "/cwd"); err != nil || cwd != "/" {
		t.Errorf("leash's working directory: %q, %v; want /", cwd, err)
	}
	p.WaitEvent(evLogin, len(p.Log.Events(evLogin))+1, 30*time.Second, nil)
	if out, stderr := Output(t, Command(t, "status", "--status-addr", filepath.Join(dir, "status.sock"))); !strings.Contains(string(out), kv+"/app") {
		t.Errorf("leash status: %s%s", out, stderr)
	}

	p.Signal(syscall.SIGTERM)
	if code := p.Exit(30 * time.Second); code != 0 {
		t.Fatalf("leash exited %d", code)
	}
	for _, gone := range []string{"status.sock", "ctl"} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s left behind in the start directory: %v", gone, err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
	if err != nil || !strings.Contains(string(raw), `"event":"child_restart"`) {
		t.Errorf("audit file in the start directory: %v\n%s", err, raw)
	}
	if strings.Contains(p.Log.String(), "no such file") {
		t.Errorf("leash lost a relative path:\n%s", p.Log.String())
	}
}
