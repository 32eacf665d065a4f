package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
)

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
		out, err := exec.Command("go", "build", "-o", pgExampleBin, "./examples/postgres").CombinedOutput()
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
func waitApp(p *leashProc, re *regexp.Regexp, bad ...string) []string {
	p.t.Helper()
	for {
		l := p.next(60 * time.Second)
		for _, u := range bad {
			if strings.Contains(l, "query failed as "+u) || strings.Contains(l, "error:") {
				p.t.Errorf("app: %s", l)
			}
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
	p := startLeash(t, env, append(args, "--", pgExample(t), "-interval", "20ms")...)

	connected := regexp.MustCompile(`connected as (\S+)`)
	u1 := waitApp(p, connected)[1]
	waitApp(p, regexp.MustCompile(`query ok as `+regexp.QuoteMeta(u1)))
	if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("control directory: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}

	switched := func(prev string) string {
		if mode == "signal" {
			m := waitApp(p, regexp.MustCompile(`reloaded: now (\S+) \(was (\S+)\)`), prev)
			if m[2] != prev {
				t.Fatalf("app reloaded from %s, want from %s", m[2], prev)
			}
			return m[1]
		}
		return waitApp(p, connected, prev)[1]
	}

	out, _ := leashOutput(t, leashCmd(t, "rotate", "--control-socket", sock))
	if !strings.Contains(string(out), "rotated "+creds+": lease ") {
		t.Fatalf("leash rotate printed:\n%s", out)
	}
	u2 := switched(u1)
	waitApp(p, regexp.MustCompile(`query ok as `+regexp.QuoteMeta(u2)), u2)
	if u2 == u1 || db.RoleExists(t, u1) {
		t.Errorf("after leash rotate: new role %s, old role %s exists: %v", u2, u1, db.RoleExists(t, u1))
	}

	out, _ = leashOutput(t, leashCmd(t, "rotate", "--drill", "--watch", "1s", "--control-socket", sock, "db"))
	if !strings.Contains(string(out), "child running: true") || !strings.Contains(string(out), "healthy throughout: true") {
		t.Fatalf("leash rotate --drill printed:\n%s", out)
	}
	// The old credential is revoked before the drill reports.
	if db.RoleExists(t, u2) {
		t.Errorf("role %s still exists after the drill", u2)
	}
	u3 := switched(u2)
	waitApp(p, regexp.MustCompile(`query ok as `+regexp.QuoteMeta(u3)), u3)

	p.signal(syscall.SIGTERM)
	if code := p.exit(30 * time.Second); code != 0 {
		t.Fatalf("leash exited %d", code)
	}
	for _, l := range p.rest() {
		if strings.Contains(l, "query failed as "+u3) || strings.Contains(l, "error:") {
			t.Errorf("app: %s", l)
		}
	}
	if _, err := os.Stat(filepath.Dir(sock)); !os.IsNotExist(err) {
		t.Errorf("control directory left behind: %v", err)
	}
	vout, _ := leashOutput(t, leashCmd(t, "audit", "verify", audit))
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
	p := startLeash(t, vaultEnv(srv.Addr, srv.RootToken), "-s", "tok="+create+"?ttl=1h", "--on-rotate", "none",
		"--control-socket", sock, "--", "sh", "-c", "echo ready 0 AA==; exec sleep 600")
	p.ready()

	asNobody := func() (int, string) {
		cmd := leashCmd(t, "rotate", "--control-socket", sock)
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		return exitStatus(t, cmd)
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
	p.waitLog("control connection refused", 1, 10*time.Second)
	if n := p.log.count("rotation requested"); n != 0 {
		t.Errorf("leash handled a request of nobody's")
	}
	out, _ := leashOutput(t, leashCmd(t, "rotate", "--control-socket", sock))
	if !strings.Contains(string(out), "rotated "+create) {
		t.Errorf("root's leash rotate printed:\n%s", out)
	}
}

// TestControlSocketDirectoryChecks: an existing directory must be 0700 and
// leash's own; a live socket is not taken over.
func TestControlSocketDirectoryChecks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose")
	if err := os.Mkdir(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := listenControl(filepath.Join(loose, "s")); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("listenControl in a 0755 directory: %v", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if _, _, err := listenControl(filepath.Join(link, "s")); err == nil {
		t.Error("listenControl followed a symlinked directory")
	}
	path := filepath.Join(dir, "fresh", "s")
	l, cleanup, err := listenControl(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := listenControl(path); err == nil || !strings.Contains(err.Error(), "another leash") {
		t.Errorf("second listenControl on a live socket: %v", err)
	}
	_ = l
	cleanup()
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("cleanup left the directory leash created: %v", err)
	}
}
