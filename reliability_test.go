package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/leash-dev/leash/internal/testchild"
	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
	"github.com/leash-dev/leash/internal/vaultproxy"
	"golang.org/x/sys/unix"
)

// These tests (issue 7) run the leash binary against a real Vault dev
// server, usually through vaultproxy so faults can be injected and requests
// counted. Children are this test binary in internal/testchild's watch mode.

// watchArgs is the argv of a "watch" helper child reading $VAR.
func watchArgs(t *testing.T, v string) []string { return testchild.Argv(t, "watch", v) }

// logBuf collects leash's stderr and lets a test wait for log events.
type logBuf struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuf() *logBuf { return &logBuf{changed: make(chan struct{})} }

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return len(p), nil
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuf) count(substr string) int { return strings.Count(b.String(), substr) }

// leashProc is a leash process under test with a watch-style child.
type leashProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *lineReader // the child's stdout
	log  *logBuf     // leash's stderr
	done chan struct{}
	err  error
}

// startLeash starts leash with env added to the test's environment.
func startLeash(t *testing.T, env []string, args ...string) *leashProc {
	t.Helper()
	cmd := leashCmd(t, args...)
	cmd.Env = append(cmd.Env, env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &leashProc{t: t, cmd: cmd, log: newLogBuf(), done: make(chan struct{})}
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.out = newLineReader(t, stdout)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("leash stderr:\n%s", p.log.String())
		}
	})
	return p
}

// waitLog waits until leash has logged substr at least n times.
func (p *leashProc) waitLog(substr string, n int, limit time.Duration) {
	p.t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		p.log.mu.Lock()
		got, ch := strings.Count(p.log.buf.String(), substr), p.log.changed
		p.log.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-p.done:
			if p.log.count(substr) >= n {
				return
			}
			p.t.Fatalf("leash exited (%v) before logging %q %d times", p.err, substr, n)
		case <-deadline.C:
			p.t.Fatalf("leash logged %q %d times in %s, want %d", substr, got, limit, n)
		}
	}
}

// next returns the child's next line.
func (p *leashProc) next(limit time.Duration) string {
	p.t.Helper()
	select {
	case l, ok := <-p.out.lines:
		if !ok {
			p.t.Fatalf("child output ended (leash: %v)", p.exitErr(5*time.Second))
		}
		return l
	case <-time.After(limit):
		p.t.Fatalf("no line from the child within %s", limit)
	}
	return ""
}

// rest returns the child's remaining lines once its output ends.
func (p *leashProc) rest() []string { return p.out.rest() }

// ready waits for the watch child's "ready PID B64" and returns pid and content.
func (p *leashProc) ready() (int, []byte) {
	p.t.Helper()
	l := p.next(60 * time.Second)
	f := strings.Fields(l)
	if len(f) != 3 || f[0] != "ready" {
		p.t.Fatalf("child said %q, want ready", l)
	}
	pid, _ := strconv.Atoi(f[1])
	b, err := base64.StdEncoding.DecodeString(f[2])
	if err != nil {
		p.t.Fatalf("child: %q", l)
	}
	return pid, b
}

func (p *leashProc) exitErr(limit time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(limit):
		return errors.New("still running")
	}
}

// exit waits for leash to exit and returns its code.
func (p *leashProc) exit(limit time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		p.t.Fatalf("leash still running after %s", limit)
	}
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	p.t.Fatalf("leash: %v", p.err)
	return -1
}

func (p *leashProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// dbCreds mounts the database engine on the shared PostgreSQL server (a
// fresh database) and returns the creds path.
func dbCreds(t *testing.T, srv *testvault.Server, ttl, maxTTL time.Duration) string {
	db := testpg.Database(t)
	return srv.Database(t, db.VaultURL(), db.User, db.Password, ttl, maxTTL)
}

// leaseIDs lists the leases Vault holds under creds.
func leaseIDs(t *testing.T, srv *testvault.Server, creds string) []string {
	return srv.LeaseIDs(t, creds+"/")
}

func vaultEnv(addr, token string) []string {
	return []string{"VAULT_ADDR=" + addr, "VAULT_TOKEN=" + token}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// pidGone waits until pid has exited, using a pidfd (an event, not a poll).
func pidGone(t *testing.T, pid int, limit time.Duration) bool {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return errors.Is(err, unix.ESRCH)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(limit.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n == 1
	}
}

func shortHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:6])
}

// --- Vault faults ---------------------------------------------------------

// Vault unreachable at start: leash gives up with 69 at the startup
// deadline, never starts the child, and revokes what it had already been
// issued (here the database credential of a second, reachable path).
func TestFaultUnreachableAtStart(t *testing.T) {
	t.Parallel()
	g := &subtests{t: t}
	defer g.wait()
	g.run("down", func(t *testing.T) {
		srv := testvault.Shared(t)
		p := vaultproxy.Start(t, srv.Addr)
		p.Down()
		marker := filepath.Join(t.TempDir(), "started")
		cmd := leashCmd(t, "--startup-timeout", "2s", "-s", "db=database/creds/app", "--", "touch", marker)
		cmd.Env = append(cmd.Env, vaultEnv(p.Addr(), srv.RootToken)...)
		start := time.Now()
		got, stderr := exitStatus(t, cmd)
		took := time.Since(start)
		if got != exitUnavailable {
			t.Errorf("exit %d, want %d; stderr:\n%s", got, exitUnavailable, stderr)
		}
		if took > 8*time.Second {
			t.Errorf("gave up after %s; the startup deadline is 2s", took)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Error("the child was started without its secrets")
		}
		// Bounded retries: each attempt is one connection; a tight loop
		// would make thousands in 2s.
		t.Logf("gave up after %s; %d connection attempts, at most %d in one second", took.Round(time.Millisecond),
			len(p.Refused()), vaultproxy.MaxInWindow(p.Refused(), time.Second))
		if n := len(p.Refused()); n == 0 || n > 40 {
			t.Errorf("%d connection attempts in the startup window, want a few", n)
		}
		if max := vaultproxy.MaxInWindow(p.Refused(), time.Second); max > 12 {
			t.Errorf("%d connection attempts within one second: retry loop too tight", max)
		}
	})
	g.run("hung", func(t *testing.T) {
		// Vault accepts connections but never answers.
		srv := testvault.Shared(t)
		p := vaultproxy.Start(t, srv.Addr)
		p.Delay(time.Hour)
		cmd := leashCmd(t, "--startup-timeout", "2s", "-s", "db=database/creds/app", "--", "true")
		cmd.Env = append(cmd.Env, vaultEnv(p.Addr(), srv.RootToken)...)
		start := time.Now()
		got, stderr := exitStatus(t, cmd)
		if took := time.Since(start); got != exitUnavailable || took > 5*time.Second {
			t.Errorf("exit %d after %s, want %d at the 2s deadline; stderr:\n%s", got, took, exitUnavailable, stderr)
		}
	})
	g.run("one path unavailable", func(t *testing.T) {
		srv := testvault.Shared(t)
		creds := dbCreds(t, srv, time.Minute, time.Hour)
		kv := srv.KV(t, 2)
		srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"k": "v"}})
		p := vaultproxy.Start(t, srv.Addr)
		p.StatusOn(kv+"/data/app", 503, 0, -1)
		marker := filepath.Join(t.TempDir(), "started")
		cmd := leashCmd(t, "--startup-timeout", "3s", "-s", "db="+creds, "-s", "kv="+kv+"/app", "--", "touch", marker)
		cmd.Env = append(cmd.Env, vaultEnv(p.Addr(), srv.RootToken)...)
		got, stderr := exitStatus(t, cmd)
		if got != exitUnavailable || !strings.Contains(stderr, kv) {
			t.Errorf("exit %d, want %d naming %s; stderr:\n%s", got, exitUnavailable, kv, stderr)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Error("the child was started without its secrets")
		}
		if p.Requests(creds) != 1 {
			t.Errorf("database credential requested %d times, want 1", p.Requests(creds))
		}
		if ids := leaseIDs(t, srv, creds); len(ids) > 0 {
			t.Errorf("credential issued during the failed start is still in Vault: %d leases", len(ids))
		}
		if n := p.Requests(kv + "/data/app"); n > 30 {
			t.Errorf("%d requests for the unavailable path in 3s: retry loop too tight", n)
		}
	})
}

// renewingLeash starts leash on a renewable database credential with a
// lease long enough that a renewal can fail and be retried well before the
// hand-over point: with rotate-before 3s, renewal comes at 60-67% of ttl and
// the hand-over no earlier than ttl-3.75s. One renew call itself takes up to
// ~2.5s when Vault fails (the Vault client retries twice inside it).
func renewingLeash(t *testing.T, srv *testvault.Server, p *vaultproxy.Proxy, ttl time.Duration, extraEnv ...string) (*leashProc, string, []byte) {
	creds := dbCreds(t, srv, ttl, time.Hour)
	env := append(vaultEnv(p.Addr(), srv.RootToken), extraEnv...)
	args := append([]string{"--log-level", "debug", "--on-rotate", "signal", "--reload-grace", "200ms", "--rotate-before", "3s", "-s", "db=" + creds, "--"}, watchArgs(t, "DB_FILE")...)
	lp := startLeash(t, env, args...)
	_, content := lp.ready()
	return lp, creds, content
}

// noReissue checks that the child saw no hand-over and Vault issued one
// credential.
func noReissue(t *testing.T, lp *leashProc, p *vaultproxy.Proxy, creds string) {
	t.Helper()
	if n := p.Requests(creds); n != 1 {
		t.Errorf("credential requested %d times, want 1 (a failed renewal must not re-issue)", n)
	}
	if n := lp.log.count("lease rotated"); n != 0 {
		t.Errorf("%d rotations, want none", n)
	}
	lp.signal(syscall.SIGTERM)
	for _, l := range lp.rest() {
		if l != "term" {
			t.Errorf("child disturbed: %q", l)
		}
	}
	if code := lp.exit(30 * time.Second); code != 0 {
		t.Errorf("leash exited %d, want 0", code)
	}
}

// Vault down across a renewal but back before the lease ends: the child is
// undisturbed, renewal resumes, nothing is re-issued; retries are spaced.
func TestFaultOutageShorterThanLease(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	p := vaultproxy.Start(t, srv.Addr)
	// Down from the start until the first renewal (at 14.4-16s) has
	// failed; the hand-over point is at 20.25s or later.
	lp, creds, _ := renewingLeash(t, srv, p, 24*time.Second)
	p.Down()
	downAt := time.Now()
	lp.waitLog("renew failed", 1, 30*time.Second)
	p.Up()
	outage := time.Since(downAt)
	lp.waitLog("lease renewed", 1, 10*time.Second)
	t.Logf("outage %s, %d refused connections, at most %d in one second", outage.Round(time.Millisecond),
		len(p.Refused()), vaultproxy.MaxInWindow(p.Refused(), time.Second))
	if max := vaultproxy.MaxInWindow(p.Refused(), time.Second); max > 6 {
		t.Errorf("%d connection attempts within one second during the outage: retry loop too tight", max)
	}
	noReissue(t, lp, p, creds)
}

// Transient errors on renewal (500s, 429 with Retry-After, a reset in the
// middle of the response, a Vault slower than the client timeout) are
// retried with spacing and never re-issue while the lease is valid.
func TestFaultTransientRenewalErrors(t *testing.T) {
	t.Parallel()
	g := &subtests{t: t}
	defer g.wait()
	tests := []struct {
		name   string
		env    []string
		inject func(p *vaultproxy.Proxy)
		clear  func(lp *leashProc, p *vaultproxy.Proxy)
	}{
		{name: "500", inject: func(p *vaultproxy.Proxy) { p.StatusOn("sys/leases/renew", 500, 0, 2) }},
		{name: "429 retry-after", inject: func(p *vaultproxy.Proxy) { p.StatusOn("sys/leases/renew", 429, time.Second, 2) }},
		{name: "reset mid-response", inject: func(p *vaultproxy.Proxy) { p.ResetMidResponseOn("sys/leases/renew", 2) }},
		{
			name: "slower than client timeout", env: []string{"VAULT_CLIENT_TIMEOUT=1"},
			inject: func(p *vaultproxy.Proxy) {},
			clear: func(lp *leashProc, p *vaultproxy.Proxy) {
				// Slow only after start-up (logins and issues would time out too).
				p.Delay(3 * time.Second)
				lp.waitLog("renew failed", 1, 30*time.Second)
				p.Delay(0)
			},
		},
	}
	for _, tt := range tests {
		g.run(tt.name, func(t *testing.T) {
			srv := testvault.Shared(t)
			p := vaultproxy.Start(t, srv.Addr)
			lp, creds, _ := renewingLeash(t, srv, p, 20*time.Second, tt.env...)
			tt.inject(p)
			if tt.clear != nil {
				tt.clear(lp, p)
			}
			lp.waitLog("lease renewed", 1, 30*time.Second)
			var statuses []int
			var times []time.Time
			for _, r := range p.Log() {
				if r.Path == "sys/leases/renew" {
					statuses = append(statuses, r.Status)
					times = append(times, r.Time)
				}
			}
			t.Logf("renew requests: statuses %v", statuses)
			if len(statuses) < 2 || statuses[len(statuses)-1] != 200 {
				t.Errorf("renew statuses %v: want failures, then 200", statuses)
			}
			// Backoff starts at 250-500ms (leash) or 1s (the Vault client's
			// own retries); a tight loop would be milliseconds apart.
			for i := 1; i < len(times); i++ {
				if gap := times[i].Sub(times[i-1]); gap < 200*time.Millisecond {
					t.Errorf("renew retried after %s: no backoff", gap)
				}
			}
			if max := vaultproxy.MaxInWindow(times, time.Second); max > 3 {
				t.Errorf("%d renew requests within one second: no backoff", max)
			}
			if tt.name == "429 retry-after" {
				for i := 1; i < len(times); i++ {
					if gap := times[i].Sub(times[i-1]); gap < 900*time.Millisecond {
						t.Errorf("retried %s after a 429 with Retry-After: 1", gap)
					}
				}
			}
			noReissue(t, lp, p, creds)
		})
	}
}

// Vault down (connections reset) or hung (accepts, never answers) past
// the lease's expiry: the child is stopped at expiry (fail closed) and
// leash exits 75.
func TestFaultOutagePastExpiry(t *testing.T) {
	t.Parallel()
	g := &subtests{t: t}
	defer g.wait()
	for _, tt := range []struct {
		name     string
		fault    func(p *vaultproxy.Proxy)
		lateness time.Duration // allowed delay of the stop after expiry
	}{
		// Every Vault call is bounded by the moment the credential counts
		// as lost, a margin (300ms for this 6s lease) before leash's
		// estimate of the expiry, which counts from when the request that
		// issued it was sent: the child hears of it before Vault revokes.
		// (Before f16ddd6 the stop came at the end of the call in flight,
		// 1.9-3.8s late; until the margin, a few ms after Vault's expiry.)
		{"down", func(p *vaultproxy.Proxy) { p.Down() }, 0},
		{"hung", func(p *vaultproxy.Proxy) { p.Delay(time.Hour) }, 0},
	} {
		g.run(tt.name, func(t *testing.T) {
			srv := testvault.Shared(t)
			p := vaultproxy.Start(t, srv.Addr)
			creds := dbCreds(t, srv, 6*time.Second, time.Hour)
			args := append([]string{"--log-level", "debug", "--on-rotate", "signal", "-s", "db=" + creds, "--"}, watchArgs(t, "DB_FILE")...)
			lp := startLeash(t, vaultEnv(p.Addr(), srv.RootToken), args...)
			lp.ready()
			tt.fault(p)
			ids := leaseIDs(t, srv, creds)
			if len(ids) != 1 {
				t.Fatalf("%d leases, want 1", len(ids))
			}
			expire, _, ok := srv.LeaseLookup(t, ids[0])
			if !ok {
				t.Fatal("lease lookup failed")
			}
			if l := lp.next(60 * time.Second); l != "term" {
				t.Fatalf("child said %q, want term (stopped at expiry)", l)
			}
			stoppedAt := time.Now()
			t.Logf("child stopped %s before Vault's expire_time", expire.Sub(stoppedAt).Round(time.Millisecond))
			if early := expire.Sub(stoppedAt); early > 1500*time.Millisecond {
				t.Errorf("child stopped %s before the lease expired", early)
			}
			if late := stoppedAt.Sub(expire); late > tt.lateness {
				t.Errorf("child stopped %s after the lease expired", late)
			}
			if code := lp.exit(30 * time.Second); code != exitTempFail {
				t.Errorf("leash exited %d, want %d", code, exitTempFail)
			}
			if !strings.Contains(lp.log.String(), "credential expired") {
				t.Errorf("no log line explaining the stop")
			}
			// A write to a connection Vault reset raises SIGPIPE in leash
			// itself; forwarding it killed children without a handler
			// (fixed in b9194e5). Which of leash's reader and writer meets
			// the reset first is a race, so this caught the bug in about
			// half of its runs.
			if n := strings.Count(lp.log.String(), "signal=SIGPIPE"); n > 0 {
				t.Errorf("leash forwarded %d SIGPIPEs to the child while Vault was resetting connections", n)
			}
		})
	}
}

// restartEnv provisions a fresh Vault (after New or Restart: the dev server
// forgets everything) with fixed paths: AppRole at approle, a database
// engine at database, and a token with the same policy.
type restartEnv struct {
	srv                      *testvault.Server
	db                       *testpg.DB
	roleIDFile, secretIDFile string
}

func (e *restartEnv) provision(t *testing.T) (token string) {
	t.Helper()
	c := e.srv.Client
	ctx := context.Background()
	if err := c.Sys().MountWithContext(ctx, "database", &api.MountInput{Type: "database"}); err != nil {
		t.Fatal(err)
	}
	e.srv.Write(t, "database/config/pg", map[string]any{
		"plugin_name": "postgresql-database-plugin", "connection_url": e.db.VaultURL(),
		"username": e.db.User, "password": e.db.Password, "allowed_roles": "*",
	})
	e.srv.Write(t, "database/roles/app", map[string]any{
		"db_name":             "pg",
		"creation_statements": []string{`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`},
		"default_ttl":         "10s", "max_ttl": "1h",
	})
	if err := c.Sys().PutPolicyWithContext(ctx, "app", `
path "database/creds/app" { capabilities = ["read"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	if err := c.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	e.srv.Write(t, "auth/approle/role/app", map[string]any{"token_policies": []string{"app"}, "token_ttl": "1h"})
	roleID := e.srv.Read(t, "auth/approle/role/app/role-id").Data["role_id"].(string)
	secretID := e.srv.Write(t, "auth/approle/role/app/secret-id", nil).Data["secret_id"].(string)
	for p, v := range map[string]string{e.roleIDFile: roleID, e.secretIDFile: secretID} {
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := c.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"app"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Auth.ClientToken
}

// Vault restarted (the dev server forgets every token, lease and mount).
// With AppRole leash logs in again once the operator has re-provisioned the
// role, issues a new credential and hands it over; so it does with
// --token-file once a new token is written there; with a VAULT_TOKEN that
// no longer exists it cannot, and fails closed with 75 when the lease ends.
func TestFaultVaultRestart(t *testing.T) {
	t.Parallel()
	g := &subtests{t: t}
	defer g.wait()
	for _, method := range []string{"approle", "token", "token-file"} {
		g.run(method, func(t *testing.T) {
			dir := t.TempDir()
			tokenFile := filepath.Join(dir, "token")
			e := &restartEnv{srv: testvault.New(t), db: testpg.Database(t),
				roleIDFile: filepath.Join(dir, "role-id"), secretIDFile: filepath.Join(dir, "secret-id")}
			token := e.provision(t)
			args := []string{"--log-level", "debug", "--on-rotate", "signal", "--reload-grace", "200ms", "-s", "db=database/creds/app"}
			env := []string{"VAULT_ADDR=" + e.srv.Addr}
			switch method {
			case "approle":
				args = append(args, "--auth", "approle", "--role-id-file", e.roleIDFile, "--secret-id-file", e.secretIDFile)
			case "token":
				env = append(env, "VAULT_TOKEN="+token)
			case "token-file":
				if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--token-file", tokenFile)
			}
			lp := startLeash(t, env, append(append(args, "--"), watchArgs(t, "DB_FILE")...)...)
			_, first := lp.ready()
			e.srv.Restart(t)
			// The operator (or an agent's sink) provides a new token.
			if err := os.WriteFile(tokenFile, []byte(e.provision(t)), 0o600); err != nil {
				t.Fatal(err)
			}
			if method == "token" {
				if l := lp.next(30 * time.Second); l != "term" {
					t.Fatalf("child said %q, want term (its credential expired)", l)
				}
				if code := lp.exit(30 * time.Second); code != exitTempFail {
					t.Errorf("leash exited %d, want %d", code, exitTempFail)
				}
				return
			}
			l := lp.next(30 * time.Second)
			f := strings.Fields(l)
			if len(f) != 2 || f[0] != "reload" {
				t.Fatalf("child said %q, want a reload with new credentials", l)
			}
			second, _ := base64.StdEncoding.DecodeString(f[1])
			if bytes.Equal(first, second) || len(second) == 0 {
				t.Fatalf("reload without a new credential")
			}
			if method == "approle" && !strings.Contains(lp.log.String(), "logged in again") {
				t.Errorf("no re-login logged")
			}
			ids := leaseIDs(t, e.srv, "database/creds/app")
			if len(ids) != 1 {
				t.Errorf("%d leases in the restarted Vault, want the new one", len(ids))
			}
			lp.signal(syscall.SIGTERM)
			if code := lp.exit(30 * time.Second); code != 0 {
				t.Errorf("leash exited %d, want 0", code)
			}
			if ids := leaseIDs(t, e.srv, "database/creds/app"); len(ids) != 0 {
				t.Errorf("%d leases left after exit", len(ids))
			}
		})
	}
}

// A lease revoked from outside, or leash's token revoked from outside, is
// noticed at the next renewal and a new credential is handed over.
func TestFaultRevokedOutside(t *testing.T) {
	t.Parallel()
	g := &subtests{t: t}
	defer g.wait()
	for _, what := range []string{"lease", "token"} {
		g.run(what, func(t *testing.T) {
			srv := testvault.Shared(t)
			creds := dbCreds(t, srv, 9*time.Second, time.Hour)
			pol := srv.Policy(t, `path "`+creds+`" { capabilities = ["read"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }`)
			ar := srv.AppRole(t, []string{pol}, time.Hour, time.Hour, false)
			dir := t.TempDir()
			roleID, secretID := filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id")
			os.WriteFile(roleID, []byte(ar.RoleID), 0o600)
			os.WriteFile(secretID, []byte(ar.SecretID), 0o600)
			args := []string{"--log-level", "debug", "--on-rotate", "signal", "--reload-grace", "200ms",
				"--auth", "approle", "--auth-mount", ar.Mount, "--role-id-file", roleID, "--secret-id-file", secretID,
				"-s", "db=" + creds, "--"}
			lp := startLeash(t, []string{"VAULT_ADDR=" + srv.Addr}, append(args, watchArgs(t, "DB_FILE")...)...)
			_, first := lp.ready()
			ids := leaseIDs(t, srv, creds)
			if len(ids) != 1 {
				t.Fatalf("%d leases, want 1", len(ids))
			}
			if what == "lease" {
				srv.Write(t, "sys/leases/revoke", map[string]any{"lease_id": ids[0]})
			} else {
				// Revokes every token from the login path, and their leases.
				srv.Write(t, "sys/leases/revoke-prefix/auth/"+ar.Mount+"/login", nil)
			}
			if got := leaseIDs(t, srv, creds); what == "lease" && len(got) != 0 {
				t.Fatalf("lease still there after revoking it: %v", got)
			}
			l := lp.next(30 * time.Second)
			f := strings.Fields(l)
			if len(f) != 2 || f[0] != "reload" {
				t.Fatalf("child said %q, want a reload with a new credential", l)
			}
			if second, _ := base64.StdEncoding.DecodeString(f[1]); bytes.Equal(first, second) || len(second) == 0 {
				t.Fatal("reload without a new credential")
			}
			if what == "token" && !strings.Contains(lp.log.String(), "logged in again") {
				t.Error("no new login after the token was revoked")
			}
			if got := leaseIDs(t, srv, creds); len(got) != 1 {
				t.Errorf("%d leases after the hand-over, want 1", len(got))
			}
			lp.signal(syscall.SIGTERM)
			if code := lp.exit(30 * time.Second); code != 0 {
				t.Errorf("leash exited %d, want 0", code)
			}
			if got := leaseIDs(t, srv, creds); len(got) != 0 {
				t.Errorf("%d leases left after exit", len(got))
			}
		})
	}
}

// rotatingLeash runs leash in restart mode on a credential that cannot be
// renewed past its max ttl (4s), so a hand-over comes every ~1-2s.
func rotatingLeash(t *testing.T, childEnv []string, extra ...string) (*leashProc, *testvault.Server, string) {
	srv := testvault.Shared(t)
	creds := dbCreds(t, srv, 4*time.Second, 4*time.Second)
	args := append([]string{"--log-level", "debug", "--on-rotate", "restart", "--kill-timeout", "5s", "-s", "db=" + creds}, extra...)
	args = append(append(args, "--"), watchArgs(t, "DB_FILE")...)
	lp := startLeash(t, append(vaultEnv(srv.Addr, srv.RootToken), childEnv...), args...)
	return lp, srv, creds
}

// The child crashes (exits 3) when a rotation restart stops it: the restart
// still completes with the new credential; at the end leash mirrors the
// last child's status and revokes everything.
func TestChildCrashDuringRotation(t *testing.T) {
	t.Parallel()
	lp, srv, creds := rotatingLeash(t, []string{testchild.EnvTermExit + "=3"})
	pid1, first := lp.ready()
	if l := lp.next(30 * time.Second); l != "term" {
		t.Fatalf("child said %q, want term (rotation restart)", l)
	}
	pid2, second := lp.ready()
	if pid2 == pid1 || bytes.Equal(first, second) {
		t.Fatalf("restart did not start a new child with a new credential")
	}
	if !pidGone(t, pid1, 5*time.Second) {
		t.Errorf("old child %d still running", pid1)
	}
	lp.signal(syscall.SIGTERM)
	if code := lp.exit(30 * time.Second); code != 3 {
		t.Errorf("leash exited %d, want 3 (the child's status)", code)
	}
	for _, l := range lp.rest() {
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
	pid1, _ := lp.ready()
	if l := lp.next(30 * time.Second); l != "term" {
		t.Fatalf("child said %q, want term (rotation restart)", l)
	}
	lp.signal(syscall.SIGTERM) // the old child is still shutting down
	code := lp.exit(30 * time.Second)
	pids := []int{pid1}
	for _, l := range lp.rest() {
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
			lp := startLeash(t, vaultEnv(p.Addr(), srv.RootToken), args...)
			if err := p.Wait(ctxTimeout(t, 20*time.Second), creds, 1); err != nil {
				t.Fatal(err) // leash is now waiting for the credential
			}
			lp.signal(tt.sig)
			if tt.code == 0 {
				lp.ready()
				lp.signal(syscall.SIGTERM)
				if l := lp.next(20 * time.Second); l != "term" {
					t.Errorf("child said %q, want term", l)
				}
			}
			if code := lp.exit(30 * time.Second); code != tt.code {
				t.Errorf("leash exited %d, want %d", code, tt.code)
			}
			if ids := leaseIDs(t, srv, creds); len(ids) != 0 {
				t.Errorf("%d leases left after exit", len(ids))
			}
		})
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
	lp := startLeash(t, vaultEnv(srv.Addr, srv.RootToken), args...)
	pid, got := lp.ready()
	if string(got) != "stale-dir-secret" {
		t.Fatalf("child read %q", got)
	}
	lp.signal(syscall.SIGKILL)
	lp.exit(10 * time.Second)
	if !pidGone(t, pid, 5*time.Second) {
		t.Fatalf("child %d outlived a SIGKILLed leash", pid)
	}
	left, _ := os.ReadDir(parent)
	if len(left) != 1 {
		t.Fatalf("%d entries in the parent after SIGKILL, want the stale private dir", len(left))
	}
	cmd := leashCmd(t, "--log-level", "info", "--delivery", "dir", "--dir", parent, "-s", "pw="+kv+"/app#password", "--", "true")
	cmd.Env = append(cmd.Env, vaultEnv(srv.Addr, srv.RootToken)...)
	code, stderr := exitStatus(t, cmd)
	if code != 0 || !strings.Contains(stderr, "removed stale private dir") {
		t.Errorf("second run: exit %d, stderr:\n%s", code, stderr)
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Errorf("parent not empty after the second run: %v", left)
	}
}

// --- Bad input ------------------------------------------------------------

// Hostile names and paths, duplicates and bad --dir parents: a clear error
// and the documented exit code, before Vault is contacted (VAULT_ADDR points
// at a closed port, so contacting it would show as 69).
func TestBadInputClearErrors(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir() // on /tmp: a disk file system on most machines
	shm, err := os.MkdirTemp("/dev/shm", "leash-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	link := filepath.Join(shm, "link")
	real := filepath.Join(shm, "real")
	world := filepath.Join(shm, "world")
	foreign := filepath.Join(shm, "foreign")
	for _, d := range []string{real, world, foreign} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(world, 0o777)
	os.Symlink(real, link)
	group := filepath.Join(shm, "group")
	groupSub := filepath.Join(group, "sub")
	for _, d := range []string{group, groupSub} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(group, 0o770)
	ownedByOther := os.Geteuid() == 0 && os.Chown(foreign, 65534, 65534) == nil

	var st unix.Statfs_t
	// Statfs_t.Type is int32 on 32-bit platforms, where RAMFS_MAGIC overflows it.
	onDisk := unix.Statfs(tmp, &st) == nil && uint32(st.Type) != uint32(unix.TMPFS_MAGIC) && uint32(st.Type) != uint32(unix.RAMFS_MAGIC)

	dir := func(d string) []string { return []string{"--delivery", "dir", "--dir", d, "-s", "db=secret/app"} }
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
		skip bool
	}{
		{"dot-dot name", []string{"-s", "../x=secret/app"}, exitConfig, "../x", false},
		{"slash in name", []string{"-s", "a/b=secret/app"}, exitConfig, "a/b", false},
		{"empty name", []string{"-s", "=secret/app"}, exitConfig, "--secret", false},
		{"empty path", []string{"-s", "db="}, exitConfig, "--secret", false},
		{"long name", []string{"-s", strings.Repeat("n", 300) + "=secret/app"}, exitConfig, "--secret", false},
		{"dot-dot path", []string{"-s", "db=secret/../sys/raw"}, exitConfig, "bad Vault path", false},
		{"control char in name", []string{"-s", "d\tb=secret/app"}, exitConfig, "--secret", false},
		{"newline in path", []string{"-s", "db=secret/a\nb"}, exitConfig, "bad Vault path", false},
		{"repeated parameter", []string{"-s", "db=pki/issue/x?a=1&a=2"}, exitConfig, "given 2 times", false},
		{"duplicate output", []string{"-s", "db=secret/a", "-s", "db=secret/b"}, exitConfig, "already defined", false},
		{"duplicate env variable", []string{"-s", "a.b=secret/a", "-s", "a-b=secret/b"}, exitConfig, "A_B_FILE", false},
		{"dangling --env", []string{"-s", "db=secret/a", "--env", "PGPASSFILE=nope"}, exitConfig, "nope", false},
		{"missing template", []string{"-t", "t=/nonexistent/leash.tmpl"}, exitConfig, "/nonexistent/leash.tmpl", false},
		{"--dir without dir delivery", []string{"--dir", real, "-s", "db=secret/a"}, exitUsage, "--delivery dir", false},
		{"--dir symlink", dir(link), exitConfig, "symlink", false},
		{"--dir world-writable", dir(world), exitConfig, "world-writable", false},
		{"--dir missing", dir(filepath.Join(shm, "nope")), exitConfig, "nope", false},
		{"--dir group-writable", dir(group), exitConfig, "run chmod g-w " + group, false},
		{"--dir group-writable ancestor", dir(groupSub), exitConfig, "its ancestor " + group + " (mode 0770) is group-writable", false},
		{"--dir not owned", dir(foreign), exitConfig, foreign, !ownedByOther},
		{"--dir on disk", dir(tmp), exitConfig, tmp, !onDisk},
		{"bad rotate-before", []string{"--rotate-before", "0%", "-s", "db=secret/a"}, exitUsage, "--rotate-before", false},
		{"negative kill-timeout", []string{"--kill-timeout", "-1s", "-s", "db=secret/a"}, exitUsage, "--kill-timeout", false},
		{"jwt without role and file", []string{"--auth", "jwt", "-s", "db=secret/a"}, exitConfig, "--auth jwt needs --auth-role and --jwt-file", false},
		{"approle without secret_id", []string{"--auth", "approle", "--role-id-file", "/x", "-s", "db=secret/a"}, exitConfig, "--secret-id-file", false},
		{"azure without role", []string{"--auth", "azure", "-s", "db=secret/a"}, exitConfig, "--auth azure needs --auth-role", false},
		{"gcp without role", []string{"--auth", "gcp", "-s", "db=secret/a"}, exitConfig, "--auth gcp needs --auth-role", false},
		{"cert without client certificate", []string{"--auth", "cert", "-s", "db=secret/a"}, exitConfig, "VAULT_CLIENT_CERT and VAULT_CLIENT_KEY", false},
		{"zero revoke-timeout", []string{"--revoke-timeout", "0s", "-s", "db=secret/a"}, exitUsage, "--no-revoke", false},
		{"duplicate --env variable", []string{"-s", "a=secret/a", "-s", "b=secret/b", "--env", "X=a", "--env", "X=b"}, exitConfig, `--env "X=a"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				t.Skip("not applicable on this machine")
			}
			marker := filepath.Join(t.TempDir(), "started")
			cmd := leashCmd(t, append(append(tt.args, "--startup-timeout", "1s", "--"), "touch", marker)...)
			cmd.Env = append(cmd.Env, vaultEnv("http://127.0.0.1:1", "unused")...)
			code, stderr := exitStatus(t, cmd)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, want %d with %q in stderr:\n%s", code, tt.code, tt.want, stderr)
			}
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
				t.Errorf("panic:\n%s", stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("the child was started")
			}
		})
	}
	if left, _ := os.ReadDir(real); len(left) != 0 {
		t.Errorf("something was created through the symlink: %v", left)
	}
}

// Secrets of unexpected shapes: nested and non-string fields, null, a
// missing field, huge values, a missing or deleted secret. Each either
// works with exact bytes or fails with a clear error naming the path;
// never a panic.
func TestUnexpectedSecretShapes(t *testing.T) {
	t.Parallel()
	g := &subtests{t: t}
	defer g.wait()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	huge := strings.Repeat("0123456789abcdef", 1<<15) // 512 KiB (Vault caps JSON strings near 1 MiB)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{
		"nested": map[string]any{"a": 1, "b": []any{"x", true}}, "num": 5, "yes": true, "nil": nil, "huge": huge,
	}})
	srv.Write(t, kv+"/data/gone", map[string]any{"data": map[string]any{"k": "v"}})
	if _, err := srv.Client.Logical().Delete(kv + "/data/gone"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		spec string
		code int
		want string // child's output (code 0) or text in stderr
	}{
		{"x=" + kv + "/app#nested", 0, `{"a":1,"b":["x",true]}`},
		{"x=" + kv + "/app#num", 0, "5"},
		{"x=" + kv + "/app#yes", 0, "true"},
		{"x=" + kv + "/app#nil", 0, ""},
		{"x=" + kv + "/app#huge", 0, huge},
		{"x=" + kv + "/app#missing", exitConfig, kv + "/app"},
		{"x.env=" + kv + "/app", -1, kv + "/app"}, // dotenv of nested values: either works or says why
		{"x=" + kv + "/nope", exitConfig, kv + "/nope"},
		{"x=" + kv + "/gone", exitConfig, kv + "/gone"},
	}
	for _, tt := range tests {
		g.run(tt.spec[strings.Index(tt.spec, "/")+1:], func(t *testing.T) {
			cmd := leashCmd(t, append([]string{"-s", tt.spec, "--"}, helperArgs(t, "cat-file", "X_FILE")...)...)
			if strings.HasPrefix(tt.spec, "x.env") {
				cmd = leashCmd(t, append([]string{"-s", tt.spec, "--"}, helperArgs(t, "cat-file", "X_ENV_FILE")...)...)
			}
			cmd.Env = append(cmd.Env, vaultEnv(srv.Addr, srv.RootToken)...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(stderr.String(), "panic") || strings.Contains(stderr.String(), "goroutine ") {
				t.Fatalf("panic:\n%s", stderr.String())
			}
			switch {
			case tt.code == 0:
				if code != 0 || stdout.String() != tt.want {
					t.Errorf("exit %d, child read %d bytes (%.40q), want %d bytes (%.40q); stderr:\n%s",
						code, stdout.Len(), stdout.String(), len(tt.want), tt.want, stderr.String())
				}
			case tt.code < 0:
				if code != 0 && (code != exitConfig || !strings.Contains(stderr.String(), tt.want)) {
					t.Errorf("exit %d, want 0 or %d naming %s; stderr:\n%s", code, exitConfig, tt.want, stderr.String())
				}
				t.Logf("exit %d", code)
			default:
				if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
					t.Errorf("exit %d, want %d naming %s; stderr:\n%s", code, tt.code, tt.want, stderr.String())
				}
			}
			if stderr.Len() > 0 && strings.Contains(stderr.String(), huge[:64]) {
				t.Error("the secret's bytes are in leash's stderr")
			}
		})
	}
}

// --- Soak -----------------------------------------------------------------

// soakSample is one reading of a leash process's resources.
type soakSample struct {
	at           time.Duration // since the start
	fds, threads int
	rssKiB       int
}

// sampleProc reads /proc/PID/fd and /proc/PID/status (leash is non-dumpable:
// the test reads them as root).
func sampleProc(pid int) (soakSample, error) {
	var s soakSample
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(ents)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "Threads:":
			s.threads, _ = strconv.Atoi(f[1])
		case "VmRSS:":
			s.rssKiB, _ = strconv.Atoi(f[1])
		}
	}
	return s, nil
}

// slopePerHour is the least-squares slope of y over the samples, per hour.
func slopePerHour(samples []soakSample, y func(soakSample) int) float64 {
	n := float64(len(samples))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, s := range samples {
		x, v := s.at.Hours(), float64(y(s))
		sx, sy, sxx, sxy = sx+x, sy+v, sxx+x*x, sxy+x*v
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// soakReport is what one leash instance did during a soak.
type soakReport struct {
	name                string
	handovers, renewals int
	appCredentials      int // connections the app made with a new credential
	failures            []string
	samples             []soakSample
	fdSlope, thrSlope   float64 // per hour
	rssSlope            float64 // KiB per hour
	minFds, maxFds      int
	firstRSS, lastRSS   int
}

func (r *soakReport) String() string {
	return fmt.Sprintf("%s: %d hand-overs, %d renewals, %d app connections, %d failures; fds %d..%d (slope %+.1f/h), threads slope %+.1f/h, RSS %d->%d KiB (slope %+.0f KiB/h), %d samples",
		r.name, r.handovers, r.renewals, r.appCredentials, len(r.failures), r.minFds, r.maxFds, r.fdSlope, r.thrSlope, r.firstRSS, r.lastRSS, r.rssSlope, len(r.samples))
}

// soak runs leash in signal and in restart mode side by side on 5s
// database leases (max ttl 10s: one renewal, then a hand-over every few
// seconds) for d, with pgApp querying every 20ms as the child. It samples
// each leash's fds, threads and RSS every second.
func soak(t *testing.T, d time.Duration) []*soakReport {
	srv := testvault.Shared(t)
	cluster := testpg.NewCluster(t)
	db := cluster.Database(t)
	db.Exec(t, "CREATE TABLE app_data (id int)")
	db.Exec(t, "INSERT INTO app_data VALUES (1)")
	creds := srv.Database(t, db.VaultURL(), db.User, db.Password, 5*time.Second, 10*time.Second)
	env := append(vaultEnv(srv.Addr, srv.RootToken),
		fmt.Sprintf(testchild.EnvPGURL+"=postgres://127.0.0.1:%d/%s?sslmode=disable", cluster.Port, db.Name))

	modes := []struct {
		name string
		args []string
	}{
		{"signal", []string{"--on-rotate", "signal", "--reload-grace", "500ms"}},
		{"restart", []string{"--on-rotate", "restart", "--kill-timeout", "5s"}},
	}
	reports := make([]*soakReport, len(modes))
	var wg sync.WaitGroup
	for i, m := range modes {
		r := &soakReport{name: m.name, minFds: 1 << 30}
		reports[i] = r
		args := append([]string{"--log-level", "info", "-s", "db=" + creds}, m.args...)
		lp := startLeash(t, env, append(append(args, "--"), helperArgs(t, "pgapp")...)...)
		start := time.Now()
		var connected atomic.Int32
		var appFailures []string
		appDone := make(chan struct{})
		wg.Add(2)
		go func() { // the app's reports, until its output ends
			defer wg.Done()
			defer close(appDone)
			for l := range lp.out.lines {
				switch {
				case strings.HasPrefix(l, "user "):
					connected.Add(1)
				case strings.HasPrefix(l, "pw "):
				default:
					appFailures = append(appFailures, "app: "+l)
				}
			}
		}()
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for time.Since(start) < d {
				select {
				case <-tick.C:
				case <-lp.done:
					r.failures = append(r.failures, fmt.Sprintf("leash exited early: %v", lp.err))
					return
				}
				s, err := sampleProc(lp.cmd.Process.Pid)
				if err != nil {
					continue
				}
				s.at = time.Since(start)
				r.samples = append(r.samples, s)
			}
			// Stop between hand-overs: right after the app has connected
			// with the next credential, seconds before the one after.
			c0 := connected.Load()
			for wait := time.Now().Add(20 * time.Second); time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
				if connected.Load() > c0 {
					break
				}
			}
			lp.cmd.Process.Signal(syscall.SIGTERM)
			<-lp.done
			<-appDone
			r.appCredentials = int(connected.Load())
			r.failures = append(r.failures, appFailures...)
			if lp.err != nil {
				r.failures = append(r.failures, fmt.Sprintf("leash: %v", lp.err))
			}
			log := lp.log.String()
			r.handovers = strings.Count(log, "lease rotated")
			r.renewals = strings.Count(log, "lease renewed")
			for _, bad := range []string{"restart after rotation failed", "rendering new secrets failed", "reload signal failed", "lease lost", "[ERROR]"} {
				if n := strings.Count(log, bad); n > 0 {
					r.failures = append(r.failures, fmt.Sprintf("leash logged %q %d times", bad, n))
				}
			}
		}()
	}
	wg.Wait()
	for _, r := range reports {
		// The first samples include start-up; the trend is what matters.
		steady := r.samples[len(r.samples)/5:]
		for _, s := range steady {
			r.minFds, r.maxFds = min(r.minFds, s.fds), max(r.maxFds, s.fds)
		}
		if len(steady) > 0 {
			r.firstRSS, r.lastRSS = steady[0].rssKiB, steady[len(steady)-1].rssKiB
		}
		r.fdSlope = slopePerHour(steady, func(s soakSample) int { return s.fds })
		r.thrSlope = slopePerHour(steady, func(s soakSample) int { return s.threads })
		r.rssSlope = slopePerHour(steady, func(s soakSample) int { return s.rssKiB })
		t.Log(r)
	}
	if ids := leaseIDs(t, srv, creds); len(ids) > 0 {
		t.Errorf("%d leases left after the soak", len(ids))
	}
	return reports
}

// checkSoak applies the soak's pass criteria: no failed hand-over, every
// hand-over reached the app, and no descriptor leak.
func checkSoak(t *testing.T, reports []*soakReport) {
	for _, r := range reports {
		for _, f := range r.failures {
			t.Errorf("%s: %s", r.name, f)
		}
		if r.handovers < 2 {
			t.Errorf("%s: only %d hand-overs", r.name, r.handovers)
		}
		// One connection per credential: the first plus each hand-over.
		if r.appCredentials != r.handovers+1 {
			t.Errorf("%s: the app connected with %d credentials after %d hand-overs", r.name, r.appCredentials, r.handovers)
		}
		// A leak of one descriptor per hand-over would exceed this.
		if r.maxFds-r.minFds > 4 {
			t.Errorf("%s: leash's fd count ranged %d..%d", r.name, r.minFds, r.maxFds)
		}
	}
}

// TestSoakShort is the soak in miniature for every test run (the full one
// is TestSoak, behind the soak build tag).
func TestSoakShort(t *testing.T) {
	t.Parallel()
	checkSoak(t, soak(t, 15*time.Second))
}

// subtests runs subtests at the same time without taking -parallel slots
// (t.Run may be called from several goroutines): these spend their time
// waiting for lease schedules, not on CPU, and -parallel defaults to
// GOMAXPROCS, 2 on the CI machines.
type subtests struct {
	t  *testing.T
	wg sync.WaitGroup
}

func (s *subtests) run(name string, f func(t *testing.T)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.t.Run(name, f)
	}()
}

func (s *subtests) wait() { s.wg.Wait() }

// A reset in the middle of the response that issues a credential: Vault
// issued it, leash never saw it. leash retries and starts normally; the
// credential it never saw cannot be revoked by it and lives until its own
// ttl (Vault has no idempotent issue). The test pins that behaviour.
func TestFaultResetDuringIssue(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	creds := dbCreds(t, srv, time.Minute, time.Hour)
	p := vaultproxy.Start(t, srv.Addr)
	p.ResetMidResponseOn(creds, 1)
	args := append([]string{"-s", "db=" + creds, "--"}, watchArgs(t, "DB_FILE")...)
	lp := startLeash(t, vaultEnv(p.Addr(), srv.RootToken), args...)
	lp.ready()
	if n := p.Requests(creds); n != 2 {
		t.Errorf("credential requested %d times, want 2 (a reset, then the retry)", n)
	}
	lp.signal(syscall.SIGTERM)
	if code := lp.exit(30 * time.Second); code != 0 {
		t.Errorf("leash exited %d", code)
	}
	if ids := leaseIDs(t, srv, creds); len(ids) != 1 {
		t.Errorf("%d leases after exit, want 1: the one issued into the reset, unknown to leash", len(ids))
	}
}

// The child exits while Vault hangs (accepts, never answers): leash exits
// with the child's status once --revoke-timeout (here 2s, default 10s) has
// passed, and the outputs are emptied before it waits on Vault.
func TestExitNotHeldByHungVault(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"k": "hung-vault-secret"}})
	creds := dbCreds(t, srv, time.Minute, time.Hour)
	p := vaultproxy.Start(t, srv.Addr)
	script := `setsid sh -c 'exec 7<"$K_FILE"; exec sleep 300' </dev/null >/dev/null 2>&1 & echo $!; read x; exit 5`
	args := []string{"--revoke-timeout", "2s", "-s", "db=" + creds, "-s", "k=" + kv + "/app#k", "--", "sh", "-c", script}
	cmd := leashCmd(t, args...)
	cmd.Env = append(cmd.Env, vaultEnv(p.Addr(), srv.RootToken)...)
	stdin, lr, stderr := startPiped(t, cmd)
	var line string
	select {
	case line = <-lr.lines:
	case <-time.After(30 * time.Second):
		t.Fatal("child did not start")
	}
	gc, _ := strconv.Atoi(line)
	t.Cleanup(func() { syscall.Kill(gc, syscall.SIGKILL) })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		// Polled: fd 7 is open once the grandchild has left the group.
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/fd/7", gc)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("grandchild never opened the output")
		}
	}
	p.Delay(time.Hour)
	exited := time.Now()
	stdin.Close() // the child exits 5
	err := cmd.Wait()
	took := time.Since(exited)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 5 {
		t.Errorf("leash: %v, want exit 5; stderr:\n%s", err, stderr.String())
	}
	t.Logf("exit took %s with Vault hung", took.Round(time.Millisecond))
	// leash tried to revoke and gave up at its deadline, not at once.
	if !strings.Contains(stderr.String(), "revoking on exit failed") || !strings.Contains(stderr.String(), "deadline exceeded") {
		t.Errorf("no revocation given up at its deadline; stderr:\n%s", stderr.String())
	}
	// A bound with a wide margin, not a measurement: the 10s default would
	// exceed it, the 2s flag cannot.
	if took > 8*time.Second {
		t.Errorf("exit took %s with Vault hung; want the 2s --revoke-timeout", took)
	}
	if got, err := os.ReadFile(fmt.Sprintf("/proc/%d/fd/7", gc)); err != nil || len(got) != 0 {
		t.Errorf("the output still holds %d bytes after exit (err %v)", len(got), err)
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
	cmd := leashCmd(t, append(append(args, "--"), "sh", "-c", script)...)
	cmd.Env = append(cmd.Env, vaultEnv(srv.Addr, srv.RootToken)...)
	out, _ := leashOutput(t, cmd)
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
	first := startLeash(t, vaultEnv(srv.Addr, srv.RootToken), append(args, watchArgs(t, "PW_FILE")...)...)
	first.ready()
	for i := 0; i < 3; i++ {
		cmd := leashCmd(t, append(args, "true")...)
		cmd.Env = append(cmd.Env, vaultEnv(srv.Addr, srv.RootToken)...)
		if code, stderr := exitStatus(t, cmd); code != 0 || strings.Contains(stderr, "removed stale") {
			t.Fatalf("second leash: exit %d; stderr:\n%s", code, stderr)
		}
	}
	first.signal(syscall.SIGHUP) // the first child re-reads its file
	if l := first.next(20 * time.Second); l != "reload "+base64.StdEncoding.EncodeToString([]byte("shared-parent")) {
		t.Errorf("first child after the others ran: %q", l)
	}
	first.signal(syscall.SIGTERM)
	if code := first.exit(30 * time.Second); code != 0 {
		t.Errorf("first leash exited %d", code)
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Errorf("parent not empty: %v", left)
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
	lp := startLeash(t, vaultEnv(srv.Addr, srv.RootToken), args...)
	if _, b := lp.ready(); string(b) != "v1" {
		t.Fatalf("child read %q", b)
	}
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"k": "v2"}})
	if l := lp.next(20 * time.Second); l != "reload "+base64.StdEncoding.EncodeToString([]byte("v2")) {
		t.Fatalf("child said %q, want a reload with v2", l)
	}
	if _, err := srv.Client.Logical().Delete(kv + "/metadata/app"); err != nil {
		t.Fatal(err)
	}
	lp.waitLog("refresh failed", 2, 20*time.Second)
	if !strings.Contains(lp.log.String(), kv+"/app") {
		t.Error("the refresh failure does not name the path")
	}
	lp.signal(syscall.SIGTERM)
	if l := lp.next(20 * time.Second); l != "term" {
		t.Errorf("child said %q after the secret was deleted, want nothing until term", l)
	}
	if code := lp.exit(30 * time.Second); code != 0 {
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
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "-pf", "--mount-proc", leashBin, "--log-level", "debug", "--on-rotate", "restart",
		"-s", "db="+creds, "--", "env", testchild.EnvMode+"=watch", self, "DB_FILE")
	cmd.Env = append(os.Environ(), vaultEnv(srv.Addr, srv.RootToken)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	log := newLogBuf()
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("leash stderr:\n%s", log.String())
		}
	})
	lr := newLineReader(t, stdout)
	next := func() string {
		select {
		case l := <-lr.lines:
			return l
		case <-time.After(30 * time.Second):
			t.Fatal("no line from the child")
		}
		return ""
	}
	for starts := 0; starts < 2; {
		f := strings.Fields(next())
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
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("leash as PID 1: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("leash as PID 1 did not exit on SIGTERM")
	}
	if ids := leaseIDs(t, srv, creds); len(ids) != 0 {
		t.Errorf("%d leases left after exit", len(ids))
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
	lp := startLeash(t, vaultEnv(srv.Addr, srv.RootToken), "--on-rotate", "restart", "-s", "db="+creds, "--", "sh", "-c", script, marker, self)
	lp.ready()
	if l := lp.next(30 * time.Second); l != "term" {
		t.Fatalf("child said %q, want term (rotation restart)", l)
	}
	if l := lp.next(30 * time.Second); l != "crash" {
		t.Fatalf("child said %q, want crash", l)
	}
	if code := lp.exit(30 * time.Second); code != 1 {
		t.Errorf("leash exited %d, want 1 (the crashed child's status)", code)
	}
	if rest := lp.rest(); len(rest) > 0 {
		t.Errorf("child started again after crashing: %q", rest)
	}
	if ids := leaseIDs(t, srv, creds); len(ids) != 0 {
		t.Errorf("%d leases left after exit", len(ids))
	}
}
