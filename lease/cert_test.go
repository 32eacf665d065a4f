package lease

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
)

// testCA signs client certificates for the cert auth tests.
type testCA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	pem  string
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "leash test client CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{key: key, cert: cert, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// issue writes a client certificate for cn and its key to certFile and
// keyFile, each replaced by a rename as a renewing agent would.
func (ca *testCA) issue(t testing.TB, cn, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for file, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(file+".new", pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".new", file); err != nil {
			t.Fatal(err)
		}
	}
}

// tokenCommonName returns the client certificate common name Vault
// recorded for a cert-auth token.
func tokenCommonName(t testing.TB, s *testvault.Server, tok *token) string {
	t.Helper()
	sec, err := s.Client.Auth().Token().Lookup(string(tok.value))
	if err != nil {
		t.Fatalf("look up the login token: %v", err)
	}
	meta, _ := sec.Data["meta"].(map[string]any)
	cn, _ := meta["common_name"].(string)
	return cn
}

// cert auth against a TLS Vault: leash logs in with VAULT_CLIENT_CERT,
// logs in again before the token's max ttl, and that second login presents
// the certificate renewed on disk in the meantime (re-read at the
// handshake, on a fresh connection), not the one loaded at start.
func TestCertLoginPresentsRenewedCertificate(t *testing.T) {
	t.Parallel()
	s := testvault.NewTLS(t)
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	ca.issue(t, "client-1", certFile, keyFile)
	issue := s.PKI(t, time.Hour)
	policy := s.Policy(t, loginPolicy(issue))
	mount := s.EnableAuth(t, "cert")
	s.Write(t, "auth/"+mount+"/certs/app", map[string]any{
		"certificate": ca.pem, "token_policies": []string{policy}, "token_ttl": "4s", "token_max_ttl": "8s",
	})
	h := newHarness(t, s, []string{"VAULT_CACERT=" + s.CACert, "VAULT_CLIENT_CERT=" + certFile, "VAULT_CLIENT_KEY=" + keyFile}, Config{
		Auth:  AuthConfig{Method: "cert", Mount: mount, Role: "app"},
		Specs: []Spec{{ID: "cert", Path: issue, Params: map[string]string{"common_name": "a.example.test", "ttl": "1h"}}},
	})
	snap1, err := h.m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h.m.mu.Lock()
	tok1 := h.m.tok
	h.m.mu.Unlock()
	if !tok1.own || tok1.ttl != 4*time.Second {
		t.Fatalf("login token own=%v ttl=%s", tok1.own, tok1.ttl)
	}
	if cn := tokenCommonName(t, s, tok1); cn != "client-1" {
		t.Fatalf("first login presented %q, want client-1", cn)
	}
	ca.issue(t, "client-2", certFile, keyFile) // renewed on disk
	stop := h.run()
	h.log.wait(t, "logged in again", 1, 20*time.Second)
	h.m.mu.Lock()
	tok2 := h.m.tok
	h.m.mu.Unlock()
	if cn := tokenCommonName(t, s, tok2); cn != "client-2" {
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
