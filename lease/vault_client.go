package lease

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"golang.org/x/net/http2"
)

// vault is leash's connection to Vault: the clients, and the few
// requests that need no Manager state (renewals and revocations of leases,
// capabilities, mount lookups, unwrapping). Its methods return Vault's
// answers; the token lifecycle and the entries decide what they mean.
type vault struct {
	client *api.Client // carries the current token
	anon   *api.Client // no token: per-token clones
	// login makes logins: anon, except for cert auth, where Vault reads
	// the certificate of the connection the login arrives on, and a fresh
	// connection presents the certificate now on disk.
	login *api.Client

	unwrapMu  sync.Mutex // guards the approle unwrap cache
	wrapToken secretString
	unwrapped secretString
}

// newVault builds the clients from env and cfg (validated).
func newVault(env environ, cfg Config, log hclog.Logger) (*vault, error) {
	allow, _ := parseRedirectAllow(cfg.RedirectAllow) // validate checked it
	maxBody := cfg.MaxResponse
	if maxBody <= 0 {
		maxBody = DefaultMaxResponse
	}
	c, err := newClient(env, allow, false, maxBody, log, cfg.OnRequest)
	if err != nil {
		return nil, err
	}
	if v, name := env.get("SKIP_VERIFY"); v != "" {
		if skip, _ := strconv.ParseBool(v); skip { // newClient checked it parses
			// Here, once: run and validate each build one Manager.
			log.Warn(name + " is set: Vault's TLS certificate is not verified, so anyone on the network path can impersonate Vault and take leash's token and secrets; set VAULT_CACERT instead")
		}
	}
	anon, err := c.Clone()
	if err != nil {
		return nil, err
	}
	anon.ClearToken() // Clone runs api.NewClient, which reads the process VAULT_TOKEN
	v := &vault{client: c, anon: anon, login: anon}
	if cfg.Auth.Method == "cert" {
		if v.login, err = newClient(env, allow, true, maxBody, log, cfg.OnRequest); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// clientWith returns a client carrying exactly tok ("" for none). A plain
// Clone is not enough: api.NewClient picks up the process's VAULT_TOKEN.
func (v *vault) clientWith(tok string) (*api.Client, error) {
	return withToken(v.anon, tok)
}

// withToken is clientWith on another base client.
func withToken(base *api.Client, tok string) (*api.Client, error) {
	c, err := base.Clone()
	if err != nil {
		return nil, err
	}
	if tok == "" {
		c.ClearToken()
	} else {
		c.SetToken(tok)
	}
	return c, nil
}

// newClient builds a client configured like the vault CLI's
// (api.DefaultConfig + the environment), but from env rather than the
// process environment so tests and main can choose what leash sees. With
// fresh, every request dials a new connection. Redirects are followed only
// to Vault's own address or a host in allow (see redirectGuard). No answer
// is read past maxBody bytes (see limitBody). log receives warnings about
// the client certificate; observe (if not nil) every request's duration.
func newClient(env environ, allow []string, fresh bool, maxBody int64, log hclog.Logger, observe func(time.Duration)) (*api.Client, error) {
	tr, err := cleanTransport(fresh)
	if err != nil {
		return nil, err
	}
	cfg, err := clientConfig(env)
	if err != nil {
		return nil, err
	}
	addr := dialUnix(cfg, tr)
	if err := configureTLS(cfg, tr, env, log); err != nil {
		return nil, err
	}
	if v := firstNonEmpty(env["VAULT_PROXY_ADDR"], env["VAULT_HTTP_PROXY"]); v != "" {
		u, err := url.Parse(v)
		if err != nil {
			return nil, fmt.Errorf("parse VAULT_PROXY_ADDR: %w", err)
		}
		tr.Proxy = http.ProxyURL(u)
	}
	// After ConfigureTLS, which needs the *http.Transport itself. The
	// guard is outermost: each hop it follows is a round trip timed apart.
	var rt http.RoundTripper = &limitBody{next: tr, max: maxBody}
	if observe != nil {
		rt = &timedTransport{next: rt, observe: observe}
	}
	base, err := url.Parse(*addr)
	if err != nil {
		return nil, fmt.Errorf("parse VAULT_ADDR: %w", err)
	}
	cfg.HttpClient = &http.Client{
		Transport:     &redirectGuard{next: rt, origin: originOf(base), allow: allow},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	// NewClient also reads VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS
	// from the process: leash decides those itself.
	c.ClearToken()
	c.SetHeaders(http.Header{})
	c.ClearNamespace()
	if v := env.val("NAMESPACE"); v != "" {
		c.SetNamespace(v)
	}
	// Clones (logins, per-token requests) keep the namespace header.
	c.SetCloneHeaders(true)
	return c, nil
}

// clientConfig is api.DefaultConfig with everything it may have read from
// the process environment reset, then set from env: addresses, retries,
// timeout. Its HttpClient and TLS are newClient's to set.
func clientConfig(env environ) (*api.Config, error) {
	cfg := api.DefaultConfig()
	cfg.Address = "https://127.0.0.1:8200"
	cfg.AgentAddress = ""
	cfg.MaxRetries = 2
	cfg.Timeout = 60 * time.Second
	cfg.SRVLookup = false
	cfg.Error = nil
	cfg.Limiter = nil
	// redirectGuard follows redirects; this only keeps vault/api's own
	// loop off for the base client (clones drop the setting), and the
	// guard leaves it no redirect to follow anyway.
	cfg.DisableRedirects = true
	cfg.CheckRetry = checkRetry
	cfg.Backoff = retryBackoff
	if v := env.val("ADDR"); v != "" {
		cfg.Address = v
	}
	if v := env.val("AGENT_ADDR"); v != "" {
		cfg.AgentAddress = v
	}
	if v := env.val("MAX_RETRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("parse VAULT_MAX_RETRIES: %w", err)
		}
		cfg.MaxRetries = n
	}
	if v := env.val("CLIENT_TIMEOUT"); v != "" {
		d, err := parseDurationSecond(v)
		if err != nil {
			return nil, fmt.Errorf("parse VAULT_CLIENT_TIMEOUT: %w", err)
		}
		cfg.Timeout = d
	}
	return cfg, nil
}

// checkRetry is vault/api's retry policy, except that a refused redirect
// is final: the default would retry any transport error (the *url.Error
// around it).
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	var re *RedirectError
	if errors.As(err, &re) {
		return false, err
	}
	return api.DefaultRetryPolicy(ctx, resp, err)
}

// retryBackoff honours Retry-After on 429/503; otherwise it is exponential
// between the bounds.
func retryBackoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return min(d, 5*time.Minute)
		}
	}
	return backoff(attempt, minWait, maxWait, 0.5)
}

// dialUnix makes tr dial a unix:// address itself and returns the address
// the client uses (VAULT_AGENT_ADDR when set, as vault/api prefers it).
// Left to vault/api, every Clone (one per login and per child-token
// request) rewrites the shared transport's DialContext, racing requests
// in flight on other goroutines.
func dialUnix(cfg *api.Config, tr *http.Transport) *string {
	addr := &cfg.Address
	if cfg.AgentAddress != "" {
		addr = &cfg.AgentAddress
	}
	if sock, ok := strings.CutPrefix(*addr, "unix://"); ok {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
		*addr = "http://localhost"
	}
	return addr
}

// configureTLS sets up tr's TLS from env's VAULT_CACERT and friends.
func configureTLS(cfg *api.Config, tr *http.Transport, env environ, log hclog.Logger) error {
	tlsCfg := &api.TLSConfig{
		CACert:        env.val("CACERT"),
		CACertBytes:   []byte(env.val("CACERT_BYTES")),
		CAPath:        env.val("CAPATH"),
		ClientCert:    env.val("CLIENT_CERT"),
		ClientKey:     env.val("CLIENT_KEY"),
		TLSServerName: env.val("TLS_SERVER_NAME"),
	}
	if v := env.val("SKIP_VERIFY"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("parse VAULT_SKIP_VERIFY: %w", err)
		}
		tlsCfg.Insecure = b
	}
	// ConfigureTLS works on the *http.Transport inside cfg.HttpClient.
	cfg.HttpClient = &http.Client{Transport: tr}
	if err := cfg.ConfigureTLS(tlsCfg); err != nil {
		return fmt.Errorf("configure vault tls: %w", err)
	}
	if tlsCfg.ClientCert != "" {
		// vault/api loads the pair once. Read it at every handshake instead,
		// as the JWT file is at every login: short-lived client certificates
		// renewed on disk (cert-manager, a PKI agent) keep working.
		cr := &certReloader{certFile: tlsCfg.ClientCert, keyFile: tlsCfg.ClientKey, log: log}
		tr.TLSClientConfig.GetClientCertificate = cr.get
	}
	return nil
}

// certReloader reads the client certificate and key at every TLS
// handshake. A pair that cannot be read, or does not match (the two files
// are rarely replaced at once), falls back to the last good one with a
// warning: a renewal caught half-written must not fail the requests that
// need no certificate.
type certReloader struct {
	certFile, keyFile string
	log               hclog.Logger
	mu                sync.Mutex
	last              *tls.Certificate
}

func (r *certReloader) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.last = &c
		return &c, nil
	}
	err = fmt.Errorf("client certificate VAULT_CLIENT_CERT=%s VAULT_CLIENT_KEY=%s: %w", r.certFile, r.keyFile, err)
	if r.last == nil {
		return nil, err
	}
	r.log.Warn("cannot read the client certificate; presenting the last one read", "error", err)
	return r.last, nil
}

// timedTransport reports how long each round trip to Vault took. It sits
// under vault/api's retries, so every attempt counts, and under every
// client leash makes (clones share the http.Client): no request, at
// start-up or later, escapes the metric.
type timedTransport struct {
	next    http.RoundTripper
	observe func(time.Duration)
}

func (t *timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	t.observe(time.Since(start))
	return resp, err
}

// limitBody bounds every answer's body: vault/api reads bodies whole, with
// no limit, so without it an endless answer (from a proxy, or whatever
// answers at VAULT_ADDR) grows leash's memory until the kernel kills it,
// and the startup timeout reports Vault unreachable if it comes first.
type limitBody struct {
	next http.RoundTripper
	max  int64
}

func (t *limitBody) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.max {
		resp.Body.Close()
		return nil, tooLarge(t.max)
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: t.max, max: t.max}
	return resp, nil
}

func tooLarge(max int64) error {
	if max < 1<<20 || max%(1<<20) != 0 {
		return fmt.Errorf("%w: longer than %d bytes", ErrTooLarge, max)
	}
	return fmt.Errorf("%w: longer than %d MiB", ErrTooLarge, max>>20)
}

// limitedBody fails a read past its limit with ErrTooLarge, rather than
// ending early as io.LimitReader does, which would read as a cut-off
// answer.
type limitedBody struct {
	io.ReadCloser
	left int64 // bytes still allowed
	max  int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more says whether the answer ends at the limit.
		var one [1]byte
		n, err := b.ReadCloser.Read(one[:])
		if n > 0 {
			return 0, tooLarge(b.max)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// cleanTransport is DefaultConfig's transport, made afresh. HTTP/2 over TLS
// comes from golang.org/x/net/http2, as in vault/api's DefaultConfig, not
// from net/http's bundled copy, which leash's build leaves out
// (nethttpomithttp2, see the Makefile): one TLS connection carries the
// parallel fetches and renewals.
func cleanTransport(fresh bool) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	tr.MaxIdleConnsPerHost = 8
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.DisableKeepAlives = fresh
	if err := http2.ConfigureTransport(tr); err != nil {
		return nil, fmt.Errorf("vault client: configure HTTP/2: %w", err)
	}
	return tr, nil
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	if h == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

func parseDurationSecond(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
