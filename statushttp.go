package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

// The status endpoints are served by the small HTTP/1.1 responder below
// rather than net/http's server, which costs 0.48 MB of a binary whose size
// and RSS are selling points (issue 9: at most 10 MB; the binary's pages
// are resident in 64 KB fault-around chunks, so size is RSS). What it
// serves is narrow enough to do by hand: three read-only GET documents of a
// few KB, to a Unix socket or loopback only, one request per connection
// (Connection: close), everything bounded: header bytes, time per
// connection, connections at once. The client side (`leash status`) stays
// net/http.

// statusRoute renders one document: status code, content type, body.
type statusRoute func() (code int, contentType string, body []byte)

// statusServer answers GET and HEAD for its routes.
type statusServer struct {
	routes map[string]statusRoute
	// headerTimeout bounds a connection from accept to the end of its
	// request headers, and timeout from accept to the last byte written.
	// Both are set once, at accept: a client that trickles a byte at a
	// time (slowloris) cannot extend them.
	headerTimeout, timeout time.Duration
	// maxHeader bounds the request line and headers.
	maxHeader int64
	// maxConns bounds connections open at once. The accept loop never
	// waits for one to finish: at the limit a new connection displaces the
	// oldest one still reading its request, so idle or trickling clients
	// cannot keep a health probe out (issue 24), and a probe, which sends
	// its request at once, is answered ahead of them. When every open
	// connection is being answered, the new one is closed.
	maxConns int
	// allowHost says whether the Host header (its port removed) may be
	// answered; nil means any, as on a Unix socket. Others get 421.
	allowHost func(host string) bool
}

func newStatusServer(routes map[string]statusRoute) *statusServer {
	return &statusServer{routes: routes, headerTimeout: 2 * time.Second, timeout: 5 * time.Second,
		maxHeader: 16 << 10, maxConns: 32}
}

// statusConn is the accept loop's record of an open connection.
type statusConn struct {
	seq     uint64 // accept order
	reading bool   // still reading its request: may be displaced
}

// Serve accepts on l until ctx is done, then closes l and every open
// connection and returns nil once all handlers have finished.
func (s *statusServer) Serve(ctx context.Context, l net.Listener) error {
	var (
		mu    sync.Mutex
		conns = map[net.Conn]*statusConn{}
		seq   uint64
		wg    sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
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
		accepted := time.Now()
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			c.Close() // accepted as shutdown closed the others
			continue
		}
		if len(conns) >= s.maxConns && !displaceOldest(conns) {
			mu.Unlock()
			c.Close()
			continue
		}
		seq++
		sc := &statusConn{seq: seq, reading: true}
		conns[c] = sc
		mu.Unlock()
		// gotRequest ends the displaceable phase; false means the
		// connection was displaced (closed) already.
		gotRequest := func() bool {
			mu.Lock()
			defer mu.Unlock()
			if conns[c] != sc {
				return false
			}
			sc.reading = false
			return true
		}
		wg.Go(func() {
			s.serveConn(c, accepted, gotRequest)
			mu.Lock()
			if conns[c] == sc {
				delete(conns, c)
			}
			mu.Unlock()
			c.Close()
		})
	}
}

// displaceOldest closes the oldest connection still reading its request
// and reports whether there was one. Its handler ends as its read fails.
func displaceOldest(conns map[net.Conn]*statusConn) bool {
	var (
		oldest net.Conn
		first  uint64
	)
	for c, sc := range conns {
		if sc.reading && (oldest == nil || sc.seq < first) {
			oldest, first = c, sc.seq
		}
	}
	if oldest == nil {
		return false
	}
	delete(conns, oldest)
	oldest.Close()
	return true
}

// answer is one response; code 0 means none (the client is gone or too
// slow).
type answer struct {
	code  int
	ctype string
	body  []byte
	head  bool // a HEAD request: the body is not sent
	allow bool // 405: say which methods are allowed
}

const plainText = "text/plain; charset=utf-8"

func textAnswer(code int, msg string) answer {
	return answer{code: code, ctype: plainText, body: []byte(msg + "\n")}
}

// serveConn reads one request and writes one response.
func (s *statusServer) serveConn(c net.Conn, accepted time.Time, gotRequest func() bool) {
	_ = c.SetDeadline(accepted.Add(s.timeout))
	_ = c.SetReadDeadline(accepted.Add(min(s.headerTimeout, s.timeout)))
	a := s.respond(c, func() bool {
		_ = c.SetReadDeadline(accepted.Add(s.timeout)) // for the drain below
		return gotRequest()
	})
	if a.code == 0 {
		return
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", a.code, http.StatusText(a.code))
	fmt.Fprintf(&b, "Content-Type: %s\r\nContent-Length: %d\r\n", a.ctype, len(a.body))
	if a.allow {
		b.WriteString("Allow: GET, HEAD\r\n")
	}
	b.WriteString("Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n")
	if !a.head {
		b.Write(a.body)
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		return
	}
	// Closing with unread request bytes (a body, an oversized header) makes
	// the kernel reset the connection, and the client loses the response:
	// half-close, then drain a bounded amount until the client closes.
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 256<<10))
	}
}

// respond parses the request on r and picks the answer. It calls
// gotRequest once the request line and headers are in, and answers nothing
// if that returns false.
func (s *statusServer) respond(r io.Reader, gotRequest func() bool) answer {
	lr := &io.LimitedReader{R: r, N: s.maxHeader}
	tp := textproto.NewReader(bufio.NewReader(lr))
	line, err := tp.ReadLine()
	if err != nil || lr.N <= 0 {
		return readError(lr, err)
	}
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !strings.HasPrefix(proto, "HTTP/1.") || len(proto) != len("HTTP/1.1") || !strings.HasPrefix(target, "/") {
		return textAnswer(http.StatusBadRequest, "malformed request line")
	}
	// The headers are read (and bounded); only Host is used: no route
	// depends on them, and every response closes the connection.
	hdr, err := tp.ReadMIMEHeader()
	if err != nil || lr.N <= 0 {
		return readError(lr, err)
	}
	if !gotRequest() {
		return answer{}
	}
	if s.allowHost != nil {
		if h := hdr.Values("Host"); len(h) != 1 || !s.allowHost(hostOnly(h[0])) {
			return textAnswer(http.StatusMisdirectedRequest, "the Host header must name a loopback address: localhost, 127.0.0.1 or [::1]")
		}
	}
	if method != http.MethodGet && method != http.MethodHead {
		a := textAnswer(http.StatusMethodNotAllowed, "only GET and HEAD")
		a.allow = true
		return a
	}
	path, _, _ := strings.Cut(target, "?")
	a := textAnswer(http.StatusNotFound, "not found; try /healthz, /v1/leases or /metrics")
	if route, ok := s.routes[path]; ok {
		a.code, a.ctype, a.body = route()
	}
	a.head = method == http.MethodHead
	return a
}

// hostOnly removes the port from a Host header.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

// readError answers a request line or header that could not be read.
func readError(lr *io.LimitedReader, err error) answer {
	var ne net.Error
	switch {
	case lr.N <= 0: // the limit, not the client, ended the read
		return textAnswer(http.StatusRequestHeaderFieldsTooLarge, "request header too large")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &ne) && ne.Timeout():
		return answer{}
	}
	return textAnswer(http.StatusBadRequest, "malformed request")
}
