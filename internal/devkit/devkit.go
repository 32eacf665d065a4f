// Package devkit holds the few helpers that the test helpers
// (internal/testvault, internal/testpg), the bench harness and the demo
// runner share: free loopback ports for a Vault dev server, random names,
// and a bounded, locked output buffer. It is never linked into leash.
package devkit

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
)

// FreePortPair returns a loopback port p where p and p+1 were free: a Vault
// dev server also listens on the next port for cluster traffic.
func FreePortPair() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		l.Close()
		if err == nil {
			l2.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port pair")
}

// RandHex returns n random bytes, hex-encoded (names, tokens for tests).
func RandHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// LockedBuffer collects a process's output from several goroutines. Past
// Limit bytes (0: 1 MiB) further writes are dropped, so a chatty process
// cannot exhaust memory.
type LockedBuffer struct {
	Limit int

	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	limit := b.Limit
	if limit == 0 {
		limit = 1 << 20
	}
	if b.buf.Len() > limit {
		return len(p), nil
	}
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartTied starts cmd in its own process group with a parent-death signal,
// so it never outlives the caller (a Vault dev server left behind by a
// killed test or demo). Pdeathsig fires when the creating OS thread exits
// (golang/go#27505), so the goroutine that starts cmd keeps its thread until
// cmd exits. The returned channel is closed once cmd has exited and been
// waited for.
func StartTied(cmd *exec.Cmd) (exited <-chan struct{}, err error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	tie(cmd.SysProcAttr)
	done := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(done)
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
	}()
	return done, <-started
}
