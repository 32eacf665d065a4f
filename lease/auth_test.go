package lease

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
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
		{"approle wrapped secret_id, creation path checked", func(t *testing.T, policy string) AuthConfig {
			// The re-login uses the secret_id unwrapped at the first: the
			// token in the file is used up and is not looked up again.
			a := s.AppRole(t, []string{policy}, ttl, maxTTL, true)
			return AuthConfig{Method: "approle", Mount: a.Mount, SecretIDWrapPath: "auth/" + a.Mount + "/role/app/secret-id",
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

// With SecretIDWrapPath a wrapped secret_id is looked up before it is
// unwrapped, and used only if Vault says it was created at that path (Vault
// Agent's secret_id_response_wrapping_path). The mismatch is the attack the
// check is for: someone unwrapped the secret_id in transit and wrapped it
// again with sys/wrapping/wrap. It is refused as permission denied,
// naming both paths and the file, with neither the wrapping token nor the
// secret_id in the error or the trace log, and the token is left unwrapped.
// A plain secret_id is refused too: the file must hold a wrapping token.
func TestSecretIDWrapPath(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	kv := s.KV(t, 1)
	s.Write(t, kv+"/app", map[string]any{"k": "v"})
	policy := s.Policy(t, `path "`+kv+`/app" { capabilities = ["read"] }`)
	// rewrap unwraps tok and wraps its secret_id again, at sys/wrapping/wrap.
	rewrap := func(t *testing.T, tok string) (wrapped, sid string) {
		t.Helper()
		c, err := s.Client.Clone()
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken(s.RootToken)
		uw, err := c.Logical().Unwrap(tok)
		if err != nil {
			t.Fatal(err)
		}
		sid = uw.Data["secret_id"].(string)
		c.SetWrappingLookupFunc(func(string, string) string { return "5m" })
		sec, err := c.Logical().Write("sys/wrapping/wrap", map[string]any{"secret_id": sid})
		if err != nil {
			t.Fatal(err)
		}
		return sec.WrapInfo.Token, sid
	}
	tests := []struct {
		name    string
		content func(t *testing.T, a *testvault.AppRole) (file string, secrets []string)
		want    error    // nil: the login works
		names   []string // what the error must name besides the file
	}{
		{"created at the path", func(t *testing.T, a *testvault.AppRole) (string, []string) {
			return a.SecretID, nil
		}, nil, nil},
		{"wrapped again elsewhere", func(t *testing.T, a *testvault.AppRole) (string, []string) {
			w, sid := rewrap(t, a.SecretID)
			return w, []string{w, sid}
		}, ErrPermissionDenied, []string{`created at "sys/wrapping/wrap"`, `not at "auth/`}},
		{"plain secret_id", func(t *testing.T, a *testvault.AppRole) (string, []string) {
			_, sid := rewrap(t, a.SecretID)
			return sid, []string{sid}
		}, ErrUnsupported, []string{"holds no valid wrapping token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := s.AppRole(t, []string{policy}, time.Hour, time.Hour, true)
			content, secrets := tt.content(t, a)
			file := writeFile(t, "secret_id", content)
			h := newHarness(t, s, nil, Config{
				Auth: AuthConfig{Method: "approle", Mount: a.Mount, SecretIDWrapPath: "auth/" + a.Mount + "/role/app/secret-id",
					RoleIDFile: writeFile(t, "role_id", a.RoleID), SecretIDFile: file},
				Specs: []Spec{{ID: "app", Path: kv + "/app"}}})
			snap, err := h.m.Start(context.Background())
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got := str(t, snap.Secrets["app"], "k"); got != "v" {
					t.Fatalf("k = %q", got)
				}
				if err := h.m.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Start: %v, want %v", err, tt.want)
			}
			msg := err.Error()
			t.Logf("refused: %s", msg)
			for _, n := range append(tt.names, file) {
				if !strings.Contains(msg, n) {
					t.Errorf("error %q does not name %s", msg, n)
				}
			}
			for _, sec := range secrets {
				if strings.Contains(msg, sec) || strings.Contains(h.log.String(), sec) {
					t.Errorf("a secret is in the error %q or the log:\n%s", msg, h.log.String())
				}
			}
			if tt.want == ErrPermissionDenied {
				// Refused before the unwrap: the token is still there to investigate.
				if _, err := s.Client.Logical().Write("sys/wrapping/lookup", map[string]any{"token": secrets[0]}); err != nil {
					t.Errorf("the refused wrapping token was used up: %v", err)
				}
			}
		})
	}
}

// The wrap path is approle's, and Vault's creation_path has no leading or
// trailing slash: New says so rather than refusing every token later.
func TestSecretIDWrapPathInvalid(t *testing.T) {
	approle := AuthConfig{Method: "approle", RoleIDFile: "/r", SecretIDFile: "/s"}
	tests := []struct {
		name string
		auth AuthConfig
		want string
	}{
		{"not approle", AuthConfig{Method: "token", SecretIDWrapPath: "auth/approle/role/app/secret-id"}, "for approle auth, not token"},
		{"leading slash", func() AuthConfig { a := approle; a.SecretIDWrapPath = "/auth/approle/role/app/secret-id"; return a }(), `write "auth/approle/role/app/secret-id"`},
		{"trailing slash", func() AuthConfig { a := approle; a.SecretIDWrapPath = "auth/approle/role/app/secret-id/"; return a }(), "never starts or ends"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Env: []string{"VAULT_ADDR=http://127.0.0.1:1"}, Auth: tt.auth})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
