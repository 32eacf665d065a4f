package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/leash-dev/leash/internal/testchild"
	"github.com/leash-dev/leash/supervisor"
)

// timeout bounds every wait for an event; generous because -race on two cores
// is slow. No test sleeps to synchronise.
const timeout = 20 * time.Second

// envSupervise makes the test binary act as a minimal leash: it supervises
// os.Args[1:] and exits with the mirrored status (see superviseMain).
const envSupervise = "LEASH_TEST_SUPERVISE"

func TestMain(m *testing.M) {
	if os.Getenv(envSupervise) != "" {
		os.Exit(superviseMain())
	}
	testchild.Main()
	testchild.RequireSIGHUP()
	// Helper children are -race binaries too: spare them the race runtime's
	// one-second sleep at exit.
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	os.Exit(m.Run())
}

// superviseMain runs os.Args[1:] under a Supervisor, passing descriptor 3 (if
// open) on as the child's report pipe, and exits like leash would. With
// LEASH_TEST_FORWARD=1 it catches every signal and forwards it, as package
// main does. With
// LEASH_TEST_CHURN=1 it keeps creating and killing OS threads while the child
// runs, the situation in which a Pdeathsig child started from an unlocked
// thread dies (golang/go#27505).
func superviseMain() int {
	var files []*os.File
	report := os.NewFile(3, "report")
	if _, err := report.Stat(); err == nil {
		files = append(files, report)
	} else {
		report = nil
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envSupervise+"=") {
			env = append(env, kv)
		}
	}
	var logger hclog.Logger
	if os.Getenv("LEASH_TEST_LOG") == "1" {
		logger = hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Debug})
	}
	sup, err := supervisor.New(supervisor.Config{Argv: os.Args[1:], Env: env, Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitCode(err)
	}
	if os.Getenv("LEASH_TEST_FORWARD") == "1" {
		sigs := make(chan os.Signal, 64)
		signal.Notify(sigs)
		go func() {
			for sig := range sigs {
				if sig != unix.SIGURG && sig != unix.SIGCHLD {
					sup.Signal(sig)
				}
			}
		}()
	}
	if err := sup.Start(files, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitCode(err)
	}
	if os.Getenv("LEASH_TEST_CHURN") == "1" {
		go func() {
			for {
				done := make(chan struct{})
				go func() {
					runtime.LockOSThread() // exits the thread when the goroutine returns
					close(done)
				}()
				<-done
			}
		}()
	}
	err = sup.Run(context.Background())
	if report != nil {
		pgrp, _ := unix.IoctlGetInt(0, unix.TIOCGPGRP)
		fmt.Fprintf(report, "leash foreground %v\n", pgrp == unix.Getpgrp())
	}
	return exitCode(err)
}

func exitCode(err error) int {
	var ee *supervisor.ExitError
	var se *supervisor.StartError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.Signal != 0:
		return 128 + int(ee.Signal) // as leash's main maps it
	case errors.As(err, &ee):
		return ee.Code
	case errors.As(err, &se):
		return se.Code
	}
	return 1
}

func self(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// helper is a started test-binary child with its report pipe.
type helper struct {
	sup *supervisor.Supervisor
	rep *testchild.Reports
	pid int
	run chan error // Run's result
}

// startHelper supervises the test binary as a testchild in "report" mode with
// the extra environment env, waits until it is ready, and runs Run.
func startHelper(t *testing.T, cfg supervisor.Config, env ...string) *helper {
	t.Helper()
	rep, w := testchild.Pipe(t)
	cfg.Argv = []string{self(t)}
	sup, err := supervisor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start([]*os.File{w}, append([]string{testchild.EnvMode + "=report"}, env...)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	h := &helper{sup: sup, rep: rep, run: make(chan error, 1)}
	h.pid = rep.Ready(t, "child", timeout)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { h.run <- sup.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		sup.Signal(syscall.SIGKILL)
		select {
		case <-h.run:
		case <-time.After(timeout):
			t.Error("Run did not return")
		}
	})
	return h
}

// wait returns Run's result.
func (h *helper) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.run:
		h.run <- err // for Cleanup
		return err
	case <-time.After(timeout):
		t.Fatal("Run did not return")
		return nil
	}
}

func wantExit(t *testing.T, err error, code int, sig syscall.Signal) {
	t.Helper()
	if code == 0 && sig == 0 {
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		return
	}
	var ee *supervisor.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Run = %v, want *ExitError", err)
	}
	if ee.Signal != sig || (sig == 0 && ee.Code != code) {
		t.Fatalf("Run = %+v, want code %d signal %d", ee, code, sig)
	}
}

// runArgv supervises argv to the end and returns Run's result.
func runArgv(t *testing.T, cfg supervisor.Config, argv ...string) error {
	t.Helper()
	cfg.Argv = argv
	sup, err := supervisor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(nil, nil); err != nil {
		t.Fatal(err)
	}
	return sup.Run(context.Background())
}

func TestExitStatusMirrored(t *testing.T) {
	for _, code := range []int{0, 1, 2, 126, 127, 128, 255} {
		t.Run(fmt.Sprintf("exit%d", code), func(t *testing.T) {
			t.Parallel()
			err := runArgv(t, supervisor.Config{}, "sh", "-c", fmt.Sprintf("exit %d", code))
			wantExit(t, err, code, 0)
		})
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGKILL, syscall.SIGABRT, syscall.SIGSEGV} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			t.Parallel()
			err := runArgv(t, supervisor.Config{}, "sh", "-c", fmt.Sprintf("ulimit -c 0; kill -%d $$", sig))
			wantExit(t, err, -1, sig)
		})
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, argv0 string
		code        int
		msg         string
	}{
		{"not in PATH", "leash-no-such-command", 127, "start leash-no-such-command: command not found"},
		{"no such path", filepath.Join(dir, "missing"), 127, "command not found"},
		{"not executable", noexec, 126, "permission denied"},
		{"directory", dir, 126, "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := supervisor.New(supervisor.Config{Argv: []string{tc.argv0}})
			var se *supervisor.StartError
			if !errors.As(err, &se) {
				t.Fatalf("New = %v, want *StartError", err)
			}
			if se.Code != tc.code || !strings.Contains(se.Error(), tc.msg) {
				t.Fatalf("StartError code %d %q, want %d containing %q", se.Code, se.Error(), tc.code, tc.msg)
			}
		})
	}

	// Executable bits but the kernel cannot run it: found at New, fails at Start.
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte{0x7f, 'E', 'L', 'F', 0, 0}, 0o755); err != nil {
		t.Fatal(err)
	}
	sup, err := supervisor.New(supervisor.Config{Argv: []string{garbage}})
	if err != nil {
		t.Fatal(err)
	}
	err = sup.Start(nil, nil)
	var se *supervisor.StartError
	if !errors.As(err, &se) || se.Code != 126 || !strings.Contains(se.Error(), "exec format error") {
		t.Fatalf("Start = %v, want *StartError 126 exec format error", err)
	}
	if err := sup.Run(context.Background()); !errors.Is(err, supervisor.ErrNotStarted) {
		t.Fatalf("Run after failed Start = %v, want ErrNotStarted", err)
	}
}

// forwarded lists what TestForwardEachSignalOnce sends: every signal the
// helper can catch (leash's forwardable set).
func forwarded() []syscall.Signal {
	var out []syscall.Signal
	for _, s := range testchild.Caught() {
		out = append(out, s.(syscall.Signal))
	}
	return out
}

func TestForwardEachSignalOnce(t *testing.T) {
	for _, childOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("childOnly=%v", childOnly), func(t *testing.T) {
			h := startHelper(t, supervisor.Config{ChildOnly: childOnly, KillTimeout: time.Hour})
			for _, sig := range forwarded() {
				h.sup.Signal(sig)
				h.rep.Expect(t, fmt.Sprintf("child sig %d", sig), timeout)
			}
			// A duplicate of the last one would arrive before this sentinel.
			h.sup.Signal(syscall.SIGUSR1)
			h.rep.Expect(t, fmt.Sprintf("child sig %d", syscall.SIGUSR1), timeout)
			h.sup.Signal(syscall.SIGKILL)
			wantExit(t, h.wait(t), -1, syscall.SIGKILL)
			h.rep.EOF(t, timeout)
		})
	}
}

// Grandchild in the same group: group mode reaches it, ChildOnly does not.
func TestGroupVersusChildOnly(t *testing.T) {
	for _, childOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("childOnly=%v", childOnly), func(t *testing.T) {
			h := startHelper(t, supervisor.Config{ChildOnly: childOnly}, testchild.EnvSpawn+"=1")
			gc := h.rep.Ready(t, "grandchild", timeout)
			t.Cleanup(func() { unix.Kill(gc, unix.SIGKILL) })

			h.sup.Signal(syscall.SIGUSR1)
			if childOnly {
				h.rep.Expect(t, "child sig 10", timeout)
				// Had USR1 reached the grandchild, it would be reported
				// before USR2 (lower signals are delivered first).
				if err := unix.Kill(gc, unix.SIGUSR2); err != nil {
					t.Fatal(err)
				}
				h.rep.Expect(t, "grandchild sig 12", timeout)
			} else {
				got := []string{h.rep.Next(t, timeout), h.rep.Next(t, timeout)}
				slices.Sort(got)
				if want := []string{"child sig 10", "grandchild sig 10"}; !slices.Equal(got, want) {
					t.Fatalf("reports %q, want %q", got, want)
				}
			}
			h.sup.Signal(syscall.SIGKILL)
			wantExit(t, h.wait(t), -1, syscall.SIGKILL)
			if !childOnly {
				h.rep.EOF(t, timeout)
				testchild.GroupGone(t, h.pid, timeout)
			}
		})
	}
}

// A child and grandchild that survive SIGTERM are SIGKILLed after the kill
// timeout; a repeated SIGTERM is forwarded again, not escalated.
func TestKillTimeout(t *testing.T) {
	const killTimeout = 2 * time.Second
	h := startHelper(t, supervisor.Config{KillTimeout: killTimeout}, testchild.EnvSpawn+"=1")
	h.rep.Ready(t, "grandchild", timeout)
	start := time.Now()
	for range 2 {
		h.sup.Signal(syscall.SIGTERM)
		got := []string{h.rep.Next(t, timeout), h.rep.Next(t, timeout)}
		slices.Sort(got)
		if want := []string{"child sig 15", "grandchild sig 15"}; !slices.Equal(got, want) {
			t.Fatalf("reports %q, want %q", got, want)
		}
	}
	wantExit(t, h.wait(t), -1, syscall.SIGKILL)
	if d := time.Since(start); d < killTimeout {
		t.Errorf("killed after %v, before the %v kill timeout", d, killTimeout)
	}
	h.rep.EOF(t, timeout)
	testchild.GroupGone(t, h.pid, timeout)
}

// Stop and ctx cancel use StopSignal and the kill timeout too.
func TestContextCancelStops(t *testing.T) {
	rep, w := testchild.Pipe(t)
	sup, err := supervisor.New(supervisor.Config{Argv: []string{self(t)}, StopSignal: syscall.SIGUSR2, KillTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start([]*os.File{w}, []string{testchild.EnvMode + "=report"}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	rep.Ready(t, "child", timeout)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = sup.Run(ctx)
	rep.Expect(t, "child sig 12", timeout)
	wantExit(t, err, -1, syscall.SIGKILL)
}

func TestStopDelay(t *testing.T) {
	const delay = 500 * time.Millisecond
	h := startHelper(t, supervisor.Config{StopDelay: delay, KillTimeout: 100 * time.Millisecond})
	start := time.Now()
	h.sup.Signal(syscall.SIGTERM)
	h.sup.Signal(syscall.SIGINT)  // a repeated stop request waits with the first
	h.sup.Signal(syscall.SIGUSR1) // other signals are not held back
	h.rep.Expect(t, "child sig 10", timeout)
	got := []string{h.rep.Next(t, timeout), h.rep.Next(t, timeout)}
	slices.Sort(got)
	if want := []string{"child sig 15", "child sig 2"}; !slices.Equal(got, want) {
		t.Fatalf("reports %q, want %q", got, want)
	}
	if d := time.Since(start); d < delay {
		t.Errorf("stop signal forwarded after %v, before the %v stop delay", d, delay)
	}
	wantExit(t, h.wait(t), -1, syscall.SIGKILL)
}

func TestReload(t *testing.T) {
	h := startHelper(t, supervisor.Config{})
	if err := h.sup.Reload(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	h.rep.Expect(t, "child sig 1", timeout)
	h.sup.Signal(syscall.SIGKILL)
	wantExit(t, h.wait(t), -1, syscall.SIGKILL)
	// Same child all along: no second "ready", and the pipe closes.
	h.rep.EOF(t, timeout)
	if err := h.sup.Reload(syscall.SIGHUP); !errors.Is(err, supervisor.ErrExited) {
		t.Fatalf("Reload after exit = %v, want ErrExited", err)
	}
}

// memFile returns a file holding s, positioned at the start.
func memFile(t *testing.T, s string) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "extra")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRestart(t *testing.T) {
	show := []string{
		testchild.EnvShowEnv + "=GEN",
		testchild.EnvShowFD + "=4",
		testchild.EnvExitOn + "=15",
	}
	rep, w := testchild.Pipe(t)
	sup, err := supervisor.New(supervisor.Config{Argv: []string{self(t)}, Env: append(os.Environ(), "GEN=base")})
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start([]*os.File{w, memFile(t, "one")}, append(show, testchild.EnvMode+"=report", "GEN=1")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	rep.Expect(t, "child env GEN=1", timeout)
	rep.Expect(t, "child file 4 one", timeout)
	pid1 := rep.Ready(t, "child", timeout)

	run := make(chan error, 1)
	go func() { run <- sup.Run(context.Background()) }()

	rep2, w2 := testchild.Pipe(t)
	// The new child exits 5 at once: if Run returned for the old child (which
	// exits 0 on SIGTERM), it would report success instead.
	env2 := append(show, testchild.EnvMode+"=report", "GEN=2", testchild.EnvExit+"=5")
	if err := sup.Restart(context.Background(), []*os.File{w2, memFile(t, "two")}, env2); err != nil {
		t.Fatal(err)
	}
	w2.Close()
	rep.Expect(t, "child sig 15", timeout)
	rep.EOF(t, timeout)
	rep2.Expect(t, "child env GEN=2", timeout)
	rep2.Expect(t, "child file 4 two", timeout)
	if pid2 := rep2.Ready(t, "child", timeout); pid2 == pid1 {
		t.Fatalf("restarted child has the old pid %d", pid1)
	}
	select {
	case err := <-run:
		wantExit(t, err, 5, 0)
	case <-time.After(timeout):
		t.Fatal("Run did not return")
	}
	if err := sup.Restart(context.Background(), nil, nil); !errors.Is(err, supervisor.ErrExited) {
		t.Fatalf("Restart after exit = %v, want ErrExited", err)
	}
}

// A stop request that arrives while the old child is being stopped cancels
// the restart, whether it comes as a signal or as Run's context being
// cancelled: no new child is started (it would get the stop signal before it
// could handle it), and Run returns the old child's own status.
func TestRestartQueuesStop(t *testing.T) {
	for _, via := range []string{"signal", "context"} {
		t.Run(via, func(t *testing.T) {
			rep, w := testchild.Pipe(t)
			hold, holdW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer holdW.Close()
			sup, err := supervisor.New(supervisor.Config{Argv: []string{self(t)}, KillTimeout: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			env := []string{testchild.EnvMode + "=report", testchild.EnvExitOn + "=15"}
			if err := sup.Start([]*os.File{w, hold}, append(env, testchild.EnvHoldFD+"=4")); err != nil {
				t.Fatal(err)
			}
			w.Close()
			hold.Close()
			rep.Ready(t, "child", timeout)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			run := make(chan error, 1)
			go func() { run <- sup.Run(ctx) }()

			rep2, w2 := testchild.Pipe(t)
			restarted := make(chan error, 1)
			go func() { restarted <- sup.Restart(context.Background(), []*os.File{w2}, env) }()
			// The old child got the stop signal and holds on: the restart is
			// in progress.
			rep.Expect(t, "child sig 15", timeout)
			if via == "signal" {
				sup.Signal(syscall.SIGTERM)
			} else {
				cancel()
			}
			holdW.Close()
			if err := <-restarted; !errors.Is(err, supervisor.ErrStopping) {
				t.Fatalf("Restart = %v, want ErrStopping", err)
			}
			w2.Close()
			rep2.EOF(t, timeout) // no new child ever held the pipe
			select {
			case err := <-run:
				if err != nil {
					t.Fatalf("Run = %v, want the old child's exit 0 (it exits on SIGTERM)", err)
				}
			case <-time.After(timeout):
				t.Fatal("Run did not return after the cancelled restart")
			}
		})
	}
}

// A restart whose new child cannot start ends Run with the StartError.
func TestRestartStartFailure(t *testing.T) {
	script := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho $$ >&3\nexec sleep 100\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sup, err := supervisor.New(supervisor.Config{Argv: []string{script}})
	if err != nil {
		t.Fatal(err)
	}
	pid := startReportingPID(t, sup)
	run := make(chan error, 1)
	go func() { run <- sup.Run(context.Background()) }()
	if err := os.Chmod(script, 0o644); err != nil {
		t.Fatal(err)
	}
	err = sup.Restart(context.Background(), nil, nil)
	var se *supervisor.StartError
	if !errors.As(err, &se) || se.Code != 126 {
		t.Fatalf("Restart = %v, want *StartError 126", err)
	}
	select {
	case got := <-run:
		if got != err {
			t.Fatalf("Run = %v, want Restart's error %v", got, err)
		}
	case <-time.After(timeout):
		t.Fatal("Run did not return")
	}
	testchild.GroupGone(t, pid, timeout)
}

// The pipeline's processes all share the child's group and die with it.
func TestPipelineTornDown(t *testing.T) {
	sup, err := supervisor.New(supervisor.Config{Argv: []string{"sh", "-c", "echo $$ >&3; yes | tail & yes | tail >&2"}})
	if err != nil {
		t.Fatal(err)
	}
	pgid := startReportingPID(t, sup)
	// Wait until sh has started both pipelines (no event exists for that).
	deadline := time.Now().Add(timeout)
	for len(testchild.GroupMembers(pgid)) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("pipeline did not start: group %v", testchild.GroupMembers(pgid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	wantExit(t, sup.Run(ctx), -1, syscall.SIGTERM)
	testchild.GroupGone(t, pgid, timeout)
}

// startReportingPID starts a shell child that writes its pid to descriptor 3.
func startReportingPID(t *testing.T, sup *supervisor.Supervisor) int {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := sup.Start([]*os.File{w}, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var pid int
	if _, err := fmt.Fscan(r, &pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// The child exits while an orphan it started lives on: Run returns at once,
// without waiting for the orphan, and the group teardown ends the orphan.
func TestExitWithBackgroundOrphan(t *testing.T) {
	sup, err := supervisor.New(supervisor.Config{Argv: []string{"sh", "-c", "sleep 100 & echo $$ >&3; exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	pgid := startReportingPID(t, sup)
	done := make(chan error, 1)
	go func() { done <- sup.Run(context.Background()) }()
	select {
	case err := <-done:
		wantExit(t, err, 3, 0)
	case <-time.After(timeout):
		t.Fatal("Run waits for the background sleep")
	}
	testchild.GroupGone(t, pgid, timeout)
}

func TestCredential(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	cred := &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{4242}}
	err := runArgv(t, supervisor.Config{Credential: cred}, "sh", "-c",
		`[ "$(id -u) $(id -g) $(id -G)" = "65534 65534 65534 4242" ] || { id >&2; exit 1; }`)
	wantExit(t, err, 0, 0)
}

// The child must not outlive leash, even while leash's runtime creates and
// destroys OS threads (golang/go#27505).
func TestPdeathsig(t *testing.T) {
	rep, w := testchild.Pipe(t)
	leash, err := os.StartProcess(self(t), []string{self(t), self(t)}, &os.ProcAttr{
		Env:   append(os.Environ(), envSupervise+"=1", "LEASH_TEST_CHURN=1", testchild.EnvMode+"=report"),
		Files: []*os.File{nil, os.Stdout, os.Stderr, w},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	pid := rep.Ready(t, "child", timeout)
	// Alive while threads come and go.
	for range 3 {
		if err := unix.Kill(pid, unix.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		rep.Expect(t, "child sig 10", timeout)
	}
	if err := leash.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := leash.Wait(); err != nil {
		t.Fatal(err)
	}
	// EOF: the child, the last writer, is gone.
	rep.EOF(t, timeout)
}

// argv and the environment reach the child exactly; extra variables win
// over the base environment.
func TestPassthrough(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sup, err := supervisor.New(supervisor.Config{
		Argv: []string{"sh", "-c", `printf '[%s]' "$@" >&3; printf '|%s|%s|%s' "$A" "$B" "$PWD" >&3`, "sh", "a b", "", "c'd", "$HOME", "*"},
		Env:  []string{"A=base", "B=base", "PWD=" + mustGetwd(t)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start([]*os.File{w}, []string{"B=extra=1"}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := sup.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	want := "[a b][][c'd][$HOME][*]|base|extra=1|" + mustGetwd(t)
	if string(got) != want {
		t.Fatalf("child saw %q, want %q", got, want)
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// IsChild covers the running child and nothing else.
func TestIsChild(t *testing.T) {
	h := startHelper(t, supervisor.Config{})
	if !h.sup.IsChild(h.pid) {
		t.Fatalf("IsChild(%d) = false for the running child", h.pid)
	}
	if h.sup.IsChild(os.Getpid()) {
		t.Fatal("IsChild(self) = true")
	}
	h.sup.Signal(syscall.SIGKILL)
	h.wait(t)
	if h.sup.IsChild(h.pid) {
		t.Fatalf("IsChild(%d) = true after the child was reaped", h.pid)
	}
}

// The configured stop signal, received from outside (docker stop sends the
// image's STOPSIGNAL), arms the kill timeout like SIGTERM does.
func TestStopSignalIsStopRequest(t *testing.T) {
	h := startHelper(t, supervisor.Config{StopSignal: syscall.SIGUSR2, KillTimeout: 100 * time.Millisecond})
	h.sup.Signal(syscall.SIGUSR2)
	h.rep.Expect(t, "child sig 12", timeout)
	wantExit(t, h.wait(t), -1, syscall.SIGKILL)
}

// Dir is where the child starts, and what a relative command path is found
// from, whatever the supervisor's own working directory.
func TestDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app"), []byte("#!/bin/sh\n[ \"$(pwd)\" = \"$1\" ] || { pwd >&2; exit 1; }\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := runArgv(t, supervisor.Config{Dir: dir}, "./app", dir)
	wantExit(t, err, 0, 0)
}

// A child of another user that cannot enter Dir starts in the supervisor's
// working directory instead (leash's is / by then), rather than not at all.
func TestDirOtherUserCannotEnter(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir() // 0700, root's
	cred := &syscall.Credential{Uid: 65534, Gid: 65534}
	err := runArgv(t, supervisor.Config{Dir: dir, Credential: cred}, "sh", "-c", `[ "$(pwd)" = "$1" ] || { pwd >&2; exit 1; }`, "sh", mustGetwd(t))
	wantExit(t, err, 0, 0)
}
