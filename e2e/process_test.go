package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testchild"
)

// These tests run the leash binary with no secrets: a plain, correct init
// and supervisor (issue 10), which leaves what the caller set as it was
// (issue 23, from tini's and dumb-init's own test suites).

func TestExitStatusMirrorsChild(t *testing.T) {
	t.Parallel()
	for _, code := range []int{0, 1, 2, 126, 127, 128, 255} {
		got, stderr := ExitStatus(t, Command(t, "--", "sh", "-c", fmt.Sprintf("exit %d", code)))
		if got != code {
			t.Errorf("child exit %d: leash exited %d (stderr %q)", code, got, stderr)
		}
	}
}

func TestExitStatusChildKilledBySignal(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGKILL, syscall.SIGABRT, syscall.SIGSEGV} {
		// The shell kills itself; leash must report 128+N, not 255.
		script := fmt.Sprintf("trap - %d 2>/dev/null; kill -%d $$", int(sig), int(sig))
		got, stderr := ExitStatus(t, Command(t, "--signal-child-only", "--", "sh", "-c", script))
		if want := 128 + int(sig); got != want {
			t.Errorf("child killed by %v: leash exited %d, want %d (stderr %q)", sig, got, want, stderr)
		}
	}
}

func TestCommandNotFoundAndNotExecutable(t *testing.T) {
	t.Parallel()
	got, stderr := ExitStatus(t, Command(t, "--", "leash-no-such-command-xyz"))
	if got != 127 || !strings.Contains(stderr, "leash-no-such-command-xyz") {
		t.Errorf("not found: exit %d, stderr %q; want 127 naming the command", got, stderr)
	}
	noexec := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, stderr = ExitStatus(t, Command(t, "--", noexec))
	if got != 126 || !strings.Contains(stderr, noexec) {
		t.Errorf("not executable: exit %d, stderr %q; want 126 naming the file", got, stderr)
	}
}

func TestUsageErrorsExit64(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--no-such-flag", "--", "true"}, {"run"}, {"--stop-signal", "NOPE", "--", "true"}} {
		got, stderr := ExitStatus(t, Command(t, args...))
		if got != exitUsage {
			t.Errorf("leash %q: exit %d, want %d (stderr %q)", args, got, exitUsage, stderr)
		}
	}
}

func TestConfigErrorExit78(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "leash.hcl")
	if err := os.WriteFile(p, []byte("auth = \"token\"\nbogus = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, stderr := ExitStatus(t, Command(t, "-c", p, "--", "true"))
	if got != exitConfig || !strings.Contains(stderr, p+":2") {
		t.Errorf("exit %d, stderr %q; want 78 naming %s:2", got, stderr, p)
	}
}

func TestArgvAndEnvironmentPassThrough(t *testing.T) {
	t.Parallel()
	cmd := Command(t, "--", "printf", "[%s]", "a b", "", "c'd", "--flag")
	cmd.Env = append(cmd.Env, "LEASH_TEST_VALUE=x y", "VAULT_TOKEN=s.must-not-pass")
	out, _ := Output(t, cmd)
	if got, want := string(out), "[a b][][c'd][--flag]"; got != want {
		t.Errorf("argv: got %q, want %q", got, want)
	}
	cmd = Command(t, "--", "env")
	cmd.Env = append(cmd.Env, "LEASH_TEST_VALUE=x y", "VAULT_TOKEN=s.must-not-pass")
	out, _ = Output(t, cmd)
	if !strings.Contains(string(out), "LEASH_TEST_VALUE=x y\n") {
		t.Errorf("environment not passed through: %q", out)
	}
	if strings.Contains(string(out), "must-not-pass") {
		t.Errorf("VAULT_TOKEN reached the child: %q", out)
	}
}

func TestBackgroundOrphanDoesNotDelayExit(t *testing.T) {
	t.Parallel()
	// The child exits 3 and leaves `sleep 100` behind: leash exits 3
	// promptly (the test deadline would catch a wait for the orphan) and,
	// in group mode, the sleep is signalled with the rest of the group.
	got, stderr := ExitStatus(t, Command(t, "--", "sh", "-c", "sleep 100 & exit 3"))
	if got != 3 {
		t.Errorf("exit %d, want 3 (stderr %q)", got, stderr)
	}
}

func TestForwardsEachSignalOnce(t *testing.T) {
	t.Parallel()
	p := StartCmd(t, Command(t, append([]string{"--"}, testchild.Argv(t, "signals")...)...))
	p.Out.Expect("ready")
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGALRM, syscall.SIGWINCH, syscall.SIGCONT, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGTSTP, syscall.Signal(35), syscall.Signal(40)} {
		p.Signal(sig)
		p.Out.Expect(fmt.Sprintf("sig %d", int(sig)))
	}
	p.Signal(syscall.SIGUSR2)
	p.Out.Expect(fmt.Sprintf("sig %d", int(syscall.SIGUSR2)))
	if extra := p.Rest(); len(extra) > 0 {
		t.Errorf("spurious or duplicated signals: %q", extra)
	}
	if code := p.Exit(60 * time.Second); code != 0 {
		t.Errorf("leash exited %d", code)
	}
}

func TestTermIgnoringChildIsKilledAfterTimeout(t *testing.T) {
	t.Parallel()
	p := StartCmd(t, Command(t, append([]string{"--kill-timeout", "500ms", "--"}, testchild.Argv(t, "ignore-term")...)...))
	p.Out.Expect("ready")
	p.Signal(syscall.SIGTERM)
	p.Out.Expect(fmt.Sprintf("sig %d", int(syscall.SIGTERM)))
	if code := p.Exit(60 * time.Second); code != 128+int(syscall.SIGKILL) {
		t.Errorf("leash exited %d, want %d (child SIGKILLed after the timeout)", code, 128+int(syscall.SIGKILL))
	}
}

// TestPID1ReapsOrphans runs leash as PID 1 of a new PID namespace: every
// run exits with the child's status while orphans come and go, and no
// zombie is left.
func TestPID1ReapsOrphans(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare -pf")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed")
	}
	runs := 200
	if testing.Short() || raceEnabled {
		runs = 40
	}
	for i := 0; i < runs; i++ {
		cmd := exec.Command("unshare", "-pf", "--mount-proc", leashBin, "--", "sh", "-c", "for i in 1 2 3 4 5; do (sleep 0.0$i &); done; exit 7")
		got, stderr := ExitStatus(t, cmd)
		if got != 7 {
			t.Fatalf("run %d: exit %d, want 7 (stderr %q)", i, got, stderr)
		}
	}
	// Zombies: orphans exit while the child still runs; ps must show none.
	// The child waits (bounded) until its orphans have exited and the
	// zombie count drops to zero, then prints the count it saw last.
	script := `for i in 1 2 3; do (sleep 0.01 &); done
n=0; while [ $n -lt 500 ]; do
  z=$(ps -A -o stat=,comm= | grep -c '^Z') ; live=$(ps -A -o comm= | grep -c '^sleep$')
  [ "$live" = 0 ] && [ "$z" = 0 ] && break
  n=$((n+1)); sleep 0.01
done; echo "$z"`
	out, err := exec.Command("unshare", "-pf", "--mount-proc", leashBin, "--", "sh", "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != "0" {
		t.Errorf("zombies left under leash as PID 1: %q", out)
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
	// The test binary in mode sigconf executes leash with signals ignored
	// and blocked; leash's child is the test binary in mode status-signals.
	// No shell in between: dash resets the signal mask.
	cmd := exec.Command(self, leashBin, "--", self)
	cmd.Env = append(os.Environ(), testchild.EnvMode+"=sigconf", testchild.EnvNext+"=status-signals")
	p := StartCmd(t, cmd)

	masks := map[string]uint64{}
	for range 2 {
		l := p.Next(60 * time.Second)
		k, _, _ := strings.Cut(l, ":")
		masks[k] = statusMask(t, l)
	}
	for _, s := range testchild.SigconfIgnored {
		if masks["SigIgn"]&(1<<(s-1)) == 0 {
			t.Errorf("child's SigIgn %#x lacks %v, which leash was started with ignored", masks["SigIgn"], s)
		}
	}
	for _, s := range testchild.SigconfBlocked {
		if masks["SigBlk"]&(1<<(s-1)) == 0 {
			t.Errorf("child's SigBlk %#x lacks %v, which leash was started with blocked", masks["SigBlk"], s)
		}
	}

	// The helper catches everything: a forwarded SIGHUP would be reported
	// before the SIGUSR1 sent after it.
	p.Out.Expect("ready")
	for _, s := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1} {
		p.Signal(s)
	}
	p.Out.Expect(fmt.Sprintf("sig %d", syscall.SIGUSR1))
	p.Signal(syscall.SIGUSR2)
	p.Out.Expect(fmt.Sprintf("sig %d", syscall.SIGUSR2))
	if code := p.Exit(60 * time.Second); code != 0 {
		t.Fatalf("leash exited %d", code)
	}
	if !strings.Contains(p.Log.String(), `signal="SIGHUP,SIGINT,SIGTTOU"`) {
		t.Errorf("leash did not log the inherited ignored signals; stderr:\n%s", p.Log)
	}
}
