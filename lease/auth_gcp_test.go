package lease

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
)

// These gce tests check leash's request to a loopback stand-in for the
// metadata server (GCE_METADATA_HOST), and what leash reports when Vault's
// real gcp backend rejects a token Google did not sign (Vault asks for the
// key it names, from the stand-in too: custom_endpoint). Successful gce and
// iam logins are TestGCELoginAgainstVault and TestGCPIAMLogin* below, with
// testvault.GCPAuth's fuller stand-in. GCE_METADATA_HOST is read from the
// process environment, so these tests do not run in parallel.

// fakeGCEToken is shaped like a metadata server's identity token (format
// full) but not signed by Google.
func fakeGCEToken(role string) string {
	b64 := base64.RawURLEncoding.EncodeToString
	return b64([]byte(`{"alg":"RS256","kid":"leash-test-kid","typ":"JWT"}`)) + "." +
		b64([]byte(`{"aud":"vault/`+role+`","azp":"1","email":"app@leash-test.iam.gserviceaccount.com","exp":`+
			strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)+`,"iss":"https://accounts.google.com","sub":"1","google":{"compute_engine":{"project_id":"leash-test","zone":"europe-west1-b","instance_id":"1","instance_name":"vm"}}}`)) +
		"." + b64([]byte("not-a-google-signature"))
}

type metadataLog struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (l *metadataLog) all() []*http.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*http.Request(nil), l.reqs...)
}

// fakeMetadata serves identity tokens for the default service account to
// requests with Metadata-Flavor: Google, as the metadata server does.
func fakeMetadata(t *testing.T, token string) (*httptest.Server, *metadataLog) {
	l := &metadataLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, r.Clone(context.Background()))
		l.mu.Unlock()
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "Missing Metadata-Flavor:Google header.", http.StatusForbidden)
			return
		}
		if r.URL.Path != "/computeMetadata/v1/instance/service-accounts/default/identity" {
			http.Error(w, "service account not found", http.StatusNotFound)
			return
		}
		w.Write([]byte(token))
	}))
	t.Cleanup(srv.Close)
	return srv, l
}

// gcpMount is Vault's gcp auth with a gce role "app"; its Google API
// endpoint is a loopback server that answers 404 to everything and counts
// the key look-ups, so Vault never leaves the machine.
func gcpMount(t *testing.T, s *testvault.Server) (mount string, keyLookups func() int) {
	var mu sync.Mutex
	n := 0
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		http.NotFound(w, r)
	}))
	t.Cleanup(api.Close)
	mount = s.EnableAuth(t, "gcp")
	s.Write(t, "auth/"+mount+"/config", map[string]any{"custom_endpoint": map[string]any{
		"api": api.URL, "iam": api.URL, "crm": api.URL, "compute": api.URL,
	}})
	s.Write(t, "auth/"+mount+"/role/app", map[string]any{
		"type": "gce", "bound_projects": []string{"leash-test"}, "token_policies": []string{"default"},
	})
	return mount, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func TestGCPLoginSendsTheInstanceIdentityToken(t *testing.T) {
	s := testvault.Shared(t)
	mount, keyLookups := gcpMount(t, s)
	tok := fakeGCEToken("app")
	md, log := fakeMetadata(t, tok)
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(md.URL, "http://"))
	cfg := Config{Auth: AuthConfig{Method: "gcp", Mount: mount, Role: "app"}, Specs: []Spec{{ID: "x", Path: "secret/x"}}, StartupTimeout: 5 * time.Second}
	h := newHarness(t, s, nil, cfg)
	err := h.m.Check(context.Background())
	// Vault rejects the token: it is not Google's. The failure must be
	// Vault's verdict on the token, reported as a denied login.
	if !errors.Is(err, ErrPermissionDenied) || !strings.Contains(err.Error(), "auth/"+mount+"/login") ||
		!strings.Contains(err.Error(), "public key") {
		t.Fatalf("Check = %v, want Vault's gcp backend rejecting the token's key", err)
	}
	t.Logf("leash reports: %v", err)
	if keyLookups() == 0 {
		t.Fatal("Vault did not look up the token's signing key: it did not get the token")
	}
	reqs := log.all()
	if len(reqs) == 0 {
		t.Fatal("no request to the metadata server")
	}
	r := reqs[0]
	if r.Method != http.MethodGet || r.URL.Query().Get("audience") != "vault/app" || r.URL.Query().Get("format") != "full" {
		t.Fatalf("metadata request %s %s: want GET with audience=vault/app&format=full", r.Method, r.URL)
	}
	if strings.Contains(err.Error(), tok) || strings.Contains(h.log.String(), tok) {
		t.Fatal("the identity token is in the error or the trace log")
	}
}

// Metadata failures name the URL; a server that does not answer is
// retried until the startup timeout.
func TestGCPLoginErrorsNameTheMetadataServer(t *testing.T) {
	s := testvault.Shared(t)
	mount, _ := gcpMount(t, s)
	start := func(t *testing.T, sa string) error {
		cfg := Config{Auth: AuthConfig{Method: "gcp", Mount: mount, Role: "app", GCPServiceAccount: sa}, Specs: []Spec{{ID: "x", Path: "secret/x"}}, StartupTimeout: 3 * time.Second}
		h := newHarness(t, s, nil, cfg)
		_, err := h.m.Start(context.Background())
		return err
	}
	t.Run("unknown service account", func(t *testing.T) {
		md, _ := fakeMetadata(t, fakeGCEToken("app"))
		t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(md.URL, "http://"))
		err := start(t, "other@leash-test.iam.gserviceaccount.com")
		want := md.URL + "/computeMetadata/v1/instance/service-accounts/other@leash-test.iam.gserviceaccount.com/identity"
		if !errors.Is(err, ErrNoIdentity) || errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "404") {
			t.Fatalf("err = %v, want a 404 naming %s", err, want)
		}
	})
	t.Run("metadata server down", func(t *testing.T) {
		md := httptest.NewServer(http.NotFoundHandler())
		md.Close()
		t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(md.URL, "http://"))
		err := start(t, "")
		if !errors.Is(err, ErrNoIdentity) || !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "metadata server "+md.URL) {
			t.Fatalf("err = %v, want unreachable naming the metadata server", err)
		}
	})
}

// The iam type runs to a successful login against Vault's real gcp
// backend: only Google is a loopback fake (testvault.GCPAuth, which checks
// the token grant, leash's access token and signJwt's exact payload),
// since Google cannot be reached from the test machines. Vault checks the
// JWT's signature against the certificate the fake publishes for the
// service account, and the account against the role, as it would Google's.

// gcpEnv points Application Default Credentials at kv only: no gcloud
// file, no key file, and the metadata server at nothing unless kv sets
// GCE_METADATA_HOST.
func gcpEnv(t *testing.T, kv ...string) {
	t.Helper()
	t.Setenv("CLOUDSDK_CONFIG", t.TempDir())
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(closed.URL, "http://"))
	for _, e := range kv {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
}

func gcpIAMFixture(t *testing.T, ttl, maxTTL time.Duration) (*testvault.GCPAuth, Config) {
	g := testvault.GCP(t, nil, ttl, maxTTL)
	s := g.Server
	kv := s.KV(t, 1)
	s.Write(t, kv+"/app", map[string]any{"k": "v"})
	pol := s.Policy(t, `path "`+kv+`/app" { capabilities = ["read"] }`)
	s.Write(t, "auth/"+g.Mount+"/role/app", map[string]any{"token_policies": []string{pol}})
	s.Write(t, "auth/"+g.Mount+"/role/"+g.GCERole, map[string]any{"token_policies": []string{pol}})
	return g, Config{Auth: AuthConfig{Method: "gcp", GCPType: "iam", Mount: g.Mount, Role: g.Role, GCPIAMCredentialsURL: g.URL},
		Specs: []Spec{{ID: "app", Path: kv + "/app"}}}
}

// With a service-account key file, leash logs in, and logs in again
// before the token's max ttl with a JWT signed anew.
func TestGCPIAMLoginWithKeyFile(t *testing.T) {
	g, cfg := gcpIAMFixture(t, 3*time.Second, 6*time.Second)
	gcpEnv(t, "GOOGLE_APPLICATION_CREDENTIALS="+g.KeyFile)
	h := newHarness(t, g.Server, nil, cfg)
	snap, err := h.m.Start(context.Background())
	if err != nil {
		t.Fatalf("Start: %v\nfake google refused: %q\n%s", err, g.Rejects(), h.log)
	}
	if got := str(t, snap.Secrets["app"], "k"); got != "v" {
		t.Fatalf("secret = %q", got)
	}
	c := g.LastClaims()
	exp := time.Unix(int64(c["exp"].(float64)), 0)
	if c["sub"] != g.Account || c["aud"] != "vault/app" || time.Until(exp) > 15*time.Minute {
		t.Fatalf("signJwt payload %v: want sub %s, aud vault/app, exp within 15m", c, g.Account)
	}
	stop := h.run()
	h.log.wait(t, "logged in again", 1, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := g.Signed.Load(); n < 2 {
		t.Fatalf("%d JWTs signed, want a new one for the re-login", n)
	}
	var key struct {
		PrivateKey string `json:"private_key"`
	}
	b, _ := os.ReadFile(g.KeyFile)
	json.Unmarshal(b, &key)
	keyLine := strings.Split(key.PrivateKey, "\n")[2]
	for _, leak := range []string{keyLine, "ya29.fake-", "eyJhbGciOiJSUzI1NiIs"} {
		if strings.Contains(h.log.String(), leak) {
			t.Fatalf("the trace log holds %q (a private key, an access token or the signed JWT)", leak)
		}
	}
	if err := h.m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// On Google Cloud without a key file, the access token and the service
// account come from the metadata server.
func TestGCPIAMLoginFromMetadataServer(t *testing.T) {
	g, cfg := gcpIAMFixture(t, time.Hour, time.Hour)
	gcpEnv(t, "GCE_METADATA_HOST="+g.MetadataHost())
	h := newHarness(t, g.Server, nil, cfg)
	if _, err := h.m.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v\nfake google refused: %q\n%s", err, g.Rejects(), h.log)
	}
	if g.Signed.Load() != 1 {
		t.Fatal("no JWT signed")
	}
	if err := h.m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Each failure names the credential source or endpoint that failed; none
// reaches Vault.
func TestGCPIAMLoginErrorsNameTheSource(t *testing.T) {
	g, cfg := gcpIAMFixture(t, time.Hour, time.Hour)
	cfg.StartupTimeout = 3 * time.Second
	start := func(t *testing.T, mod func(*Config)) error {
		c := cfg
		if mod != nil {
			mod(&c)
		}
		h := newHarness(t, g.Server, nil, c)
		_, err := h.m.Start(context.Background())
		return err
	}
	missing := filepath.Join(t.TempDir(), "missing.json")
	user := writeFile(t, "user.json", `{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}`)
	for _, c := range []struct {
		name, env string
		mod       func(*Config)
		want      []string
	}{
		{"key file missing", "GOOGLE_APPLICATION_CREDENTIALS=" + missing, nil,
			[]string{"gcp application default credentials (GOOGLE_APPLICATION_CREDENTIALS=" + missing + ")", "no such file"}},
		{"user credentials name no account", "GOOGLE_APPLICATION_CREDENTIALS=" + user, nil,
			[]string{"GOOGLE_APPLICATION_CREDENTIALS=" + user, "--gcp-service-account"}},
		{"signJwt denied", "GOOGLE_APPLICATION_CREDENTIALS=" + g.KeyFile, func(c *Config) {
			c.Auth.GCPServiceAccount = "other@" + testvault.GCPProject + ".iam.gserviceaccount.com"
		}, []string{"IAM Credentials API " + g.URL + "/v1/projects/-/serviceAccounts/other@" + testvault.GCPProject + ".iam.gserviceaccount.com:signJwt", "404", "not found"}},
		{"no metadata server", "", nil, []string{"metadata server http://", "/computeMetadata/v1/instance/service-accounts/default/token"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.env != "" {
				gcpEnv(t, c.env)
			} else {
				gcpEnv(t)
			}
			err := start(t, c.mod)
			if !errors.Is(err, ErrNoIdentity) {
				t.Fatalf("err = %v, want ErrNoIdentity", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to name %q", err, w)
				}
			}
		})
	}
}

// The gce type to a successful login too, against the same backend and
// stand-in: the identity token is signed with the key the stand-in
// publishes as Google's OAuth key, and Vault looks the instance up at its
// Compute API. leash logs in again before the max ttl with a fresh token.
func TestGCELoginAgainstVault(t *testing.T) {
	g, cfg := gcpIAMFixture(t, 3*time.Second, 6*time.Second)
	cfg.Auth.GCPType, cfg.Auth.Role, cfg.Auth.GCPIAMCredentialsURL = "", g.GCERole, ""
	gcpEnv(t, "GCE_METADATA_HOST="+g.MetadataHost())
	h := newHarness(t, g.Server, nil, cfg)
	snap, err := h.m.Start(context.Background())
	if err != nil {
		t.Fatalf("Start: %v\nfake google refused: %q\n%s", err, g.Rejects(), h.log)
	}
	if got := str(t, snap.Secrets["app"], "k"); got != "v" {
		t.Fatalf("secret = %q", got)
	}
	stop := h.run()
	h.log.wait(t, "logged in again", 1, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := h.m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	auds := g.Audiences()
	if len(auds) < 2 || auds[0] != "vault/"+g.GCERole {
		t.Fatalf("identity tokens for %q, want one per login for vault/%s", auds, g.GCERole)
	}
	if strings.Contains(h.log.String(), "eyJhbGciOiJSUzI1NiIs") {
		t.Fatal("an identity token is in the trace log")
	}
}
