package signals

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Real-time signal bounds as user space sees them on Linux. The kernel's
// SIGRTMIN is 32, but glibc reserves 32 and 33 for threads and setxid, so
// RTMIN means 34 in kill(1), Docker (STOPSIGNAL RTMIN+3 is 37) and systemd.
// macOS has no real-time signals: there Parse refuses RTMIN/RTMAX and
// numbers above 31.
const (
	RTMin syscall.Signal = 34
	RTMax syscall.Signal = 64
)

// Parse returns the signal named by name: a name with or without the SIG
// prefix in any case ("HUP", "SIGHUP", "sigterm"), a number ("1"), or a
// real-time signal relative to RTMin or RTMax ("RTMIN", "RTMIN+3", "SIGRTMAX-1").
// It accepts every signal 1-64, including KILL and STOP, so it serves flags such
// as --stop-signal; use Forwardable to ask whether leash relays a signal.
func Parse(name string) (syscall.Signal, error) {
	s := strings.ToUpper(strings.TrimSpace(name))
	if s == "" {
		return 0, fmt.Errorf("parse signal %q: empty name", name)
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > int(maxSignal) {
			return 0, fmt.Errorf("parse signal %q: number out of range 1-%d", name, maxSignal)
		}
		return syscall.Signal(n), nil
	}
	s = strings.TrimPrefix(s, "SIG")
	if rt, ok := parseRT(s); ok {
		if !hasRT {
			return 0, fmt.Errorf("parse signal %q: real-time signals are not available on %s", name, platform)
		}
		if rt < RTMin || rt > RTMax {
			return 0, fmt.Errorf("parse signal %q: outside RTMIN..RTMAX", name)
		}
		return rt, nil
	}
	if sig := unix.SignalNum("SIG" + s); sig != 0 {
		return sig, nil
	}
	if sig, ok := aliases[s]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("parse signal %q: unknown signal", name)
}

// aliases are the historical names unix.SignalNum does not know.
var aliases = map[string]syscall.Signal{
	"IOT":  unix.SIGIOT,
	"POLL": unix.SIGIO, // Linux's SIGPOLL is SIGIO; macOS has only SIGIO
	"CLD":  unix.SIGCHLD,
}

// parseRT parses "RTMIN", "RTMIN+N", "RTMAX" and "RTMAX-N" (upper case, no SIG).
func parseRT(s string) (syscall.Signal, bool) {
	for _, base := range []struct {
		name string
		sig  syscall.Signal
		op   byte
	}{{"RTMIN", RTMin, '+'}, {"RTMAX", RTMax, '-'}} {
		rest, ok := strings.CutPrefix(s, base.name)
		if !ok {
			continue
		}
		if rest == "" {
			return base.sig, true
		}
		if rest[0] != base.op {
			return 0, false
		}
		n, err := strconv.Atoi(rest[1:])
		if err != nil || n < 0 {
			return 0, false
		}
		if base.op == '+' {
			return base.sig + syscall.Signal(n), true
		}
		return base.sig - syscall.Signal(n), true
	}
	return 0, false
}

// Name returns the conventional name of sig: "SIGHUP", "SIGRTMIN+3", or
// "signal N" for numbers without a name. Logs use it under the "signal" key.
func Name(sig os.Signal) string {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return sig.String()
	}
	if hasRT && s >= RTMin && s <= RTMax {
		if s == RTMin {
			return "SIGRTMIN"
		}
		return fmt.Sprintf("SIGRTMIN+%d", s-RTMin)
	}
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(s))
}

// Forwardable reports whether leash relays sig to its child: every catchable
// signal 1-31 and every real-time signal RTMin+1..RTMax, except
//   - SIGKILL and SIGSTOP, which cannot be caught;
//   - SIGCHLD, which reports leash's own children (the reaper consumes it);
//   - SIGURG, which the Go runtime sends to itself for preemption (envconsul#254);
//   - SIGPROF, which the Go runtime keeps for profiling and never delivers to
//     os/signal;
//   - SIGPIPE, which leash raises itself when Vault (or a proxy) resets a
//     connection under a write: os/signal cannot tell that from a kill(2), and
//     forwarding it would kill a child without a handler whenever Vault
//     restarts. Not catching it leaves Go's default: EPIPE on the write, and
//     an external SIGPIPE is ignored;
//   - RTMin (34), which the Go runtime reserves (musl's SIGSYNCCALL,
//     golang/go#39343) and cannot catch: like 32 and 33 it keeps its default
//     action, so it terminates leash (and, through Pdeathsig, the child).
//     macOS has no real-time signals: there only 1-31 are forwardable.
func Forwardable(sig os.Signal) bool {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return false
	}
	switch s {
	case unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGURG, unix.SIGPROF, unix.SIGPIPE:
		return false
	}
	return (s >= 1 && s <= 31) || (hasRT && s > RTMin && s <= RTMax)
}

// ForwardableSignals lists every signal for which Forwardable is true, in
// ascending order.
func ForwardableSignals() []os.Signal {
	var out []os.Signal
	for s := syscall.Signal(1); s <= maxSignal; s++ {
		if Forwardable(s) {
			out = append(out, s)
		}
	}
	return out
}

// StopSignals end a start-up: Notify catches them before it returns.
var StopSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP}

// Notify starts catching every forwardable signal and returns the channel
// they arrive on, and ready, which returns once all of them are caught.
// Catching replaces each signal's default action, so leash is not killed by
// a signal meant for the child.
//
// os/signal enables signals one at a time, each with a round trip to a
// runtime thread: 0.6-1.3 ms for the 55 forwardable signals at a cold start,
// on the path to the child's start. So Notify catches StopSignals before it
// returns, sets the others to ignored at once (no round trip), and catches
// them in the background while the caller contacts Vault. Until ready
// returns, those others are discarded, as a signal with no child to forward
// to would be anyway. Call ready before starting a child: an ignored
// disposition survives exec.
//
// A signal leash was started with ignored (see InheritedIgnored) is left
// ignored: it is neither caught nor forwarded, and the child inherits it
// ignored, as it would have without leash in between.
//
// The channel is buffered; a burst larger than the buffer loses signals the
// kernel would have merged anyway. When ctx is done, Notify stops catching and
// closes the channel, after which the signals have their default actions again.
func Notify(ctx context.Context) (_ <-chan os.Signal, ready func()) {
	ch := make(chan os.Signal, 128)
	ignored := InheritedIgnored()
	var stop, rest []os.Signal
	for _, s := range ForwardableSignals() {
		switch {
		case slices.Contains(ignored, s):
		case slices.Contains(StopSignals, s):
			stop = append(stop, s)
		default:
			rest = append(rest, s)
		}
	}
	signal.Notify(ch, stop...)
	signal.Ignore(rest...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		signal.Notify(ch, rest...)
	}()
	go func() {
		<-ctx.Done()
		<-done
		// After Stop returns no further value is sent on ch, so closing is safe.
		signal.Stop(ch)
		close(ch)
	}()
	return ch, func() { <-done }
}

// InheritedIgnored returns the forwardable signals that were ignored
// (SIG_IGN) when leash was executed, as far as they can still be known: nohup
// ignores SIGHUP, a non-interactive shell starts background jobs with SIGINT
// and SIGQUIT ignored. Call it before Notify, which changes dispositions.
//
// The Go runtime installs its own handler over most inherited dispositions
// before any of leash's code runs, and only it keeps the old ones (unexported,
// and out of reach of go:linkname since Go 1.23). What survives is SIGHUP and
// SIGINT, whose SIG_IGN the runtime respects, and SIGCONT, SIGTSTP, SIGTTIN
// and SIGTTOU, which it leaves alone: those are what this reports. An ignored
// SIGTERM, SIGQUIT, SIGUSR1, ... is lost, as it is for every Go program.
func InheritedIgnored() []os.Signal {
	mask, ok := procSigIgn()
	var out []os.Signal
	for _, s := range ForwardableSignals() {
		n := uint(s.(syscall.Signal))
		if ok && mask&(1<<(n-1)) != 0 || !ok && signal.Ignored(s) {
			out = append(out, s)
		}
	}
	return out
}

// procSigIgn reads the process's ignored-signal mask (bit N-1 for signal N)
// from /proc/self/status: the kernel's own view, for every signal.
// signal.Ignored, the fallback without /proc, knows SIGHUP and SIGINT only.
func procSigIgn() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return m, err == nil
		}
	}
	return 0, false
}
