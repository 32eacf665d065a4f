package status

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Listener opens --status-addr: a Unix socket path (anything with a /)
// or a loopback host:port. Non-loopback addresses are refused: the lease
// table is for the pod or host, not the network. The zero value uses the
// system resolver.
type Listener struct {
	// Lookup resolves a host name to its addresses; nil means the system
	// resolver.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// Listen opens addr with the system resolver.
func Listen(addr string) (net.Listener, error) {
	return Listener{}.Listen(addr)
}

// Listen opens addr. A Unix socket's Close removes it, unless another has
// taken its place.
func (sl Listener) Listen(addr string) (net.Listener, error) {
	if strings.Contains(addr, "/") {
		return listenUnix(addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--status-addr %q: want a Unix socket path or a loopback host:port: %w", addr, err)
	}
	ip, err := sl.loopbackIP(host)
	if err != nil {
		return nil, fmt.Errorf("--status-addr %q: %w; use 127.0.0.1:PORT, [::1]:PORT, localhost:PORT or a Unix socket path", addr, err)
	}
	// The address itself, not the name: net.Listen would resolve the name
	// again, and might get another answer.
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), port))
	if err != nil {
		return nil, fmt.Errorf("--status-addr %s: %w", addr, err)
	}
	return l, nil
}

// loopbackIP returns the address to listen on for host: host itself when
// it is a loopback IP address; for localhost what it resolves to, provided
// every address it resolves to is loopback (a hosts file can map localhost
// to 0.0.0.0). Of several, the first IPv4 one is taken, as net.Listen
// would.
func (sl Listener) loopbackIP(host string) (netip.Addr, error) {
	if host == "" {
		return netip.Addr{}, errors.New("no host (that would listen on every address)")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !ip.Unmap().IsLoopback() {
			return netip.Addr{}, fmt.Errorf("%s is not a loopback address", host)
		}
		return ip.Unmap(), nil
	}
	if !strings.EqualFold(host, "localhost") {
		return netip.Addr{}, fmt.Errorf("%s is neither localhost nor a loopback IP address", host)
	}
	lookup := sl.Lookup
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := lookup(ctx, host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("%s resolves to no address", host)
	}
	var bad []string
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			bad = append(bad, a.String())
		}
	}
	if len(bad) > 0 {
		return netip.Addr{}, fmt.Errorf("%s resolves to %s, which is not loopback", host, strings.Join(bad, ", "))
	}
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return a.Unmap(), nil
		}
	}
	return addrs[0], nil
}

// listenUnix listens on the Unix socket path, mode 0660 whatever
// leash's umask. Its directory and every ancestor must be writable only by
// their owner, root or leash's user, unless sticky (as OpenSSH and
// systemd require): whoever else can write there could replace the socket
// and answer leash's clients. The socket is bound in a private directory
// made for it, its mode set there through a descriptor of that directory,
// and it is renamed into place: no step follows a name that another user
// could have swapped for a symlink (issue 24: a chmod by path after bind
// let a root leash change the mode of any file).
func listenUnix(addr string) (net.Listener, error) {
	abs, err := filepath.Abs(addr)
	if err != nil {
		return nil, fmt.Errorf("--status-addr %s: %w", addr, err)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("--status-addr %s: %w", addr, err)
	}
	path := filepath.Join(dir, filepath.Base(abs))
	pfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("--status-addr %s: %w", addr, &os.PathError{Op: "open", Path: dir, Err: err})
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, fmt.Errorf("--status-addr %s: %w", addr, &os.PathError{Op: "fstat", Path: dir, Err: err})
	}
	if err := safeDir(dir, &st); err != nil {
		return nil, fmt.Errorf("--status-addr %s: %w", addr, err)
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if err := unix.Lstat(d, &st); err != nil {
			return nil, fmt.Errorf("--status-addr %s: %w", addr, &os.PathError{Op: "lstat", Path: d, Err: err})
		}
		if err := safeDir(d, &st); err != nil {
			return nil, fmt.Errorf("--status-addr %s: %w", addr, err)
		}
		if d == "/" {
			break
		}
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("--status-addr %s: %s exists and is not a socket; remove it or choose another path", addr, path)
		}
		// A socket left by a leash that was killed is replaced below; a
		// live one would still accept, so refuse to steal it.
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("--status-addr %s: another process is serving there", addr)
		}
	}

	priv := ".leash-" + randomHex(4)
	if err := unix.Mkdirat(pfd, priv, 0o700); err != nil {
		return nil, fmt.Errorf("--status-addr %s: %w", addr, &os.PathError{Op: "mkdir", Path: filepath.Join(dir, priv), Err: err})
	}
	defer unix.Unlinkat(pfd, priv, unix.AT_REMOVEDIR)
	dfd, err := unix.Openat(pfd, priv, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("--status-addr %s: %w", addr, &os.PathError{Op: "open", Path: filepath.Join(dir, priv), Err: err})
	}
	defer unix.Close(dfd)
	l, err := net.Listen("unix", filepath.Join(dir, priv, "s"))
	if err != nil {
		return nil, fmt.Errorf("--status-addr %s: %w", addr, err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // it is renamed; Close below removes it
	// Through dfd, the directory just made, whatever its name now leads to.
	err = unix.Fstatat(dfd, "s", &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil && (st.Mode&unix.S_IFMT != unix.S_IFSOCK || int(st.Uid) != os.Geteuid()) {
		err = errors.New("not the socket leash bound")
	}
	if err == nil {
		err = unix.Fchmodat(dfd, "s", 0o660, 0)
	}
	if err == nil {
		err = unix.Renameat(dfd, "s", pfd, filepath.Base(path))
	}
	if err != nil {
		l.Close()
		unix.Unlinkat(dfd, "s", 0)
		return nil, fmt.Errorf("--status-addr %s: bind in a private directory and rename into place: %w", addr, err)
	}
	return &unixListener{UnixListener: ul, path: path, dev: uint64(st.Dev), ino: st.Ino}, nil
}

// safeDir refuses a directory that a user other than its owner, root or
// leash's user can write without the sticky bit, or one owned by another
// user (who can chmod it).
func safeDir(dir string, st *unix.Stat_t) error {
	euid := os.Geteuid()
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("%s is not a directory", dir)
	case st.Uid != 0 && int(st.Uid) != euid:
		return fmt.Errorf("directory %s is owned by uid %d, not by root or leash's user (%d), who could replace the socket; use a directory root or leash's user owns", dir, st.Uid, euid)
	case st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0:
		return fmt.Errorf("directory %s (mode %04o) can be written by other users, who could replace the socket; chmod go-w %s, set its sticky bit, or use a directory only leash's user can write", dir, st.Mode&0o7777, dir)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// unixListener is the status socket, named path. Close removes the socket
// file, unless another has taken its place (a later leash's).
type unixListener struct {
	*net.UnixListener
	path     string
	dev, ino uint64
	once     sync.Once
}

func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		var st unix.Stat_t
		if unix.Lstat(l.path, &st) == nil && uint64(st.Dev) == l.dev && st.Ino == l.ino {
			os.Remove(l.path)
		}
	})
	return err
}

// Client returns an HTTP client and base URL for a status server at
// addr, as --status-addr names it.
func Client(addr string) (*http.Client, string) {
	if strings.Contains(addr, "/") {
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}}
		return &http.Client{Transport: tr, Timeout: 5 * time.Second}, "http://leash"
	}
	return &http.Client{Timeout: 5 * time.Second}, "http://" + addr
}
