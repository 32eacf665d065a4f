package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/leash-dev/leash/lease"
	"golang.org/x/sys/unix"
)

// leaseRow is one lease in /v1/leases: state only, never secret data.
type leaseRow struct {
	Name    string   `json:"name"`
	Outputs []string `json:"outputs"` // the outputs the user named (-s NAME=..., -t NAME=...)
	Path    string   `json:"path"`
	// Kind is "lease" (renewed or replaced before it expires), "static"
	// (a static role: Vault rotates it at NextRotation) or "secret" (no
	// lease: a KV secret, a certificate without one; read again at
	// NextRead).
	Kind         string    `json:"kind"`
	Fingerprint  string    `json:"fingerprint,omitempty"`
	Issued       time.Time `json:"issued"`
	Expires      time.Time `json:"expires,omitzero"`
	NextRenewal  time.Time `json:"next_renewal,omitzero"`  // a lease's next renewal or hand-over
	NextRead     time.Time `json:"next_read,omitzero"`     // no lease: when leash reads it again
	NextRotation time.Time `json:"next_rotation,omitzero"` // static role: when Vault rotates it
	TTL          float64   `json:"ttl_seconds"`
	Renewals     int       `json:"renewals"`
	Failures     int       `json:"failures"`
	failing      bool      // failed since the last success
}

// status is leash's live state for the status server and the audit trail.
// It is fed by lease events and by the run loop; its methods are safe for
// concurrent use.
type status struct {
	mu         sync.Mutex
	leases     map[string]*leaseRow // by secret name (Spec.ID)
	delivered  bool                 // every secret rendered for the child
	running    bool                 // the child runs
	rotateFail bool                 // the last rotation could not be applied
	counters   map[string]float64   // metric name{labels} -> value
	latency    histogram
	now        func() time.Time
}

func newStatus() *status {
	return &status{leases: map[string]*leaseRow{}, counters: map[string]float64{}, latency: newHistogram(), now: time.Now}
}

// unhealthyAfter: consecutive failures that make a lease "about to be lost"
// even while its expiry is still far.
const unhealthyAfter = 3

// event applies a lease event.
func (s *status) event(e lease.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.ID == "" {
		if e.Kind == lease.EventFailed {
			s.counters[fmt.Sprintf(`leash_failures_total{name="",outputs="",op=%q}`, e.Op)]++
		}
		return
	}
	r := s.leases[e.ID]
	if r == nil {
		r = &leaseRow{Name: e.ID, Outputs: e.Outputs, Path: e.Path}
		s.leases[e.ID] = r
	}
	switch e.Kind {
	case lease.EventIssued, lease.EventRotated, lease.EventChanged:
		*r = leaseRow{Name: e.ID, Outputs: e.Outputs, Path: e.Path, Kind: "lease", Fingerprint: e.Fingerprint, Issued: e.Time,
			Expires: e.ExpiresAt, NextRenewal: e.Next, TTL: e.TTL.Seconds()}
		if e.Fingerprint == "" {
			r.Kind, r.NextRenewal, r.NextRead, r.NextRotation = "secret", time.Time{}, e.Next, e.Rotation
			if !e.Rotation.IsZero() {
				r.Kind = "static"
			}
		}
		if e.Kind == lease.EventRotated {
			s.counters[fmt.Sprintf(`leash_rotations_total{name=%q,outputs=%q}`, e.ID, outputsLabel(e.Outputs))]++
		}
	case lease.EventRenewed:
		r.Renewals++
		r.Expires, r.NextRenewal, r.TTL, r.failing = e.ExpiresAt, e.Next, e.TTL.Seconds(), false
		s.counters[fmt.Sprintf(`leash_renewals_total{name=%q,outputs=%q}`, e.ID, outputsLabel(e.Outputs))]++
	case lease.EventUnchanged:
		r.NextRead, r.failing = e.Next, false
		if !e.Rotation.IsZero() {
			r.NextRotation = e.Rotation
		}
	case lease.EventFailed:
		r.Failures++
		r.failing = true
		s.counters[fmt.Sprintf(`leash_failures_total{name=%q,outputs=%q,op=%q}`, e.ID, outputsLabel(e.Outputs), e.Op)]++
	case lease.EventLost:
		r.failing = true
		r.Expires = e.ExpiresAt
	}
}

// request records the duration of one request to Vault (lease.Config.OnRequest).
func (s *status) request(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency.observe(d.Seconds())
}

// set records run-loop state: delivered, running, rotation failures.
func (s *status) set(f func(s *status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *status) count(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counters[name]++
}

// health says whether leash and its child are ready, and why not.
func (s *status) health() (ok bool, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.delivered:
		return false, "starting: secrets not delivered yet"
	case !s.running:
		return false, "the child is not running"
	case s.rotateFail:
		return false, "the last rotation could not be applied"
	}
	now := s.now()
	for _, r := range s.sortedLocked() {
		if !r.failing {
			continue
		}
		left := r.Expires.Sub(now)
		if r.Failures >= unhealthyAfter || (!r.Expires.IsZero() && left < time.Duration(r.TTL*float64(time.Second))/3) {
			return false, fmt.Sprintf("lease %s (%s) is failing and expires in %s", r.Name, r.Fingerprint, left.Round(time.Second))
		}
	}
	return true, "ok"
}

func (s *status) sortedLocked() []leaseRow {
	out := make([]leaseRow, 0, len(s.leases))
	for _, r := range s.leases {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *status) rows() []leaseRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedLocked()
}

// routes serves /healthz, /v1/leases and /metrics.
func (s *status) routes() map[string]statusRoute {
	return map[string]statusRoute{
		"/healthz": func() (int, string, []byte) {
			ok, why := s.health()
			code := http.StatusOK
			if !ok {
				code = http.StatusServiceUnavailable
			}
			return code, "text/plain; charset=utf-8", []byte(why + "\n")
		},
		"/v1/leases": func() (int, string, []byte) {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetIndent("", "  ")
			_ = enc.Encode(map[string]any{"leases": s.rows()})
			return http.StatusOK, "application/json", b.Bytes()
		},
		"/metrics": func() (int, string, []byte) {
			var b bytes.Buffer
			s.writeMetrics(&b)
			return http.StatusOK, "text/plain; version=0.0.4; charset=utf-8", b.Bytes()
		},
	}
}

// writeMetrics writes the Prometheus text exposition format (0.0.4) by hand:
// a dozen series do not justify client_golang's 2.6 MB in a binary whose
// size and RSS are selling points.
func (s *status) writeMetrics(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := s.sortedLocked()
	gauge := func(name, help string, val func(r leaseRow) (float64, bool)) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		for _, r := range rows {
			if v, ok := val(r); ok {
				fmt.Fprintf(w, "%s{name=%q,outputs=%q,path=%q} %g\n", name, r.Name, outputsLabel(r.Outputs), r.Path, v)
			}
		}
	}
	gauge("leash_lease_expiry_timestamp_seconds", "When the current lease expires (Unix time).", func(r leaseRow) (float64, bool) {
		return unixSeconds(r.Expires), !r.Expires.IsZero()
	})
	gauge("leash_lease_next_renewal_timestamp_seconds", "When leash next renews or replaces the lease, or reads a secret without a lease again (Unix time).", func(r leaseRow) (float64, bool) {
		next := earliestTime(r.NextRenewal, r.NextRead)
		return unixSeconds(next), !next.IsZero()
	})
	gauge("leash_static_next_rotation_timestamp_seconds", "When Vault rotates a static role's credential next (Unix time).", func(r leaseRow) (float64, bool) {
		return unixSeconds(r.NextRotation), !r.NextRotation.IsZero()
	})
	counter := func(name, help string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		var keys []string
		for k := range s.counters {
			if strings.HasPrefix(k, name+"{") || k == name {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "%s %g\n", k, s.counters[k])
		}
	}
	counter("leash_renewals_total", "Lease renewals that succeeded.")
	counter("leash_failures_total", "Vault operations that failed (each retry counts).")
	counter("leash_rotations_total", "New credentials handed over before expiry.")
	counter("leash_child_restarts_total", "Restarts of the child to pick up new credentials.")
	counter("leash_child_reloads_total", "Reload signals sent to the child.")
	s.latency.write(w, "leash_vault_request_duration_seconds", "Duration of every HTTP request leash sent to Vault (logins, lookups, reads, renewals, revocations; each retry counts), from start-up on.")
}

// earliestTime returns the earlier non-zero time of a and b, or zero.
func earliestTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// outputsLabel is the outputs label: the output names joined by commas, so
// a lease feeding several outputs stays one series (summing per-output
// series would count its renewals once per output).
func outputsLabel(outs []string) string { return strings.Join(outs, ",") }

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// histogram is a fixed-bucket Prometheus histogram.
type histogram struct {
	bounds []float64
	counts []uint64
	sum    float64
	n      uint64
}

func newHistogram() histogram {
	b := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	return histogram{bounds: b, counts: make([]uint64, len(b))}
}

func (h *histogram) observe(v float64) {
	for i, b := range h.bounds {
		if v <= b {
			h.counts[i]++
		}
	}
	h.sum += v
	h.n++
}

func (h *histogram) write(w io.Writer, name, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	for i, b := range h.bounds {
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", name, b, h.counts[i])
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, h.n, name, h.sum, name, h.n)
}

// statusListener opens --status-addr: a Unix socket path (anything with a
// /) or a loopback host:port. Non-loopback addresses are refused: the lease
// table is for the pod or host, not the network.
type statusListener struct {
	// lookup resolves a host name to its addresses; nil means the system
	// resolver.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// listenStatus opens addr with the system resolver.
func listenStatus(addr string) (net.Listener, error) {
	return statusListener{}.listen(addr)
}

func (sl statusListener) listen(addr string) (net.Listener, error) {
	if strings.Contains(addr, "/") {
		return listenStatusUnix(addr)
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
func (sl statusListener) loopbackIP(host string) (netip.Addr, error) {
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
	lookup := sl.lookup
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

// loopbackHost reports whether a request's Host header (without its port)
// names a loopback address: an IP literal, or localhost or a name under it
// (RFC 6761: clients resolve these themselves, never through DNS). Anything
// else is a page on another site that pointed a name of its own at
// 127.0.0.1 (DNS rebinding), or a client that came through a proxy.
func loopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil {
		return ip.Unmap().IsLoopback()
	}
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// serveStatus serves s on l until ctx is done. On TCP the Host header must
// name loopback; on a Unix socket any Host will do (no browser reaches
// one).
func serveStatus(ctx context.Context, l net.Listener, s *status) error {
	srv := newStatusServer(s.routes())
	if l.Addr().Network() == "tcp" {
		srv.allowHost = loopbackHost
	}
	return srv.Serve(ctx, l)
}

// listenStatusUnix listens on the Unix socket path, mode 0660 whatever
// leash's umask. Its directory and every ancestor must be writable only by
// their owner, root or leash's user, unless sticky (as OpenSSH and
// systemd require): whoever else can write there could replace the socket
// and answer leash's clients. The socket is bound in a private directory
// made for it, its mode set there through a descriptor of that directory,
// and it is renamed into place: no step follows a name that another user
// could have swapped for a symlink (issue 24: a chmod by path after bind
// let a root leash change the mode of any file).
func listenStatusUnix(addr string) (net.Listener, error) {
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
	return &unixListener{UnixListener: ul, path: path, dev: st.Dev, ino: st.Ino}, nil
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
		if unix.Lstat(l.path, &st) == nil && st.Dev == l.dev && st.Ino == l.ino {
			os.Remove(l.path)
		}
	})
	return err
}

// statusClient returns an HTTP client and base URL for --status-addr.
func statusClient(addr string) (*http.Client, string) {
	if strings.Contains(addr, "/") {
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}}
		return &http.Client{Transport: tr, Timeout: 5 * time.Second}, "http://leash"
	}
	return &http.Client{Timeout: 5 * time.Second}, "http://" + addr
}

// run prints the lease table of a running leash.
func (c *StatusCmd) run(ctx context.Context, w io.Writer) error {
	client, base := statusClient(c.StatusAddr)
	if c.Check {
		return c.check(ctx, client, base, w)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/leases", nil)
	if err != nil {
		return &usageError{err}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("leash status: %w (is leash running with --status-addr %s?)", err, c.StatusAddr)
	}
	defer resp.Body.Close()
	var body struct{ Leases []leaseRow }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("leash status: bad answer from %s: %w", c.StatusAddr, err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// OUTPUTS are the names the user chose; SECRET is what leash asks
	// Vault for (the path, with a write's parameters).
	// Rows without a lease say so, and when Vault rotates a static role.
	fmt.Fprintln(tw, "OUTPUTS\tSECRET\tLEASE\tISSUED\tEXPIRES\tNEXT\tRENEWALS\tFAILURES")
	for _, r := range body.Leases {
		lease, next := r.Fingerprint, "renew "+fmtWhen(r.NextRenewal)
		switch {
		case r.Kind == "static":
			lease, next = "none (static role, rotates "+fmtWhen(r.NextRotation)+")", "read "+fmtWhen(r.NextRead)
		case r.Fingerprint == "":
			lease, next = "none", "read "+fmtWhen(r.NextRead)
		case r.NextRenewal.IsZero():
			next = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", orDash(strings.Join(r.Outputs, ",")), r.Name, lease,
			fmtWhen(r.Issued), fmtWhen(r.Expires), next, r.Renewals, r.Failures)
	}
	return tw.Flush()
}

// check prints /healthz and fails with exit status 1 when leash is not
// healthy or cannot be reached.
func (c *StatusCmd) check(ctx context.Context, client *http.Client, base string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return &usageError{err}
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(w, "unreachable: %v\n", err)
		return exitRequest(1)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprint(w, string(body))
	if resp.StatusCode != http.StatusOK {
		return exitRequest(1)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtWhen(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Until(t).Round(time.Second)
	if d >= 0 {
		return fmt.Sprintf("%s (in %s)", t.Local().Format(time.TimeOnly), d)
	}
	return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.TimeOnly), -d)
}
