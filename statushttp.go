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
	// timeout bounds a connection from accept to the last byte written,
	// so a client that stalls (slowloris) holds a slot for that long only.
	timeout time.Duration
	// maxHeader bounds the request line and headers.
	maxHeader int64
	// maxConns bounds connections served at once; more wait in the
	// listen backlog.
	maxConns int
}

func newStatusServer(routes map[string]statusRoute) *statusServer {
	return &statusServer{routes: routes, timeout: 5 * time.Second, maxHeader: 16 << 10, maxConns: 8}
}

// Serve accepts on l until ctx is done, then closes l and every open
// connection and returns nil once all handlers have finished.
func (s *statusServer) Serve(ctx context.Context, l net.Listener) error {
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
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
	slots := make(chan struct{}, s.maxConns)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		c, err := l.Accept()
		if err != nil {
			<-slots
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
		conns[c] = struct{}{}
		if ctx.Err() != nil {
			c.Close() // accepted as shutdown closed the others: its handler ends at once
		}
		mu.Unlock()
		wg.Go(func() {
			defer func() { <-slots }()
			s.serveConn(c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		})
	}
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
func (s *statusServer) serveConn(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(s.timeout))
	a := s.respond(c)
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

// respond parses the request on r and picks the answer.
func (s *statusServer) respond(r io.Reader) answer {
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
	// The headers are read (and bounded) but not used: no route depends on
	// them, and every response closes the connection.
	if _, err := tp.ReadMIMEHeader(); err != nil || lr.N <= 0 {
		return readError(lr, err)
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
