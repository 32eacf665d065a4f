// Package testchild turns a Go test binary into the helper child of leash's
// tests (the go-plugin TestHelperProcess pattern): TestMain calls Main, which,
// when EnvMode asks for it, runs as one of the helper programs and exits.
//
// Mode "report" is the supervisor's child: it reports on a pipe, its
// descriptor 3 (its first extra file). Lines are "<role> ready <pid>",
// "<role> sig <n>", "<role> env <KEY>=<value>" and "<role> file <fd>
// <contents>", each written with one write(2) so lines from a child and its
// grandchild never interleave.
//
// The other modes (see modes.go) are children of the leash binary in the
// black-box tests (package e2e). leash passes its child no pipe of the
// test's, so they report on stdout; Argv builds their command line.
package testchild

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment variables that configure the helper.
const (
	// EnvMode selects the helper: "report" catches and reports signals on
	// descriptor 3; the modes of modes.go report on stdout.
	EnvMode = "LEASH_TESTCHILD"
	// EnvRole prefixes every line ("child" unless set).
	EnvRole = "LEASH_TESTCHILD_ROLE"
	// EnvSpawn, when "1", starts a grandchild (role "grandchild") in the same
	// process group, sharing the report pipe.
	EnvSpawn = "LEASH_TESTCHILD_SPAWN"
	// EnvExitOn is a signal number; after reporting it the helper exits 0.
	EnvExitOn = "LEASH_TESTCHILD_EXIT_ON"
	// EnvHoldFD is a descriptor the helper reads to EOF before exiting on
	// EnvExitOn, so a test controls when a stopping child dies.
	EnvHoldFD = "LEASH_TESTCHILD_HOLD_FD"
	// EnvShowEnv is a comma-separated list of variables to report.
	EnvShowEnv = "LEASH_TESTCHILD_SHOW_ENV"
	// EnvShowFD is a comma-separated list of descriptors whose contents to report.
	EnvShowFD = "LEASH_TESTCHILD_SHOW_FD"
	// EnvExit, when set, makes the helper exit with that code after "ready".
	EnvExit = "LEASH_TESTCHILD_EXIT"
	// EnvCatchAll, when "1", also catches SIGURG and SIGCHLD, to prove nobody
	// sends them. Run the helper with GODEBUG=asyncpreemptoff=1 then, or its
	// own runtime's preemption signals are reported too.
	EnvCatchAll = "LEASH_TESTCHILD_CATCH_ALL"
)

// Caught lists the signals the helper catches and reports: every signal the
// Go runtime lets a program catch (not SIGPROF, 32, 33, 34), except SIGCHLD
// (its grandchild) and SIGURG (the runtime's own preemption signal, see
// envconsul#254). It equals leash's forwardable set.
func Caught() []os.Signal {
	var out []os.Signal
	for s := syscall.Signal(1); s <= 64; s++ {
		switch s {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPROF, 32, 33, 34:
			continue
		}
		out = append(out, s)
	}
	return out
}

// Main runs the helper and exits if EnvMode is set; otherwise it returns and
// the tests run.
func Main() {
	switch mode := os.Getenv(EnvMode); mode {
	case "":
		return
	case "report":
		os.Exit(run())
	default:
		os.Exit(runMode(mode, os.Args[1:]))
	}
}

func run() int {
	role := os.Getenv(EnvRole)
	if role == "" {
		role = "child"
	}
	out := os.NewFile(3, "report")
	say := func(format string, args ...any) {
		// One write per line: atomic on a pipe.
		_, _ = out.Write([]byte(role + " " + fmt.Sprintf(format, args...) + "\n"))
	}

	sigs := make(chan os.Signal, 128)
	signal.Notify(sigs, Caught()...)
	if os.Getenv(EnvCatchAll) == "1" {
		signal.Notify(sigs, syscall.SIGURG, syscall.SIGCHLD)
	}

	if os.Getenv(EnvSpawn) == "1" {
		env := []string{EnvMode + "=report", EnvRole + "=grandchild"}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "LEASH_TESTCHILD") {
				env = append(env, kv)
			}
		}
		exe, err := os.Executable()
		if err != nil {
			say("error %v", err)
			return 1
		}
		if _, err := os.StartProcess(exe, []string{exe}, &os.ProcAttr{
			Env:   env,
			Files: []*os.File{os.Stdin, os.Stdout, os.Stderr, out},
		}); err != nil {
			say("error %v", err)
			return 1
		}
	}
	for _, k := range list(os.Getenv(EnvShowEnv)) {
		v, ok := os.LookupEnv(k)
		if !ok {
			v = "<unset>"
		}
		say("env %s=%s", k, v)
	}
	for _, f := range list(os.Getenv(EnvShowFD)) {
		fd, _ := strconv.Atoi(f)
		b, err := io.ReadAll(os.NewFile(uintptr(fd), f))
		if err != nil {
			say("file %d error %v", fd, err)
			continue
		}
		say("file %d %s", fd, b)
	}
	say("ready %d", os.Getpid())
	if c := os.Getenv(EnvExit); c != "" {
		n, _ := strconv.Atoi(c)
		return n
	}

	exitOn, _ := strconv.Atoi(os.Getenv(EnvExitOn))
	for sig := range sigs {
		n := int(sig.(syscall.Signal))
		say("sig %d", n)
		if n == exitOn {
			if fd, err := strconv.Atoi(os.Getenv(EnvHoldFD)); err == nil {
				_, _ = io.Copy(io.Discard, os.NewFile(uintptr(fd), "hold"))
			}
			return 0
		}
	}
	return 0
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// Reports reads a helper's report pipe line by line.
type Reports struct {
	lines chan string
}

// NewReports reads r until EOF in the background.
func NewReports(r io.Reader) *Reports {
	rep := &Reports{lines: make(chan string, 1024)}
	go func() {
		defer close(rep.lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			rep.lines <- sc.Text()
		}
	}()
	return rep
}

// Pipe returns a report pipe: the Reports reading its end, and the write end to
// pass as the child's first extra file. The caller closes w once the child has
// started, so that Reports sees EOF when every writer is gone.
func Pipe(t testing.TB) (*Reports, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return NewReports(r), w
}

// Next returns the next line, or fails the test after timeout. At EOF it
// returns "EOF".
func (r *Reports) Next(t testing.TB, timeout time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-r.lines:
		if !ok {
			return "EOF"
		}
		return l
	case <-time.After(timeout):
		t.Fatalf("no report within %v", timeout)
		return ""
	}
}

// Expect fails the test unless the next line is want.
func (r *Reports) Expect(t testing.TB, want string, timeout time.Duration) {
	t.Helper()
	if got := r.Next(t, timeout); got != want {
		t.Fatalf("report: got %q, want %q", got, want)
	}
}

// Ready waits for "<role> ready <pid>" and returns the pid.
func (r *Reports) Ready(t testing.TB, role string, timeout time.Duration) int {
	t.Helper()
	l := r.Next(t, timeout)
	pid, err := strconv.Atoi(strings.TrimPrefix(l, role+" ready "))
	if !strings.HasPrefix(l, role+" ready ") || err != nil {
		t.Fatalf("report: got %q, want %q", l, role+" ready <pid>")
	}
	return pid
}

// EOF fails the test unless the pipe reaches EOF (every writer gone) within
// timeout without another line.
func (r *Reports) EOF(t testing.TB, timeout time.Duration) {
	t.Helper()
	if l := r.Next(t, timeout); l != "EOF" {
		t.Fatalf("report: got %q, want EOF", l)
	}
}

// GroupGone waits until no live (non-zombie) process is left in process group
// pgid, and fails the test if one is still there after timeout. It polls /proc:
// the kernel offers no event for "a process group emptied".
func GroupGone(t testing.TB, pgid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := GroupMembers(pgid)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still has live members %v after %v", pgid, left, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// GroupMembers lists the pids of live processes whose process group is pgid.
func GroupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state ppid pgrp ...
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			out = append(out, pid)
		}
	}
	return out
}
