package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/leash-dev/leash/internal/testchild"
	"github.com/leash-dev/leash/internal/testvault"
	"github.com/leash-dev/leash/internal/vaultproxy"
)

// These tests (issue 7) search for the actual secret bytes wherever they
// must not be: leash's logs at trace level in both formats, the
// environment and argv of leash and its child, files outside the private
// tmpfs directory, and anything left after exit. They also check leash's
// memory is closed to other processes of its own user while the child's is
// not, and that inherited memfds are emptied when leash exits.

func TestEnvAndProcHoldNoSecret(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	const secret = "s3cr3t-bytes-Zq9"
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": secret}})
	cmd := Command(t, "--log-level", "trace", "-s", "pw="+kv+"/app#password", "--", "sh", "-c", `env; cat /proc/$$/environ; echo; echo "file=$(cat "$PW_FILE")"`)
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.RootToken)
	out, stderr := Output(t, cmd)
	// The file is the only place the secret may appear.
	rest := strings.Replace(string(out), "file="+secret, "", 1)
	if !strings.Contains(string(out), "file="+secret) {
		t.Errorf("the child could not read the secret from $PW_FILE: %q", out)
	}
	if strings.Contains(rest, secret) || strings.Contains(rest, srv.RootToken) {
		t.Errorf("secret or token in the child's environment:\n%s", out)
	}
	if strings.Contains(stderr, secret) || strings.Contains(stderr, srv.RootToken) {
		t.Errorf("secret or token in leash's trace log")
	}
}

// TestUserRunsChildAsAnotherUser: --user drops the child to nobody, which
// can read its memfd (0400, chowned to it) but not write it.
func TestUserRunsChildAsAnotherUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	srv := testvault.Shared(t)
	kv := srv.KV(t, 1)
	const secret = "user-secret-8Hq"
	srv.Write(t, kv+"/app", map[string]any{"password": secret})
	for _, delivery := range []string{"memfd", "dir"} {
		cmd := Command(t, "--user", "nobody", "--delivery", delivery, "-s", "pw="+kv+"/app#password", "--",
			"sh", "-c", `id -u; cat "$PW_FILE"; echo; stat -L -c %a "$PW_FILE"; (echo x > "$PW_FILE") 2>/dev/null && echo WRITABLE; true`)
		cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.RootToken)
		out, _ := Output(t, cmd)
		if want := "65534\n" + secret + "\n400\n"; string(out) != want {
			t.Errorf("%s: child printed %q, want %q", delivery, out, want)
		}
	}
}

// TestHTTP2DebugLogsHoldNoSecret: GODEBUG=http2debug=2 makes Go's HTTP/2
// client print every request header and response body through the standard
// logger, the Vault token and the secret among them. leash discards that
// logger: its stderr must hold neither, and TLS with HTTP/2 (the build
// leaves out net/http's own HTTP/2, see the Makefile) must still work.
func TestHTTP2DebugLogsHoldNoSecret(t *testing.T) {
	t.Parallel()
	srv := testvault.NewTLS(t)
	kv := srv.KV(t, 1)
	stderr := readOverTLS(t, srv, kv+"/app", nil, "VAULT_TOKEN="+srv.RootToken, "GODEBUG=http2debug=2")
	if strings.Contains(stderr, srv.RootToken) {
		t.Errorf("token in leash's stderr with http2debug=2:\n%s", stderr)
	}
}

// readOverTLS runs leash at trace level against srv (from NewTLS) with
// extra flags and environment, its child printing the secret leash wrote
// at the KV v1 path. It checks that the child read the secret and that
// leash's stderr does not hold it, and returns that stderr.
func readOverTLS(t *testing.T, srv *testvault.Server, path string, flags []string, env ...string) string {
	t.Helper()
	secret := "over-tls-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	srv.Write(t, path, map[string]any{"k": secret})
	args := append(append([]string{"--log-level", "trace"}, flags...), "-s", "k="+path+"#k", "--", "sh", "-c", `cat "$K_FILE"`)
	cmd := Command(t, args...)
	cmd.Env = append(append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_CACERT="+srv.CACert), env...)
	out, stderr := Output(t, cmd)
	if string(out) != secret {
		t.Errorf("child read %q, want the secret", out)
	}
	if strings.Contains(stderr, secret) {
		t.Errorf("the secret is in leash's stderr:\n%s", stderr)
	}
	return stderr
}

// scanFiles returns the files under roots whose contents hold any needle.
func scanFiles(t *testing.T, needles [][]byte, roots ...string) []string {
	var hits []string
	for _, root := range roots {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			for _, n := range needles {
				if bytes.Contains(b, n) {
					hits = append(hits, p)
					break
				}
			}
			return nil
		})
	}
	return hits
}

// procLeaks returns which of /proc/PID/{environ,cmdline} hold a needle.
func procLeaks(pid int, needles [][]byte) []string {
	var hits []string
	for _, f := range []string{"environ", "cmdline"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
		if err != nil {
			continue
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				hits = append(hits, fmt.Sprintf("/proc/%d/%s", pid, f))
				break
			}
		}
	}
	return hits
}

// A full run with rotations at trace level: the secrets and Vault
// credentials never appear in stderr, in the environment or argv of leash
// or the child, or in any file outside the private directory; after exit
// the private directory is gone.
func TestSecrecyFullRun(t *testing.T) {
	t.Parallel()
	g := &subtests{t: t}
	defer g.wait()
	for _, tt := range []struct{ name, format, delivery, onRotate, auth string }{
		{"text memfd restart token", "text", "memfd", "restart", "token"},
		{"json dir signal approle", "json", "dir", "signal", "approle"},
	} {
		g.run(tt.name, func(t *testing.T) {
			srv := testvault.Shared(t)
			creds := dbCreds(t, srv, 3*time.Second, 5*time.Second)
			kv := srv.KV(t, 2)
			kvSecret := "kv-secret-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": kvSecret}})

			root := t.TempDir()
			home, tmp, cwd := filepath.Join(root, "home"), filepath.Join(root, "tmp"), filepath.Join(root, "cwd")
			for _, d := range []string{home, tmp, cwd} {
				os.Mkdir(d, 0o700)
			}
			shm, err := os.MkdirTemp("/dev/shm", "leash-test-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(shm) })

			needles := [][]byte{[]byte(kvSecret)}
			var userToken []byte // given to leash in VAULT_TOKEN
			env := []string{"VAULT_ADDR=" + srv.Addr, "HOME=" + home, "TMPDIR=" + tmp, "XDG_RUNTIME_DIR="}
			args := []string{"--log-level", "trace", "--log-format", tt.format, "--delivery", tt.delivery,
				"--on-rotate", tt.onRotate, "--reload-grace", "200ms", "-s", "db=" + creds, "-s", "kv=" + kv + "/app#password"}
			pol := srv.Policy(t, `path "`+creds+`" { capabilities = ["read"] }
path "`+kv+`/*" { capabilities = ["read"] }
path "sys/leases/*" { capabilities = ["update"] }`)
			if tt.auth == "token" {
				tok, err := srv.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{pol}, TTL: "1h"})
				if err != nil {
					t.Fatal(err)
				}
				env = append(env, "VAULT_TOKEN="+tok.Auth.ClientToken)
				userToken = []byte(tok.Auth.ClientToken)
				needles = append(needles, []byte(tok.Auth.ClientToken))
			} else {
				ar := srv.AppRole(t, []string{pol}, time.Hour, time.Hour, false)
				secretDir := t.TempDir() // the secret_id file is the user's; exclude it from the scan
				roleID, secretID := filepath.Join(secretDir, "role-id"), filepath.Join(secretDir, "secret-id")
				os.WriteFile(roleID, []byte(ar.RoleID), 0o600)
				os.WriteFile(secretID, []byte(ar.SecretID), 0o600)
				args = append(args, "--auth", "approle", "--auth-mount", ar.Mount, "--role-id-file", roleID, "--secret-id-file", secretID)
				needles = append(needles, []byte(ar.SecretID))
			}
			if tt.delivery == "dir" {
				args = append(args, "--dir", shm)
			}
			// The audit trail and the status server are outputs too.
			audit, sock := filepath.Join(cwd, "audit.jsonl"), filepath.Join(cwd, "status.sock")
			args = append(args, "--audit-file", audit, "--status-addr", sock)
			status := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			}}, Timeout: 5 * time.Second}
			args = append(append(args, "--"), watchArgs(t, "DB_FILE")...)
			// --audit-file is given: Start would add nothing but the Dir.
			cmd := Command(t, args...)
			cmd.Env = append(cmd.Env, env...)
			cmd.Dir = cwd
			lp := StartCmd(t, cmd)

			var childPids []int
			users := map[string]bool{}
			check := func(b64 string) {
				raw, err := base64.StdEncoding.DecodeString(b64)
				if err != nil {
					t.Fatalf("child sent %q", b64)
				}
				var c struct{ Username, Password string }
				if err := json.Unmarshal(raw, &c); err != nil || c.Password == "" {
					t.Fatalf("child read %d bytes of unexpected content", len(raw))
				}
				if !users[c.Username] {
					users[c.Username] = true
					needles = append(needles, []byte(c.Password))
				}
			}
			deadline := time.Now().Add(60 * time.Second)
			for len(users) < 3 && time.Now().Before(deadline) {
				f := strings.Fields(lp.Next(30 * time.Second))
				switch {
				case len(f) == 3 && f[0] == "ready":
					pid, _ := strconv.Atoi(f[1])
					childPids = append(childPids, pid)
					check(f[2])
				case len(f) == 2 && f[0] == "reload":
					check(f[1])
				case len(f) == 1 && f[0] == "term":
				default:
					t.Fatalf("child said %q", f)
				}
				// While it runs: nothing in the environment or argv. The
				// caller put VAULT_TOKEN in leash's own initial environment;
				// only the child's must be free of it (leash's is closed to
				// all but root: TestLeashNonDumpable).
				var own [][]byte
				for _, n := range needles {
					if !bytes.Equal(n, userToken) {
						own = append(own, n)
					}
				}
				if hits := procLeaks(lp.Cmd.Process.Pid, own); len(hits) > 0 {
					t.Errorf("secret bytes in %v", hits)
				}
				if hits := procLeaks(childPids[len(childPids)-1], needles); len(hits) > 0 {
					t.Errorf("secret bytes in %v", hits)
				}
				if hits := scanFiles(t, needles, home, tmp, cwd); len(hits) > 0 {
					t.Errorf("secret bytes in files while running: %v", hits)
				}
				for _, path := range []string{"/healthz", "/v1/leases", "/metrics"} {
					resp, err := status.Get("http://leash" + path)
					if err != nil {
						t.Errorf("status %s: %v", path, err)
						continue
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					for i, n := range needles {
						if bytes.Contains(body, n) {
							t.Errorf("needle %d is in the status server's %s", i, path)
						}
					}
				}
			}
			if len(users) < 3 {
				t.Fatalf("only %d credentials handed over", len(users))
			}
			lp.Signal(syscall.SIGTERM)
			if code := lp.Exit(30 * time.Second); code != 0 {
				t.Errorf("leash exited %d", code)
			}
			lp.Rest()
			log := lp.Log.String()
			for i, n := range needles {
				if strings.Contains(log, string(n)) {
					t.Errorf("needle %d (of %d) is in leash's %s log", i, len(needles), tt.format)
				}
			}
			if len(lp.Log.Events(evRotated)) == 0 {
				t.Errorf("no rotation audited")
			}
			if hits := scanFiles(t, needles, home, tmp, cwd, shm, root); len(hits) > 0 {
				t.Errorf("secret bytes in files after exit: %v", hits)
			}
			if left, _ := os.ReadDir(shm); len(left) != 0 {
				t.Errorf("private directory left after exit: %v", left)
			}
			if b, err := os.ReadFile(audit); err != nil || !bytes.Contains(b, []byte("rotated")) {
				t.Errorf("audit file has no rotation (%v): the scan proves little", err)
			}
		})
	}
}

// copyExecutable copies the binary at src into dir with mode 0755.
func copyExecutable(t *testing.T, src, dir string) string {
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(dir, filepath.Base(src))
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// nobodyDir is a world-readable directory for binaries run as uid 65534.
func nobodyDir(t *testing.T) string {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run processes as uid 65534")
	}
	dir, err := os.MkdirTemp("", "leash-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

var nobody = &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}

// leash makes itself non-dumpable: another process of the same (non-root)
// user can neither open /proc/<leash>/mem or environ nor ptrace it, while
// the child, an ordinary process of that user, stays open to it.
func TestLeashNonDumpable(t *testing.T) {
	t.Parallel()
	dir := nobodyDir(t)
	bin := copyExecutable(t, leashBin, dir)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	probe := copyExecutable(t, self, dir)

	cmd := exec.Command(bin, "--", "sh", "-c", "echo $$; exec sleep 300")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
	lp := StartCmd(t, cmd)
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		lp.Exit(60 * time.Second)
	})
	childPid, _ := strconv.Atoi(lp.Next(60 * time.Second))
	leashPid := cmd.Process.Pid

	pr := exec.Command(probe, strconv.Itoa(leashPid), strconv.Itoa(childPid))
	pr.Env = append(os.Environ(), testchild.EnvMode+"=probe")
	pr.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
	out, err := pr.CombinedOutput()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	want := fmt.Sprintf("%d mem=EACCES environ=EACCES ptrace=EPERM\n%d mem=ok environ=ok ptrace=ok\n", leashPid, childPid)
	if string(out) != want {
		t.Errorf("uid 65534 probing leash (%d) and its child (%d):\n%s\nwant:\n%s", leashPid, childPid, out, want)
	}
	// Non-dumpable processes' /proc entries belong to root.
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/mem", leashPid), &st); err != nil || st.Uid != 0 {
		t.Errorf("/proc/%d/mem owned by uid %d, want 0 (non-dumpable)", leashPid, st.Uid)
	}
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/mem", childPid), &st); err != nil || st.Uid != 65534 {
		t.Errorf("/proc/%d/mem of the child owned by uid %d, want 65534 (dumpable)", childPid, st.Uid)
	}
}

// When leash exits, every memfd it handed out is truncated to zero bytes
// (and in dir mode every file): a grandchild that inherited the descriptor
// and escaped the process group then reads nothing. The test reads through
// /proc/<grandchild>/fd/N, which opens the same file.
func TestOutputsEmptiedAfterExit(t *testing.T) {
	t.Parallel()
	g := &subtests{t: t}
	defer g.wait()
	for _, tt := range []struct {
		name, delivery, onRotate, fd string
		lost                         bool // end by lease loss (Vault down), not SIGTERM
	}{
		{"memfd signal", "memfd", "signal", "3", false},
		{"memfd restart", "memfd", "restart", "3", false},
		{"dir", "dir", "signal", "7", false},
		{"memfd lease lost", "memfd", "signal", "3", true},
	} {
		g.run(tt.name, func(t *testing.T) {
			srv := testvault.Shared(t)
			kv := srv.KV(t, 2)
			secret := "emptied-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": secret}})
			p := vaultproxy.Start(t, srv.Addr)
			args := []string{"--delivery", tt.delivery, "--on-rotate", tt.onRotate, "-s", "pw=" + kv + "/app#password"}
			if tt.lost {
				// A 4s database lease next to the KV secret: with Vault
				// down it is lost, and leash stops everything.
				args = append(args, "-s", "db="+dbCreds(t, srv, 4*time.Second, time.Hour))
			}
			if tt.delivery == "dir" {
				shm, err := os.MkdirTemp("/dev/shm", "leash-test-")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(shm) })
				args = append(args, "--dir", shm)
			}
			// The grandchild leaves the child's session and process group,
			// so neither leash's stop signal nor the parent-death signal
			// reaches it; it holds the output open on fd tt.fd.
			script := `setsid sh -c 'exec 7<"$PW_FILE"; exec sleep 300' </dev/null >/dev/null 2>&1 & echo $!; exec sleep 300`
			lp := Start(t, vaultEnv(p.Addr(), srv.RootToken), append(append(args, "--"), "sh", "-c", script)...)
			gc, _ := strconv.Atoi(lp.Next(30 * time.Second))
			t.Cleanup(func() { syscall.Kill(gc, syscall.SIGKILL) })
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				// Polled: fd 7 is open once the grandchild has left the
				// group (setsid) and it prints nothing to wait on.
				if _, err := os.Stat(fmt.Sprintf("/proc/%d/fd/7", gc)); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("grandchild never opened the output")
				}
			}
			path := fmt.Sprintf("/proc/%d/fd/%s", gc, tt.fd)
			got, _ := os.ReadFile(path)
			if string(got) != secret {
				t.Fatalf("grandchild's %s holds %q before exit, want the secret", path, got)
			}
			if tt.lost {
				p.Down()
				if code := lp.Exit(30 * time.Second); code != exitTempFail {
					t.Errorf("leash exited %d, want %d (lease lost)", code, exitTempFail)
				}
			} else {
				lp.Signal(syscall.SIGTERM)
				lp.Exit(30 * time.Second)
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", gc)); err != nil {
				t.Fatal("the grandchild did not outlive leash; the test proves nothing")
			}
			if got, err := os.ReadFile(path); err != nil || len(got) != 0 {
				t.Errorf("after leash exited, %s holds %d bytes (err %v), want 0", path, len(got), err)
			}
		})
	}
}

// --mlock fails with a clear error, naming RLIMIT_MEMLOCK and what to do,
// when the limit forbids locking leash's memory (as a non-root user with
// the limit at 0).
func TestMlockRefusedClearly(t *testing.T) {
	t.Parallel()
	dir := nobodyDir(t)
	bin := copyExecutable(t, leashBin, dir)
	marker := filepath.Join(dir, "started")
	cmd := exec.Command("sh", "-c", `ulimit -l 0 && exec "$0" --mlock -- touch "$1"`, bin, marker)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
	code, stderr := ExitStatus(t, cmd)
	if code != exitConfig || !strings.Contains(stderr, "RLIMIT_MEMLOCK") || !strings.Contains(stderr, "CAP_IPC_LOCK") {
		t.Errorf("exit %d, want %d explaining RLIMIT_MEMLOCK; stderr:\n%s", code, exitConfig, stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the child was started")
	}
}

// The child (a non-root user) can read its outputs but not write them,
// whatever the delivery: memfds are read-only descriptors of 0400 files,
// dir-mode files are 0400.
func TestChildReadOnlyAccess(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the child as uid 65534")
	}
	g := &subtests{t: t}
	defer g.wait()
	for _, tt := range []struct{ name, delivery, onRotate string }{
		{"memfd signal", "memfd", "signal"},
		{"memfd restart", "memfd", "restart"},
		{"dir", "dir", "signal"},
	} {
		g.run(tt.name, func(t *testing.T) {
			srv := testvault.Shared(t)
			kv := srv.KV(t, 2)
			srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "read-only-secret"}})
			args := []string{"--user", "65534", "--delivery", tt.delivery, "--on-rotate", tt.onRotate, "-s", "pw=" + kv + "/app#password"}
			if tt.delivery == "dir" {
				shm, err := os.MkdirTemp("/dev/shm", "leash-test-")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(shm) })
				os.Chmod(shm, 0o755) // the child's user must be able to enter it
				args = append(args, "--dir", shm)
			}
			script := `cat "$PW_FILE"; echo
(printf x >> "$PW_FILE") 2>/dev/null && echo WRITABLE || echo write-denied
(printf x > "$PW_FILE") 2>/dev/null && echo TRUNCATABLE || echo truncate-denied
[ -e /proc/self/fd/3 ] && [ "$PW_FILE" = /dev/fd/3 ] && awk '/^flags/ { print "flags", substr($2, length($2)) }' /proc/self/fdinfo/3 || echo flags 0`
			cmd := Command(t, append(append(args, "--"), "sh", "-c", script)...)
			cmd.Env = append(cmd.Env, vaultEnv(srv.Addr, srv.RootToken)...)
			out, _ := Output(t, cmd)
			// fdinfo flags are octal; the last digit 0 is O_RDONLY.
			if want := "read-only-secret\nwrite-denied\ntruncate-denied\nflags 0\n"; string(out) != want {
				t.Errorf("child as uid 65534 reported:\n%s\nwant:\n%s", out, want)
			}
		})
	}
}

// --mlock locks leash's own memory (VmLck in /proc/PID/status).
func TestMlockLocksLeash(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs CAP_IPC_LOCK or a large RLIMIT_MEMLOCK")
	}
	lp, _ := mlockedLeash(t)
	if kb := statusKiB(t, lp.Cmd.Process.Pid, "VmLck:"); kb == 0 {
		t.Errorf("VmLck is 0 with --mlock")
	}
}

// --mlock also locks the secret pages: each memfd is mapped read-only in
// leash and the mapping is locked (mlockall does not cover unmapped shmem,
// which could otherwise be swapped out).
func TestMlockLocksSecretPages(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs CAP_IPC_LOCK or a large RLIMIT_MEMLOCK")
	}
	lp, _ := mlockedLeash(t)
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", lp.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var mappings, locked int
	inMemfd := false
	for _, l := range strings.Split(string(smaps), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-"): // a mapping's header
			inMemfd = strings.Contains(l, "memfd:leash:")
			if inMemfd {
				mappings++
				if !strings.HasPrefix(f[1], "r-") {
					t.Errorf("secret mapping is not read-only: %s", l)
				}
			}
		case inMemfd && len(f) >= 2 && f[0] == "Locked:":
			n, _ := strconv.Atoi(f[1])
			locked += n
		}
	}
	if mappings == 0 || locked == 0 {
		t.Errorf("%d memfd:leash: mappings with %d kB locked, want the secret pages mapped and locked", mappings, locked)
	}
}

func mlockedLeash(t *testing.T) (*Leash, int) {
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"k": "locked"}})
	args := append([]string{"--mlock", "-s", "k=" + kv + "/app#k", "--"}, watchArgs(t, "K_FILE")...)
	lp := Start(t, vaultEnv(srv.Addr, srv.RootToken), args...)
	pid, _ := lp.Ready()
	t.Cleanup(func() {
		lp.Signal(syscall.SIGTERM)
		lp.Exit(30 * time.Second)
	})
	return lp, pid
}

func statusKiB(t *testing.T, pid int, key string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == key {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}
