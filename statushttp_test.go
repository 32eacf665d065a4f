package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// startStatusServer serves routes on a Unix socket until the test ends.
// stop cancels the server and returns Serve's result.
func startStatusServer(t *testing.T, tweak func(*statusServer)) (sock string, stop func() error) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := newStatusServer(map[string]statusRoute{
		"/doc": func() (int, string, []byte) { return http.StatusOK, "text/plain", []byte("hello\n") },
		"/down": func() (int, string, []byte) {
			return http.StatusServiceUnavailable, "text/plain", []byte("not yet\n")
		},
	})
	if tweak != nil {
		tweak(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, l) }()
	stop = sync.OnceValue(func() error {
		cancel()
		return <-errc
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return sock, stop
}

// rawRequest writes req on a new connection and returns everything the
// server sent before it closed the connection.
func rawRequest(t *testing.T, sock, req string) string {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func TestStatusServerWithNetHTTPClient(t *testing.T) {
	sock, _ := startStatusServer(t, nil)
	client, base := statusClient(sock)
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/doc", 200, "hello\n"},
		{"GET", "/doc?x=1", 200, "hello\n"},
		{"GET", "/down", 503, "not yet\n"},
		{"HEAD", "/doc", 200, ""},
		{"GET", "/nope", 404, "not found; try /healthz, /v1/leases or /metrics\n"},
		{"POST", "/doc", 405, "only GET and HEAD\n"},
	} {
		req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || string(b) != tc.body {
			t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, resp.StatusCode, b, tc.code, tc.body)
		}
		if tc.method == "HEAD" && resp.ContentLength != int64(len("hello\n")) {
			t.Errorf("HEAD content length = %d", resp.ContentLength)
		}
		if tc.code == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("405 without Allow: %v", resp.Header)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: Cache-Control = %q", tc.method, tc.path, resp.Header.Get("Cache-Control"))
		}
	}
}

func TestStatusServerRejectsBadRequests(t *testing.T) {
	sock, _ := startStatusServer(t, func(s *statusServer) { s.maxHeader = 1024 })
	for _, tc := range []struct{ name, req, status string }{
		{"no version", "GET /doc\r\n\r\n", "HTTP/1.1 400 "},
		{"not http", "GET /doc SPDY/3\r\n\r\n", "HTTP/1.1 400 "},
		{"absolute form", "GET http://x/doc HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},
		{"bad header", "GET /doc HTTP/1.1\r\nno colon here\r\n\r\n", "HTTP/1.1 400 "},
		{"header too large", "GET /doc HTTP/1.1\r\nX: " + strings.Repeat("a", 2000) + "\r\n\r\n", "HTTP/1.1 431 "},
		{"line too large", "GET /" + strings.Repeat("a", 2000) + " HTTP/1.1\r\n\r\n", "HTTP/1.1 431 "},
		{"http/1.0", "GET /doc HTTP/1.0\r\n\r\n", "HTTP/1.1 200 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rawRequest(t, sock, tc.req)
			if !strings.HasPrefix(got, tc.status) || !strings.Contains(got, "Connection: close\r\n") {
				t.Errorf("response %q, want %q... with Connection: close", got, tc.status)
			}
		})
	}
}

// A client that connects and sends nothing holds its slot only until the
// per-connection timeout: the server then closes the connection.
func TestStatusServerSlowClientTimesOut(t *testing.T) {
	sock, _ := startStatusServer(t, func(s *statusServer) { s.timeout = 200 * time.Millisecond; s.maxConns = 1 })
	stalled, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	// With one slot, this request is served only after the stalled
	// connection has been dropped.
	if got := rawRequest(t, sock, "GET /doc HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Fatalf("response %q", got)
	}
	_ = stalled.SetReadDeadline(time.Now().Add(30 * time.Second))
	if b, err := io.ReadAll(stalled); err != nil || len(b) != 0 {
		t.Errorf("stalled connection: read %q, %v; want a clean close", b, err)
	}
}

// Cancelling the context closes the listener and open connections, and
// Serve returns nil once its handlers are done.
func TestStatusServerShutdown(t *testing.T) {
	sock, stop := startStatusServer(t, nil)
	stalled, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	// The server has accepted the connection once a request on another
	// connection is answered (one accept loop, in order).
	if got := rawRequest(t, sock, "GET /doc HTTP/1.1\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Fatalf("response %q", got)
	}
	// stop waits for Serve, which waits for the stalled connection's
	// handler: it returns only because shutdown closed that connection.
	if err := stop(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if _, err := net.Dial("unix", sock); err == nil {
		t.Error("still accepting after shutdown")
	}
}
