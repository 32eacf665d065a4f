package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// What leash leaves as the caller set it (issue 23, from tini's and
// dumb-init's own test suites).

// The signals the sigconf helper ignores and blocks before it executes leash,
// like tini's sigconf-test and nohup.
var (
	sigconfIgnored = []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTTOU}
	sigconfBlocked = []syscall.Signal{syscall.SIGTTIN, syscall.SIGUSR2}
)

// sigconfExec executes argv with sigconfIgnored ignored and sigconfBlocked
// blocked, the way a C parent would between fork and exec: execve keeps
// ignored dispositions and the calling thread's mask.
func sigconfExec(argv []string) int {
	// The child of the leash executed here is the helper named by
	// LEASH_TEST_NEXT.
	os.Setenv("LEASH_TEST_HELPER", os.Getenv("LEASH_TEST_NEXT"))
	for _, s := range sigconfIgnored {
		signal.Ignore(s)
	}
	runtime.LockOSThread() // the mask is the thread's, and execve keeps it
	var set unix.Sigset_t
	for _, s := range sigconfBlocked {
		set.Val[(s-1)/64] |= 1 << ((uint(s) - 1) % 64)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	err := syscall.Exec(argv[0], argv, os.Environ())
	fmt.Fprintln(os.Stderr, "exec:", err)
	return 2
}

// printSignalMasks prints the SigIgn and SigBlk lines of the process's
// status, as the Go runtime left them: it keeps an inherited SIG_IGN of
// SIGHUP, SIGINT and SIGTTOU, and inherited blocks of SIGTTIN and SIGUSR2.
func printSignalMasks() {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "SigIgn:") || strings.HasPrefix(l, "SigBlk:") {
			fmt.Println(l)
		}
	}
}

// statusMask parses a "Sig...:" line of /proc/PID/status.
func statusMask(t *testing.T, line string) uint64 {
	t.Helper()
	_, v, _ := strings.Cut(line, ":")
	m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
	if err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	return m
}

// Under nohup (or any parent that ignores signals) the child inherits the
// ignored dispositions through leash, and leash does not forward what it
// was told to ignore; the blocked mask is passed on too. Only dispositions
// the Go runtime leaves readable can be passed on (see
// signals.InheritedIgnored), which covers SIGHUP and SIGINT.
func TestInheritedSignalDispositions(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// No shell in between: dash resets the signal mask.
	cmd := leashCmd(t)
	cmd.Path = self
	cmd.Args = []string{self, leashBin, "--", self}
	cmd.Env = append(cmd.Env, "LEASH_TEST_NEXT=status-signals")
	cmd.Env = append(cmd.Env, "LEASH_TEST_HELPER=sigconf")
	_, lines, stderr := startPiped(t, cmd)
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	masks := map[string]uint64{}
	for range 2 {
		select {
		case l := <-lines.lines:
			k, _, _ := strings.Cut(l, ":")
			masks[k] = statusMask(t, l)
		case <-time.After(20 * time.Second):
			t.Fatalf("no status line from the child; leash stderr:\n%s", stderr)
		}
	}
	for _, s := range sigconfIgnored {
		if masks["SigIgn"]&(1<<(s-1)) == 0 {
			t.Errorf("child's SigIgn %#x lacks %v, which leash was started with ignored", masks["SigIgn"], s)
		}
	}
	for _, s := range sigconfBlocked {
		if masks["SigBlk"]&(1<<(s-1)) == 0 {
			t.Errorf("child's SigBlk %#x lacks %v, which leash was started with blocked", masks["SigBlk"], s)
		}
	}

	// The helper catches everything: a forwarded SIGHUP would be reported
	// before the SIGUSR1 sent after it.
	lines.expect("ready")
	for _, s := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1} {
		if err := cmd.Process.Signal(s); err != nil {
			t.Fatal(err)
		}
	}
	lines.expect(fmt.Sprintf("sig %d", syscall.SIGUSR1))
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	lines.expect(fmt.Sprintf("sig %d", syscall.SIGUSR2))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("leash: %v; stderr:\n%s", err, stderr)
	}
	if !strings.Contains(stderr.String(), `signal="SIGHUP,SIGINT,SIGTTOU"`) {
		t.Errorf("leash did not log the inherited ignored signals; stderr:\n%s", stderr)
	}
}
