package lease

import (
	"context"
	"strings"
	"testing"
	"time"

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
	c.Renew(t, "client-2")
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
