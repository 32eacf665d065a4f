package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leash-dev/leash/internal/testvault"
	"github.com/leash-dev/leash/internal/vaultproxy"
)

// A redirect from VAULT_ADDR to another host is refused with exit 78, an
// error naming both addresses and the flag that allows it, and nothing
// sent there; --vault-redirect-allow, its environment variable and its
// config key let it through.
func TestVaultRedirectAllow(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "p"}})
	token := srv.LimitedToken(t, `path "`+kv+`/data/app" { capabilities = ["read"] }`)
	// other is Vault too, under another host name: a followed redirect
	// works, and a refused one shows as no request there.
	other := vaultproxy.Start(t, srv.Addr)
	otherAddr := strings.Replace(other.Addr(), "127.0.0.1", "localhost", 1)
	front := vaultproxy.Start(t, srv.Addr)
	front.Redirect(otherAddr, -1)
	conf := filepath.Join(t.TempDir(), "leash.hcl")
	if err := os.WriteFile(conf, []byte(`vault_redirect_allow = ["localhost"]`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	leash := func(env []string, args ...string) (int, string) {
		cmd := leashCmd(t, append(args, "-s", "pw="+kv+"/app#password", "--", "true")...)
		cmd.Env = append(cmd.Env, append(env, "VAULT_ADDR="+front.Addr(), "VAULT_TOKEN="+token)...)
		return exitStatus(t, cmd)
	}

	got, stderr := leash(nil)
	if got != exitConfig {
		t.Fatalf("exit %d, want %d; stderr:\n%s", got, exitConfig, stderr)
	}
	if n := other.Requests(""); n != 0 {
		t.Fatalf("the other host received %d requests", n)
	}
	for _, want := range []string{front.Addr(), otherAddr, "--vault-redirect-allow"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not name %s:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, token) {
		t.Errorf("stderr holds the token:\n%s", stderr)
	}

	for _, tt := range []struct {
		name string
		env  []string
		args []string
	}{
		{"flag", nil, []string{"--vault-redirect-allow", "localhost"}},
		{"environment", []string{"LEASH_VAULT_REDIRECT_ALLOW=example.invalid,localhost"}, nil},
		{"config file", nil, []string{"-c", conf}},
	} {
		before := other.Requests("")
		if got, stderr := leash(tt.env, tt.args...); got != 0 {
			t.Errorf("%s: exit %d, want 0; stderr:\n%s", tt.name, got, stderr)
		}
		if other.Requests("") == before {
			t.Errorf("%s: the allowed host received no request", tt.name)
		}
	}

	got, stderr = leash(nil, "--vault-redirect-allow", otherAddr)
	if got != exitConfig || !strings.Contains(stderr, "--vault-redirect-allow") {
		t.Errorf("a URL for --vault-redirect-allow: exit %d, want %d naming the flag; stderr:\n%s", got, exitConfig, stderr)
	}
}
