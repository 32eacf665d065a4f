package lease

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
)

// loginPolicy lets a login token issue certificates and revoke leases.
func loginPolicy(issue string) string {
	return `
path "` + issue + `" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }`
}

// Real logins (approle, wrapped approle, jwt, kubernetes against a fake
// TokenReview API). Tokens have ttl 8s and max ttl 16s, so leash must log
// in again, and the certificate lease owned by the dying token must be
// handed over before that token expires (consul-template#1433). With 4s/8s
// the jwt case failed under load (issue 17): a login and a certificate
// issue on a busy machine can take a good part of 8s.
func TestLoginAndRelogin(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	const ttl, maxTTL = 8 * time.Second, 16 * time.Second
	tests := []struct {
		name  string
		setup func(t *testing.T, policy string) AuthConfig
	}{
		{"approle", func(t *testing.T, policy string) AuthConfig {
			a := s.AppRole(t, []string{policy}, ttl, maxTTL, false)
			return AuthConfig{Method: "approle", Mount: a.Mount,
				RoleIDFile: writeFile(t, "role_id", a.RoleID), SecretIDFile: writeFile(t, "secret_id", a.SecretID)}
		}},
		{"approle wrapped secret_id", func(t *testing.T, policy string) AuthConfig {
			a := s.AppRole(t, []string{policy}, ttl, maxTTL, true)
			return AuthConfig{Method: "approle", Mount: a.Mount,
				RoleIDFile: writeFile(t, "role_id", a.RoleID), SecretIDFile: writeFile(t, "secret_id", a.SecretID)}
		}},
		{"approle wrapped secret_id, file removed after reading", func(t *testing.T, policy string) AuthConfig {
			// The re-login must work from the secret_id kept in memory.
			a := s.AppRole(t, []string{policy}, ttl, maxTTL, true)
			sid := writeFile(t, "secret_id", a.SecretID)
			t.Cleanup(func() {
				if _, err := os.Stat(sid); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("secret_id file after the logins: %v, want it removed", err)
				}
			})
			return AuthConfig{Method: "approle", Mount: a.Mount, RemoveSecretIDFile: true,
				RoleIDFile: writeFile(t, "role_id", a.RoleID), SecretIDFile: sid}
		}},
		{"jwt", func(t *testing.T, policy string) AuthConfig {
			j := s.JWT(t, []string{policy}, ttl, maxTTL)
			return AuthConfig{Method: "jwt", Mount: j.Mount, Role: j.Role, JWTFile: writeFile(t, "jwt", j.Token(t, time.Hour))}
		}},
		{"kubernetes with fake TokenReview", func(t *testing.T, policy string) AuthConfig {
			k := s.Kubernetes(t, []string{policy}, ttl, maxTTL)
			t.Cleanup(func() {
				if k.Reviews.Load() < 2 {
					t.Errorf("fake TokenReview served %d reviews, want a login and a re-login", k.Reviews.Load())
				}
			})
			return AuthConfig{Method: "kubernetes", Mount: k.Mount, Role: k.Role, JWTFile: writeFile(t, "sa-token", k.JWT)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			issue := s.PKI(t, time.Hour)
			policy := s.Policy(t, loginPolicy(issue))
			h := newHarness(t, s, nil, Config{Auth: tt.setup(t, policy), Specs: []Spec{certSpec(issue)}})
			snap1, err := h.m.Start(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			tok1 := h.token()
			if !tok1.own || tok1.ttl != ttl {
				t.Fatalf("login token own=%v ttl=%s", tok1.own, tok1.ttl)
			}
			deadline := snap1.Secrets["cert"].IssuedAt.Add(maxTTL) // tok1 dies by then at the latest
			stop := h.run()
			h.log.wait(t, "logged in again", 1, 60*time.Second)
			snap2 := h.next(60 * time.Second)
			if now := time.Now(); !now.Before(deadline) {
				t.Fatalf("hand-over at %s, after the first token's max ttl %s", now, deadline)
			}
			if snap2.Secrets["cert"].Fingerprint == snap1.Secrets["cert"].Fingerprint {
				t.Fatal("certificate not replaced")
			}
			h.m.Retire(snap1)
			h.log.wait(t, "lease retired: name=cert", 1, 30*time.Second)
			h.log.wait(t, "old token revoked", 1, 30*time.Second)
			if _, err := s.Client.Auth().Token().Lookup(string(tok1.value)); err == nil {
				t.Fatal("first login token still valid after Retire")
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if err := h.m.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if ids := s.LeaseIDs(t, issue+"/"); len(ids) != 0 {
				t.Fatalf("%d leases left after Close", len(ids))
			}
		})
	}
}
