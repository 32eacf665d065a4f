package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testchild"
)

// leashBin is the leash binary the black-box tests run, built once.
var leashBin string

// TestMain builds leash for the black-box tests, and turns the test binary
// into a helper child when internal/testchild's environment asks for it.
func TestMain(m *testing.M) {
	testchild.Main()
	dir, err := os.MkdirTemp("", "leash-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	leashBin = filepath.Join(dir, "leash")
	args := []string{"build", "-tags", "nethttpomithttp2", "-o", leashBin} // as make build
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build leash:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// leashCmd prepares leash with args; the test binary is available as the
// helper child through "$LEASH_TEST_SELF".
func leashCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(leashBin, args...)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "LEASH_TEST_SELF="+self)
	return cmd
}

// leashOutput runs cmd and returns its stdout and stderr; a non-zero exit
// fails the test, showing stderr.
func leashOutput(t *testing.T, cmd *exec.Cmd) ([]byte, string) {
	t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("leash: %v; stderr:\n%s", err, stderr.String())
	}
	return out, stderr.String()
}

// startPiped starts cmd with a pipe to its stdin, its stdout read line by
// line, and its stderr collected.
func startPiped(t *testing.T, cmd *exec.Cmd) (stdin io.WriteCloser, lines *lineReader, stderr *strings.Builder) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr = &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return stdin, newLineReader(t, stdout), stderr
}

// helperArgs returns argv running the helper child in mode.
func helperArgs(t *testing.T, mode string, args ...string) []string {
	return testchild.Argv(t, mode, args...)
}

// exitStatus runs cmd and returns its exit code and stderr.
func exitStatus(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return 0, stderr.String()
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stderr.String()
	}
	t.Fatalf("run %v: %v", cmd.Args, err)
	return -1, ""
}

// lineReader reads the helper child's report lines with a deadline.
type lineReader struct {
	t     *testing.T
	lines chan string
}

func newLineReader(t *testing.T, r io.Reader) *lineReader {
	lr := &lineReader{t: t, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lr.lines <- sc.Text()
		}
		close(lr.lines)
	}()
	return lr
}

func (lr *lineReader) expect(want string) {
	lr.t.Helper()
	select {
	case got, ok := <-lr.lines:
		if !ok {
			lr.t.Fatalf("child output ended, want %q", want)
		}
		if got != want {
			lr.t.Fatalf("child said %q, want %q", got, want)
		}
	case <-time.After(20 * time.Second):
		lr.t.Fatalf("timed out waiting for %q", want)
	}
}

// rest returns every remaining line once the child's output closes.
func (lr *lineReader) rest() []string {
	var out []string
	for {
		select {
		case l, ok := <-lr.lines:
			if !ok {
				return out
			}
			out = append(out, l)
		case <-time.After(30 * time.Second):
			lr.t.Fatal("timed out waiting for the child's output to end")
		}
	}
}
