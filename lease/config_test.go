package lease

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/leash-dev/leash/internal/testvault"
)

func TestClientEnvironment(t *testing.T) {
	t.Setenv("VAULT_ADDR", "https://process-env.invalid:8200")
	t.Setenv("VAULT_TOKEN", "process-token")
	t.Setenv("VAULT_NAMESPACE", "process-ns")
	tests := []struct {
		name     string
		env      []string
		wantAddr string
		wantNS   string
	}{
		{"injected env replaces the process env", []string{"VAULT_ADDR=http://127.0.0.1:1234"}, "http://127.0.0.1:1234", ""},
		{"default address like the CLI", []string{}, "https://127.0.0.1:8200", ""},
		{"OpenBao names when VAULT_ names are unset", []string{"BAO_ADDR=http://bao:8200", "BAO_NAMESPACE=team"}, "http://bao:8200", "team"},
		{"VAULT_ names win", []string{"BAO_ADDR=http://bao:8200", "VAULT_ADDR=http://vault:8200"}, "http://vault:8200", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(Config{Env: tt.env})
			if err != nil {
				t.Fatal(err)
			}
			if got := m.vault.client.Address(); got != tt.wantAddr {
				t.Errorf("address %q, want %q", got, tt.wantAddr)
			}
			if got := m.vault.client.Namespace(); got != tt.wantNS {
				t.Errorf("namespace %q, want %q", got, tt.wantNS)
			}
			if m.vault.client.Token() != "" {
				t.Error("client picked up the process VAULT_TOKEN")
			}
			c, err := m.vault.clientWith("")
			if err != nil {
				t.Fatal(err)
			}
			if c.Token() != "" || c.Namespace() != tt.wantNS || c.Address() != tt.wantAddr {
				t.Errorf("per-request client: token set=%v namespace %q address %q", c.Token() != "", c.Namespace(), c.Address())
			}
		})
	}
}

func TestClientEnvironmentErrors(t *testing.T) {
	for _, env := range [][]string{
		{"VAULT_SKIP_VERIFY=maybe"},
		{"VAULT_MAX_RETRIES=x"},
		{"VAULT_CACERT=/nonexistent/ca.pem"},
	} {
		if _, err := New(Config{Env: env}); err == nil {
			t.Errorf("New with %v: no error", env)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for name, cfg := range map[string]Config{
		"unknown method":    {Auth: AuthConfig{Method: "ldap"}},
		"approle no files":  {Auth: AuthConfig{Method: "approle"}},
		"jwt no role":       {Auth: AuthConfig{Method: "jwt", JWTFile: "/x"}},
		"duplicate id":      {Specs: []Spec{{ID: "a", Path: "x"}, {ID: "a", Path: "y"}}},
		"empty path":        {Specs: []Spec{{ID: "a"}}},
		"fraction too high": {RotateFraction: 1.5},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

// The token comes from BAO_TOKEN, ~/.vault-token, and VAULT_ADDR may be a
// unix socket, all as the vault CLI (and OpenBao's) would have it.
func TestTokenSourcesAndUnixSocket(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	kv := s.KV(t, 1)
	s.Write(t, kv+"/app", map[string]any{"k": "v"})
	spec := []Spec{{ID: "app", Path: kv + "/app"}}

	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, ".vault-token"), []byte(s.RootToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "vault.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(s.Addr)
	srv := &http.Server{Handler: httputil.NewSingleHostReverseProxy(u)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	for name, env := range map[string][]string{
		"BAO_TOKEN":      {"BAO_ADDR=" + s.Addr, "BAO_TOKEN=" + s.RootToken},
		"~/.vault-token": {"VAULT_ADDR=" + s.Addr, "HOME=" + home},
		"unix socket":    {"VAULT_ADDR=unix://" + sock, "VAULT_TOKEN=" + s.RootToken},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := New(Config{Env: env, Specs: spec})
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
		})
	}
}

// leash's Vault transport speaks HTTP/2 over TLS, which carries parallel
// fetches and renewals on one connection. HTTP/2 comes from x/net/http2,
// since leash is built without net/http's copy (make test builds the same).
func TestClientHTTP2OverTLS(t *testing.T) {
	t.Parallel()
	s := testvault.NewTLS(t)
	c, err := newClient(environ{"VAULT_ADDR": s.Addr, "VAULT_CACERT": s.CACert}, nil, false, DefaultMaxResponse, hclog.NewNullLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.CloneConfig().HttpClient.Get(s.Addr + "/v1/sys/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
}

// TLS settings come from the environment like the vault CLI's: the CA via
// VAULT_CACERT, VAULT_SKIP_VERIFY, VAULT_TLS_SERVER_NAME. An unknown CA is
// a permanent error, not a startup-deadline wait.
func TestTLSEnvironment(t *testing.T) {
	t.Parallel()
	s := testvault.NewTLS(t)
	kv := s.KV(t, 1)
	s.Write(t, kv+"/app", map[string]any{"k": "v"})
	caDir := t.TempDir()
	ca, err := os.ReadFile(s.CACert)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(caDir, "ca.pem"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		ok   bool
	}{
		{"VAULT_CACERT", []string{"VAULT_CACERT=" + s.CACert}, true},
		{"VAULT_CAPATH", []string{"VAULT_CAPATH=" + caDir}, true},
		{"BAO_CACERT", []string{"BAO_CACERT=" + s.CACert}, true},
		{"VAULT_SKIP_VERIFY", []string{"VAULT_SKIP_VERIFY=true"}, true},
		{"BAO_SKIP_VERIFY", []string{"BAO_SKIP_VERIFY=1"}, true},
		{"VAULT_SKIP_VERIFY=false", []string{"VAULT_SKIP_VERIFY=false"}, false},
		{"VAULT_TLS_SERVER_NAME", []string{"VAULT_CACERT=" + s.CACert, "VAULT_TLS_SERVER_NAME=localhost"}, true},
		{"wrong server name", []string{"VAULT_CACERT=" + s.CACert, "VAULT_TLS_SERVER_NAME=other.example"}, false},
		{"unknown CA", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := append([]string{"VAULT_ADDR=" + s.Addr, "VAULT_TOKEN=" + s.RootToken}, tt.env...)
			logs := newLogBuf()
			log := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: logs})
			m, err := New(Config{Env: env, Specs: []Spec{{ID: "app", Path: kv + "/app"}}, StartupTimeout: time.Minute, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = m.Start(context.Background())
			// One warning, at New, for a skip that is on; none otherwise.
			wantWarn := 0
			if strings.Contains(tt.name, "SKIP_VERIFY") && tt.ok {
				wantWarn = 1
			}
			if n := logs.count("[WARN]  " + strings.TrimSuffix(tt.name, "=false") + " is set: Vault's TLS certificate is not verified"); n != wantWarn {
				t.Errorf("%d warnings about the skipped verification, want %d; log:\n%s", n, wantWarn, logs.String())
			}
			if tt.ok && err != nil {
				t.Fatal(err)
			}
			if !tt.ok {
				if err == nil {
					t.Fatal("Start succeeded without trusting the server")
				}
				if errors.Is(err, ErrUnreachable) || time.Since(start) > 30*time.Second {
					t.Fatalf("certificate error treated as transient: %v", err)
				}
				if !errors.Is(err, ErrTLS) {
					t.Fatalf("got %v, want ErrTLS", err)
				}
			}
		})
	}
}

// Missing is the one list of what each method needs; New's error names
// the same fields (main's names the flags).
func TestAuthMissing(t *testing.T) {
	tests := []struct {
		auth    AuthConfig
		want    []string
		wantErr string
	}{
		{AuthConfig{}, nil, ""},
		{AuthConfig{Method: "aws"}, nil, ""},
		{AuthConfig{Method: "approle", SecretIDFile: "/s"}, []string{"RoleIDFile"}, "approle auth needs a role_id file"},
		{AuthConfig{Method: "approle"}, []string{"RoleIDFile", "SecretIDFile"}, "approle auth needs a role_id file and a secret_id file"},
		{AuthConfig{Method: "jwt"}, []string{"Role", "JWTFile"}, "jwt auth needs a role and a JWT file"},
		{AuthConfig{Method: "jwt", Role: "r"}, []string{"JWTFile"}, "jwt auth needs a JWT file"},
		{AuthConfig{Method: "kubernetes"}, []string{"Role"}, "kubernetes auth needs a role"},
		{AuthConfig{Method: "gcp"}, []string{"Role"}, "gcp auth needs a role"},
		{AuthConfig{Method: "azure", Role: "r"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.auth.Method, func(t *testing.T) {
			if got := tt.auth.Missing(); !slices.Equal(got, tt.want) {
				t.Fatalf("Missing = %v, want %v", got, tt.want)
			}
			_, err := New(Config{Env: []string{}, Auth: tt.auth})
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Fatalf("New: %v, want %q", err, tt.wantErr)
			}
		})
	}
}
