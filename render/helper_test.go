package render

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the child process: LEASH_RENDER_CHILD selects
// what it does (the go-plugin helper-process pattern).
const childEnv = "LEASH_RENDER_CHILD"

// platformChildren are the helper children of platform-specific tests, by
// childEnv value; their files fill it in init.
var platformChildren = map[string]func(){}

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "inspect":
		childInspect()
		return
	case "reread":
		childReread()
		return
	case "dirholder":
		childDirHolder()
		return
	case "diskwipe":
		childDiskWipe()
		return
	}
	if f := platformChildren[os.Getenv(childEnv)]; f != nil {
		f()
		return
	}
	code := m.Run()
	if childBinDir != "" {
		os.RemoveAll(childBinDir)
	}
	os.Exit(code)
}

// inspectResult is what the inspect child reports about one path.
type inspectResult struct {
	Path     string
	Data     []byte
	ReadErr  string
	Mode     uint32
	UID      int
	OpenWErr string // error re-opening the path for writing
	FDWErr   string // error writing to the inherited descriptor itself
}

// childInspect reads every path in LEASH_PATHS, reports on stdout, then
// waits for stdin to close so the parent can look at /proc/PID.
func childInspect() {
	var res []inspectResult
	for _, p := range strings.Split(os.Getenv("LEASH_PATHS"), ",") {
		r := inspectResult{Path: p}
		data, err := os.ReadFile(p)
		r.Data = data
		if err != nil {
			r.ReadErr = err.Error()
		}
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err == nil {
			r.Mode, r.UID = uint32(st.Mode&0o7777), int(st.Uid)
		}
		if f, err := os.OpenFile(p, os.O_WRONLY, 0); err != nil {
			r.OpenWErr = errors.Unwrap(err).Error()
		} else {
			f.Close()
		}
		if n, ok := strings.CutPrefix(p, "/dev/fd/"); ok {
			fd, _ := strconv.Atoi(n)
			if _, err := unix.Write(fd, []byte("x")); err != nil {
				r.FDWErr = err.Error()
			}
		}
		res = append(res, r)
	}
	json.NewEncoder(os.Stdout).Encode(res)
	io.Copy(io.Discard, os.Stdin)
}

// childReread re-opens LEASH_PATHS after every SIGUSR1 and reports the
// bytes: what the docs tell a reload-signal child to do.
func childReread() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	enc := json.NewEncoder(os.Stdout)
	fmt.Println(`"ready"`)
	for range sig {
		data, err := os.ReadFile(os.Getenv("LEASH_PATHS"))
		if err != nil {
			enc.Encode(err.Error())
			continue
		}
		enc.Encode(data)
	}
}

// childDiskWipe delivers one output in Dir mode into LEASH_DIR (disk
// allowed), holds the file open across Close and prints what the held
// descriptor still reads.
func childDiskWipe() {
	r, err := New(Options{Mode: Dir, Dir: os.Getenv("LEASH_DIR"), AllowDisk: true, UID: -1, GID: -1},
		[]Output{{Name: "pw", Kind: Field, Secret: "s", Field: "password"}})
	if err == nil {
		_, err = r.Update(map[string]Secret{"s": {Data: NewValues(map[string]any{"password": "wipe-me"})}}, false)
	}
	if err != nil {
		json.NewEncoder(os.Stdout).Encode(err.Error())
		return
	}
	p, _ := r.Path("pw")
	held, err := os.Open(p)
	if err != nil {
		json.NewEncoder(os.Stdout).Encode(err.Error())
		return
	}
	if err := r.Close(); err != nil {
		json.NewEncoder(os.Stdout).Encode(err.Error())
		return
	}
	b, err := io.ReadAll(held)
	json.NewEncoder(os.Stdout).Encode(fmt.Sprintf("held %d %v", len(b), err))
}

// childDirHolder creates a Dir-mode renderer in LEASH_DIR, prints its
// directory, and on SIGTERM closes it and exits 0 (what main does).
func childDirHolder() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	r, err := New(Options{Mode: Dir, Dir: os.Getenv("LEASH_DIR"), UID: -1, GID: -1},
		[]Output{{Name: "pw", Kind: Field, Secret: "s", Field: "password"}})
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	if _, err := r.Update(map[string]Secret{"s": {Data: NewValues(map[string]any{"password": "x"})}}, true); err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	p, _ := r.Path("pw")
	fmt.Println(filepath.Dir(p))
	<-sig
	if err := r.Close(); err != nil {
		os.Exit(3)
	}
	os.Exit(0)
}

var (
	childBinOnce sync.Once
	childBinDir  string
	childBinPath string
	childBinErr  error
)

// childBinary returns a copy of the test binary that any user can execute
// (go test's build directory is private to root).
func childBinary(t *testing.T) string {
	t.Helper()
	childBinOnce.Do(func() {
		self, err := os.Executable()
		if err != nil {
			childBinErr = err
			return
		}
		childBinDir, err = os.MkdirTemp("", "leash-render-child-")
		if err != nil {
			childBinErr = err
			return
		}
		os.Chmod(childBinDir, 0o755)
		childBinPath = filepath.Join(childBinDir, "child")
		b, err := os.ReadFile(self)
		if err == nil {
			err = os.WriteFile(childBinPath, b, 0o755)
		}
		childBinErr = err
	})
	if childBinErr != nil {
		t.Fatal(childBinErr)
	}
	return childBinPath
}

// child is a running helper process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

const nobody = 65534

// emulatorEnv names the user-mode emulator (qemu-arm-static) that make
// test-cross runs a foreign-architecture test binary under with go test
// -exec. Without binfmt_misc the kernel cannot exec that binary itself, so
// the helper child is started through the emulator too.
const emulatorEnv = "LEASH_TEST_EMULATOR"

// startChild runs the test binary in mode with files as fds 3.. and env;
// asNobody runs it as uid/gid 65534.
func startChild(t *testing.T, mode string, asNobody bool, files []*os.File, env ...string) *child {
	t.Helper()
	if os.Geteuid() != 0 && asNobody {
		t.Skip("needs root to run a child as another user")
	}
	cmd := exec.Command(childBinary(t))
	if emu := os.Getenv(emulatorEnv); emu != "" {
		cmd = exec.Command(emu, childBinary(t))
	}
	cmd.Dir = "/"
	// atexit_sleep_ms: a -race child otherwise sleeps 1s in os.Exit.
	cmd.Env = append([]string{childEnv + "=" + mode, "PATH=/usr/bin:/bin", "GORACE=atexit_sleep_ms=0"}, env...)
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	if asNobody {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	}
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
	c := &child{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(func() {
		c.stdin.Close()
		c.cmd.Process.Kill()
		c.cmd.Wait()
	})
	return c
}

// readJSON decodes the child's next line into v, failing the test after a
// deadline instead of hanging.
func (c *child) readJSON(t *testing.T, v any) {
	t.Helper()
	type res struct {
		line []byte
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		l, err := c.out.ReadBytes('\n')
		ch <- res{l, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("child output: %v", r.err)
		}
		if err := json.Unmarshal(r.line, v); err != nil {
			t.Fatalf("child output %q: %v", r.line, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("child did not answer within 30s")
	}
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
