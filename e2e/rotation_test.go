package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testchild"
	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
	"github.com/leash-dev/leash/internal/vaultproxy"
	"golang.org/x/sys/unix"
)

// Hand-overs by restart and signal, and what happens around them: a child
// that crashes, signals during a restart or start-up, a changed KV secret,
// leash as PID 1, and rotations asked for through the control socket.

// rotatingLeash runs leash in restart mode on a credential that cannot be
// renewed past its max ttl (4s), so a hand-over comes every ~1-2s.
func rotatingLeash(t *testing.T, childEnv []string, extra ...string) (*Leash, *testvault.Server, string) {
	srv := testvault.Shared(t)
	creds := dbCreds(t, srv, 4*time.Second, 4*time.Second)
	args := append([]string{"--log-level", "debug", "--on-rotate", "restart", "--kill-timeout", "5s", "-s", "db=" + creds}, extra...)
	args = append(append(args, "--"), watchArgs(t, "DB_FILE")...)
	lp := Start(t, append(vaultEnv(srv.Addr, srv.RootToken), childEnv...), args...)
	return lp, srv, creds
}

// The child crashes (exits 3) when a rotation restart stops it: the restart
// still completes with the new credential; at the end leash mirrors the
// last child's status and revokes everything.
func TestChildCrashDuringRotation(t *testing.T) {
	t.Parallel()
	lp, srv, creds := rotatingLeash(t, []string{testchild.EnvTermExit + "=3"})
	pid1, first := lp.Ready()
	if l := lp.Next(60 * time.Second); l != "term" {
		t.Fatalf("child said %q, want term (rotation restart)", l)
	}
	pid2, second := lp.Ready()
	if pid2 == pid1 || bytes.Equal(first, second) {
		t.Fatalf("restart did not start a new child with a new credential")
	}
	if !pidGone(t, pid1, 5*time.Second) {
		t.Errorf("old child %d still running", pid1)
	}
	lp.Signal(syscall.SIGTERM)
	if code := lp.Exit(60 * time.Second); code != 3 {
		t.Errorf("leash exited %d, want 3 (the child's status)", code)
	}
	for _, l := range lp.Rest() {
		if l != "term" && !strings.HasPrefix(l, "ready ") {
			t.Errorf("child: %q", l)
		}
	}
	if ids := leaseIDs(t, srv, creds); len(ids) != 0 {
		t.Errorf("%d leases left after exit", len(ids))
	}
}

// SIGTERM arrives while a rotation restart is stopping the old child: the
// restart is cancelled (no new child), no child outlives leash, leash exits
// with the old child's status (0: it shut down cleanly when asked), and
// leases are revoked.
func TestSIGTERMDuringRestart(t *testing.T) {
	t.Parallel()
	lp, srv, creds := rotatingLeash(t, []string{testchild.EnvTermDelay + "=1s"})
	pid1, _ := lp.Ready()
	if l := lp.Next(60 * time.Second); l != "term" {
		t.Fatalf("child said %q, want term (rotation restart)", l)
	}
	lp.Signal(syscall.SIGTERM) // the old child is still shutting down
	code := lp.Exit(60 * time.Second)
	pids := []int{pid1}
	for _, l := range lp.Rest() {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "ready" {
			pid, _ := strconv.Atoi(f[1])
			pids = append(pids, pid)
		}
	}
	if code != 0 {
		t.Errorf("leash exited %d, want 0 (the old child's status after SIGTERM)", code)
	}
	if len(pids) != 1 {
		t.Errorf("%d children started, want the first only (the stop cancels the restart)", len(pids))
	}
	for _, pid := range pids {
		if !pidGone(t, pid, 5*time.Second) {
			t.Errorf("child %d outlived leash", pid)
		}
	}
	if ids := leaseIDs(t, srv, creds); len(ids) != 0 {
		t.Errorf("%d leases left after exit", len(ids))
	}
}

// Signals that arrive while leash is still fetching (Vault slow): a stop
// signal ends start-up with 128+N and leaves nothing issued; others do not
// disturb the start.
func TestSignalsDuringStartup(t *testing.T) {
	t.Parallel()
	g := &subtests{t: t}
	defer g.wait()
	for _, tt := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGUSR1, 0}, {syscall.SIGTERM, 128 + int(syscall.SIGTERM)}} {
		g.run(unix.SignalName(tt.sig), func(t *testing.T) {
			srv := testvault.Shared(t)
			creds := dbCreds(t, srv, time.Minute, time.Hour)
			p := vaultproxy.Start(t, srv.Addr)
			p.Delay(1500 * time.Millisecond)
			args := append([]string{"--log-level", "debug", "-s", "db=" + creds, "--"}, watchArgs(t, "DB_FILE")...)
			lp := Start(t, vaultEnv(p.Addr(), srv.RootToken), args...)
			if err := p.Wait(ctxTimeout(t, 20*time.Second), creds, 1); err != nil {
				t.Fatal(err) // leash is now waiting for the credential
			}
			lp.Signal(tt.sig)
			if tt.code == 0 {
				lp.Ready()
				lp.Signal(syscall.SIGTERM)
				if l := lp.Next(60 * time.Second); l != "term" {
					t.Errorf("child said %q, want term", l)
				}
			}
			if code := lp.Exit(60 * time.Second); code != tt.code {
				t.Errorf("leash exited %d, want %d", code, tt.code)
			}
			if ids := leaseIDs(t, srv, creds); len(ids) != 0 {
				t.Errorf("%d leases left after exit", len(ids))
			}
		})
	}
}

// The child started by a rotation restart crashes at once (exit 1): leash
// does not restart it again, exits 1 and revokes every lease.
func TestRestartedChildCrashes(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	creds := dbCreds(t, srv, 4*time.Second, 4*time.Second)
	marker := filepath.Join(t.TempDir(), "started")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := `if [ -e "$0" ]; then echo crash; exit 1; fi; touch "$0"; exec env ` + testchild.EnvMode + `=watch "$1" DB_FILE`
	lp := Start(t, vaultEnv(srv.Addr, srv.RootToken), "--on-rotate", "restart", "-s", "db="+creds, "--", "sh", "-c", script, marker, self)
	lp.Ready()
	if l := lp.Next(60 * time.Second); l != "term" {
		t.Fatalf("child said %q, want term (rotation restart)", l)
	}
	if l := lp.Next(60 * time.Second); l != "crash" {
		t.Fatalf("child said %q, want crash", l)
	}
	if code := lp.Exit(60 * time.Second); code != 1 {
		t.Errorf("leash exited %d, want 1 (the crashed child's status)", code)
	}
	if rest := lp.Rest(); len(rest) > 0 {
		t.Errorf("child started again after crashing: %q", rest)
	}
	if ids := leaseIDs(t, srv, creds); len(ids) != 0 {
		t.Errorf("%d leases left after exit", len(ids))
	}
}

// A KV secret changed at runtime is handed over (reload with the new
// bytes); deleted at runtime, the child keeps its last bytes and keeps
// running (a static secret never expires), and leash says why.
func TestKVChangedThenDeleted(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"k": "v1"}})
	args := append([]string{"--log-level", "debug", "--on-rotate", "signal", "--reload-grace", "100ms", "--static-refresh", "300ms",
		"-s", "k=" + kv + "/app#k", "--"}, watchArgs(t, "K_FILE")...)
	lp := Start(t, vaultEnv(srv.Addr, srv.RootToken), args...)
	if _, b := lp.Ready(); string(b) != "v1" {
		t.Fatalf("child read %q", b)
	}
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"k": "v2"}})
	if l := lp.Next(60 * time.Second); l != "reload "+base64.StdEncoding.EncodeToString([]byte("v2")) {
		t.Fatalf("child said %q, want a reload with v2", l)
	}
	if _, err := srv.Client.Logical().Delete(kv + "/metadata/app"); err != nil {
		t.Fatal(err)
	}
	for _, r := range lp.WaitEvent(evFailed, 2, 60*time.Second, nil) {
		if r.Name != kv+"/app" || r.Path != kv+"/app" {
			t.Errorf("the refresh failure does not name the path: %+v", r)
		}
	}
	lp.Signal(syscall.SIGTERM)
	if l := lp.Next(60 * time.Second); l != "term" {
		t.Errorf("child said %q after the secret was deleted, want nothing until term", l)
	}
	if code := lp.Exit(60 * time.Second); code != 0 {
		t.Errorf("leash exited %d", code)
	}
}

// leash as PID 1 of a new PID namespace (a container's init) with leased
// secrets: hand-overs by restart, then SIGTERM from outside (docker stop):
// exit 0, every lease revoked.
func TestPID1WithSecrets(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare -pf")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed")
	}
	srv := testvault.Shared(t)
	creds := dbCreds(t, srv, 4*time.Second, 4*time.Second)
	cmd := exec.Command("unshare", append([]string{"-pf", "--mount-proc", leashBin, "--log-level", "debug", "--on-rotate", "restart",
		"-s", "db=" + creds, "--"}, watchArgs(t, "DB_FILE")...)...)
	cmd.Env = append(os.Environ(), vaultEnv(srv.Addr, srv.RootToken)...)
	lp := StartCmd(t, cmd)
	for starts := 0; starts < 2; {
		f := strings.Fields(lp.Next(60 * time.Second))
		switch {
		case len(f) == 3 && f[0] == "ready":
			starts++
		case len(f) == 1 && f[0] == "term":
		default:
			t.Fatalf("child said %q", f)
		}
	}
	// unshare's only child is leash; signal it directly, as docker stop
	// signals a container's PID 1.
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	leashPid, _ := strconv.Atoi(strings.TrimSpace(string(kids)))
	if leashPid == 0 {
		t.Fatalf("no leash under unshare: %q", kids)
	}
	syscall.Kill(leashPid, syscall.SIGTERM)
	if code := lp.Exit(60 * time.Second); code != 0 {
		t.Errorf("leash as PID 1 exited %d, want 0", code)
	}
	if ids := leaseIDs(t, srv, creds); len(ids) != 0 {
		t.Errorf("%d leases left after exit", len(ids))
	}
}

var (
	pgExampleOnce sync.Once
	pgExampleBin  string
	pgExampleErr  error
)

// pgExample builds examples/postgres, the app with a database/sql pool.
func pgExample(t *testing.T) string {
	t.Helper()
	pgExampleOnce.Do(func() {
		pgExampleBin = filepath.Join(filepath.Dir(leashBin), "pgexample")
		out, err := exec.Command("go", "build", "-o", pgExampleBin, "github.com/leash-dev/leash/examples/postgres").CombinedOutput()
		if err != nil {
			pgExampleErr = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if pgExampleErr != nil {
		t.Fatalf("build examples/postgres: %v", pgExampleErr)
	}
	return pgExampleBin
}

// waitApp reads the app's lines until one matches re and returns its
// submatches; a failed query as any of bad fails the test.
func waitApp(p *Leash, re *regexp.Regexp, bad ...string) []string {
	p.t.Helper()
	for {
		l := p.Next(60 * time.Second)
		if strings.Contains(l, "error:") || slices.ContainsFunc(bad, func(u string) bool { return strings.Contains(l, "query failed as "+u) }) {
			p.t.Errorf("app: %s", l)
		}
		if m := re.FindStringSubmatch(l); m != nil {
			return m
		}
	}
}

// rotateDrill runs the PostgreSQL example app under leash with a control
// socket, then `leash rotate` and `leash rotate --drill`: each hands over a
// new database credential, the app's pool switches to it and queries
// PostgreSQL as the new role, and the old role is gone once rotate returns.
func rotateDrill(t *testing.T, mode string, extra ...string) {
	srv := testvault.Shared(t)
	db := testpg.Database(t)
	// An hour: no scheduled hand-over interferes.
	creds := srv.Database(t, db.VaultURL(), db.User, db.Password, time.Hour, 2*time.Hour)
	dir := t.TempDir()
	sock := filepath.Join(dir, "control", "leash.sock")
	audit := filepath.Join(dir, "audit.jsonl")
	env := append(vaultEnv(srv.Addr, srv.RootToken),
		"PGHOST="+db.Host, "PGPORT="+strconv.Itoa(db.Port), "PGDATABASE="+db.Name, "PGSSLMODE=disable")
	args := append([]string{"-s", "db=" + creds, "--on-rotate", mode, "--control-socket", sock, "--audit-file", audit}, extra...)
	p := Start(t, env, append(args, "--", pgExample(t), "-interval", "20ms")...)

	connected := regexp.MustCompile(`connected as (\S+)`)
	u1 := waitApp(p, connected)[1]
	waitApp(p, regexp.MustCompile(`query ok as `+regexp.QuoteMeta(u1)))
	if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("control directory: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}

	// switched waits for the app to use the next credential. A query as
	// prev fails the test, except in a drill: prev is revoked right after
	// the delivery, so a query already running as prev may fail (that the
	// app survives it is what a drill proves).
	switched := func(prev string, drill bool) string {
		var bad []string
		if !drill {
			bad = []string{prev}
		}
		if mode == "signal" {
			m := waitApp(p, regexp.MustCompile(`reloaded: now (\S+) \(was (\S+)\)`), bad...)
			if m[2] != prev {
				t.Fatalf("app reloaded from %s, want from %s", m[2], prev)
			}
			return m[1]
		}
		return waitApp(p, connected, bad...)[1]
	}

	out, _ := Output(t, Command(t, "rotate", "--control-socket", sock))
	if !strings.Contains(string(out), "rotated "+creds+": lease ") {
		t.Fatalf("leash rotate printed:\n%s", out)
	}
	u2 := switched(u1, false)
	waitApp(p, regexp.MustCompile(`query ok as `+regexp.QuoteMeta(u2)), u2)
	if u2 == u1 || db.RoleExists(t, u1) {
		t.Errorf("after leash rotate: new role %s, old role %s exists: %v", u2, u1, db.RoleExists(t, u1))
	}

	out, _ = Output(t, Command(t, "rotate", "--drill", "--watch", "1s", "--control-socket", sock, "db"))
	if !strings.Contains(string(out), "child running: true") || !strings.Contains(string(out), "healthy throughout: true") {
		t.Fatalf("leash rotate --drill printed:\n%s", out)
	}
	// The old credential is revoked before the drill reports.
	if db.RoleExists(t, u2) {
		t.Errorf("role %s still exists after the drill", u2)
	}
	u3 := switched(u2, true)
	waitApp(p, regexp.MustCompile(`query ok as `+regexp.QuoteMeta(u3)), u3)

	p.Signal(syscall.SIGTERM)
	if code := p.Exit(30 * time.Second); code != 0 {
		t.Fatalf("leash exited %d", code)
	}
	for _, l := range p.Rest() {
		if strings.Contains(l, "query failed as "+u3) || strings.Contains(l, "error:") {
			t.Errorf("app: %s", l)
		}
	}
	if _, err := os.Stat(filepath.Dir(sock)); !os.IsNotExist(err) {
		t.Errorf("control directory left behind: %v", err)
	}
	vout, _ := Output(t, Command(t, "audit", "verify", audit))
	raw, _ := os.ReadFile(audit)
	for _, ev := range []string{`"event":"rotate_now","outcome":"ok"`, `"event":"drill","outcome":"ok"`} {
		if !strings.Contains(string(raw), ev) {
			t.Errorf("audit trail lacks %s:\n%s", ev, raw)
		}
	}
	t.Logf("audit verify: %s", vout)
}

func TestRotateDrillSignal(t *testing.T) {
	t.Parallel()
	rotateDrill(t, "signal", "--reload-grace", "2s")
}

func TestRotateDrillRestart(t *testing.T) {
	t.Parallel()
	rotateDrill(t, "restart", "--kill-timeout", "10s")
}

// TestControlSocketRefusesOtherUID: another uid cannot use the control
// socket: the 0700 directory keeps it out, and when that is loosened,
// SO_PEERCRED still does. Root (the test) may.
func TestControlSocketRefusesOtherUID(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as nobody")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	// nobody must be able to run the leash binary.
	if err := os.Chmod(filepath.Dir(leashBin), 0o755); err != nil {
		t.Fatal(err)
	}
	srv := testvault.Shared(t)
	create := srv.TokenRole(t, time.Hour)
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "control", "leash.sock")
	p := Start(t, vaultEnv(srv.Addr, srv.RootToken), "-s", "tok="+create+"?ttl=1h", "--on-rotate", "none",
		"--control-socket", sock, "--", "sh", "-c", "echo ready 0 AA==; exec sleep 600")
	p.Ready()

	asNobody := func() (int, string) {
		cmd := Command(t, "rotate", "--control-socket", sock)
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		return ExitStatus(t, cmd)
	}
	if code, stderr := asNobody(); code != exitRotateFailed || !strings.Contains(stderr, "permission denied") {
		t.Errorf("nobody through the 0700 directory: exit %d, want %d with permission denied:\n%s", code, exitRotateFailed, stderr)
	}
	// Loosen the directory and the socket: the peer check still refuses.
	if err := os.Chmod(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}
	if code, stderr := asNobody(); code != exitRotateFailed || !strings.Contains(stderr, "refused: uid "+nobody.Uid) {
		t.Errorf("nobody through a loosened directory: exit %d, want %d refused by uid:\n%s", code, exitRotateFailed, stderr)
	}
	p.WaitEvent(evControlRefused, 1, 60*time.Second, func(r Record) bool {
		return r.Outcome == "error" && strings.Contains(r.Error, "refused: uid "+nobody.Uid)
	})
	if n := len(p.Log.Events(evRotateNow)); n != 0 {
		t.Errorf("leash handled a request of nobody's")
	}
	out, _ := Output(t, Command(t, "rotate", "--control-socket", sock))
	if !strings.Contains(string(out), "rotated "+create) {
		t.Errorf("root's leash rotate printed:\n%s", out)
	}
}
