package testvault

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/leash-dev/leash/internal/devkit"
)

func secs(d time.Duration) string { return fmt.Sprintf("%ds", int(d.Seconds())) }

// Mount enables a secrets engine of type typ at a unique path and returns it.
func (s *Server) Mount(t testing.TB, typ string, options map[string]string, maxTTL time.Duration) string {
	t.Helper()
	path := Unique(t, typ)
	in := &api.MountInput{Type: typ, Options: options}
	if maxTTL > 0 {
		in.Config.MaxLeaseTTL = secs(maxTTL)
		in.Config.DefaultLeaseTTL = secs(maxTTL)
	}
	if err := s.Client.Sys().MountWithContext(context.Background(), path, in); err != nil {
		t.Fatalf("mount %s at %s: %v", typ, path, err)
	}
	return path
}

// EnableAuth enables an auth method of type typ at a unique path and returns it.
func (s *Server) EnableAuth(t testing.TB, typ string) string {
	t.Helper()
	path := Unique(t, typ)
	err := s.Client.Sys().EnableAuthWithOptionsWithContext(context.Background(), path, &api.EnableAuthOptions{Type: typ})
	if err != nil {
		t.Fatalf("enable auth %s at %s: %v", typ, path, err)
	}
	return path
}

// KV mounts a KV engine of version 1 or 2 and returns the mount path.
func (s *Server) KV(t testing.TB, version int) string {
	t.Helper()
	return s.Mount(t, "kv", map[string]string{"version": fmt.Sprint(version)}, 0)
}

// Policy writes an ACL policy under a unique name and returns the name.
func (s *Server) Policy(t testing.TB, hcl string) string {
	t.Helper()
	name := Unique(t, "policy")
	if err := s.Client.Sys().PutPolicyWithContext(context.Background(), name, hcl); err != nil {
		t.Fatalf("put policy: %v", err)
	}
	return name
}

// LimitedToken returns a renewable token (1h) holding only a policy built from hcl
// (plus default), for permission-denied tests.
func (s *Server) LimitedToken(t testing.TB, hcl string) string {
	t.Helper()
	pol := s.Policy(t, hcl)
	sec, err := s.Client.Auth().Token().CreateWithContext(context.Background(), &api.TokenCreateRequest{
		Policies: []string{pol}, TTL: "1h",
	})
	if err != nil {
		t.Fatalf("create limited token: %v", err)
	}
	return sec.Auth.ClientToken
}

// TokenRole creates a token role issuing renewable child tokens with the
// given explicit max TTL. Tokens are created by writing to the returned path
// ("auth/token/create/ROLE") with a "ttl" parameter.
func (s *Server) TokenRole(t testing.TB, maxTTL time.Duration) (createPath string) {
	t.Helper()
	role := Unique(t, "role")
	s.Write(t, "auth/token/roles/"+role, map[string]any{
		"renewable":              true,
		"token_explicit_max_ttl": secs(maxTTL),
		"orphan":                 false,
	})
	return "auth/token/create/" + role
}

// PKI mounts a PKI engine with a root CA and a role with generate_lease=true.
// Certificates are issued by writing to the returned path ("MOUNT/issue/ROLE")
// with common_name "NAME.example.test" and an optional ttl.
func (s *Server) PKI(t testing.TB, maxTTL time.Duration) (issuePath string) {
	t.Helper()
	mount := s.Mount(t, "pki", nil, 24*time.Hour)
	s.Write(t, mount+"/root/generate/internal", map[string]any{
		"common_name": "leash test root", "ttl": "24h", "key_type": "ec", "key_bits": 256,
	})
	s.Write(t, mount+"/roles/web", map[string]any{
		"allowed_domains":  "example.test",
		"allow_subdomains": true,
		"generate_lease":   true,
		"max_ttl":          secs(maxTTL),
		"ttl":              secs(maxTTL),
		"key_type":         "ec",
		"key_bits":         256,
		"no_store":         false,
	})
	return mount + "/issue/web"
}

// AppRole is an AppRole auth mount with one role.
type AppRole struct {
	Mount, Role string
	RoleID      string
	SecretID    string // a plain secret_id, or a wrapping token when wrapped
}

// AppRole enables AppRole auth with a role granting policies, tokens with
// the given TTL and max TTL. With wrap, SecretID is a response-wrapping token.
func (s *Server) AppRole(t testing.TB, policies []string, ttl, maxTTL time.Duration, wrap bool) *AppRole {
	t.Helper()
	a := &AppRole{Mount: s.EnableAuth(t, "approle"), Role: "app"}
	s.Write(t, "auth/"+a.Mount+"/role/app", map[string]any{
		"token_policies":     policies,
		"token_ttl":          secs(ttl),
		"token_max_ttl":      secs(maxTTL),
		"secret_id_num_uses": 0,
	})
	a.RoleID = s.Read(t, "auth/"+a.Mount+"/role/app/role-id").Data["role_id"].(string)
	c := s.Client
	if wrap {
		var err error
		c, err = s.Client.Clone()
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken(s.RootToken)
		c.SetWrappingLookupFunc(func(string, string) string { return "5m" })
	}
	sec, err := c.Logical().WriteWithContext(context.Background(), "auth/"+a.Mount+"/role/app/secret-id", nil)
	if err != nil {
		t.Fatalf("approle secret-id: %v", err)
	}
	if wrap {
		a.SecretID = sec.WrapInfo.Token
	} else {
		a.SecretID = sec.Data["secret_id"].(string)
	}
	return a
}

// Signer signs JWTs with a fresh P-256 key (ES256).
type Signer struct {
	key *ecdsa.PrivateKey
}

// NewSigner generates a key.
func NewSigner(t testing.TB) *Signer {
	t.Helper()
	return &Signer{key: newKey(t)}
}

// PublicPEM returns the public key as PEM ("PUBLIC KEY").
func (s *Signer) PublicPEM(t testing.TB) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// Sign returns a compact ES256 JWT carrying claims.
func (s *Signer) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	hdr, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT"})
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(hdr) + "." + enc.EncodeToString(body)
	sum := sha256.Sum256([]byte(signing))
	r, sv, err := ecdsa.Sign(rand.Reader, s.key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sv.FillBytes(sig[32:])
	return signing + "." + enc.EncodeToString(sig)
}

// JWTAuth is a JWT auth mount validating tokens signed by a local ECDSA key.
type JWTAuth struct {
	Mount, Role string
	Issuer      string
	Audience    string
	Subject     string
	*Signer
}

// JWT enables JWT auth with jwt_validation_pubkeys set to a fresh P-256 key
// and a role "app" bound to Issuer/Audience/Subject.
func (s *Server) JWT(t testing.TB, policies []string, ttl, maxTTL time.Duration) *JWTAuth {
	t.Helper()
	j := &JWTAuth{
		Mount: s.EnableAuth(t, "jwt"), Role: "app",
		Issuer: "https://ci.example.test", Audience: "leash-test", Subject: "workload-1",
		Signer: NewSigner(t),
	}
	s.Write(t, "auth/"+j.Mount+"/config", map[string]any{
		"jwt_validation_pubkeys": []string{j.PublicPEM(t)},
		"bound_issuer":           j.Issuer,
	})
	s.Write(t, "auth/"+j.Mount+"/role/app", map[string]any{
		"role_type":       "jwt",
		"user_claim":      "sub",
		"bound_audiences": []string{j.Audience},
		"bound_subject":   j.Subject,
		"token_policies":  policies,
		"token_ttl":       secs(ttl),
		"token_max_ttl":   secs(maxTTL),
	})
	return j
}

// Token returns a JWT for the role's issuer, audience and subject, valid
// for validFor.
func (j *JWTAuth) Token(t testing.TB, validFor time.Duration) string {
	t.Helper()
	now := time.Now()
	return j.Sign(t, map[string]any{
		"iss": j.Issuer, "aud": j.Audience, "sub": j.Subject,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(validFor).Unix(),
		"jti": devkit.RandHex(8),
	})
}

// Database mounts the database engine pointed at a PostgreSQL database and
// creates a role whose credentials are login roles with VALID UNTIL and
// SELECT on the public schema. connURL is a Vault connection_url template
// ("postgresql://{{username}}:{{password}}@127.0.0.1:5432/DB?sslmode=disable").
// Credentials are read from the returned path ("MOUNT/creds/app").
func (s *Server) Database(t testing.TB, connURL, user, password string, ttl, maxTTL time.Duration) (credsPath string) {
	t.Helper()
	mount := s.Mount(t, "database", nil, 0)
	s.Write(t, mount+"/config/pg", map[string]any{
		"plugin_name":       "postgresql-database-plugin",
		"connection_url":    connURL,
		"username":          user,
		"password":          password,
		"allowed_roles":     "*",
		"verify_connection": true,
	})
	s.Write(t, mount+"/roles/app", map[string]any{
		"db_name": "pg",
		"creation_statements": []string{
			`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
			`GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";`,
		},
		"default_ttl": secs(ttl),
		"max_ttl":     secs(maxTTL),
	})
	return mount + "/creds/app"
}

// StaticRole mounts the database engine pointed at a PostgreSQL database
// (connURL, user and password as for Database) and makes Vault manage the
// password of the existing login role username, rotating it every period
// (at least 5 s, Vault's minimum; Vault's rotation queue ticks every 5 s,
// so a rotation comes up to 5 s after its time, as in production). Vault
// sets a new password at once. Credentials are read from the returned path
// ("MOUNT/static-creds/app").
func (s *Server) StaticRole(t testing.TB, connURL, user, password, username string, period time.Duration) (credsPath string) {
	t.Helper()
	mount := s.Mount(t, "database", nil, 0)
	s.Write(t, mount+"/config/pg", map[string]any{
		"plugin_name":       "postgresql-database-plugin",
		"connection_url":    connURL,
		"username":          user,
		"password":          password,
		"allowed_roles":     "*",
		"verify_connection": true,
	})
	s.Write(t, mount+"/static-roles/app", map[string]any{
		"db_name":         "pg",
		"username":        username,
		"rotation_period": secs(period),
	})
	return mount + "/static-creds/app"
}

// LeaseLookup returns the lease's expire_time and ttl as Vault reports
// them, or ok=false when Vault does not know the lease.
func (s *Server) LeaseLookup(t testing.TB, leaseID string) (expire time.Time, ttl time.Duration, ok bool) {
	t.Helper()
	sec, err := s.Client.Logical().WriteWithContext(context.Background(), "sys/leases/lookup", map[string]any{"lease_id": leaseID})
	if err != nil || sec == nil {
		return time.Time{}, 0, false
	}
	if v, ok := sec.Data["expire_time"].(string); ok {
		expire, _ = time.Parse(time.RFC3339Nano, v)
	}
	if n, ok := sec.Data["ttl"].(json.Number); ok {
		i, _ := n.Int64()
		ttl = time.Duration(i) * time.Second
	}
	return expire, ttl, true
}

// LeaseIDs lists the lease ids Vault holds under prefix (for example
// "database-x/creds/app/"); nil when there are none.
func (s *Server) LeaseIDs(t testing.TB, prefix string) []string {
	t.Helper()
	sec, err := s.Client.Logical().ListWithContext(context.Background(), "sys/leases/lookup/"+prefix)
	if err != nil {
		t.Fatalf("list leases %s: %v", prefix, err)
	}
	if sec == nil {
		return nil
	}
	var ids []string
	keys, _ := sec.Data["keys"].([]any)
	for _, k := range keys {
		ids = append(ids, prefix+k.(string))
	}
	return ids
}
