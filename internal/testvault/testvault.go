// Package testvault runs a real Vault dev server for tests and mounts what
// leash's tests need (token roles, PKI, KV, AppRole, JWT, the database
// engine), each on per-test unique paths so tests can share a server and run
// in parallel.
//
// The server binary is found via LEASH_VAULT_BIN, then <repo>/.cache/bin/vault
// (built by `make vault`), then PATH. Without one a test skips, unless
// LEASH_REQUIRE_VAULT=1, where it fails.
package testvault

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/leash-dev/leash/internal/devkit"
)

// Server is a running `vault server -dev`. Its storage is in memory: a
// Restart forgets every mount, lease and token (fault tests use that).
type Server struct {
	Addr      string      // http://127.0.0.1:PORT, or https:// for NewTLS
	RootToken string      // random per server
	Client    *api.Client // root client, ready to use
	CACert    string      // NewTLS: path of the generated CA certificate (PEM)

	tls    bool
	bin    string
	home   string
	port   int
	output io.Writer // Options.Output

	mu   sync.Mutex // guards proc
	proc *process
}

type process struct {
	cmd  *exec.Cmd
	done <-chan struct{} // closed when the process has exited
	out  *devkit.LockedBuffer
}

// Bin returns the path of the vault binary, or "" when none is found.
func Bin() string {
	if p := os.Getenv("LEASH_VAULT_BIN"); p != "" {
		return p
	}
	if root := repoRoot(); root != "" {
		p := filepath.Join(root, ".cache", "bin", "vault")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath("vault"); err == nil {
		return p
	}
	return ""
}

// repoRoot walks up from the working directory to the directory holding go.mod.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Require skips (or fails under LEASH_REQUIRE_VAULT=1) when no vault binary
// exists, and returns its path otherwise.
func Require(t testing.TB) string {
	t.Helper()
	bin := Bin()
	if bin == "" {
		msg := "no vault binary: set LEASH_VAULT_BIN, run `make vault` (builds .cache/bin/vault), or put vault on PATH"
		if os.Getenv("LEASH_REQUIRE_VAULT") == "1" {
			t.Fatal(msg + " (LEASH_REQUIRE_VAULT=1)")
		}
		t.Skip(msg)
	}
	return bin
}

// New starts a dev server owned by t and stopped in t.Cleanup. Use it for
// tests that stop or restart Vault; others should use Shared.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := start(Require(t), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		os.RemoveAll(s.home)
	})
	return s
}

var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Shared returns one dev server per test binary, started on first use. It
// dies with the test process (Pdeathsig). Never Stop or Restart it.
func Shared(t testing.TB) *Server {
	t.Helper()
	bin := Require(t)
	shared.once.Do(func() { shared.srv, shared.err = start(bin, false) })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv
}

// NewTLS is New with `-dev-tls`: HTTPS on 127.0.0.1 with a generated CA at
// CACert.
func NewTLS(t testing.TB) *Server {
	t.Helper()
	s, err := start(Require(t), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		os.RemoveAll(s.home)
	})
	return s
}

func start(bin string, useTLS bool) (*Server, error) {
	return StartDev(context.Background(), bin, Options{TLS: useTLS})
}

// Options configure StartDev.
type Options struct {
	TLS    bool      // -dev-tls: HTTPS with a generated CA at Server.CACert
	Output io.Writer // the server's stdout and stderr; nil keeps them for Output
}

// StartDev is the core of New, Shared and NewTLS, for programs that are not
// tests (examples/demo/run): it starts `vault server -dev` on a free
// loopback port pair with a random root token, its HOME a temporary
// directory, and waits until sys/health answers or ctx ends. The server is
// in its own process group (a Ctrl-C to the caller's does not stop it) and
// dies with the caller (Pdeathsig); Stop ends it.
func StartDev(ctx context.Context, bin string, o Options) (*Server, error) {
	home, err := os.MkdirTemp("", "leash-vault-home-")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, home: home, RootToken: "root-" + devkit.RandHex(12), tls: o.TLS, output: o.Output}
	scheme := "http://"
	if o.TLS {
		scheme = "https://"
		s.CACert = filepath.Join(home, "tls", "vault-ca.pem")
		if err := os.Mkdir(filepath.Join(home, "tls"), 0o700); err != nil {
			return nil, err
		}
	}
	var lastErr error
	for range 5 {
		port, err := devkit.FreePortPair()
		if err != nil {
			return nil, err
		}
		s.port = port
		s.Addr = scheme + "127.0.0.1:" + strconv.Itoa(port)
		if lastErr = s.launch(ctx); lastErr == nil || ctx.Err() != nil {
			break
		}
	}
	if lastErr != nil {
		os.RemoveAll(home)
		return nil, lastErr
	}
	if !o.TLS {
		// HOME only keeps the server away from the real one; with
		// -dev-no-store-token nothing is written there. The shared server
		// has no cleanup, so do not leave the directory behind.
		os.RemoveAll(home)
	}
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	if o.TLS {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.CACert}); err != nil {
			s.Stop()
			return nil, err
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		s.Stop()
		return nil, err
	}
	c.SetToken(s.RootToken)
	s.Client = c
	return s, nil
}

// launch starts the process and waits for sys/health.
func (s *Server) launch(ctx context.Context) error {
	p := &process{out: &devkit.LockedBuffer{}}
	args := []string{"server", "-dev",
		"-dev-listen-address=127.0.0.1:" + strconv.Itoa(s.port),
		"-dev-root-token-id=" + s.RootToken,
		"-dev-no-store-token",
	}
	if s.tls {
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+filepath.Join(s.home, "tls"))
	}
	p.cmd = exec.Command(s.bin, args...)
	p.cmd.Env = []string{"HOME=" + s.home, "PATH=" + os.Getenv("PATH"), "VAULT_LOG_LEVEL=warn"}
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if s.output != nil {
		p.cmd.Stdout, p.cmd.Stderr = s.output, s.output
	}
	done, err := devkit.StartTied(p.cmd)
	p.done = done
	if err != nil {
		return fmt.Errorf("start vault: %w", err)
	}
	if err := waitHealthy(ctx, s.Addr, p.done, 60*time.Second); err != nil {
		p.kill()
		return fmt.Errorf("vault dev server on %s: %w\n%s", s.Addr, err, p.out.String())
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// waitHealthy polls sys/health: the server gives no readiness event, so a
// bounded poll is the honest wait.
func waitHealthy(ctx context.Context, addr string, exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	// Readiness only: the CA of a -dev-tls server does not exist until it runs.
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	for {
		resp, err := hc.Get(addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("exited before becoming healthy")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after %s", limit)
		}
	}
}

func (p *process) kill() {
	if p.cmd.Process != nil {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}

// Stop kills the server and waits for it to exit. Safe to call twice.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// Restart stops the server and starts a new one on the same address with
// the same root token. Everything stored before is gone.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.launch(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Start launches the server again after Stop, on the same address.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.launch(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Output returns the server's combined output (for debugging failures).
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return ""
	}
	return s.proc.out.String()
}

var uniqueSeq struct {
	sync.Mutex
	n int
}

// Unique returns a path-safe name unique within the test binary, derived
// from the test name so Vault paths are recognisable.
func Unique(t testing.TB, kind string) string {
	uniqueSeq.Lock()
	uniqueSeq.n++
	n := uniqueSeq.n
	uniqueSeq.Unlock()
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, t.Name())
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return fmt.Sprintf("%s-%s-%d", kind, strings.Trim(name, "-"), n)
}

// Write is Logical().Write that fails the test on error.
func (s *Server) Write(t testing.TB, path string, data map[string]any) *api.Secret {
	t.Helper()
	sec, err := s.Client.Logical().WriteWithContext(context.Background(), path, data)
	if err != nil {
		t.Fatalf("vault write %s: %v", path, err)
	}
	return sec
}

// Read is Logical().Read that fails the test on error.
func (s *Server) Read(t testing.TB, path string) *api.Secret {
	t.Helper()
	sec, err := s.Client.Logical().ReadWithContext(context.Background(), path)
	if err != nil {
		t.Fatalf("vault read %s: %v", path, err)
	}
	return sec
}
