package signals_test

import (
	"syscall"
	"testing"

	"github.com/leash-dev/leash/signals"
)

// Real-time signals exist on Linux only; signals_darwin_test.go checks
// they are refused on macOS.
func TestParseRT(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want syscall.Signal
	}{
		{"RTMIN", 34},
		{"RTMIN+3", 37},
		{"SIGRTMIN+3", 37},
		{"rtmin+0", 34},
		{"RTMAX", 64},
		{"RTMAX-1", 63},
		{"SIGRTMAX-30", 34},
		{"64", 64},
		{"34", 34},
	} {
		got, err := signals.Parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestNameRT(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		want string
	}{
		{34, "SIGRTMIN"},
		{37, "SIGRTMIN+3"},
		{64, "SIGRTMIN+30"},
		{32, "signal 32"},
	} {
		if got := signals.Name(tc.sig); got != tc.want {
			t.Errorf("Name(%d) = %q, want %q", tc.sig, got, tc.want)
		}
	}
}

func TestForwardable(t *testing.T) {
	never := map[syscall.Signal]string{
		syscall.SIGKILL: "cannot be caught",
		syscall.SIGSTOP: "cannot be caught",
		syscall.SIGCHLD: "reports leash's own children",
		syscall.SIGURG:  "Go runtime preemption",
		syscall.SIGPROF: "Go runtime profiling",
		32:              "libc internal",
		33:              "libc internal",
		syscall.SIGPIPE: "raised by leash's own writes to a reset Vault connection",
		34:              "reserved by the Go runtime",
		0:               "not a signal",
		65:              "out of range",
	}
	for sig, why := range never {
		if signals.Forwardable(sig) {
			t.Errorf("Forwardable(%d) = true, want false: %s", sig, why)
		}
	}
	for _, sig := range []syscall.Signal{
		syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2,
		syscall.SIGALRM, syscall.SIGTERM, syscall.SIGCONT, syscall.SIGWINCH,
		syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGABRT, syscall.SIGSEGV,
		syscall.SIGSYS, syscall.SIGPWR, 35, 37, 64,
	} {
		if !signals.Forwardable(sig) {
			t.Errorf("Forwardable(%s) = false, want true", signals.Name(sig))
		}
	}
	if signals.Forwardable(fakeSignal{}) {
		t.Error("Forwardable(non-syscall signal) = true")
	}
	// 31 - KILL STOP CHLD URG PROF PIPE = 25 standard, 35..64 = 30 real-time.
	if n := len(signals.ForwardableSignals()); n != 25+30 {
		t.Errorf("len(ForwardableSignals()) = %d, want %d", n, 25+30)
	}
}
