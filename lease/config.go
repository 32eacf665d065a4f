package lease

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"golang.org/x/net/http2"
)

// Spec is one secret to fetch and keep alive.
type Spec struct {
	ID     string            // unique key; snapshot entries are keyed by it
	Path   string            // as written: "database/creds/app", "secret/app" (KV CLI form), "pki/issue/web"
	Params map[string]string // non-nil: a write (PUT) with these parameters (pki issue, sts, token create)
	// Outputs names what the user calls the secret: the outputs it feeds
	// (-s db=..., templates), for log lines and events. nil: none given.
	Outputs []string
}

// AuthConfig selects how leash obtains its Vault token.
type AuthConfig struct {
	Method string // token (default) | approle | kubernetes | jwt | cert | aws | gcp | azure
	// Mount is the auth mount path; "" means the method name.
	Mount string
	// Role is the role for approle (unused), kubernetes and jwt logins, and
	// the certificate role (the "name" to match) for cert logins. cert
	// logins present VAULT_CLIENT_CERT and VAULT_CLIENT_KEY, re-read at
	// every TLS handshake. For aws, "" lets Vault take the IAM principal's
	// name. For gcp it is required: the identity token's audience is
	// vault/ROLE. Required for azure.
	Role string
	// TokenFile (token): read the token from here instead of
	// VAULT_TOKEN/BAO_TOKEN; neither set means ~/.vault-token like the CLI.
	TokenFile string
	// RoleIDFile and SecretIDFile (approle). A SecretIDFile holding a
	// response-wrapping token is unwrapped.
	RoleIDFile, SecretIDFile string
	// JWTFile (kubernetes, jwt) is re-read at every login: projected tokens
	// rotate. "" for kubernetes means the service-account token path.
	JWTFile string
	// AWSRegion (aws) is the STS region the GetCallerIdentity request is
	// signed for and addressed to (sts.REGION.amazonaws.com); it must match
	// Vault's sts_endpoint and sts_region. "" means us-east-1 at the global
	// endpoint sts.amazonaws.com, Vault's default. The credentials come from
	// the AWS SDK's default chain, which reads AWS_* from the process
	// environment, not from Config.Env.
	AWSRegion string
	// AWSServerID (aws), when set, is sent signed as the
	// X-Vault-AWS-IAM-Server-ID header (Vault's iam_server_id_header_value).
	AWSServerID string
	// GCPServiceAccount (gcp) is the service account of the instance whose
	// identity token leash logs in with; "" means the default one. The
	// metadata server is GCE_METADATA_HOST from the process environment, as
	// for Google's libraries, else 169.254.169.254.
	GCPServiceAccount string
	// Azure (azure): AzureIMDS is the Instance Metadata Service ("" means
	// http://169.254.169.254); AzureResource the token's audience, Vault's
	// "resource" ("" means https://management.azure.com/); AzureClientID a
	// user-assigned identity ("" means the system-assigned one). The
	// subscription, resource group and VM or scale-set name come from IMDS
	// unless all are given.
	AzureIMDS, AzureResource, AzureClientID                             string
	AzureSubscriptionID, AzureResourceGroup, AzureVMName, AzureVMSSName string
}

// Config configures a Manager. Zero values mean the documented defaults.
type Config struct {
	Env            []string // where VAULT_*/BAO_* come from; nil means os.Environ()
	Auth           AuthConfig
	Specs          []Spec
	RotateBefore   time.Duration // 0: a third of the lease (at least a few seconds)
	RotateFraction float64       // alternative to RotateBefore ("25%" -> 0.25)
	StaticRefresh  time.Duration // 0: 5m
	StartupTimeout time.Duration // 0: 30s
	RevokeTimeout  time.Duration // 0: 10s; bounds Close, and the clean-up of a failed Start
	NoRevoke       bool
	// RedirectAllow lists the hosts ("host", any port, or "host:port") a
	// Vault redirect may lead to besides Vault's own address (same scheme,
	// host and port). nil: no other host. A redirect from https to http is
	// never followed.
	RedirectAllow []string
	Logger        hclog.Logger // nil: no logging
	// OnEvent, when set, receives every lease event (audit trail, health,
	// metrics). It is called synchronously from the manager's goroutines
	// and must not block or call back into the Manager.
	OnEvent func(Event)
	// OnRequest, when set, receives the duration of every HTTP request
	// leash sends to Vault (logins, lookups, reads, renewals, revocations,
	// each retry), whether it succeeded or not. Like OnEvent it is called
	// synchronously and must not block.
	OnRequest func(time.Duration)
}

// DefaultServiceAccountTokenFile is where Kubernetes mounts the pod's token.
const DefaultServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

const (
	defaultStaticRefresh  = 5 * time.Minute
	defaultStartupTimeout = 30 * time.Second
	defaultRevokeTimeout  = 10 * time.Second
	// retireTimeout bounds the revocation of superseded leases after a
	// hand-over; the child no longer uses them, so a failure only logs.
	retireTimeout = 10 * time.Second
)

// environ is the environment leash reads VAULT_* and BAO_* from.
type environ map[string]string

func newEnviron(env []string) environ {
	if env == nil {
		env = os.Environ()
	}
	e := make(environ, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			e[k] = v
		}
	}
	return e
}

// get returns VAULT_name, else BAO_name (OpenBao), and which was used.
func (e environ) get(name string) (string, string) {
	if v := e["VAULT_"+name]; v != "" {
		return v, "VAULT_" + name
	}
	if v := e["BAO_"+name]; v != "" {
		return v, "BAO_" + name
	}
	return "", ""
}

func (e environ) val(name string) string { v, _ := e.get(name); return v }

// newClient builds a client configured like the vault CLI's
// (api.DefaultConfig + the environment), but from env rather than the
// process environment so tests and main can choose what leash sees. With
// fresh, every request dials a new connection. Redirects are followed only
// to Vault's own address or a host in allow (see redirectGuard). log
// receives warnings about the client certificate; observe (if not nil)
// every request's duration.
func newClient(env environ, allow []string, fresh bool, log hclog.Logger, observe func(time.Duration)) (*api.Client, error) {
	// DefaultConfig also reads the process environment: everything it may
	// have set from there is reset below, including the TLS transport.
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
	tr, err := cleanTransport(fresh)
	if err != nil {
		return nil, err
	}
	cfg.HttpClient = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	// A refused redirect is final: vault/api's default policy would retry
	// any transport error (the *url.Error around it).
	cfg.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		var re *RedirectError
		if errors.As(err, &re) {
			return false, err
		}
		return api.DefaultRetryPolicy(ctx, resp, err)
	}
	// Honour Retry-After on 429/503; otherwise exponential between the bounds.
	cfg.Backoff = func(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
		if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
			if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				return min(d, 5*time.Minute)
			}
		}
		return backoff(attempt, minWait, maxWait, 0.5)
	}
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
	// A unix:// address is dialled by our own transport. Left to vault/api,
	// every Clone (one per login and per child-token request) rewrites the
	// shared transport's DialContext, racing requests in flight on other
	// goroutines.
	addr := &cfg.Address
	if cfg.AgentAddress != "" {
		addr = &cfg.AgentAddress // vault/api prefers it too
	}
	if sock, ok := strings.CutPrefix(*addr, "unix://"); ok {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
		*addr = "http://localhost"
	}
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
			return nil, fmt.Errorf("parse VAULT_SKIP_VERIFY: %w", err)
		}
		tlsCfg.Insecure = b
	}
	if err := cfg.ConfigureTLS(tlsCfg); err != nil {
		return nil, fmt.Errorf("configure vault tls: %w", err)
	}
	if tlsCfg.ClientCert != "" {
		// vault/api loads the pair once. Read it at every handshake instead,
		// as the JWT file is at every login: short-lived client certificates
		// renewed on disk (cert-manager, a PKI agent) keep working.
		cr := &certReloader{certFile: tlsCfg.ClientCert, keyFile: tlsCfg.ClientKey, log: log}
		tr.TLSClientConfig.GetClientCertificate = cr.get
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
	var rt http.RoundTripper = tr
	if observe != nil {
		rt = &timedTransport{next: tr, observe: observe}
	}
	base, err := url.Parse(*addr)
	if err != nil {
		return nil, fmt.Errorf("parse VAULT_ADDR: %w", err)
	}
	cfg.HttpClient.Transport = &redirectGuard{next: rt, origin: originOf(base), allow: allow}
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

// validate checks the config, whose environment is env, without talking
// to Vault.
func (c *Config) validate(env environ) error {
	switch c.Auth.Method {
	case "", "token":
	case "approle":
		if c.Auth.RoleIDFile == "" || c.Auth.SecretIDFile == "" {
			return errors.New("approle auth needs a role_id file and a secret_id file")
		}
	case "kubernetes", "jwt":
		if c.Auth.Role == "" {
			return fmt.Errorf("%s auth needs a role", c.Auth.Method)
		}
		if c.Auth.Method == "jwt" && c.Auth.JWTFile == "" {
			return errors.New("jwt auth needs a JWT file")
		}
	case "cert":
		if env.val("CLIENT_CERT") == "" || env.val("CLIENT_KEY") == "" {
			return errors.New("cert auth needs a client certificate: set VAULT_CLIENT_CERT and VAULT_CLIENT_KEY")
		}
	case "aws":
	case "gcp", "azure":
		if c.Auth.Role == "" {
			return fmt.Errorf("%s auth needs a role", c.Auth.Method)
		}
	default:
		return fmt.Errorf("unknown auth method %q (token, approle, kubernetes, jwt, cert, aws, gcp, azure)", c.Auth.Method)
	}
	seen := map[string]bool{}
	for _, s := range c.Specs {
		if s.ID == "" || s.Path == "" {
			return fmt.Errorf("secret %q: id and path are required", s.ID)
		}
		if seen[s.ID] {
			return fmt.Errorf("secret %q: duplicate id", s.ID)
		}
		seen[s.ID] = true
	}
	if _, err := parseRedirectAllow(c.RedirectAllow); err != nil {
		return err
	}
	if c.RotateFraction < 0 || c.RotateFraction >= 1 {
		return fmt.Errorf("rotate fraction %v: want 0 <= f < 1", c.RotateFraction)
	}
	return nil
}

// homeTokenFile is the vault CLI's token helper file.
func homeTokenFile(env environ) string {
	home := env["HOME"]
	if home == "" {
		return ""
	}
	return filepath.Join(home, ".vault-token")
}
