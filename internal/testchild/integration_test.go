package testchild_test

// Integration tests wire signals and supervisor together the way package main
// does (Notify before Start, Signal for every caught signal, a Reaper skipping
// IsChild) and check them as a real parent would: by signalling a separate
// "leash" process, and by running it as PID 1 of a new PID namespace.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/leash-dev/leash/internal/testchild"
	"github.com/leash-dev/leash/signals"
	"github.com/leash-dev/leash/supervisor"
)

const timeout = 20 * time.Second

// Modes of the test binary besides the helper child.
const (
	envLeash = "LEASH_TEST_LEASH" // supervise os.Args[1:] like leash's main
	envChurn = "LEASH_TEST_CHURN" // keep the runtime busy (preemption signals, GC)
	envInit  = "LEASH_TEST_INIT"  // act as PID 1 and supervise the orphan script N times
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(envLeash) != "":
		os.Exit(leashMain())
	case os.Getenv(envInit) != "":
		os.Exit(initMain())
	}
	testchild.Main()
	testchild.RequireSIGHUP()
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0") // helpers are -race binaries too
	}
	os.Exit(m.Run())
}

// childEnv is the environment for processes leash starts: without the mode
// variables that made this process what it is.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envLeash+"=") && !strings.HasPrefix(kv, envInit+"=") && !strings.HasPrefix(kv, envChurn+"=") {
			env = append(env, kv)
		}
	}
	return env
}

// reportFile returns descriptor 3 if it is open.
func reportFile() *os.File {
	f := os.NewFile(3, "report")
	if _, err := f.Stat(); err != nil {
		return nil
	}
	return f
}

// leashMain is package main's wiring in miniature.
func leashMain() int {
	sigs, sigsReady := signals.Notify(context.Background())
	if os.Getpid() != 1 {
		if err := signals.SetSubreaper(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	var files []*os.File
	if f := reportFile(); f != nil {
		files = append(files, f)
	}
	sup, err := supervisor.New(supervisor.Config{Argv: os.Args[1:], Env: childEnv(), KillTimeout: time.Hour})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var env []string
	if os.Getenv(envChurn) == "1" {
		// leash's runtime preempts with SIGURG; the child's must not, so that
		// any SIGURG it reports came from leash.
		env = append(env, "GODEBUG=asyncpreemptoff=1")
	}
	sigsReady()
	if err := sup.Start(files, env); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go (&signals.Reaper{Skip: sup.IsChild}).Run(ctx)
	if os.Getenv(envChurn) == "1" {
		churn(ctx)
	}
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	for {
		select {
		case sig := <-sigs:
			sup.Signal(sig)
		case err := <-done:
			return mirror(err)
		}
	}
}

// churn keeps goroutines spinning in loops without calls, so the runtime
// preempts them asynchronously with SIGURG, and collects garbage constantly.
func churn(ctx context.Context) {
	for range runtime.GOMAXPROCS(0) + 1 {
		go func() {
			for ctx.Err() == nil {
				n := 0
				for i := range 50_000_000 {
					n += i
				}
				_ = n
				runtime.GC()
			}
		}()
	}
}

func mirror(err error) int {
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
	fmt.Fprintln(os.Stderr, err)
	return 1
}

func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// startLeash runs the test binary as leash supervising the helper child.
func startLeash(t *testing.T, env ...string) (*os.Process, *testchild.Reports) {
	t.Helper()
	rep, w := testchild.Pipe(t)
	exe := self(t)
	env = append(append(os.Environ(), envLeash+"=1", testchild.EnvMode+"=report"), env...)
	p, err := os.StartProcess(exe, []string{exe, exe}, &os.ProcAttr{Env: env, Files: []*os.File{nil, os.Stdout, os.Stderr, w}})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill(); p.Wait() })
	return p, rep
}

// Every forwardable signal sent to leash reaches the child exactly once, and
// nothing else does while leash's runtime preempts goroutines (SIGURG) and
// collects garbage. The child also catches SIGURG and SIGCHLD to catch leaks.
func TestForwardingThroughLeash(t *testing.T) {
	leash, rep := startLeash(t, envChurn+"=1", testchild.EnvCatchAll+"=1")
	pid := rep.Ready(t, "child", timeout)
	for _, sig := range signals.ForwardableSignals() {
		if err := leash.Signal(sig); err != nil {
			t.Fatal(err)
		}
		rep.Expect(t, fmt.Sprintf("child sig %d", sig), timeout)
	}

	// An observation window, not synchronisation: whatever leash might send
	// by itself would arrive before the sentinel.
	idle := 3 * time.Second
	if testing.Short() {
		idle = time.Second
	}
	time.Sleep(idle)
	if err := leash.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	rep.Expect(t, "child sig 10", timeout)

	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st, err := leash.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode() != 128+9 {
		t.Fatalf("leash exited %v, want 137", st)
	}
	rep.EOF(t, timeout)
}

// initMain runs as PID 1: it supervises the orphan-making script N times
// (alternating group and child-only signalling), reaping with one Reaper,
// then waits until every orphan is gone and has ps list what is left. It
// reports on descriptor 3.
func initMain() int {
	report := reportFile()
	say := func(format string, args ...any) { fmt.Fprintf(report, format+"\n", args...) }
	n, _ := strconv.Atoi(os.Getenv(envInit))
	sigs, sigsReady := signals.Notify(context.Background())
	sigsReady()

	var cur atomic.Pointer[supervisor.Supervisor]
	var reaped atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reaper := &signals.Reaper{
		Skip: func(pid int) bool {
			s := cur.Load()
			return s != nil && s.IsChild(pid)
		},
		Reaped: func(int, unix.WaitStatus) { reaped.Add(1) },
	}
	go reaper.Run(ctx)
	go func() {
		for sig := range sigs {
			if s := cur.Load(); s != nil {
				s.Signal(sig)
			}
		}
	}()

	run := func(childOnly bool, files []*os.File, argv ...string) error {
		sup, err := supervisor.New(supervisor.Config{Argv: argv, Env: childEnv(), ChildOnly: childOnly})
		if err != nil {
			return err
		}
		cur.Store(sup)
		if err := sup.Start(files, nil); err != nil {
			return err
		}
		return sup.Run(ctx)
	}

	say("pid %d", os.Getpid())
	sevens := 0
	for i := range n {
		err := run(i%2 == 1, nil, "sh", "-c", "for i in 1 2 3 4 5; do (sleep 0.0$i &); done; exit 7")
		if code := mirror(err); code == 7 {
			sevens++
		} else {
			say("run %d exit %d: %v", i, code, err)
		}
	}
	say("runs %d exit7 %d", n, sevens)

	// Every orphan exits within 50ms; wait until /proc shows nobody but us.
	deadline := time.Now().Add(timeout)
	for {
		others := otherProcesses()
		if len(others) == 0 {
			break
		}
		if time.Now().After(deadline) {
			say("left %s", strings.Join(others, ","))
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	say("reaped %d", reaped.Load())
	if err := run(false, []*os.File{report}, "sh", "-c", "ps -A -o stat=,comm= >&3"); err != nil {
		say("ps: %v", err)
	}
	say("done")
	return 0
}

// otherProcesses lists "pid:state" for every process but this one.
func otherProcesses() []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		out = append(out, e.Name()+":"+f[0])
	}
	return out
}

// As PID 1 of a new PID namespace leash reaps every orphan and never loses the
// supervised child's status to the reaper.
func TestPID1ReapsOrphans(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("unshare -p needs root")
	}
	const runs = 200 // under a second, even with -race on two cores
	rep, w := testchild.Pipe(t)
	exe := self(t)
	sup, err := supervisor.New(supervisor.Config{
		Argv: []string{"unshare", "-pf", "--mount-proc", exe},
		Env:  append(os.Environ(), envInit+"="+strconv.Itoa(runs)),
	})
	if err != nil {
		t.Skip(err) // no unshare
	}
	if err := sup.Start([]*os.File{w}, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()

	deadline := 10 * time.Minute // one pass of `runs` shell scripts
	rep.Expect(t, "pid 1", timeout)
	rep.Expect(t, fmt.Sprintf("runs %d exit7 %d", runs, runs), deadline)
	l := rep.Next(t, timeout)
	reaped, err := strconv.Atoi(strings.TrimPrefix(l, "reaped "))
	if err != nil {
		t.Fatalf("report %q, want reaped N", l)
	}
	// Each run leaves five sleeps behind.
	if reaped < 5*runs {
		t.Errorf("reaped %d orphans, want at least %d", reaped, 5*runs)
	}
	// ps: only PID 1 (leash), the shell and ps itself, none a zombie.
	var ps []string
	for {
		l := rep.Next(t, timeout)
		if l == "done" || l == "EOF" {
			break
		}
		ps = append(ps, l)
	}
	if len(ps) == 0 {
		t.Fatal("no ps output")
	}
	for _, l := range ps {
		if strings.HasPrefix(strings.TrimSpace(l), "Z") {
			t.Errorf("zombie left: %q (ps: %q)", l, ps)
		}
	}
	if err := sup.Run(context.Background()); err != nil {
		t.Fatalf("unshare: %v", err)
	}
}

// A child that exits at once may be a zombie before Start has recorded its
// pid; IsChild serialises with the fork, so the reaper still never takes it.
func TestReaperVersusInstantExit(t *testing.T) {
	if err := signals.SetSubreaper(); err != nil {
		t.Skip(err)
	}
	var cur atomic.Pointer[supervisor.Supervisor]
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- (&signals.Reaper{Skip: func(pid int) bool {
			s := cur.Load()
			return s != nil && s.IsChild(pid)
		}}).Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	// SIGCHLD wakes the reaper for every exit; extra load keeps it busy.
	churn(ctx)
	for i := range 300 {
		sup, err := supervisor.New(supervisor.Config{Argv: []string{"true"}})
		if err != nil {
			t.Fatal(err)
		}
		cur.Store(sup)
		if err := sup.Start(nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := sup.Run(context.Background()); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
}

// A test binary started with SIGHUP ignored, as under nohup, stops before
// any test runs, saying why, instead of failing the signal tests one by one
// (RequireSIGHUP in TestMain). Mode sigconf ignores SIGHUP and executes the
// test binary again, this time to run its (no) tests.
func TestRequireSIGHUP(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, self, "-test.run=^$")
	cmd.Env = append(childEnv(), testchild.EnvMode+"=sigconf", testchild.EnvNext+"=")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || strings.TrimSpace(string(out)) != testchild.SIGHUPIgnoredMessage {
		t.Fatalf("with SIGHUP ignored: %v, output %q; want exit status 2 and %q", err, out, testchild.SIGHUPIgnoredMessage)
	}
}
