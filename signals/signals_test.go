package signals_test

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/leash-dev/leash/signals"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want syscall.Signal
	}{
		{"HUP", syscall.SIGHUP},
		{"SIGHUP", syscall.SIGHUP},
		{"hup", syscall.SIGHUP},
		{"sighup", syscall.SIGHUP},
		{" SigTerm ", syscall.SIGTERM},
		{"1", syscall.SIGHUP},
		{"15", syscall.SIGTERM},
		{"9", syscall.SIGKILL},
		{"KILL", syscall.SIGKILL},
		{"STOP", syscall.SIGSTOP},
		{"USR1", syscall.SIGUSR1},
		{"SIGUSR2", syscall.SIGUSR2},
		{"WINCH", syscall.SIGWINCH},
		{"IOT", syscall.SIGABRT},
		{"CLD", syscall.SIGCHLD},
		{"POLL", syscall.SIGIO},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := signals.Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("Parse(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", " ", "0", "65", "-1", "NOPE", "SIG", "SIGFOO", "RTMIN+31", "RTMAX-31", "RTMIN-1", "RTMAX+1", "RTMIN+", "RTMIN+x", "1.5", "HUP2"} {
		t.Run(in, func(t *testing.T) {
			if sig, err := signals.Parse(in); err == nil {
				t.Fatalf("Parse(%q) = %d, want an error", in, sig)
			}
		})
	}
}

func TestName(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		want string
	}{
		{syscall.SIGHUP, "SIGHUP"},
		{syscall.SIGTERM, "SIGTERM"},
	} {
		if got := signals.Name(tc.sig); got != tc.want {
			t.Errorf("Name(%d) = %q, want %q", tc.sig, got, tc.want)
		}
	}
}

// Every name Name produces parses back to the same signal.
func TestNameRoundTrip(t *testing.T) {
	for _, sig := range signals.ForwardableSignals() {
		got, err := signals.Parse(signals.Name(sig))
		if err != nil || got != sig {
			t.Errorf("Parse(Name(%d)) = %d, %v", sig, got, err)
		}
	}
}

type fakeSignal struct{}

func (fakeSignal) String() string { return "fake" }
func (fakeSignal) Signal()        {}

func TestNotify(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ch, ready := signals.Notify(ctx)
	ready()
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGTSTP, 37} {
		if err := unix.Kill(os.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-ch:
			if got != sig {
				t.Fatalf("got %v, want %v", got, sig)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%v not delivered", sig)
		}
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("unexpected signal after cancel")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("channel not closed after cancel")
	}
}

// Before ready, the stop signals are caught already and every other
// forwardable signal is at least ignored: none of them can kill leash while
// it holds leases.
func TestNotifyBeforeReady(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, ready := signals.Notify(ctx)
	for _, sig := range signals.StopSignals {
		if signal.Ignored(sig) {
			t.Errorf("%v ignored, want caught", sig)
		}
	}
	// A signal with a default action of terminate, sent before ready:
	// leash survives it (the test process would die otherwise).
	if err := unix.Kill(os.Getpid(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case got := <-ch:
			if got == syscall.SIGTERM {
				ready()
				// After ready every forwardable signal is caught, none ignored.
				for _, sig := range signals.ForwardableSignals() {
					if signal.Ignored(sig) {
						t.Errorf("%v still ignored after ready", sig)
					}
				}
				return
			}
			if got != syscall.SIGUSR2 {
				t.Fatalf("got %v", got)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("SIGTERM not delivered")
		}
	}
}

// TestReaperNeverStealsChild runs the reaper in a subreaper test process
// against children that leave orphans behind and exit at once: every Wait for
// the started child must still get its status, and every orphan is reaped.
func TestReaperNeverStealsChild(t *testing.T) {
	if err := signals.SetSubreaper(); err != nil {
		t.Skip(err)
	}
	runs := 100
	if testing.Short() {
		runs = 20
	}

	// The supervisor's contract, in miniature: the fork and the record of
	// the pid happen under the lock that Skip takes.
	var (
		forkMu sync.Mutex
		mine   = map[int]bool{}
	)
	skip := func(pid int) bool {
		forkMu.Lock()
		defer forkMu.Unlock()
		return mine[pid]
	}
	orphans := make(chan int, 10*runs)
	r := &signals.Reaper{Skip: skip, Reaped: func(pid int, _ unix.WaitStatus) { orphans <- pid }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	sh := "/bin/sh"
	for i := range runs {
		forkMu.Lock()
		p, err := os.StartProcess(sh, []string{"sh", "-c", "(true &); (true &); exit 7"},
			&os.ProcAttr{Files: []*os.File{nil, os.Stdout, os.Stderr}})
		if err == nil {
			mine[p.Pid] = true
		}
		forkMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		st, err := p.Wait()
		forkMu.Lock()
		delete(mine, p.Pid)
		forkMu.Unlock()
		if err != nil {
			t.Fatalf("run %d: wait: %v (status stolen)", i, err)
		}
		if st.ExitCode() != 7 {
			t.Fatalf("run %d: exit %d, want 7", i, st.ExitCode())
		}
	}
	for range 2 * runs {
		select {
		case <-orphans:
		case <-time.After(10 * time.Second):
			t.Fatal("orphans not reaped")
		}
	}
}
