package lease

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
	"github.com/leash-dev/leash/internal/vaultproxy"
)

// Database credentials against a real PostgreSQL: renewed (Vault's lease
// lookup shows the later expiry), handed over before max_ttl while the old
// role still works, the old role dropped after Retire, the new one usable,
// and everything revoked by Close.
func TestDatabaseRenewHandOverRetire(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	db := testpg.Database(t)
	db.Exec(t, "CREATE TABLE items (id int)")
	creds := s.Database(t, db.VaultURL(), db.User, db.Password, 4*time.Second, 10*time.Second)
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{
		Specs: []Spec{{ID: "db", Path: creds}},
	})
	snap1, err := h.m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	old := snap1.Secrets["db"]
	user1, pass1 := str(t, old, "username"), str(t, old, "password")
	if err := db.Connect(user1, pass1); err != nil {
		t.Fatalf("first credential: %v", err)
	}
	if !old.Renewable || old.LeaseDuration != 4*time.Second || old.Fingerprint == "" {
		t.Fatalf("secret metadata: renewable=%v ttl=%s fp=%q", old.Renewable, old.LeaseDuration, old.Fingerprint)
	}
	ids := s.LeaseIDs(t, creds+"/")
	if len(ids) != 1 || fingerprint(ids[0]) != old.Fingerprint {
		t.Fatalf("vault holds leases %d, want exactly the issued one", len(ids))
	}
	stop := h.run()

	h.log.wait(t, "lease renewed: name=db", 1, 20*time.Second)
	if exp, _, ok := s.LeaseLookup(t, ids[0]); !ok || !exp.After(old.ExpiresAt) {
		t.Fatalf("after renewal vault reports expiry %s (known=%v), want after the issued %s", exp, ok, old.ExpiresAt)
	}

	snap2 := h.next(20 * time.Second)
	handedOver := time.Now()
	maxExpiry := old.IssuedAt.Add(10 * time.Second)
	if !handedOver.Before(maxExpiry) {
		t.Fatalf("hand-over at %s, after the old lease's max ttl %s", handedOver, maxExpiry)
	}
	t.Logf("hand-over %s before the old lease's max ttl", maxExpiry.Sub(handedOver).Round(time.Millisecond))
	cur := snap2.Secrets["db"]
	user2, pass2 := str(t, cur, "username"), str(t, cur, "password")
	if user2 == user1 || cur.Fingerprint == old.Fingerprint || snap2.Seq != snap1.Seq+1 {
		t.Fatalf("snapshot %d did not replace the credential", snap2.Seq)
	}
	if !db.RoleExists(t, user1) {
		t.Fatal("old role dropped before Retire: the child may still use it")
	}
	if err := db.Connect(user2, pass2); err != nil {
		t.Fatalf("new credential: %v", err)
	}

	h.m.Retire(snap1)
	if db.RoleExists(t, user1) {
		t.Fatal("old role still exists after Retire")
	}
	if !db.RoleExists(t, user2) {
		t.Fatal("Retire dropped the current role")
	}
	if err := db.Connect(user2, pass2); err != nil {
		t.Fatalf("current credential after Retire: %v", err)
	}

	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := h.m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if db.RoleExists(t, user2) {
		t.Fatal("role still exists after Close")
	}
	if ids := s.LeaseIDs(t, creds+"/"); len(ids) != 0 {
		t.Fatalf("%d leases left after Close", len(ids))
	}
}

// A PKI certificate with generate_lease is replaced before its NotAfter.
func TestPKIRotatedBeforeNotAfter(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	issue := s.PKI(t, time.Minute)
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{
		Specs: []Spec{{ID: "cert", Path: issue, Params: map[string]string{"common_name": "web.example.test", "ttl": "6s"}}},
	})
	snap1, err := h.m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c1 := snap1.Secrets["cert"]
	na1 := certNotAfter(str(t, c1, "certificate"))
	if c1.Fingerprint == "" || c1.Renewable || na1.IsZero() || c1.ExpiresAt.After(na1) {
		t.Fatalf("cert: fp=%q renewable=%v notAfter=%s expires=%s", c1.Fingerprint, c1.Renewable, na1, c1.ExpiresAt)
	}
	h.run()
	snap2 := h.next(20 * time.Second)
	if now := time.Now(); !now.Before(na1) {
		t.Fatalf("new certificate at %s, after the old NotAfter %s", now, na1)
	}
	c2 := snap2.Secrets["cert"]
	if str(t, c2, "serial_number") == str(t, c1, "serial_number") {
		t.Fatal("rotation kept the same certificate")
	}
	if na2 := certNotAfter(str(t, c2, "certificate")); !na2.After(na1) {
		t.Fatalf("new NotAfter %s not after old %s", na2, na1)
	}
	h.m.Retire(snap1)
	h.log.wait(t, "lease retired: name=cert", 1, 5*time.Second)
}

// A KV v2 secret in CLI form ("mount/app"): refreshes without a change emit
// nothing; one change emits exactly one snapshot with the new version.
func TestKVv2ChangeYieldsOneSnapshot(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	mount := s.KV(t, 2)
	kv := s.Client.KVv2(mount)
	ctx := context.Background()
	if _, err := kv.Put(ctx, "app", map[string]any{"api_key": "one"}); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{
		Specs:         []Spec{{ID: "app", Path: mount + "/app"}},
		StaticRefresh: 100 * time.Millisecond,
	})
	snap1, err := h.m.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sec := snap1.Secrets["app"]
	if str(t, sec, "api_key") != "one" || sec.Version != 1 || sec.Fingerprint != "" || !sec.ExpiresAt.IsZero() {
		t.Fatalf("kv v2 read: version %d fp %q expires %s", sec.Version, sec.Fingerprint, sec.ExpiresAt)
	}
	raw := sec.Raw.Map()
	if _, ok := raw["metadata"]; !ok {
		t.Fatal("Raw lacks the KV v2 metadata")
	}
	h.run()
	h.log.wait(t, "secret unchanged: name=app", 3, 10*time.Second)
	select {
	case s := <-h.m.Updates():
		t.Fatalf("snapshot %d without a change", s.Seq)
	default:
	}
	if _, err := kv.Put(ctx, "app", map[string]any{"api_key": "two"}); err != nil {
		t.Fatal(err)
	}
	snap2 := h.next(10 * time.Second)
	if got := snap2.Secrets["app"]; str(t, got, "api_key") != "two" || got.Version != 2 {
		t.Fatalf("after change: version %d", got.Version)
	}
	n := h.log.count("secret unchanged: name=app")
	h.log.wait(t, "secret unchanged: name=app", n+3, 10*time.Second)
	select {
	case s := <-h.m.Updates():
		t.Fatalf("second snapshot %d for one change", s.Seq)
	default:
	}
}

// KV v1 and the explicit KV v2 data/ form read the same way.
func TestKVForms(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	v1 := s.KV(t, 1)
	s.Write(t, v1+"/app", map[string]any{"k": "v1"})
	v2 := s.KV(t, 2)
	if _, err := s.Client.KVv2(v2).Put(context.Background(), "app", map[string]any{"k": "v2"}); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{Specs: []Spec{
		{ID: "v1", Path: v1 + "/app"},
		{ID: "v2data", Path: v2 + "/data/app"},
	}})
	snap, err := h.m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if str(t, snap.Secrets["v1"], "k") != "v1" || snap.Secrets["v1"].Version != 0 {
		t.Fatal("kv v1 read")
	}
	if str(t, snap.Secrets["v2data"], "k") != "v2" || snap.Secrets["v2data"].Version != 1 {
		t.Fatal("kv v2 data/ form read")
	}
}

// Secrets under one mount share one mount lookup at start-up; secrets
// under different mounts that share a first path segment (base/one,
// base/two) still resolve each to their own mount.
func TestMountLookupsShared(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	ctx := context.Background()
	v2 := s.KV(t, 2)
	base := testvault.Unique(t, "nested")
	for mount, version := range map[string]string{base + "/one": "2", base + "/two": "1"} {
		if err := s.Client.Sys().MountWithContext(ctx, mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": version}}); err != nil {
			t.Fatal(err)
		}
	}
	var specs []Spec
	for i := range 5 {
		name := fmt.Sprintf("app%d", i)
		if _, err := s.Client.KVv2(v2).Put(ctx, name, map[string]any{"k": name}); err != nil {
			t.Fatal(err)
		}
		specs = append(specs, Spec{ID: name, Path: v2 + "/" + name})
	}
	if _, err := s.Client.KVv2(base+"/one").Put(ctx, "a", map[string]any{"k": "one"}); err != nil {
		t.Fatal(err)
	}
	s.Write(t, base+"/two/b", map[string]any{"k": "two"})
	specs = append(specs, Spec{ID: "one", Path: base + "/one/a"}, Spec{ID: "two", Path: base + "/two/b"})

	p := vaultproxy.Start(t, s.Addr)
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{Specs: specs})
	h.m.vault.client.SetAddress(p.Addr())
	snap, err := h.m.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"app0": "app0", "app4": "app4", "one": "one", "two": "two"} {
		if got := str(t, snap.Secrets[id], "k"); got != want {
			t.Errorf("%s: k = %q, want %q", id, got, want)
		}
	}
	if n := p.Requests("sys/internal/ui/mounts/" + v2 + "/"); n != 1 {
		t.Errorf("%d mount lookups for the five secrets of %s, want 1", n, v2)
	}
	if n := p.Requests("sys/internal/ui/mounts/" + base + "/"); n != 2 {
		t.Errorf("%d mount lookups under %s, want one per mount", n, base)
	}
}

// A MOUNT/creds/ROLE path is read as written, with no mount lookup before
// it. A KV secret stored under a folder named creds still reads right: the
// direct read gives no lease (KV v1) or fails (KV v2, whose data lives under
// data/), and leash resolves the mount as for any other path.
func TestCredsPathReadDirectly(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	db := testpg.Database(t)
	creds := s.Database(t, db.VaultURL(), db.User, db.Password, time.Minute, time.Hour)
	dbMount := strings.TrimSuffix(creds, "/creds/app")
	v1, v2 := s.KV(t, 1), s.KV(t, 2)
	s.Write(t, v1+"/creds/app", map[string]any{"k": "v1"})
	if _, err := s.Client.KVv2(v2).Put(context.Background(), "creds/app", map[string]any{"k": "v2"}); err != nil {
		t.Fatal(err)
	}
	// The limited token is denied v2/creds/app (its policy names data/, as
	// KV v2 policies do); the root token gets Vault's answer for a path the
	// KV v2 engine has no handler for.
	limited := s.LimitedToken(t, fmt.Sprintf(`
path "%s" { capabilities = ["read"] }
path "%s/creds/*" { capabilities = ["read"] }
path "%s/data/creds/*" { capabilities = ["read"] }
path "sys/internal/ui/mounts/*" { capabilities = ["read"] }
path "sys/leases/revoke" { capabilities = ["update"] }`, creds, v1, v2))
	for name, tok := range map[string]string{"limited": limited, "root": s.RootToken} {
		t.Run(name, func(t *testing.T) {
			p := vaultproxy.Start(t, s.Addr)
			h := newHarness(t, s, []string{"VAULT_TOKEN=" + tok}, Config{Specs: []Spec{
				{ID: "db", Path: creds}, {ID: "v1", Path: v1 + "/creds/app"}, {ID: "v2", Path: v2 + "/creds/app"},
			}})
			h.m.vault.client.SetAddress(p.Addr())
			snap, err := h.m.Start(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = h.m.Close(context.Background()) })
			if err := db.Connect(str(t, snap.Secrets["db"], "username"), str(t, snap.Secrets["db"], "password")); err != nil {
				t.Errorf("database credential: %v", err)
			}
			if got := str(t, snap.Secrets["v1"], "k"); got != "v1" {
				t.Errorf("kv v1 under creds/: k = %q", got)
			}
			if got := str(t, snap.Secrets["v2"], "k"); got != "v2" || snap.Secrets["v2"].Version != 1 {
				t.Errorf("kv v2 under creds/: k = %q, version %d", got, snap.Secrets["v2"].Version)
			}
			if n := p.Requests("sys/internal/ui/mounts/" + dbMount + "/"); n != 0 {
				t.Errorf("%d mount lookups for %s, want none", n, creds)
			}
			if n := p.Requests(creds); n != 1 {
				t.Errorf("%s requested %d times, want 1", creds, n)
			}
		})
	}
}

func TestIsCredsPath(t *testing.T) {
	for path, want := range map[string]bool{
		"database/creds/app":       true,
		"/database/creds/app/":     true,
		"team/aws/creds/deploy":    true,
		"creds/app":                false,
		"database/creds/":          false,
		"database/static-creds/x":  false,
		"secret/app/creds":         false,
		"database/creds/app/extra": false,
	} {
		if got := isCredsPath(path); got != want {
			t.Errorf("isCredsPath(%q) = %v, want %v", path, got, want)
		}
	}
}

// auth/token/create/ROLE: the auth block is the credential, and it is renewed.
func TestTokenCreateRenewed(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	create := s.TokenRole(t, time.Minute)
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{
		Specs: []Spec{{ID: "tok", Path: create, Params: map[string]string{"ttl": "4s"}}},
	})
	snap, err := h.m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sec := snap.Secrets["tok"]
	child := str(t, sec, "client_token")
	if !sec.Renewable || sec.LeaseDuration != 4*time.Second {
		t.Fatalf("token credential renewable=%v ttl=%s", sec.Renewable, sec.LeaseDuration)
	}
	stop := h.run()
	h.log.wait(t, "lease renewed: name=tok", 2, 20*time.Second)
	look, err := s.Client.Auth().Token().Lookup(child)
	if err != nil {
		t.Fatalf("child token after renewals: %v", err)
	}
	// expire_time has sub-second precision (the ttl is whole seconds).
	raw, _ := look.Data["expire_time"].(string)
	exp, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil || !exp.After(sec.ExpiresAt) {
		t.Fatalf("vault reports expiry %s (err %v), want after the issued %s", exp, err, sec.ExpiresAt)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := h.m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.Auth().Token().Lookup(child); err == nil {
		t.Fatal("child token valid after Close")
	}
}

// Permission denied and a bad path fail Start at once with typed errors
// naming the path; what was already issued is revoked.
func TestStartFailures(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	create := s.TokenRole(t, time.Minute)
	kv := s.KV(t, 2)
	limited := s.LimitedToken(t, `
path "`+create+`" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }`)
	tests := []struct {
		name  string
		token string
		path  string
		want  error
	}{
		{"permission denied", limited, kv + "/app", ErrPermissionDenied},
		{"unmounted path", s.RootToken, "no-such-mount/app", ErrNotFound},
		{"missing kv secret", s.RootToken, kv + "/missing", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, s, []string{"VAULT_TOKEN=" + tt.token}, Config{Specs: []Spec{
				{ID: "ok", Path: create, Params: map[string]string{"ttl": "1m"}},
				{ID: "bad", Path: tt.path},
			}})
			start := time.Now()
			_, err := h.m.Start(context.Background())
			if !errors.Is(err, tt.want) {
				t.Fatalf("Start: %v, want %v", err, tt.want)
			}
			var le *Error
			if !errors.As(err, &le) || le.Path != tt.path {
				t.Fatalf("error %v does not name path %s", err, tt.path)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("permanent failure took %s: it must not wait for the startup deadline", d)
			}
			// The token credential that may have been issued was revoked.
			if n := h.log.count("lease issued: name=ok"); n != h.log.count("lease revoked: name=ok") {
				t.Fatalf("issued %d, revoked %d", n, h.log.count("lease revoked: name=ok"))
			}
		})
	}
}

// With the token method the token lookup runs alongside the fetches. A
// token that may fetch but not look itself up (no default policy) fails
// Start as a login error, and the credential fetched meanwhile is revoked,
// not left in Vault.
func TestStartLookupFailsAfterFetch(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	create := s.TokenRole(t, time.Minute)
	// The child tokens inherit the policy: revoke-self lets leash revoke them.
	pol := s.Policy(t, `path "`+create+`" { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }`)
	sec, err := s.Client.Auth().Token().CreateWithContext(context.Background(), &api.TokenCreateRequest{
		Policies: []string{pol}, NoDefaultPolicy: true, TTL: "1h",
	})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + sec.Auth.ClientToken}, Config{Specs: []Spec{
		{ID: "tok", Path: create, Params: map[string]string{"ttl": "1m"}},
	}})
	_, err = h.m.Start(context.Background())
	var le *Error
	if !errors.Is(err, ErrPermissionDenied) || !errors.As(err, &le) || le.Op != "login" {
		t.Fatalf("Start: %v, want a login permission error", err)
	}
	if h.log.count("lease issued: name=tok") != 1 {
		t.Fatalf("the fetch did not run alongside the lookup:\n%s", h.log)
	}
	if h.log.count("lease revoked: name=tok") != 1 {
		t.Fatalf("the credential issued during the failed start was not revoked:\n%s", h.log)
	}
	role := strings.TrimPrefix(create, "auth/token/create/")
	if ids := s.LeaseIDs(t, "auth/token/create/"+role+"/"); len(ids) != 0 {
		t.Fatalf("Vault still holds %d leases of the failed start", len(ids))
	}
}

// An unreachable Vault fails Start with ErrUnreachable at the deadline.
func TestStartUnreachable(t *testing.T) {
	t.Parallel()
	m, err := New(Config{
		Env:            []string{"VAULT_ADDR=http://127.0.0.1:1", "VAULT_TOKEN=x", "VAULT_MAX_RETRIES=0"},
		Specs:          []Spec{{ID: "a", Path: "secret/a"}},
		StartupTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Start(context.Background())
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Start: %v, want ErrUnreachable", err)
	}
}

// A credential file that cannot be read fails the login at once with an
// error naming the file: a missing secret_id file (Vault Agent's
// remove_secret_id_file_after_reading has removed it, and leash runs
// again) is the file to fix, not an unreachable Vault.
func TestStartCredentialFileNamed(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	a := s.AppRole(t, []string{"default"}, time.Hour, time.Hour, false)
	dir := t.TempDir()
	roleID, secretID := filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id")
	if err := os.WriteFile(roleID, []byte(a.RoleID), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, s, nil, Config{
		Auth:           AuthConfig{Method: "approle", Mount: a.Mount, RoleIDFile: roleID, SecretIDFile: secretID},
		Specs:          []Spec{{ID: "a", Path: "secret/a"}},
		StartupTimeout: 20 * time.Second,
	})
	start := time.Now()
	_, err := h.m.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), secretID) || !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("Start: %v, want an error naming %s, not ErrUnreachable", err, secretID)
	}
	// A file is not Vault's silence: waiting for the startup deadline
	// would not make it appear.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Start took %s: a missing file must not be retried until the startup deadline", d)
	}
}

// A token the user gave is never revoked; leash's leases are.
func TestCloseKeepsUserToken(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	create := s.TokenRole(t, time.Minute)
	user := s.LimitedToken(t, `
path "`+create+`" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }`)
	tokenFile := writeFile(t, "token", user+"\n")
	h := newHarness(t, s, nil, Config{
		Auth:  AuthConfig{TokenFile: tokenFile},
		Specs: []Spec{{ID: "tok", Path: create, Params: map[string]string{"ttl": "1m"}}},
	})
	snap, err := h.m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	child := str(t, snap.Secrets["tok"], "client_token")
	if err := h.m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.Auth().Token().Lookup(user); err != nil {
		t.Fatalf("user token revoked by Close: %v", err)
	}
	if _, err := s.Client.Auth().Token().Lookup(child); err == nil {
		t.Fatal("leash's credential survived Close")
	}
}

// Check reports a missing capability without fetching anything.
func TestCheck(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	kv := s.KV(t, 2)
	tok := s.LimitedToken(t, `path "`+kv+`/data/ok" { capabilities = ["read"] }`)
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + tok}, Config{Specs: []Spec{
		{ID: "ok", Path: kv + "/ok"}, {ID: "no", Path: kv + "/no"},
	}})
	err := h.m.Check(context.Background())
	var le *Error
	if !errors.Is(err, ErrPermissionDenied) || !errors.As(err, &le) || le.Path != kv+"/no" {
		t.Fatalf("Check: %v, want permission denied naming %s/no", err, kv)
	}
}

// A certificate issued without a lease (generate_lease=false) expires at its
// NotAfter and is replaced before it.
func TestPKIWithoutLeaseUsesNotAfter(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	issue := s.PKI(t, time.Minute)
	mount := strings.TrimSuffix(issue, "/issue/web")
	s.Write(t, mount+"/roles/nolease", map[string]any{
		"allowed_domains": "example.test", "allow_subdomains": true, "generate_lease": false,
		"max_ttl": "1m", "key_type": "ec", "key_bits": 256,
	})
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{
		Specs: []Spec{{ID: "cert", Path: mount + "/issue/nolease", Params: map[string]string{"common_name": "a.example.test", "ttl": "5s"}}},
	})
	snap1, err := h.m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c1 := snap1.Secrets["cert"]
	na1 := certNotAfter(str(t, c1, "certificate"))
	if c1.Fingerprint != "" || !c1.ExpiresAt.Equal(na1) {
		t.Fatalf("fingerprint %q, expires %s, want none and NotAfter %s", c1.Fingerprint, c1.ExpiresAt, na1)
	}
	h.run()
	snap2 := h.next(20 * time.Second)
	if now := time.Now(); !now.Before(na1) {
		t.Fatalf("replaced at %s, after NotAfter %s", now, na1)
	}
	if certNotAfter(str(t, snap2.Secrets["cert"], "certificate")).Equal(na1) {
		t.Fatal("certificate not replaced")
	}
}

// NoRevoke leaves leases in place at Close (and at Retire).
func TestNoRevoke(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	create := s.TokenRole(t, time.Minute)
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{
		NoRevoke: true,
		Specs:    []Spec{{ID: "tok", Path: create, Params: map[string]string{"ttl": "1m"}}},
	})
	snap, err := h.m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	child := str(t, snap.Secrets["tok"], "client_token")
	if _, err := s.Client.Auth().Token().Lookup(child); err != nil {
		t.Fatalf("credential revoked despite NoRevoke: %v", err)
	}
	s.Client.Auth().Token().RevokeTree(child)
}

// A List spec lists keys: KV v2 in CLI form gets metadata/, the explicit
// form is kept, KV v1 lists as written, an empty folder is no keys, and
// Response carries the request id for templates.
func TestListSpecs(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	ctx := context.Background()
	v1 := s.KV(t, 1)
	s.Write(t, v1+"/workers/b", map[string]any{"k": "b"})
	s.Write(t, v1+"/workers/a/x", map[string]any{"k": "a"})
	v2 := s.KV(t, 2)
	for _, k := range []string{"workers/one", "workers/two", "workers/sub/three"} {
		if _, err := s.Client.KVv2(v2).Put(ctx, k, map[string]any{"k": k}); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{Specs: []Spec{
		{ID: "v1", Path: v1 + "/workers/", List: true},
		{ID: "v2", Path: v2 + "/workers", List: true},
		{ID: "v2md", Path: v2 + "/metadata/workers/", List: true},
		{ID: "none", Path: v2 + "/nothing", List: true},
	}})
	snap, err := h.m.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys := func(id string) string {
		var out []string
		for _, k := range snap.Secrets[id].Raw.Map()["keys"].([]any) {
			out = append(out, k.(string))
		}
		slices.Sort(out)
		return strings.Join(out, ",")
	}
	for id, want := range map[string]string{"v1": "a/,b", "v2": "one,sub/,two", "v2md": "one,sub/,two", "none": ""} {
		if got := keys(id); got != want {
			t.Errorf("%s: keys %q, want %q", id, got, want)
		}
	}
	if snap.Secrets["v2"].Fingerprint != "" || !snap.Secrets["v2"].ExpiresAt.IsZero() {
		t.Error("a list has a lease")
	}
	if id, _ := snap.Secrets["v2"].Response.Map()["request_id"].(string); id == "" {
		t.Error("Response has no request_id")
	}
}

// Add fetches new specs between Start and Run and returns a snapshot with
// every secret; it is not an update for Run, and known IDs are skipped.
func TestAddBeforeRun(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	kv := s.KV(t, 1)
	s.Write(t, kv+"/a", map[string]any{"k": "a"})
	s.Write(t, kv+"/b", map[string]any{"k": "b"})
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{Specs: []Spec{{ID: "a", Path: kv + "/a"}}})
	ctx := context.Background()
	first, err := h.m.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := h.m.Add(ctx, []Spec{{ID: "a", Path: kv + "/a"}, {ID: "b", Path: kv + "/b", Outputs: []string{"out"}}})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Seq <= first.Seq || str(t, snap.Secrets["a"], "k") != "a" || str(t, snap.Secrets["b"], "k") != "b" {
		t.Fatalf("snapshot %d: %v", snap.Seq, snap.Secrets)
	}
	select {
	case u := <-h.m.Updates():
		t.Fatalf("Add published snapshot %d as an update", u.Seq)
	default:
	}
	if _, err := h.m.Add(ctx, []Spec{{ID: "c", Path: kv + "/missing"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Add of a missing path: %v, want ErrNotFound", err)
	}
}

// A lease is revoked whichever way the policy grants it: scoped to the
// lease's path (sys/leases/revoke/PATH/*, README's minimal policy), or
// unscoped (sys/leases/revoke, the lease id in the body), with a user's
// token, whose revocation leash leaves alone, so only the lease's own
// revocation can end it.
func TestRevokeScopedOrUnscoped(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	issue := s.PKI(t, time.Hour)
	for _, revoke := range []string{"sys/leases/revoke/" + issue + "/*", "sys/leases/revoke"} {
		t.Run(revoke, func(t *testing.T) {
			tok := s.LimitedToken(t, `
path "`+issue+`" { capabilities = ["update"] }
path "`+revoke+`" { capabilities = ["update"] }`)
			h := newHarness(t, s, []string{"VAULT_TOKEN=" + tok}, Config{Specs: []Spec{certSpec(issue)}})
			if _, err := h.m.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := len(s.LeaseIDs(t, issue+"/")); n != 1 {
				t.Fatalf("%d leases after Start, want 1", n)
			}
			if err := h.m.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if ids := s.LeaseIDs(t, issue+"/"); len(ids) != 0 {
				t.Fatalf("leases left after Close: %v", ids)
			}
		})
	}
}

// Vault's warnings are logged: a misspelt write parameter, which Vault
// ignores and leash would otherwise never mention.
func TestVaultWarningsLogged(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	issue := s.PKI(t, time.Hour)
	spec := certSpec(issue)
	spec.Params["tll"] = "1h"
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{Specs: []Spec{spec}})
	if _, err := h.m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.m.Close(context.Background())
	if !strings.Contains(h.log.String(), `vault warned: name=`) || !strings.Contains(h.log.String(), `Endpoint ignored these unrecognized parameters: [tll]`) {
		t.Fatalf("no warning about the ignored parameter in the log:\n%s", h.log.String())
	}
}
