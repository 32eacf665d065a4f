package lease

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
)

// The full gcp login is NOT proven here: Vault's gcp backend accepts only
// tokens Google signed for a real instance. These tests prove leash's half
// against Vault's real gcp backend: the request leash makes to a loopback
// stand-in for the metadata server (GCE_METADATA_HOST), and that the token
// reaches Vault's login as the gce type expects it (Vault parses it and
// asks for the key it names, from the stand-in too: custom_endpoint), and
// what leash reports when Vault rejects it. GCE_METADATA_HOST is read from
// the process environment, so these tests do not run in parallel.

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
