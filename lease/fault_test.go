package lease

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
)

// faultProxy sits between leash and Vault and fails chosen requests.
type faultProxy struct {
	URL string

	mu   sync.Mutex
	rule func(r *http.Request) (status int, retryAfter string)
	seen map[string][]time.Time // request times by path
}

func newFaultProxy(t *testing.T, vaultAddr string) *faultProxy {
	u, err := url.Parse(vaultAddr)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{seen: map[string][]time.Time{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen[r.URL.Path] = append(p.seen[r.URL.Path], time.Now())
		rule := p.rule
		p.mu.Unlock()
		if rule != nil {
			if status, ra := rule(r); status != 0 {
				if ra != "" {
					w.Header().Set("Retry-After", ra)
				}
				http.Error(w, `{"errors":["injected fault"]}`, status)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *faultProxy) set(rule func(r *http.Request) (int, string)) {
	p.mu.Lock()
	p.rule = rule
	p.mu.Unlock()
}

func (p *faultProxy) times(path string) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.seen[path]...)
}

// 429 with Retry-After at startup is waited out, not treated as fatal.
func TestStartHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	kv := s.KV(t, 1)
	s.Write(t, kv+"/app", map[string]any{"k": "v"})
	p := newFaultProxy(t, s.Addr)
	var once sync.Once
	p.set(func(r *http.Request) (int, string) {
		status := 0
		if r.URL.Path == "/v1/"+kv+"/app" {
			once.Do(func() { status = http.StatusTooManyRequests })
		}
		return status, "2"
	})
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{Specs: []Spec{{ID: "app", Path: kv + "/app"}}})
	h.m.vault.client.SetAddress(p.URL)
	if _, err := h.m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts := p.times("/v1/" + kv + "/app")
	if len(ts) != 2 {
		t.Fatalf("%d requests for the secret, want a 429 and a retry", len(ts))
	}
	if gap := ts[1].Sub(ts[0]); gap < 2*time.Second {
		t.Fatalf("retried after %s, before Retry-After (2s)", gap)
	}
}

// Failed renewals (Vault answering 503) are retried; they never trigger a
// new credential while the current one is valid (vault#10918).
func TestRenewBlipDoesNotReissue(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	db := testpg.Database(t)
	creds := s.Database(t, db.VaultURL(), db.User, db.Password, 20*time.Second, time.Hour)
	p := newFaultProxy(t, s.Addr)
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken, "VAULT_MAX_RETRIES=0"}, Config{
		Specs:        []Spec{{ID: "db", Path: creds}},
		RotateBefore: 3 * time.Second,
	})
	h.m.vault.client.SetAddress(p.URL)
	snap, err := h.m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p.set(func(r *http.Request) (int, string) {
		if r.URL.Path == "/v1/sys/leases/renew" {
			return http.StatusServiceUnavailable, ""
		}
		return 0, ""
	})
	stop := h.run()
	h.log.wait(t, "renew failed: name=db", 2, 30*time.Second)
	p.set(nil)
	h.log.wait(t, "lease renewed: name=db", 1, 10*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-h.m.Updates():
		t.Fatalf("snapshot %d after a renewal blip", s.Seq)
	default:
	}
	if n := h.log.count("lease issued"); n != 1 {
		t.Fatalf("%d credentials issued, want 1; log:\n%s", n, h.log.String())
	}
	if err := db.Connect(str(t, snap.Secrets["db"], "username"), str(t, snap.Secrets["db"], "password")); err != nil {
		t.Fatal(err)
	}
	h.m.Close(context.Background())
}

// A token the user gave that cannot be renewed bounds the lease: leash
// warns at startup and Run reports the loss when it expires (fail closed,
// bank-vaults#1239) instead of leaving the child on dead credentials.
func TestLostWhenUserTokenExpires(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	create := s.TokenRole(t, time.Minute)
	pol := s.Policy(t, `path "`+create+`" { capabilities = ["update"] }`)
	sec, err := s.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{pol}, TTL: "4s", Renewable: new(bool)})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + sec.Auth.ClientToken}, Config{
		Specs: []Spec{{ID: "tok", Path: create, Params: map[string]string{"ttl": "1m"}}},
	})
	if _, err := h.m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.log.String(), "token expires before lease") {
		t.Fatalf("no startup warning; log:\n%s", h.log.String())
	}
	errc := make(chan error, 1)
	go func() { errc <- h.m.Run(context.Background()) }()
	select {
	case err := <-errc:
		var lost *LostError
		if !errors.Is(err, ErrLeaseLost) || !errors.As(err, &lost) || lost.ID != "tok" {
			t.Fatalf("Run: %v, want a LostError for tok", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not report the lost lease")
	}
}

// After Vault forgets everything (a dev server restart) leash keeps the
// last snapshot, notices its token is gone (permission denied), and logs in
// again once the operator has re-provisioned the role; the new role_id and
// secret_id are read from the files at that login.
func TestReloginAfterVaultRestart(t *testing.T) {
	t.Parallel()
	s := testvault.New(t)
	roleIDFile := writeFile(t, "role_id", "")
	secretIDFile := writeFile(t, "secret_id", "")
	provision := func() {
		c := s.Client
		if err := c.Sys().Mount("kv", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.KVv2("kv").Put(context.Background(), "app", map[string]any{"k": "v"}); err != nil {
			t.Fatal(err)
		}
		if err := c.Sys().PutPolicy("app", `path "kv/data/app" { capabilities = ["read"] }`); err != nil {
			t.Fatal(err)
		}
		if err := c.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
			t.Fatal(err)
		}
		s.Write(t, "auth/approle/role/app", map[string]any{"token_policies": []string{"app"}, "token_ttl": "1h"})
		roleID := s.Read(t, "auth/approle/role/app/role-id").Data["role_id"].(string)
		secretID := s.Write(t, "auth/approle/role/app/secret-id", nil).Data["secret_id"].(string)
		for p, v := range map[string]string{roleIDFile: roleID, secretIDFile: secretID} {
			if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	provision()
	h := newHarness(t, s, nil, Config{
		Auth:          AuthConfig{Method: "approle", RoleIDFile: roleIDFile, SecretIDFile: secretIDFile},
		Specs:         []Spec{{ID: "app", Path: "kv/app"}},
		StaticRefresh: 200 * time.Millisecond,
	})
	h.m.plan.sched.retryMax = time.Second
	if _, err := h.m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop := h.run()
	s.Restart(t)
	h.log.wait(t, "refresh failed: name=app", 1, 10*time.Second)
	provision()
	h.log.wait(t, "logged in again", 1, 20*time.Second)
	n := h.log.count("secret unchanged: name=app")
	h.log.wait(t, "secret unchanged: name=app", n+1, 10*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-h.m.Updates():
		t.Fatalf("snapshot %d although the secret's content is the same", s.Seq)
	default:
	}
}
