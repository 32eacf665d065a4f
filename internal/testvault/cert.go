package testvault

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CertAuth is TLS certificate auth with a role "app" trusting a fresh CA.
// Logins need a server from NewTLS: Vault reads the client certificate of
// the TLS connection.
type CertAuth struct {
	Mount, Role string
	// CertFile and KeyFile hold a client certificate for "client-1" and
	// its key (VAULT_CLIENT_CERT, VAULT_CLIENT_KEY); Renew replaces them.
	CertFile, KeyFile string
	key               *ecdsa.PrivateKey
	ca                *x509.Certificate
}

// CertAuth enables cert auth with a role trusting a new CA, granting
// policies, tokens with the given TTL and max TTL.
func (s *Server) CertAuth(t testing.TB, policies []string, ttl, maxTTL time.Duration) *CertAuth {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "leash test client CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &CertAuth{
		Mount: s.EnableAuth(t, "cert"), Role: "app",
		CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem"),
		key: key, ca: ca,
	}
	s.Write(t, "auth/"+c.Mount+"/certs/"+c.Role, map[string]any{
		"certificate":    string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		"token_policies": policies,
		"token_ttl":      secs(ttl),
		"token_max_ttl":  secs(maxTTL),
	})
	c.Renew(t, "client-1", 24*time.Hour)
	return c
}

// Renew issues a client certificate for cn, valid for validFor, with a new
// key and replaces CertFile and KeyFile, each by a rename, as a renewing
// agent would.
func (c *CertAuth) Renew(t testing.TB, cn string, validFor time.Duration) {
	t.Helper()
	key := newKey(t)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(validFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for file, block := range map[string]*pem.Block{c.CertFile: {Type: "CERTIFICATE", Bytes: der}, c.KeyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(file+".new", pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".new", file); err != nil {
			t.Fatal(err)
		}
	}
}

// Env is the client certificate environment for leash.
func (c *CertAuth) Env() []string {
	return []string{"VAULT_CLIENT_CERT=" + c.CertFile, "VAULT_CLIENT_KEY=" + c.KeyFile}
}

// CommonName returns the client certificate common name Vault recorded
// for a cert-auth token.
func (s *Server) CommonName(t testing.TB, token string) string {
	t.Helper()
	sec, err := s.Client.Auth().Token().Lookup(token)
	if err != nil {
		t.Fatalf("look up a cert-auth token: %v", err)
	}
	meta, _ := sec.Data["meta"].(map[string]any)
	cn, _ := meta["common_name"].(string)
	return cn
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
