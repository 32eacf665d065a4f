// Package vaultproxy is a test and benchmark helper: an HTTP reverse proxy
// that sits in front of a real Vault server (never a fake one), counts every
// request per method, path and second, and injects faults at runtime: an
// outage (Down/Up), slow responses (Delay), connections reset in the middle of
// a response (ResetMidResponse), error statuses with Retry-After (Status) and
// redirects to another address (Redirect).
//
// Point the program under test at Addr() instead of Vault's address. Faults
// can be switched while requests are in flight; every method is safe for
// concurrent use. The proxy records no request headers or bodies except the
// lease_id of a JSON request body (renew, revoke), so Vault tokens and secrets
// never reach its log.
package vaultproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault names recorded in Request.Fault.
const (
	FaultStatus = "status" // an injected error status; Vault never saw the request
	FaultReset  = "reset"  // Vault answered; the client got part of it, then a TCP reset
	FaultDown   = "down"   // the proxy went down while the request was in flight
	// FaultRedirect: a 307 to another address; Vault never saw the request.
	FaultRedirect = "redirect"
)

// Request is one HTTP request the proxy received.
type Request struct {
	Time    time.Time // when the request arrived at the proxy
	Method  string
	Path    string    // Vault path without the "/v1/" prefix: "sys/leases/renew"
	LeaseID string    // the lease_id field of a JSON request body (renew, revoke); else ""
	Done    time.Time // when the proxy finished with it (answered, reset or dropped)
	Status  int       // status sent to the client; 0 if it got none (reset, down, canceled)
	Fault   string    // "" when forwarded untouched, else FaultStatus, FaultReset or FaultDown
}

// fault is a queued fault for requests whose path starts with prefix.
type fault struct {
	prefix     string
	kind       string // FaultStatus, FaultReset or FaultRedirect
	code       int
	location   string // FaultRedirect: the base of Location
	retryAfter time.Duration
	left       int // requests still to hit; <0: until Clear
}

// Proxy is a fault-injecting, request-counting reverse proxy for Vault.
type Proxy struct {
	target *url.URL
	addr   string // 127.0.0.1:PORT, fixed for the proxy's life
	rp     *httputil.ReverseProxy
	tr     *http.Transport
	srv    *http.Server
	served chan struct{} // closed when Serve has returned

	mu      sync.Mutex // guards everything below
	down    bool
	downCh  chan struct{} // closed by Down: aborts in-flight upstream requests
	delay   time.Duration
	faults  []*fault
	conns   map[*trackedConn]struct{}
	log     []*Request
	refused []time.Time
	changed chan struct{} // closed and replaced when a request arrives or finishes, or a connection is refused
	closed  bool
}

// New starts a proxy for the Vault server at target ("http://127.0.0.1:8200")
// listening on a random loopback port. Close stops it.
func New(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("vaultproxy: parse target: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("vaultproxy: target %q is not an http(s) URL", target)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("vaultproxy: listen: %w", err)
	}
	p := &Proxy{
		target:  u,
		addr:    l.Addr().String(),
		conns:   make(map[*trackedConn]struct{}),
		changed: make(chan struct{}),
		served:  make(chan struct{}),
	}
	p.downCh = make(chan struct{})
	p.tr = http.DefaultTransport.(*http.Transport).Clone()
	p.rp = &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(u) },
		Transport: p.tr,
		// Vault's own errors pass through; only a failure to reach Vault ends here.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client is gone or the proxy went down: nothing to answer
			}
			vaultError(w, http.StatusBadGateway, "vaultproxy: upstream: "+err.Error())
		},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serveHTTP), ErrorLog: nil}
	go func() {
		defer close(p.served)
		p.srv.Serve(&listener{Listener: l, p: p})
	}()
	return p, nil
}

// Start is New for tests: it fails t on error and closes the proxy in t.Cleanup.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Addr returns the proxy's URL, "http://127.0.0.1:PORT", for VAULT_ADDR.
func (p *Proxy) Addr() string { return "http://" + p.addr }

// Close stops the proxy, drops every connection and waits for the server loop
// to return. Safe to call twice.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if !p.down {
		close(p.downCh)
	}
	p.mu.Unlock()
	err := p.srv.Close()
	<-p.served
	p.tr.CloseIdleConnections()
	return err
}

// Down simulates a stopped Vault: open client connections are reset,
// requests in flight to Vault are aborted, and every new connection is reset
// before a byte is read (the client sees "connection reset by peer", a
// transport error like "connection refused"). The listening port stays
// bound so Up can never lose it and so refused attempts can be counted
// (Refused).
func (p *Proxy) Down() {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		return
	}
	p.down = true
	close(p.downCh)
	conns := make([]*trackedConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.reset()
	}
	p.tr.CloseIdleConnections()
}

// Up ends an outage started by Down.
func (p *Proxy) Up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.down {
		return
	}
	p.down = false
	p.downCh = make(chan struct{})
}

// IsDown reports whether the proxy is down.
func (p *Proxy) IsDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

// Delay holds every request for d before forwarding it (0 turns it off). A
// held request still ends early when its client gives up or the proxy goes
// down.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// ResetMidResponse makes the next n requests reach Vault, which acts on them
// (a credential is issued, a lease renewed), but the client receives only the
// first half of the response's bytes and then a TCP reset. n < 0 applies to
// every request until Clear.
func (p *Proxy) ResetMidResponse(n int) { p.ResetMidResponseOn("", n) }

// ResetMidResponseOn is ResetMidResponse for requests whose path starts with
// pathPrefix ("sys/leases/renew").
func (p *Proxy) ResetMidResponseOn(pathPrefix string, n int) {
	p.addFault(&fault{prefix: trimPath(pathPrefix), kind: FaultReset, left: n})
}

// Status answers the next n requests itself with code and a Vault-style
// JSON error body, without forwarding them; retryAfter > 0 adds a
// Retry-After header (whole seconds, rounded up). n < 0 applies to every
// request until Clear.
func (p *Proxy) Status(code int, retryAfter time.Duration, n int) {
	p.StatusOn("", code, retryAfter, n)
}

// StatusOn is Status for requests whose path starts with pathPrefix.
func (p *Proxy) StatusOn(pathPrefix string, code int, retryAfter time.Duration, n int) {
	p.addFault(&fault{prefix: trimPath(pathPrefix), kind: FaultStatus, code: code, retryAfter: retryAfter, left: n})
}

// Redirect answers the next n requests with 307 Temporary Redirect to base
// followed by the request's path and query ("http://127.0.0.1:8300" sends
// /v1/x to http://127.0.0.1:8300/v1/x), without forwarding them: a Vault
// standby's answer when it does not forward. n < 0 applies to every request
// until Clear.
func (p *Proxy) Redirect(base string, n int) {
	p.addFault(&fault{kind: FaultRedirect, code: http.StatusTemporaryRedirect, location: strings.TrimSuffix(base, "/"), left: n})
}

func (p *Proxy) addFault(f *fault) {
	if f.left == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, f)
}

// Clear removes every queued fault and the delay; it does not end an outage.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
	p.delay = 0
}

// takeFault consumes the first queued fault matching path, or returns nil.
func (p *Proxy) takeFault(path string) *fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, f := range p.faults {
		if !strings.HasPrefix(path, f.prefix) {
			continue
		}
		if f.left > 0 {
			f.left--
			if f.left == 0 {
				p.faults = append(p.faults[:i:i], p.faults[i+1:]...)
			}
		}
		return f
	}
	return nil
}

// record appends r to the log.
func (p *Proxy) record(r *Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, r)
	p.notifyLocked()
}

// finish completes a logged request (one a Reset dropped is updated unseen).
func (p *Proxy) finish(r *Request, status int, fault string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r.Done = time.Now()
	r.Status = status
	if fault != "" {
		r.Fault = fault
	}
	p.notifyLocked()
}

func (p *Proxy) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	req := &Request{Time: time.Now(), Method: r.Method, Path: trimPath(r.URL.Path), LeaseID: peekLeaseID(r)}
	p.record(req)

	p.mu.Lock()
	down, delay, downCh := p.down, p.delay, p.downCh
	p.mu.Unlock()
	if down { // the request raced with Down
		p.finish(req, 0, FaultDown)
		hijackReset(w)
		return
	}
	// Abort the upstream request when the client leaves or the proxy goes down.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-downCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	r = r.WithContext(ctx)

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			p.finishCanceled(req, downCh, w)
			return
		}
	}

	f := p.takeFault(req.Path)
	switch {
	case f != nil && f.kind == FaultStatus:
		if f.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.retryAfter.Seconds()))))
		}
		vaultError(w, f.code, fmt.Sprintf("vaultproxy: injected status %d", f.code))
		p.finish(req, f.code, FaultStatus)
	case f != nil && f.kind == FaultRedirect:
		w.Header().Set("Location", f.location+r.URL.RequestURI())
		w.WriteHeader(f.code)
		p.finish(req, f.code, FaultRedirect)
	case f != nil && f.kind == FaultReset:
		buf := &bufferedWriter{header: make(http.Header)}
		p.rp.ServeHTTP(buf, r)
		if ctx.Err() != nil {
			p.finishCanceled(req, downCh, w)
			return
		}
		p.finish(req, 0, FaultReset)
		writeHalfAndReset(w, buf)
	default:
		sw := &statusWriter{ResponseWriter: w}
		p.rp.ServeHTTP(sw, r)
		if ctx.Err() != nil && sw.status == 0 {
			p.finishCanceled(req, downCh, w)
			return
		}
		p.finish(req, sw.status, "")
	}
}

// finishCanceled records a request that ended because the proxy went down
// (and resets its connection) or because its client left.
func (p *Proxy) finishCanceled(req *Request, downCh <-chan struct{}, w http.ResponseWriter) {
	if isClosed(downCh) {
		p.finish(req, 0, FaultDown)
		hijackReset(w)
		return
	}
	p.finish(req, 0, "")
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Log returns a copy of every request received since the start or the last
// Reset, in arrival order.
func (p *Proxy) Log() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Request, len(p.log))
	for i, r := range p.log {
		out[i] = *r
	}
	return out
}

// Counts returns the number of requests per "METHOD path" ("PUT sys/leases/renew").
func (p *Proxy) Counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]int)
	for _, r := range p.log {
		m[r.Method+" "+r.Path]++
	}
	return m
}

// Requests returns the number of requests whose path starts with pathPrefix
// ("" counts all; a leading "/v1/" is ignored).
func (p *Proxy) Requests(pathPrefix string) int { return len(p.Times(pathPrefix)) }

// Times returns the arrival times of requests whose path starts with pathPrefix.
func (p *Proxy) Times(pathPrefix string) []time.Time {
	prefix := trimPath(pathPrefix)
	p.mu.Lock()
	defer p.mu.Unlock()
	var ts []time.Time
	for _, r := range p.log {
		if strings.HasPrefix(r.Path, prefix) {
			ts = append(ts, r.Time)
		}
	}
	return ts
}

// MaxPerSecond returns the largest number of requests with pathPrefix that
// arrived within any one-second window (sliding, not calendar seconds).
func (p *Proxy) MaxPerSecond(pathPrefix string) int {
	return MaxInWindow(p.Times(pathPrefix), time.Second)
}

// Refused returns the times of connection attempts reset while the proxy was
// down (each failed attempt of a client is one connection).
func (p *Proxy) Refused() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.refused...)
}

// Reset clears the request log and the refused-connection log.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = nil
	p.refused = nil
}

// Wait blocks until at least n requests with pathPrefix have been received
// (since the last Reset), or ctx is done.
func (p *Proxy) Wait(ctx context.Context, pathPrefix string, n int) error {
	prefix := trimPath(pathPrefix)
	for {
		p.mu.Lock()
		got := 0
		for _, r := range p.log {
			if strings.HasPrefix(r.Path, prefix) {
				got++
			}
		}
		ch := p.changed
		p.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("vaultproxy: %d of %d requests to %q: %w", got, n, pathPrefix, ctx.Err())
		}
	}
}

// WaitFor blocks until a request logged since the last Reset satisfies
// match, and returns it; match sees each request as it arrived and again
// when it finished (Done set). It returns an error when ctx is done first.
func (p *Proxy) WaitFor(ctx context.Context, match func(Request) bool) (Request, error) {
	for {
		p.mu.Lock()
		for _, r := range p.log {
			if match(*r) {
				found := *r
				p.mu.Unlock()
				return found, nil
			}
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Request{}, fmt.Errorf("vaultproxy: no matching request: %w", ctx.Err())
		}
	}
}

// WaitRefused blocks until at least n connection attempts have been refused
// (since the last Reset), or ctx is done.
func (p *Proxy) WaitRefused(ctx context.Context, n int) error {
	for {
		p.mu.Lock()
		got, ch := len(p.refused), p.changed
		p.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("vaultproxy: %d of %d refused connections: %w", got, n, ctx.Err())
		}
	}
}

// MaxInWindow returns the largest number of times that fall within any
// window of length w (a sliding window, inclusive of its start).
func MaxInWindow(times []time.Time, w time.Duration) int {
	ts := append([]time.Time(nil), times...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	best, lo := 0, 0
	for hi := range ts {
		for ts[hi].Sub(ts[lo]) >= w {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// trimPath turns "/v1/sys/leases/renew" into "sys/leases/renew".
func trimPath(p string) string {
	p = strings.TrimPrefix(p, "/")
	return strings.TrimPrefix(p, "v1/")
}

// peekLeaseID reads a small JSON body's lease_id and puts the body back.
func peekLeaseID(r *http.Request) string {
	if r.Body == nil || r.ContentLength <= 0 || r.ContentLength > 64<<10 {
		return ""
	}
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return ""
	}
	var v struct {
		LeaseID string `json:"lease_id"`
	}
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	return v.LeaseID
}

// vaultError writes an error the way Vault does: {"errors":["..."]}.
func vaultError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string][]string{"errors": {msg}})
}

// hijackReset drops the request's connection with a TCP reset.
func hijackReset(w http.ResponseWriter) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	resetConn(c)
}

// writeHalfAndReset writes the first half of the serialised response, then
// resets the connection.
func writeHalfAndReset(w http.ResponseWriter, b *bufferedWriter) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	var out bytes.Buffer
	resp := &http.Response{
		StatusCode: b.statusCode(), ProtoMajor: 1, ProtoMinor: 1,
		Header: b.header, ContentLength: int64(b.body.Len()),
		Body: io.NopCloser(bytes.NewReader(b.body.Bytes())),
	}
	resp.Write(&out)
	c.Write(out.Bytes()[:out.Len()/2])
	resetConn(c)
}

// resetConn closes c with SO_LINGER 0, so the peer gets a RST, not a FIN.
func resetConn(c net.Conn) {
	if tc, ok := c.(*trackedConn); ok {
		tc.reset()
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// listener tracks accepted connections and resets new ones while down.
type listener struct {
	net.Listener
	p *Proxy
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, p: l.p}
		l.p.mu.Lock()
		if l.p.down {
			l.p.refused = append(l.p.refused, time.Now())
			l.p.notifyLocked()
			l.p.mu.Unlock()
			tc.reset()
			continue
		}
		l.p.conns[tc] = struct{}{}
		l.p.mu.Unlock()
		return tc, nil
	}
}

// trackedConn removes itself from the proxy's set when closed.
type trackedConn struct {
	net.Conn
	p    *Proxy
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.forget()
	return err
}

func (c *trackedConn) forget() {
	c.once.Do(func() {
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
	})
}

// reset closes the connection with a TCP reset.
func (c *trackedConn) reset() {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// statusWriter remembers the status written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bufferedWriter holds a whole response in memory.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }

func (b *bufferedWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedWriter) statusCode() int {
	if b.status == 0 {
		return http.StatusOK
	}
	return b.status
}
