package lease

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/leash-dev/leash/internal/testvault"
)

// logBuf collects log output and lets tests wait for log lines: every
// lease event is logged, so a line is the event to wait on.
type logBuf struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuf() *logBuf { return &logBuf{changed: make(chan struct{})} }

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuf) count(sub string) int { return strings.Count(l.String(), sub) }

// wait blocks until sub has appeared n times in the log.
func (l *logBuf) wait(t testing.TB, sub string, n int, timeout time.Duration) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		l.mu.Lock()
		c := strings.Count(l.buf.String(), sub)
		ch := l.changed
		l.mu.Unlock()
		if c >= n {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("waited %s for %d× %q; log:\n%s", timeout, n, sub, l.String())
		}
	}
}

type harness struct {
	t   testing.TB
	s   *testvault.Server
	log *logBuf
	m   *Manager
}

// newHarness builds a Manager against s with env (VAULT_ADDR is added) and
// a trace-level text logger.
func newHarness(t testing.TB, s *testvault.Server, env []string, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, s: s, log: newLogBuf()}
	cfg.Env = append([]string{"VAULT_ADDR=" + s.Addr, "HOME=" + t.TempDir()}, env...)
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "lease", Level: hclog.Trace, Output: h.log})
	}
	if cfg.StartupTimeout == 0 {
		cfg.StartupTimeout = 20 * time.Second
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	return h
}

// token returns the token the manager uses now.
func (h *harness) token() *token {
	return h.m.ledger.current()
}

// certSpec asks a PKI issue path for a one-hour certificate.
func certSpec(issue string) Spec {
	return Spec{ID: "cert", Path: issue, Params: map[string]string{"common_name": "a.example.test", "ttl": "1h"}}
}

// run starts Run in a goroutine; cleanup cancels it and checks it returned nil.
func (h *harness) run() (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.m.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	h.t.Cleanup(func() { stop() })
	return stop
}

// next waits for the next snapshot.
func (h *harness) next(timeout time.Duration) *Snapshot {
	h.t.Helper()
	select {
	case s := <-h.m.Updates():
		return s
	case <-time.After(timeout):
		h.t.Fatalf("no snapshot within %s; log:\n%s", timeout, h.log.String())
		return nil
	}
}

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func str(t testing.TB, s *Secret, key string) string {
	t.Helper()
	v, ok := s.Data.Map()[key].(string)
	if !ok {
		t.Fatalf("secret %s has no string field %q", s.ID, key)
	}
	return v
}
