package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The status server is net/http's, with everything bounded: header bytes,
// time per connection, connections at once. It serves three read-only GET
// documents of a few KB, one request per connection (Connection: close),
// to a Unix socket or loopback only.

// route renders one document: status code, content type, body.
type route func() (code int, contentType string, body []byte)

// routes serves /healthz, /v1/leases and /metrics.
func (r *Recorder) routes() map[string]route {
	return map[string]route{
		"/healthz": func() (int, string, []byte) {
			ok, why := r.Health()
			code := http.StatusOK
			if !ok {
				code = http.StatusServiceUnavailable
			}
			return code, plainText, []byte(why + "\n")
		},
		"/v1/leases": func() (int, string, []byte) {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetIndent("", "  ")
			_ = enc.Encode(map[string]any{"leases": r.Leases()})
			return http.StatusOK, "application/json", b.Bytes()
		},
		"/metrics": func() (int, string, []byte) {
			var b bytes.Buffer
			r.WriteMetrics(&b)
			return http.StatusOK, "text/plain; version=0.0.4; charset=utf-8", b.Bytes()
		},
	}
}

// Serve serves r's documents on l until ctx is done, then closes l and
// every open connection and returns nil once all handlers have finished.
// On TCP the Host header must name loopback (DNS rebinding); on a Unix
// socket any Host will do (no browser reaches one).
func Serve(ctx context.Context, l net.Listener, r *Recorder) error {
	s := newServer(r.routes())
	if l.Addr().Network() == "tcp" {
		s.allowHost = loopbackHost
	}
	return s.serve(ctx, l)
}

// server answers GET and HEAD for its routes.
type server struct {
	routes map[string]route
	// headerTimeout bounds a connection from its request's start to the
	// end of its headers, and timeout to the last byte written. Both are
	// set once: a client that trickles a byte at a time (slowloris) cannot
	// extend them.
	headerTimeout, timeout time.Duration
	// maxHeader bounds the request line and headers (net/http allows 4 KB
	// over it).
	maxHeader int
	// maxConns bounds connections open at once (see limitListener).
	maxConns int
	// allowHost says whether the Host header (its port removed) may be
	// answered; nil means any, as on a Unix socket. Others get 421.
	allowHost func(host string) bool
}

func newServer(routes map[string]route) *server {
	return &server{routes: routes, headerTimeout: 2 * time.Second, timeout: 5 * time.Second,
		maxHeader: 16 << 10, maxConns: 32}
}

func (s *server) serve(ctx context.Context, l net.Listener) error {
	ll := &limitListener{Listener: l, max: s.maxConns, conns: map[net.Conn]*limitedConn{}}
	ll.freed = sync.NewCond(&ll.mu)
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.headerTimeout,
		ReadTimeout:       s.timeout,
		WriteTimeout:      s.timeout,
		MaxHeaderBytes:    s.maxHeader,
		ConnState:         ll.connState,
		ErrorLog:          log.New(io.Discard, "", 0), // a client's mistakes are not leash's to log
	}
	srv.SetKeepAlivesEnabled(false)
	shutdown := func() {
		srv.Close()
		ll.closeAll() // also those accepted as Close ran
	}
	stop := context.AfterFunc(ctx, shutdown)
	defer stop()
	err := srv.Serve(ll)
	shutdown()
	ll.wg.Wait()
	if errors.Is(err, http.ErrServerClosed) && ctx.Err() != nil {
		return nil
	}
	return err
}

const plainText = "text/plain; charset=utf-8"

func (s *server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	// No route reads a body, and net/http would read one to its end (up to
	// 256 KiB) after the handler returns, to reuse the connection: a client
	// trickling one would hold its slot, no longer displaceable, for the
	// whole timeout (issue 24). Nothing is read from here on, so the
	// connection closes once the answer is written.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Connection", "close")
	text := func(code int, msg string) { s.write(w, req, code, plainText, []byte(msg+"\n")) }
	if !strings.HasPrefix(req.RequestURI, "/") { // absolute form, or "*"
		text(http.StatusBadRequest, "malformed request line")
		return
	}
	if s.allowHost != nil && !s.allowHost(hostOnly(req.Host)) {
		text(http.StatusMisdirectedRequest, "the Host header must name a loopback address: localhost, 127.0.0.1 or [::1]")
		return
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		text(http.StatusMethodNotAllowed, "only GET and HEAD")
		return
	}
	route, ok := s.routes[req.URL.Path]
	if !ok {
		text(http.StatusNotFound, "not found; try /healthz, /v1/leases or /metrics")
		return
	}
	code, ctype, body := route()
	s.write(w, req, code, ctype, body)
}

func (s *server) write(w http.ResponseWriter, req *http.Request, code int, ctype string, body []byte) {
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if req.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// hostOnly removes the port from a Host header.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
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

// limitListener bounds the connections open at once without making Accept
// wait for a client (netutil.LimitListener does, and would let idle or
// trickling clients keep a health probe out, issue 24): at the limit a new
// connection displaces the oldest one that has spent displaceAfter reading
// its request, and a probe, which sends its request at once, is answered
// ahead of them. Until one can be displaced, or when every open connection
// is being answered (the write timeout bounds that), Accept holds the new
// connection and those after it wait in the kernel's queue: closing it
// instead turned a probe away behind a burst of requests answered in
// microseconds. net/http's ConnState hook says when a request
// has been read.
type limitListener struct {
	net.Listener
	max int
	wg  sync.WaitGroup // a connection accepted and not yet closed by net/http

	mu     sync.Mutex
	freed  *sync.Cond                // on mu: a connection closed, or the listener
	conns  map[net.Conn]*limitedConn // until net/http reports it closed
	seq    uint64
	closed bool
}

type limitedConn struct {
	seq       uint64    // accept order
	reading   bool      // still reading its request: may be displaced
	since     time.Time // when it began to read its request
	displaced bool      // closed by the limit; no longer counts
}

// displaceAfter is how long a connection may read its request before a
// new one can displace it. Without it, clients that reconnect the moment
// they are dropped displaced a probe before it was read: the probe sends
// its request at once, and is answered well within this.
const displaceAfter = 250 * time.Millisecond

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		for !l.closed && l.openLocked() >= l.max {
			ok, retry := l.displaceLocked(time.Now())
			if ok {
				break
			}
			l.waitLocked(retry)
		}
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return nil, net.ErrClosed
		}
		l.seq++
		l.conns[c] = &limitedConn{seq: l.seq, reading: true, since: time.Now()}
		l.wg.Add(1)
		l.mu.Unlock()
		return c, nil
	}
}

// Close closes the listener and ends an Accept waiting for a free slot.
func (l *limitListener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.freed.Broadcast()
	l.mu.Unlock()
	return l.Listener.Close()
}

func (l *limitListener) openLocked() int {
	n := 0
	for _, lc := range l.conns {
		if !lc.displaced {
			n++
		}
	}
	return n
}

// displaceLocked closes the oldest connection that has been reading its
// request for displaceAfter, and reports whether there was one; else
// retry is how long until one will have (zero: none is reading). The
// closed one's handler ends as its read fails.
func (l *limitListener) displaceLocked(now time.Time) (ok bool, retry time.Duration) {
	var oldest net.Conn
	var first time.Time // the earliest start of a read not yet displaceable
	for c, lc := range l.conns {
		switch {
		case !lc.reading || lc.displaced:
		case now.Sub(lc.since) < displaceAfter:
			if first.IsZero() || lc.since.Before(first) {
				first = lc.since
			}
		case oldest == nil || lc.seq < l.conns[oldest].seq:
			oldest = c
		}
	}
	if oldest == nil {
		if first.IsZero() {
			return false, 0
		}
		return false, first.Add(displaceAfter).Sub(now)
	}
	l.conns[oldest].displaced = true
	oldest.Close()
	return true, 0
}

// waitLocked waits for a connection to close, or for retry to pass when
// it is positive. l.mu is held.
func (l *limitListener) waitLocked(retry time.Duration) {
	if retry > 0 {
		t := time.AfterFunc(retry, func() {
			l.mu.Lock()
			l.freed.Broadcast()
			l.mu.Unlock()
		})
		defer t.Stop()
	}
	l.freed.Wait()
}

// connState is http.Server.ConnState.
func (l *limitListener) connState(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lc := l.conns[c]
	if lc == nil {
		return
	}
	switch state {
	case http.StateActive:
		lc.reading = false
	case http.StateIdle:
		lc.reading, lc.since = true, time.Now()
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
		l.wg.Done()
		l.freed.Broadcast()
	}
}

// closeAll closes every open connection and any accepted later.
func (l *limitListener) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.freed.Broadcast()
	for c := range l.conns {
		c.Close()
	}
}
