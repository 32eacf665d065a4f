package lease

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
)

// capture is a second listener a redirect may point at. It records the
// token and body of every request it gets, then passes the request on to
// Vault, so a followed redirect works and a refused one shows as nothing
// recorded.
type capture struct {
	URL string // http://localhost:PORT: another host name than 127.0.0.1

	mu   sync.Mutex
	got  []string // "token=... body=..." per request
	seen atomic.Int32
}

func newCapture(t *testing.T, vaultAddr string) *capture {
	c := &capture{}
	rp := reverseProxy(t, vaultAddr)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.got = append(c.got, r.URL.Path+" token="+r.Header.Get("X-Vault-Token")+" body="+string(body))
		c.mu.Unlock()
		c.seen.Add(1)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.URL = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	return c
}

func (c *capture) requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

// redirector stands where VAULT_ADDR points. It passes requests to Vault
// until redirect is set, then answers every request with a 307 to
// redirect(path). Paths under /hop/ always go to Vault: a same-host
// redirect target.
type redirector struct {
	URL      string
	redirect atomic.Pointer[func(requestURI string) string]
}

func newRedirector(t *testing.T, vaultAddr string) *redirector {
	rd := &redirector{}
	rp := reverseProxy(t, vaultAddr)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := strings.CutPrefix(r.URL.Path, "/hop"); ok {
			r.URL.Path = p
			rp.ServeHTTP(w, r)
			return
		}
		if f := rd.redirect.Load(); f != nil {
			w.Header().Set("Location", (*f)(r.URL.RequestURI()))
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	rd.URL = srv.URL
	return rd
}

func (rd *redirector) to(f func(requestURI string) string) { rd.redirect.Store(&f) }

func reverseProxy(t *testing.T, addr string) *httputil.ReverseProxy {
	u, err := url.Parse(addr)
	if err != nil {
		t.Fatal(err)
	}
	return httputil.NewSingleHostReverseProxy(u)
}

// A 307 to another host is refused before anything reaches it: not the
// token of a read, not the role_id and secret_id of an AppRole login, not
// the wrapping token of a wrapped secret_id. The error names both
// addresses and no secret. Before redirectGuard, vault/api followed it and
// the capture server saw each of them.
func TestRedirectToOtherHostRefused(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	kv := s.KV(t, 1)
	s.Write(t, kv+"/app", map[string]any{"k": "v"})
	policy := s.Policy(t, `path "`+kv+`/app" { capabilities = ["read"] }`)
	tok := s.LimitedToken(t, `path "`+kv+`/app" { capabilities = ["read"] }`)
	tests := []struct {
		name string
		auth func(t *testing.T) (AuthConfig, []string)
	}{
		{"token read", func(t *testing.T) (AuthConfig, []string) {
			return AuthConfig{TokenFile: writeFile(t, "token", tok)}, []string{tok}
		}},
		{"approle login", func(t *testing.T) (AuthConfig, []string) {
			a := s.AppRole(t, []string{policy}, time.Hour, time.Hour, false)
			return AuthConfig{Method: "approle", Mount: a.Mount,
				RoleIDFile: writeFile(t, "role_id", a.RoleID), SecretIDFile: writeFile(t, "secret_id", a.SecretID)}, []string{a.RoleID, a.SecretID}
		}},
		{"wrapped secret_id unwrap", func(t *testing.T) (AuthConfig, []string) {
			a := s.AppRole(t, []string{policy}, time.Hour, time.Hour, true)
			return AuthConfig{Method: "approle", Mount: a.Mount,
				RoleIDFile: writeFile(t, "role_id", a.RoleID), SecretIDFile: writeFile(t, "secret_id", a.SecretID)}, []string{a.RoleID, a.SecretID}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			capt := newCapture(t, s.Addr)
			rd := newRedirector(t, s.Addr)
			rd.to(func(uri string) string { return capt.URL + uri })
			auth, secrets := tt.auth(t)
			m, err := New(Config{Env: []string{"VAULT_ADDR=" + rd.URL, "HOME=" + t.TempDir()}, Auth: auth,
				Specs: []Spec{{ID: "app", Path: kv + "/app"}}, StartupTimeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Start(context.Background())
			checkRefused(t, err, rd.URL, capt, secrets)
		})
	}
}

// checkRefused checks err is a refused redirect from from to capt naming
// both and none of secrets, and that capt saw no request.
func checkRefused(t *testing.T, err error, from string, capt *capture, secrets []string) {
	t.Helper()
	if got := capt.requests(); len(got) > 0 {
		t.Fatalf("the other host received %d requests: %q", len(got), got)
	}
	var re *RedirectError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want a *RedirectError", err)
	}
	if errors.Is(err, ErrUnreachable) {
		t.Errorf("refused redirect retried as an outage: %v", err)
	}
	msg := err.Error()
	for _, addr := range []string{from, capt.URL} {
		if !strings.Contains(msg, addr) {
			t.Errorf("error %q does not name %s", msg, addr)
		}
	}
	for _, sec := range secrets {
		if strings.Contains(msg, sec) {
			t.Errorf("error %q contains a secret", msg)
		}
	}
}

// Revocations at Close go through the same guard as reads and logins: with
// Vault's address now redirecting elsewhere, the lease and the token are
// not revoked there (they expire on their own) and nothing leaves.
func TestRedirectOnRevokeRefused(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	issue := s.PKI(t, time.Hour)
	tok := s.LimitedToken(t, loginPolicy(issue))
	capt := newCapture(t, s.Addr)
	rd := newRedirector(t, s.Addr)
	m, err := New(Config{Env: []string{"VAULT_ADDR=" + rd.URL, "HOME=" + t.TempDir()},
		Auth:  AuthConfig{TokenFile: writeFile(t, "token", tok)},
		Specs: []Spec{certSpec(issue)}, StartupTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	rd.to(func(uri string) string { return capt.URL + uri })
	err = m.Close(context.Background())
	if err == nil {
		t.Fatal("Close succeeded through a refused redirect")
	}
	checkRefused(t, err, rd.URL, capt, []string{tok})
}

// Redirects leash does follow: to the same scheme, host and port (a
// relative Location), and to a host in RedirectAllow. The token and the
// AppRole login body reach the target, which is Vault behind a hop.
func TestRedirectFollowed(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	kv := s.KV(t, 1)
	s.Write(t, kv+"/app", map[string]any{"k": "v"})
	policy := s.Policy(t, `path "`+kv+`/app" { capabilities = ["read"] }`)
	tests := []struct {
		name    string
		approle bool
		allow   []string
		other   bool // redirect to the capture server, not /hop on the same host
	}{
		{"same host, token", false, nil, false},
		{"same host, approle login", true, nil, false},
		{"allowed host, token", false, []string{"localhost"}, true},
		{"allowed host:port, approle login", true, []string{"LOCALHOST:port"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			capt := newCapture(t, s.Addr)
			rd := newRedirector(t, s.Addr)
			if tt.other {
				rd.to(func(uri string) string { return capt.URL + uri })
			} else {
				rd.to(func(uri string) string { return "/hop" + uri })
			}
			u, _ := url.Parse(capt.URL)
			allow := make([]string, len(tt.allow))
			for i, a := range tt.allow {
				allow[i] = strings.Replace(a, "port", u.Port(), 1)
			}
			auth := AuthConfig{TokenFile: writeFile(t, "token", s.LimitedToken(t, `path "`+kv+`/app" { capabilities = ["read"] }`))}
			if tt.approle {
				a := s.AppRole(t, []string{policy}, time.Hour, time.Hour, false)
				auth = AuthConfig{Method: "approle", Mount: a.Mount,
					RoleIDFile: writeFile(t, "role_id", a.RoleID), SecretIDFile: writeFile(t, "secret_id", a.SecretID)}
			}
			m, err := New(Config{Env: []string{"VAULT_ADDR=" + rd.URL, "HOME=" + t.TempDir()}, Auth: auth,
				Specs: []Spec{{ID: "app", Path: kv + "/app"}}, StartupTimeout: time.Minute, RedirectAllow: allow, NoRevoke: true})
			if err != nil {
				t.Fatal(err)
			}
			snap, err := m.Start(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if str(t, snap.Secrets["app"], "k") != "v" {
				t.Fatal("wrong value")
			}
			if n := len(capt.requests()); tt.other == (n == 0) {
				t.Fatalf("allowed host received %d requests", n)
			}
			m.Close(context.Background())
		})
	}
}

// The policy itself, for what a dev server cannot show: https to http is
// refused even to an allowed host; default ports match; a port-specific
// entry matches only its port.
func TestRedirectPolicy(t *testing.T) {
	t.Parallel()
	allow, err := parseRedirectAllow([]string{"vault-b.example", "Vault-C.example:8200", "[::1]:8200", "::2"})
	if err != nil {
		t.Fatal(err)
	}
	g := &redirectGuard{origin: "https://vault-a.example:443", allow: allow}
	tests := []struct {
		from, to string
		ok       bool
	}{
		{"https://vault-a.example/v1/x", "https://vault-a.example:443/v1/y", true},
		{"https://vault-a.example/v1/x", "https://VAULT-A.example/v1/y", true},
		{"https://vault-a.example/v1/x", "https://vault-a.example:8443/v1/y", false},
		{"https://vault-a.example/v1/x", "http://vault-a.example/v1/y", false},
		{"https://vault-a.example/v1/x", "http://vault-b.example/v1/y", false},
		{"https://vault-a.example/v1/x", "https://vault-b.example:9999/v1/y", true},
		{"https://vault-a.example/v1/x", "https://vault-c.example:8200/v1/y", true},
		{"https://vault-a.example/v1/x", "https://vault-c.example/v1/y", false},
		{"https://vault-a.example/v1/x", "https://[::1]:8200/v1/y", true},
		{"https://vault-a.example/v1/x", "https://[::1]:8201/v1/y", false},
		{"https://vault-a.example/v1/x", "https://[::2]:1/v1/y", true},
		{"https://vault-a.example/v1/x", "https://evil.example/v1/y", false},
		{"https://vault-a.example/v1/x", "ftp://vault-a.example/v1/y", false},
		{"http://vault-b.example/v1/x", "http://vault-b.example/v1/y", true},
	}
	for _, tt := range tests {
		from, _ := url.Parse(tt.from)
		to, _ := url.Parse(tt.to)
		if reason := g.refuse(from, to); (reason == "") != tt.ok {
			t.Errorf("%s -> %s: refused %q, want ok=%v", tt.from, tt.to, reason, tt.ok)
		}
	}
	for _, bad := range []string{"https://vault.example", "vault.example/v1", "", "vault.example:", "a:b:c:"} {
		if _, err := parseRedirectAllow([]string{bad}); err == nil {
			t.Errorf("parseRedirectAllow(%q) accepted", bad)
		}
	}
}
