//go:build linux

// Linux only: these tests watch the job-control dance through /proc and
// waitid(WSTOPPED).

package supervisor_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/leash-dev/leash/internal/testchild"
)

// terminal is a minimal leash (superviseMain) running argv as the session
// leader of a fresh pseudo-terminal, in its foreground group.
type terminal struct {
	ptmx  *os.File
	leash *os.Process
	rep   *testchild.Reports

	mu     sync.Mutex
	out    strings.Builder
	update chan struct{} // poked after every read
	eof    chan struct{}
}

func startTerminal(t *testing.T, argv ...string) *terminal {
	t.Helper()
	exe := self(t)
	return startPTY(t, append([]string{exe}, argv...), envSupervise+"=1")
}

// startPTY runs argv as the session leader of a fresh pseudo-terminal.
func startPTY(t *testing.T, argv []string, env ...string) *terminal {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skip("no pseudo-terminal:", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	rep, w := testchild.Pipe(t)
	leash, err := os.StartProcess(argv[0], argv, &os.ProcAttr{
		Env:   append(os.Environ(), env...),
		Files: []*os.File{tty, tty, tty, w},
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
	})
	tty.Close()
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leash.Kill() })
	term := &terminal{ptmx: ptmx, leash: leash, rep: rep, update: make(chan struct{}, 1), eof: make(chan struct{})}
	go func() {
		defer close(term.eof)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			select {
			case term.update <- struct{}{}:
			default:
			}
			if err != nil { // EIO once the last slave descriptor closes
				return
			}
		}
	}()
	return term
}

func (term *terminal) output() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

// waitFor waits until the terminal has shown s.
func (term *terminal) waitFor(t *testing.T, s string) {
	t.Helper()
	term.waitForN(t, s, 1)
}

// waitForN waits until the terminal has shown s n times.
func (term *terminal) waitForN(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.After(timeout)
	for strings.Count(term.output(), s) < n {
		select {
		case <-term.update:
		case <-term.eof:
			if strings.Count(term.output(), s) < n {
				t.Fatalf("terminal closed without showing %q; output %q", s, term.output())
			}
		case <-deadline:
			t.Fatalf("terminal did not show %q; output %q\n%s", s, term.output(), debugProcs())
		}
	}
}

// exit waits for leash and returns its exit code; leash must have handed the
// terminal back to its own group before exiting.
func (term *terminal) exit(t *testing.T) int {
	t.Helper()
	term.rep.Expect(t, "leash foreground true", timeout)
	st, err := term.leash.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return st.ExitCode()
}

func (term *terminal) write(t *testing.T, s string) {
	t.Helper()
	if _, err := term.ptmx.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// tac reads the terminal until end of file: only possible in the foreground
// group (a background reader gets SIGTTIN and stops).
func TestTerminalInteractive(t *testing.T) {
	term := startTerminal(t, "tac")
	term.write(t, "one\ntwo\n\x04") // ^D at the start of a line: end of file
	term.waitFor(t, "two\r\ntwo\r\none\r\n")
	if code := term.exit(t); code != 0 {
		t.Fatalf("exit %d, want 0; output %q", code, term.output())
	}
}

// Ctrl-C reaches the looping child, not leash, and leash exits 128+SIGINT.
func TestTerminalCtrlC(t *testing.T) {
	term := startTerminal(t, "sh", "-c", "echo ready; while :; do sleep 1; done")
	term.waitFor(t, "ready")
	term.write(t, "\x03")
	if code := term.exit(t); code != 130 {
		t.Fatalf("exit %d, want 130; output %q", code, term.output())
	}
}

// An interactive shell with job control works as the child: it puts its own
// foreground job (cat) in charge of the terminal, Ctrl-C stops only that job,
// and the shell's exit status becomes leash's.
func TestTerminalJobControlShell(t *testing.T) {
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Skip("no bash")
	}
	term := startTerminal(t, "/bin/bash", "--norc", "--noprofile", "-m", "-i")
	term.shellReading(t)
	term.write(t, "PS1='p$((40+2))> '; echo go-$((6*7)); cat\n")
	term.waitFor(t, "go-42") // readline is done with the terminal; cat comes next
	term.write(t, "hello\n")
	term.waitFor(t, "hello\r\nhello\r\n") // the terminal's echo, then cat's
	term.write(t, "\x03")
	term.waitFor(t, "p42> ") // the first prompt since cat: bash reads again
	term.shellReading(t)
	term.write(t, "echo \"cat ended $?\"; exit 3\n")
	term.waitFor(t, "cat ended 130")
	if code := term.exit(t); code != 3 {
		t.Fatalf("exit %d, want 3; output %q", code, term.output())
	}
}

// Ctrl-Z stops the child, and leash stops itself so the job-control shell
// that started it regains the terminal; fg continues both, and the child has
// the terminal again.
func TestTerminalCtrlZ(t *testing.T) {
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Skip("no bash")
	}
	term := startPTY(t, []string{"/bin/bash", "--norc", "--noprofile", "-i"})
	term.shellReading(t)
	term.write(t, "PS1='p$((40+2))> '\n")
	term.waitFor(t, "p42> ")
	// Every line waits until its reader is waiting for input: typeahead
	// would meet the terminal modes, or the input flush of a Ctrl-Z, of
	// whichever program had the terminal before.
	term.shellReading(t)
	term.write(t, envSupervise+"=1 "+self(t)+" cat\n")
	term.catReading(t)
	term.write(t, "one\n")
	term.waitForN(t, "one\r\n", 2) // the terminal's echo, then cat's
	term.write(t, "\x1a")
	term.waitFor(t, "Stopped")
	term.waitForN(t, "p42> ", 2) // bash prompts again
	term.shellReading(t)
	term.write(t, "fg\n")
	term.waitForN(t, filepath.Base(self(t))+" cat\r\n", 3) // bash names the job it continues
	term.catReading(t)
	term.write(t, "two\n")
	term.waitForN(t, "two\r\n", 2)
	term.write(t, "\x04")
	term.waitForN(t, "p42> ", 3)
	term.shellReading(t)
	term.write(t, "echo rc-$?; exit\n")
	term.waitFor(t, "rc-0")
}

// Started in the background by an interactive shell, leash follows its
// child's job-control stops (dumb-init's test_shell_background_support):
// the child reading the terminal stops on SIGTTIN and leash with it, so
// the shell shows the job stopped and fg works; Ctrl-Z and bg work as well,
// and the child is still the same process at the end. Leash catches and
// forwards every signal here, as package main does, SIGCONT included.
func TestTerminalBackgroundJobControl(t *testing.T) {
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Skip("no bash")
	}
	term := startPTY(t, []string{"/bin/bash", "--norc", "--noprofile", "-i"})
	term.shellReading(t)
	// set -b: report a stopped job at once, not at the next prompt.
	term.write(t, "set -b; PS1='p$((40+2))> '\n")
	term.waitFor(t, "p42> ")
	term.shellReading(t)
	job := envSupervise + "=1 LEASH_TEST_FORWARD=1 " + self(t) + " cat"
	term.write(t, job+" &\n")
	term.waitFor(t, "Stopped") // cat read the terminal in the background
	term.shellReading(t)
	term.write(t, "jobs -l\n")
	term.waitForN(t, "Stopped", 2)
	term.shellReading(t)
	term.write(t, "fg\n")
	term.catReading(t)
	catPid := term.foregroundPid(t, "cat")
	term.write(t, "one\n")
	term.waitForN(t, "one\r\n", 2) // the terminal's echo, then cat's
	term.write(t, "\x1a")
	term.waitForN(t, "Stopped", 3)
	term.shellReading(t)
	term.write(t, "bg\n") // cat reads again in the background: stopped again
	term.waitForN(t, "Stopped", 4)
	term.shellReading(t)
	term.write(t, "fg\n")
	term.catReading(t)
	if p := term.foregroundPid(t, "cat"); p != catPid {
		t.Fatalf("cat is pid %d, was %d: the child did not survive", p, catPid)
	}
	term.write(t, "two\n")
	term.waitForN(t, "two\r\n", 2)
	term.write(t, "\x04")
	term.shellReading(t)
	term.write(t, "echo rc-$?; exit\n")
	term.waitFor(t, "rc-0")
}

// foregroundPid returns the pid of the process named comm in the terminal's
// foreground group.
func (term *terminal) foregroundPid(t *testing.T, comm string) int {
	t.Helper()
	fg, err := unix.IoctlGetInt(int(term.ptmx.Fd()), unix.TIOCGPGRP)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range testchild.GroupMembers(fg) {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); err == nil && strings.TrimSpace(string(b)) == comm {
			return p
		}
	}
	t.Fatalf("no %s in the foreground group %d", comm, fg)
	return 0
}

// catReading waits until a cat in the terminal's session is the foreground
// group and asleep (in read).
func (term *terminal) catReading(t *testing.T) {
	t.Helper()
	term.reading(t, "cat", func(string) bool { return true })
}

// shellReading waits until bash, leading the session, has the terminal and
// waits for input in readline's poll (not for a job in wait).
func (term *terminal) shellReading(t *testing.T) {
	t.Helper()
	term.reading(t, "bash", func(wchan string) bool { return strings.HasPrefix(wchan, "poll_schedule_timeout") })
}

// reading waits until a process named comm in the terminal's session is in
// the foreground group, asleep, with a wait channel that ok accepts. It polls
// /proc: no event says "waiting for input".
func (term *terminal) reading(t *testing.T, comm string, ok func(wchan string) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		fg, err := unix.IoctlGetInt(int(term.ptmx.Fd()), unix.TIOCGPGRP)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range testchild.GroupMembers(fg) {
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
			if err != nil {
				continue
			}
			wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", p))
			f := strings.Fields(string(stat))
			if len(f) > 5 && f[1] == "("+comm+")" && f[2] == "S" && f[5] == strconv.Itoa(term.leash.Pid) && ok(string(wchan)) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not reading in the foreground (fg pgrp %d); output %q\n%s", comm, fg, term.output(), debugProcs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With no job-control shell above leash (here leash leads the session, as
// PID 1 of a container does), a stopped leash could never be continued: a
// Ctrl-Z is undone instead, and the child keeps working.
func TestTerminalCtrlZWithoutJobControl(t *testing.T) {
	term := startTerminal(t, "cat")
	term.catReading(t)
	term.write(t, "\x1a")
	term.write(t, "one\n")
	term.waitForN(t, "one\r\n", 2)
	term.write(t, "\x04")
	if code := term.exit(t); code != 0 {
		t.Fatalf("exit %d, want 0; output %q", code, term.output())
	}
}

// debugProcs describes the bash, cat and supervisor processes (states,
// process groups, wait channels, kernel stacks) for a failed terminal wait.
func debugProcs() string {
	var b strings.Builder
	comm, _ := os.ReadFile("/proc/self/comm") // the supervisors run this binary
	bin := "(" + strings.TrimSpace(string(comm)) + ")"
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat))
		if len(f) < 8 || !(f[1] == "(bash)" || f[1] == "(cat)" || f[1] == bin) {
			continue
		}
		wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
		stack, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stack", pid))
		fmt.Fprintf(&b, "pid %d comm %s state %s ppid %s pgrp %s sid %s tpgid %s wchan %s\n%s\n", pid, f[1], f[2], f[3], f[4], f[5], f[7], wchan, stack)
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, tk := range tasks {
			ts, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, tk.Name()))
			tf := strings.Fields(string(ts))
			tw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/wchan", pid, tk.Name()))
			if len(tf) > 2 {
				fmt.Fprintf(&b, "   task %s state %s wchan %s\n", tk.Name(), tf[2], tw)
			}
		}
	}
	return b.String()
}

// A stop signal sent to leash without a terminal (dumb-init's
// test_shell_background_support) is forwarded, and once the child has
// stopped, leash stops too, so its parent sees it stopped; SIGCONT to leash
// continues both.
func TestStopSignalStopsLeashWithChild(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			cmd := exec.Command(self(t), "cat")
			cmd.Env = append(os.Environ(), envSupervise+"=1", "LEASH_TEST_FORWARD=1")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Kill(-cmd.Process.Pid, unix.SIGKILL); cmd.Process.Kill(); cmd.Wait() })
			out := bufio.NewReader(stdout)
			echo := func(s string) {
				t.Helper()
				if _, err := io.WriteString(stdin, s+"\n"); err != nil {
					t.Fatal(err)
				}
				got := make(chan string, 1)
				go func() { l, _ := out.ReadString('\n'); got <- l }()
				select {
				case l := <-got:
					if l != s+"\n" {
						t.Fatalf("cat said %q, want %q", l, s)
					}
				case <-time.After(timeout):
					t.Fatalf("cat did not echo %q", s)
				}
			}
			echo("one") // cat runs and leash forwards (it catches before Start)

			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			stopped := make(chan error, 1)
			go func() {
				var info unix.Siginfo
				stopped <- unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WSTOPPED, nil)
			}()
			select {
			case err := <-stopped:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(timeout):
				t.Fatalf("leash did not stop after %s\n%s", unix.SignalName(sig), debugProcs())
			}
			// leash stops only once the child has: cat is stopped now.
			cat := testchild.GroupMembers(groupOfChild(t, cmd.Process.Pid))
			for _, p := range cat {
				if st := procState(p); st != "T" {
					t.Fatalf("child %d in state %s, want stopped", p, st)
				}
			}

			if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			echo("two") // both continued
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("leash: %v", err)
			}
		})
	}
}

// groupOfChild returns the process group of leash's only child.
func groupOfChild(t *testing.T, leash int) int {
	t.Helper()
	// The child is listed under the thread that forked it.
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", leash))
	var f []string
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		f = append(f, strings.Fields(string(b))...)
	}
	if len(f) == 0 {
		t.Fatalf("leash %d has no child", leash)
	}
	pid, _ := strconv.Atoi(f[0])
	pgid, err := unix.Getpgid(pid)
	if err != nil {
		t.Fatal(err)
	}
	return pgid
}

// procState is the state letter of /proc/PID/stat.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "gone"
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return "?"
}
