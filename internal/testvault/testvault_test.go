package testvault_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
)

func TestKVv2WriteRead(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	mount := s.KV(t, 2)
	ctx := context.Background()
	if _, err := s.Client.KVv2(mount).Put(ctx, "app", map[string]any{"password": "hunter2"}); err != nil {
		t.Fatal(err)
	}
	sec, err := s.Client.KVv2(mount).Get(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if got := sec.Data["password"]; got != "hunter2" || sec.VersionMetadata.Version != 1 {
		t.Fatalf("read back %v version %d", got, sec.VersionMetadata.Version)
	}
}

func TestChildTokenExpires(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	create := s.TokenRole(t, time.Minute)
	sec := s.Write(t, create, map[string]any{"ttl": "5s"})
	if !sec.Auth.Renewable || sec.Auth.LeaseDuration != 5 {
		t.Fatalf("child token renewable=%v ttl=%d, want renewable 5s", sec.Auth.Renewable, sec.Auth.LeaseDuration)
	}
	tok := sec.Auth.ClientToken
	if _, err := s.Client.Auth().Token().Lookup(tok); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	// Vault expires the token on its own schedule; wait for it, bounded.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := s.Client.Auth().Token().Lookup(tok)
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
			return // "bad token": expired
		}
		if time.Now().After(deadline) {
			t.Fatalf("token still valid 30s after a 5s ttl (last err %v)", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestDatabaseEngine(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	db := testpg.Database(t)
	db.Exec(t, "CREATE TABLE items (id int)")
	creds := s.Database(t, db.VaultURL(), db.User, db.Password, 10*time.Second, 30*time.Second)
	sec := s.Read(t, creds)
	user, pass := sec.Data["username"].(string), sec.Data["password"].(string)
	if sec.LeaseDuration != 10 || !sec.Renewable {
		t.Fatalf("lease %ds renewable=%v, want 10s renewable", sec.LeaseDuration, sec.Renewable)
	}
	if err := db.Connect(user, pass); err != nil {
		t.Fatalf("connect as issued role: %v", err)
	}
	if _, _, ok := s.LeaseLookup(t, sec.LeaseID); !ok {
		t.Fatal("lease unknown to vault")
	}
	if err := s.Client.Sys().Revoke(sec.LeaseID); err != nil {
		t.Fatal(err)
	}
	if db.RoleExists(t, user) {
		t.Fatal("role still exists after sys/leases/revoke")
	}
}

func TestRestartForgets(t *testing.T) {
	t.Parallel()
	s := testvault.New(t)
	mount := s.KV(t, 1)
	s.Write(t, mount+"/x", map[string]any{"a": "b"})
	s.Restart(t)
	if sec, err := s.Client.Logical().Read(mount + "/x"); err != nil || sec != nil {
		t.Fatalf("after a dev server restart: %v, %v; want nothing at the old path", sec, err)
	}
}

func TestAuthHelpers(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	for _, wrap := range []bool{false, true} {
		a := s.AppRole(t, []string{"default"}, time.Minute, time.Hour, wrap)
		secretID := a.SecretID
		if wrap {
			c, _ := s.Client.Clone()
			uw, err := c.Logical().Unwrap(a.SecretID)
			if err != nil {
				t.Fatalf("unwrap: %v", err)
			}
			secretID = uw.Data["secret_id"].(string)
		}
		sec := s.Write(t, "auth/"+a.Mount+"/login", map[string]any{"role_id": a.RoleID, "secret_id": secretID})
		if sec.Auth == nil || sec.Auth.ClientToken == "" {
			t.Fatal("approle login gave no token")
		}
	}
	j := s.JWT(t, []string{"default"}, time.Minute, time.Hour)
	sec := s.Write(t, "auth/"+j.Mount+"/login", map[string]any{"role": j.Role, "jwt": j.Token(t, time.Minute)})
	if sec.Auth == nil || sec.Auth.LeaseDuration != 60 {
		t.Fatalf("jwt login: %+v", sec.Auth)
	}
	issue := s.PKI(t, time.Minute)
	cert := s.Write(t, issue, map[string]any{"common_name": "a.example.test"})
	if cert.LeaseID == "" || cert.Data["certificate"] == nil {
		t.Fatal("pki issue gave no lease or certificate")
	}
	tok := s.LimitedToken(t, `path "nothing/*" { capabilities = ["read"] }`)
	c, _ := s.Client.Clone()
	c.SetToken(tok)
	if _, err := c.Logical().Read("sys/mounts"); err == nil {
		t.Fatal("limited token read sys/mounts")
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	s := testvault.NewTLS(t)
	if _, err := s.Client.Sys().Health(); err != nil {
		t.Fatalf("health over TLS with the generated CA: %v", err)
	}
}
