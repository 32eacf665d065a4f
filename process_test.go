package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// These tests run the leash binary with no secrets: a plain, correct init
// and supervisor (issue 10).

func TestExitStatusMirrorsChild(t *testing.T) {
	t.Parallel()
	for _, code := range []int{0, 1, 2, 126, 127, 128, 255} {
		got, stderr := exitStatus(t, leashCmd(t, "--", "sh", "-c", fmt.Sprintf("exit %d", code)))
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
		got, stderr := exitStatus(t, leashCmd(t, "--signal-child-only", "--", "sh", "-c", script))
		if want := 128 + int(sig); got != want {
			t.Errorf("child killed by %v: leash exited %d, want %d (stderr %q)", sig, got, want, stderr)
		}
	}
}

func TestCommandNotFoundAndNotExecutable(t *testing.T) {
	t.Parallel()
	got, stderr := exitStatus(t, leashCmd(t, "--", "leash-no-such-command-xyz"))
	if got != 127 || !strings.Contains(stderr, "leash-no-such-command-xyz") {
		t.Errorf("not found: exit %d, stderr %q; want 127 naming the command", got, stderr)
	}
	noexec := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, stderr = exitStatus(t, leashCmd(t, "--", noexec))
	if got != 126 || !strings.Contains(stderr, noexec) {
		t.Errorf("not executable: exit %d, stderr %q; want 126 naming the file", got, stderr)
	}
}

func TestUsageErrorsExit64(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--no-such-flag", "--", "true"}, {"run"}, {"--stop-signal", "NOPE", "--", "true"}} {
		got, stderr := exitStatus(t, leashCmd(t, args...))
		if got != exitUsage {
			t.Errorf("leash %q: exit %d, want %d (stderr %q)", args, got, exitUsage, stderr)
		}
	}
}

func TestConfigErrorExit78(t *testing.T) {
	t.Parallel()
	p := writeConfig(t, "auth = \"token\"\nbogus = true\n")
	got, stderr := exitStatus(t, leashCmd(t, "-c", p, "--", "true"))
	if got != exitConfig || !strings.Contains(stderr, p+":2") {
		t.Errorf("exit %d, stderr %q; want 78 naming %s:2", got, stderr, p)
	}
}

func TestArgvAndEnvironmentPassThrough(t *testing.T) {
	t.Parallel()
	cmd := leashCmd(t, "--", "printf", "[%s]", "a b", "", "c'd", "--flag")
	cmd.Env = append(cmd.Env, "LEASH_TEST_VALUE=x y", "VAULT_TOKEN=s.must-not-pass")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "[a b][][c'd][--flag]"; got != want {
		t.Errorf("argv: got %q, want %q", got, want)
	}
	cmd = leashCmd(t, "--", "env")
	cmd.Env = append(cmd.Env, "LEASH_TEST_VALUE=x y", "VAULT_TOKEN=s.must-not-pass")
	out, err = cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
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
	got, stderr := exitStatus(t, leashCmd(t, "--", "sh", "-c", "sleep 100 & exit 3"))
	if got != 3 {
		t.Errorf("exit %d, want 3 (stderr %q)", got, stderr)
	}
}

func TestForwardsEachSignalOnce(t *testing.T) {
	t.Parallel()
	cmd := leashCmd(t, append([]string{"--"}, helperArgs(t, "signals")...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lr := newLineReader(t, stdout)
	lr.expect("ready")
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGALRM, syscall.SIGWINCH, syscall.SIGCONT, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGTSTP, syscall.Signal(35), syscall.Signal(40)} {
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		lr.expect(fmt.Sprintf("sig %d", int(sig)))
	}
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	lr.expect(fmt.Sprintf("sig %d", int(syscall.SIGUSR2)))
	if extra := lr.rest(); len(extra) > 0 {
		t.Errorf("spurious or duplicated signals: %q", extra)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("leash: %v (stderr %q)", err, stderr.String())
	}
}

func TestTermIgnoringChildIsKilledAfterTimeout(t *testing.T) {
	t.Parallel()
	cmd := leashCmd(t, append([]string{"--kill-timeout", "500ms", "--"}, helperArgs(t, "ignore-term")...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lr := newLineReader(t, stdout)
	lr.expect("ready")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	lr.expect(fmt.Sprintf("sig %d", int(syscall.SIGTERM)))
	err = cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 128+int(syscall.SIGKILL) {
		t.Errorf("leash: %v, want exit %d (child SIGKILLed after the timeout)", err, 128+int(syscall.SIGKILL))
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
		got, stderr := exitStatus(t, cmd)
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
