package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// The control socket (--control-socket) is leash's only writable
// interface: `leash rotate` asks through it for a hand-over now. It is off
// unless asked for; it is a Unix socket inside a directory of mode 0700
// owned by leash's uid, and every connection's peer is checked with
// SO_PEERCRED (leash's own uid or root), so that a loosened directory
// still lets no other user in. The status server stays read-only.
//
// The protocol is one JSON line each way per connection.

// controlRequest is what `leash rotate` asks.
type controlRequest struct {
	Op    string        `json:"op"`              // "rotate"
	Names []string      `json:"names,omitempty"` // none: every secret with a lease or expiry
	Drill bool          `json:"drill,omitempty"` // revoke the old credential right after delivery
	Watch time.Duration `json:"watch,omitempty"` // drill: how long to watch the child after the revocation
}

// controlReply is leash's answer.
type controlReply struct {
	OK      bool          `json:"ok"`
	Error   string        `json:"error,omitempty"`
	Rotated []rotatedInfo `json:"rotated,omitempty"`
	Drill   *drillReport  `json:"drill,omitempty"`
}

// rotatedInfo names one handed-over secret by its fingerprints.
type rotatedInfo struct {
	Name     string `json:"name"`
	Lease    string `json:"lease"`
	Previous string `json:"previous"`
}

// drillReport says whether the child survived a drill.
type drillReport struct {
	PIDBefore    int    `json:"pid_before"`
	PIDAfter     int    `json:"pid_after"`
	ChildRunning bool   `json:"child_running"`       // the child runs at the end of the watch (signal mode: the same process)
	Healthy      bool   `json:"healthy"`             // /healthz stayed 200 throughout
	Unhealthy    string `json:"unhealthy,omitempty"` // why it did not
	Watched      string `json:"watched"`
}

// survived reports a successful drill.
func (d *drillReport) survived() bool { return d.ChildRunning && d.Healthy }

const (
	maxControlRequest = 4 << 10
	controlReadLimit  = 5 * time.Second // for the request line
)

// listenControl creates the control socket at path. Its directory is
// created by leash with mode 0700 when missing; an existing one must be a
// real directory (not a symlink) of leash's uid with mode 0700, which no
// other user can enter or change. The socket is bound inside it, so there
// is no moment when another user could reach it. A socket left by a killed
// leash is replaced; a live one is refused. The returned cleanup removes
// the socket, and the directory if leash created it.
func listenControl(path string) (net.Listener, func(), error) {
	if path == "" || strings.HasSuffix(path, "/") {
		return nil, nil, fmt.Errorf("--control-socket %q: want the path of a socket, e.g. /run/leash/control.sock", path)
	}
	path = filepath.Clean(path)
	dir := filepath.Dir(path)
	created := false
	switch err := os.Mkdir(dir, 0o700); {
	case err == nil:
		created = true
	case !errors.Is(err, os.ErrExist):
		return nil, nil, fmt.Errorf("--control-socket %s: create its directory: %w", path, err)
	}
	if err := checkControlDir(dir, created); err != nil {
		return nil, nil, fmt.Errorf("--control-socket %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, nil, fmt.Errorf("--control-socket %s: exists and is not a socket; remove it", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, nil, fmt.Errorf("--control-socket %s: another leash is listening there", path)
		}
		_ = os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, nil, fmt.Errorf("--control-socket %s: %w", path, err)
	}
	cleanup := func() {
		l.Close() // removes the socket
		if created {
			_ = os.Remove(dir)
		}
	}
	return l, cleanup, nil
}

// checkControlDir refuses a directory another user could enter or change.
// created: leash just made it, and it fixes a mode the umask narrowed.
func checkControlDir(dir string, created bool) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("directory %s: %w (it must be a real directory, not a symlink)", dir, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("directory %s: %w", dir, err)
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("directory %s is owned by uid %d, not leash's uid %d; give a directory of leash's own", dir, st.Uid, os.Geteuid())
	}
	if mode := st.Mode & 0o777; mode != 0o700 {
		if !created {
			return fmt.Errorf("directory %s has mode %04o; it must be 0700 (chmod 700 %s), or name a directory that does not exist yet", dir, mode, dir)
		}
		if err := unix.Fchmod(fd, 0o700); err != nil {
			return fmt.Errorf("directory %s: %w", dir, err)
		}
	}
	return nil
}

// peerUID returns the uid of the process at the other end of c, as the
// kernel recorded it at connect(2).
func peerUID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, err
	}
	uid, cerr := -1, error(nil)
	if err := raw.Control(func(fd uintptr) {
		uid, cerr = socketPeerUID(int(fd))
	}); err != nil {
		return -1, err
	}
	return uid, cerr
}

// serveControl answers control requests on l with handle, one connection
// at a time (a rotation is one at a time anyway), until ctx is done. It
// tells refused about each request it turns down, with the reason the
// peer is given.
func serveControl(ctx context.Context, l net.Listener, handle func(context.Context, controlRequest) controlReply, refused func(error), log hclog.Logger) error {
	var (
		mu   sync.Mutex
		conn net.Conn
	)
	stop := context.AfterFunc(ctx, func() {
		l.Close()
		mu.Lock()
		if conn != nil {
			conn.Close()
		}
		mu.Unlock()
	})
	defer stop()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		mu.Lock()
		conn = c
		mu.Unlock()
		if ctx.Err() != nil {
			c.Close()
			return nil
		}
		serveControlConn(ctx, c, handle, refused, log)
		mu.Lock()
		conn = nil
		mu.Unlock()
		c.Close()
	}
}

func serveControlConn(ctx context.Context, c net.Conn, handle func(context.Context, controlRequest) controlReply, refused func(error), log hclog.Logger) {
	reply := func(r controlReply) {
		b, _ := json.Marshal(r)
		_ = c.SetWriteDeadline(time.Now().Add(controlReadLimit))
		_, _ = c.Write(append(b, '\n'))
	}
	refuse := func(why string) {
		refused(errors.New(why))
		reply(controlReply{Error: why})
	}
	// The request is read before the peer is checked: closing with it
	// unread would reset the connection, and the refusal would be lost.
	_ = c.SetReadDeadline(time.Now().Add(controlReadLimit))
	line, rerr := bufio.NewReader(io.LimitReader(c, maxControlRequest)).ReadBytes('\n')
	_ = c.SetReadDeadline(time.Time{})
	uid, err := peerUID(c)
	if err != nil || (uid != os.Geteuid() && uid != 0) {
		log.Warn("control connection refused", "uid", uid, "error", err)
		refuse(fmt.Sprintf("refused: uid %d is neither leash's uid %d nor root", uid, os.Geteuid()))
		return
	}
	if rerr != nil {
		refuse("no request line within 5s and 4 KiB")
		return
	}
	var req controlRequest
	if err := json.Unmarshal(line, &req); err != nil || req.Op != "rotate" {
		refuse("malformed request: want {\"op\":\"rotate\",...}")
		return
	}
	log.Info("rotation requested", "uid", uid, "names", strings.Join(req.Names, ","), "drill", req.Drill)
	reply(handle(ctx, req))
}

// RotateCmd is `leash rotate`.
type RotateCmd struct {
	Names         []string      `arg:"" optional:"" name:"name" help:"Outputs to rotate (default: every secret with a lease or an expiry)."`
	ControlSocket string        `name:"control-socket" env:"LEASH_CONTROL_SOCKET" required:"" placeholder:"PATH" help:"The running leash's --control-socket."`
	Drill         bool          `name:"drill" help:"Revoke the old credential right after delivery (no grace), then report whether the child kept running and /healthz stayed healthy."`
	Watch         time.Duration `name:"watch" default:"5s" help:"With --drill: how long to watch the child after the old credential is revoked."`
	Timeout       time.Duration `name:"timeout" default:"2m" help:"Give up waiting for the answer after DUR."`
}

// run sends the request and prints the answer; any failure is exit 1.
func (c *RotateCmd) run(ctx context.Context, w io.Writer) error {
	if c.Watch < 0 || c.Timeout <= 0 {
		return &usageError{errors.New("--watch must not be negative and --timeout must be positive")}
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout+c.Watch)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.ControlSocket)
	if err != nil {
		return &rotateError{fmt.Sprintf("%v (is leash running with --control-socket %s, and are you its user or root?)", err, c.ControlSocket)}
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	b, _ := json.Marshal(controlRequest{Op: "rotate", Names: c.Names, Drill: c.Drill, Watch: c.Watch})
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return &rotateError{fmt.Sprintf("send to %s: %v", c.ControlSocket, err)}
	}
	line, err := bufio.NewReader(io.LimitReader(conn, 1<<20)).ReadBytes('\n')
	if err != nil {
		if ctx.Err() != nil {
			return &rotateError{fmt.Sprintf("no answer from %s within %s", c.ControlSocket, c.Timeout+c.Watch)}
		}
		return &rotateError{fmt.Sprintf("no answer from %s: %v (leash may have exited: its child stopped)", c.ControlSocket, err)}
	}
	var r controlReply
	if err := json.Unmarshal(line, &r); err != nil {
		return &rotateError{fmt.Sprintf("bad answer from %s: %v", c.ControlSocket, err)}
	}
	for _, s := range r.Rotated {
		fmt.Fprintf(w, "rotated %s: lease %s (was %s)\n", s.Name, orDash(s.Lease), orDash(s.Previous))
	}
	if d := r.Drill; d != nil {
		fmt.Fprintf(w, "drill: child running: %t (pid %d, was %d); healthy throughout: %t", d.ChildRunning, d.PIDAfter, d.PIDBefore, d.Healthy)
		if d.Unhealthy != "" {
			fmt.Fprintf(w, " (%s)", d.Unhealthy)
		}
		fmt.Fprintf(w, "; watched %s after the revocation\n", d.Watched)
	}
	if !r.OK {
		if r.Error == "" {
			r.Error = "the drill failed"
		}
		return &rotateError{r.Error}
	}
	return nil
}

// rotateError: leash rotate did not succeed (exit 1).
type rotateError struct{ msg string }

func (e *rotateError) Error() string { return "leash rotate: " + e.msg }
