package status

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
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

// TestMain turns the test binary into a helper program (the attacker of
// TestStatusSocketRace) when internal/testchild's environment asks for it.
func TestMain(m *testing.M) {
	testchild.Main()
	os.Exit(m.Run())
}

func TestStatusAddrMustBeLoopback(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:9000", ":9000", "[::]:9000", "10.1.2.3:80", "[::ffff:10.1.2.3]:80", "example.com:80", "127.0.0.1.nip.io:80", "nonsense"} {
		if l, err := Listen(addr); err == nil {
			l.Close()
			t.Errorf("Listen(%q) accepted a non-loopback address", addr)
		}
	}
}

// localhost in --status-addr is resolved once; every address must be
// loopback, and leash listens on that address, not on whatever the name
// resolves to at bind time. The resolver stands in for a hosts file.
func TestStatusAddrLocalhostMustResolveToLoopback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		addrs   []string
		err     error
		want    string // the address listened on, or "" for an error
		wantErr string
	}{
		{"loopback v4", []string{"127.0.0.1"}, nil, "127.0.0.1", ""},
		{"loopback v4 first", []string{"::1", "127.0.0.1"}, nil, "127.0.0.1", ""},
		{"v4-mapped loopback", []string{"::ffff:127.0.0.1"}, nil, "127.0.0.1", ""},
		{"all addresses", []string{"0.0.0.0"}, nil, "", "localhost resolves to 0.0.0.0, which is not loopback"},
		{"one not loopback", []string{"127.0.0.1", "192.0.2.7"}, nil, "", "localhost resolves to 192.0.2.7, which is not loopback"},
		{"nothing", nil, nil, "", "localhost resolves to no address"},
		{"lookup fails", nil, errors.New("no such host"), "", "resolve localhost: no such host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sl := Listener{Lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
				if host != "localhost" {
					t.Errorf("looked up %q", host)
				}
				var out []netip.Addr
				for _, a := range tc.addrs {
					out = append(out, netip.MustParseAddr(a))
				}
				return out, tc.err
			}}
			l, err := sl.Listen("localhost:0")
			if tc.want == "" {
				if err == nil {
					l.Close()
					t.Fatalf("listened on %s", l.Addr())
				}
				if !strings.Contains(err.Error(), `--status-addr "localhost:0": `+tc.wantErr) {
					t.Errorf("error %q does not name the flag and say %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if got := l.Addr().(*net.TCPAddr).IP.String(); got != tc.want {
				t.Errorf("listening on %s, want %s", l.Addr(), tc.want)
			}
		})
	}
	t.Run("localhost", func(t *testing.T) { // the system resolver
		l, err := Listen("localhost:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if ip := l.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
			t.Errorf("localhost:0 listens on %s", l.Addr())
		}
	})
}

// listenAndClose listens on the socket path, checks what it made and
// closes it.
func listenAndClose(t *testing.T, path string) error {
	t.Helper()
	l, err := Listen(path)
	if err != nil {
		return err
	}
	defer func() {
		l.Close()
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind after Close (%v)", path, err)
		}
	}()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	// 0660 whatever the umask (the test's is 022).
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("%s: mode %v, want a socket with mode 0660", path, fi.Mode())
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != os.Geteuid() {
		t.Errorf("%s: owned by uid %d", path, st.Uid)
	}
	if got := l.Addr().String(); got != path {
		t.Errorf("Addr = %s, want %s", got, path)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".leash-") {
			t.Errorf("private directory %s left behind", e.Name())
		}
	}
	if _, err := net.Dial("unix", path); err != nil {
		t.Errorf("dial %s: %v", path, err)
	}
	return nil
}

// The status socket's directory and its ancestors must not be writable by
// other users unless sticky, nor owned by another user: they could replace
// the socket. What is there already is replaced only if it is a dead
// socket.
func TestStatusSocketDirMustBeSafe(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give a directory to another user")
	}
	root := t.TempDir()
	mkdir := func(name string, mode os.FileMode, uid int) string {
		d := filepath.Join(root, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, -1); err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tc := range []struct {
		name, dir, wantErr string // "" for accepted
	}{
		{"private", mkdir("private", 0o700, 0), ""},
		{"0755", mkdir("shared", 0o755, 0), ""},
		{"sticky world-writable", mkdir("tmp", os.ModeSticky|0o777, 0), ""},
		{"world-writable", mkdir("open", 0o777, 0), "(mode 0777) can be written by other users"},
		{"group-writable", mkdir("group", 0o770, 0), "(mode 0770) can be written by other users"},
		{"another user's", mkdir("nobody", 0o755, 65534), "is owned by uid 65534, not by root or leash's user"},
		{"under a world-writable one", mkdir("open/sub", 0o700, 0), filepath.Join(root, "open") + " (mode 0777)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := listenAndClose(t, filepath.Join(tc.dir, "s.sock"))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && err == nil:
				t.Fatal("accepted")
			case tc.wantErr != "" && (!strings.Contains(err.Error(), "--status-addr "+filepath.Join(tc.dir, "s.sock")+": ") || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %q does not name the flag and say %q", err, tc.wantErr)
			}
		})
	}

	dir := mkdir("existing", 0o700, 0)
	victim := filepath.Join(root, "victim")
	if err := os.WriteFile(victim, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	if err := os.Symlink(victim, sock); err != nil {
		t.Fatal(err)
	}
	if err := listenAndClose(t, sock); err == nil || !strings.Contains(err.Error(), "exists and is not a socket") {
		t.Errorf("a symlink at the path: %v, want refused", err)
	}
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o600 {
		t.Errorf("the symlink's target became %v", fi.Mode())
	}
	os.Remove(sock)
	live, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "another process is serving there") {
		t.Errorf("a live socket at the path: %v, want refused", err)
	}
	// A socket whose server died (a killed leash) is replaced.
	live.(*unixListener).UnixListener.Close()
	if err := listenAndClose(t, sock); err != nil {
		t.Errorf("a dead socket at the path: %v, want it replaced", err)
	}
}

// A second user who can write the socket's directory races leash's bind:
// in a directory it could swap the socket in, leash refuses to listen; in
// a sticky one it listens, and nothing the attacker places there makes a
// root leash change another file's mode.
func TestStatusSocketRace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the attacker as nobody")
	}
	// The attacker is the test binary, as nobody: a copy it can run.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	binDir, err := os.MkdirTemp("", "leash-attacker-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	attacker := filepath.Join(binDir, "attacker")
	if err := os.WriteFile(attacker, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mode   os.FileMode
		refuse bool
	}{
		{"writable", 0o777, true},
		{"sticky", os.ModeSticky | 0o777, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			victim := filepath.Join(t.TempDir(), "victim")
			if err := os.WriteFile(victim, []byte("root's"), 0o600); err != nil {
				t.Fatal(err)
			}
			dir, err := os.MkdirTemp("", "leash-race-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			sock := filepath.Join(dir, "s.sock")
			cmd := exec.Command(attacker, sock, victim)
			cmd.Env = []string{testchild.EnvMode + "=swap-socket"}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Kill()
				cmd.Wait()
				if s := stderr.String(); s != "" {
					t.Logf("attacker: %s", s)
				}
			}()
			if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
				t.Fatalf("attacker said %q, %v; want ready", line, err)
			}
			var listened, refused int
			for range 2000 {
				l, err := Listen(sock)
				if err != nil {
					refused++
					// Refused for the directory, or for the attacker's
					// symlink at the name.
					want := "exists and is not a socket"
					if tc.refuse {
						want = "can be written by other users"
					}
					if !strings.Contains(err.Error(), want) {
						t.Fatalf("refused for another reason: %v", err)
					}
					continue
				}
				listened++
				l.Close()
			}
			if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o600 {
				t.Errorf("the attacker's target became %v", fi.Mode().Perm())
			}
			if tc.refuse && listened > 0 {
				t.Errorf("listened %d times in a directory others can write", listened)
			}
			if !tc.refuse && listened == 0 {
				t.Errorf("never listened in the sticky directory (refused %d times)", refused)
			}
			t.Logf("listened %d, refused %d", listened, refused)
		})
	}
}

func TestAuditFileRefusesLooseModeAndSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose")
	if err := os.WriteFile(loose, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAuditFile(loose); err == nil || !strings.Contains(err.Error(), loose) {
		t.Errorf("OpenAuditFile(0644 file) = %v, want an error naming it", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "target"), link); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAuditFile(link); err == nil {
		t.Error("openAudit followed a symlink")
	}
}

// TestAuditFileLockedByOneLeash: a second leash cannot append to a trail
// that a running leash writes (their runs would interleave).
func TestAuditFileLockedByOneLeash(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	f, err := OpenAuditFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if g, err := OpenAuditFile(path); err == nil || !strings.Contains(err.Error(), "another leash") {
		if g != nil {
			g.Close()
		}
		t.Errorf("second openAudit = %v, want the file refused as in use", err)
	}
}

// The watchdog is leash's only when WATCHDOG_PID is unset or leash's pid,
// and WATCHDOG_USEC is a positive number of microseconds.
func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, c := range []struct {
		socket, usec, pid string
		want              time.Duration
	}{
		{"/run/notify", "100000", "", 50 * time.Millisecond},
		{"/run/notify", "100000", self, 50 * time.Millisecond},
		{"/run/notify", "100000", "1", 0},
		{"/run/notify", "0", "", 0},
		{"/run/notify", "soon", "", 0},
		{"/run/notify", "-5", "", 0},
		{"", "100000", "", 0},
	} {
		t.Setenv("WATCHDOG_USEC", c.usec)
		t.Setenv("WATCHDOG_PID", c.pid)
		if got := (Notifier{Addr: c.socket}).WatchdogInterval(); got != c.want {
			t.Errorf("socket %q WATCHDOG_USEC=%q WATCHDOG_PID=%q: %s, want %s", c.socket, c.usec, c.pid, got, c.want)
		}
	}
}
