package lease

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/leash-dev/leash/internal/testvault"
)

// cert auth against a TLS Vault: leash logs in with VAULT_CLIENT_CERT,
// logs in again before the token's max ttl, and that second login presents
// the certificate renewed on disk in the meantime (read at the handshake
// of a connection of its own), not the one loaded at start.
func TestCertLoginPresentsRenewedCertificate(t *testing.T) {
	t.Parallel()
	s := testvault.NewTLS(t)
	issue := s.PKI(t, time.Hour)
	c := s.CertAuth(t, []string{s.Policy(t, loginPolicy(issue))}, 4*time.Second, 8*time.Second)
	env := append([]string{"VAULT_CACERT=" + s.CACert}, c.Env()...)
	h := newHarness(t, s, env, Config{Auth: AuthConfig{Method: "cert", Mount: c.Mount, Role: c.Role}, Specs: []Spec{certSpec(issue)}})
	snap1, err := h.m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cn := s.CommonName(t, string(h.token().value)); cn != "client-1" {
		t.Fatalf("first login presented %q, want client-1", cn)
	}
	c.Renew(t, "client-2", 24*time.Hour)
	stop := h.run()
	h.log.wait(t, "logged in again", 1, 20*time.Second)
	tok2 := h.token()
	if cn := s.CommonName(t, string(tok2.value)); cn != "client-2" {
		t.Fatalf("second login presented %q, want the renewed client-2", cn)
	}
	snap2 := h.next(20 * time.Second)
	if snap2.Secrets["cert"].Fingerprint == snap1.Secrets["cert"].Fingerprint {
		t.Fatal("certificate lease not handed over to the new token")
	}
	h.m.Retire(snap1)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := h.m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.Auth().Token().Lookup(string(tok2.value)); err == nil {
		t.Fatal("login token still valid after Close")
	}
	if ids := s.LeaseIDs(t, issue+"/"); len(ids) != 0 {
		t.Fatalf("%d leases left after Close", len(ids))
	}
}

// A cert login without a client certificate is a config error naming the
// variables, before any request.
func TestCertAuthNeedsClientCertificate(t *testing.T) {
	_, err := New(Config{Env: []string{"VAULT_ADDR=https://127.0.0.1:1", "VAULT_CLIENT_CERT=/x.pem"}, Auth: AuthConfig{Method: "cert"}})
	if err == nil || !strings.Contains(err.Error(), "VAULT_CLIENT_KEY") {
		t.Fatalf("New = %v, want an error naming VAULT_CLIENT_KEY", err)
	}
}

// Vault checks the certificate of the connection a cert-auth token is
// renewed on, expiry included. The certificate leash logged in with
// expires, a renewed one is on disk, and the token renewal after that
// expiry must succeed (presenting the renewed one), not fail on a pooled
// connection and force a new login and a hand-over.
func TestCertTokenRenewalPresentsRenewedCertificate(t *testing.T) {
	t.Parallel()
	s := testvault.NewTLS(t)
	kv := s.KV(t, 1)
	s.Write(t, kv+"/app", map[string]any{"k": "v"})
	c := s.CertAuth(t, []string{s.Policy(t, `path "`+kv+`/app" { capabilities = ["read"] }`)}, 9*time.Second, time.Hour)
	const certLife = 3 * time.Second
	c.Renew(t, "client-1", certLife)
	expires := time.Now().Add(certLife)
	env := append([]string{"VAULT_CACERT=" + s.CACert}, c.Env()...)
	h := newHarness(t, s, env, Config{Auth: AuthConfig{Method: "cert", Mount: c.Mount, Role: c.Role}, Specs: []Spec{{ID: "k", Path: kv + "/app"}}})
	if _, err := h.m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	tok := h.token()
	c.Renew(t, "client-1", 24*time.Hour)
	h.run()
	h.log.wait(t, "token renewed", 1, 20*time.Second)
	if !time.Now().After(expires) {
		t.Fatalf("the token was renewed before the first certificate expired; the test proves nothing")
	}
	if got := h.token(); got != tok || strings.Contains(h.log.String(), "logged in again") {
		t.Fatalf("the renewal failed and leash logged in again:\n%s", h.log.String())
	}
}

// A certificate caught half-replaced (the new certificate, the old key)
// falls back to the last pair read, with a warning; with no earlier pair
// the error names both files.
func TestCertReloaderKeepsLastGoodPair(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	c := s.CertAuth(t, nil, time.Hour, time.Hour)
	logs := newLogBuf()
	r := &certReloader{certFile: c.CertFile, keyFile: c.KeyFile, log: hclog.New(&hclog.LoggerOptions{Output: logs})}
	good, err := r.get(nil)
	if err != nil {
		t.Fatal(err)
	}
	oldKey, err := os.ReadFile(c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	c.Renew(t, "client-2", time.Hour)
	if err := os.WriteFile(c.KeyFile, oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := r.get(nil); err != nil || got != good {
		t.Fatalf("mismatched pair: got %p, %v; want the last good pair", got, err)
	}
	if !strings.Contains(logs.String(), "presenting the last one read") {
		t.Errorf("no warning:\n%s", logs.String())
	}
	fresh := &certReloader{certFile: c.CertFile, keyFile: c.KeyFile, log: hclog.NewNullLogger()}
	if _, err := fresh.get(nil); err == nil || !strings.Contains(err.Error(), c.CertFile) || !strings.Contains(err.Error(), c.KeyFile) {
		t.Fatalf("no earlier pair: %v, want an error naming both files", err)
	}
}
