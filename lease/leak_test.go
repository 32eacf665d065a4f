package lease

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
)

// At trace level, in text and JSON, a full lifecycle (approle login,
// database and token credentials, a KV secret, renewals, re-login,
// hand-over, Retire, Close, a failing Start) logs none of the secret bytes:
// passwords, tokens, the secret_id, lease ids, KV values.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	for _, jsonFormat := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", jsonFormat), func(t *testing.T) {
			t.Parallel()
			db := testpg.Database(t)
			creds := s.Database(t, db.VaultURL(), db.User, db.Password, 4*time.Second, 8*time.Second)
			create := s.TokenRole(t, time.Minute)
			kv := s.KV(t, 2)
			kvValue := "kv-" + testvault.Unique(t, "value")
			if _, err := s.Client.KVv2(kv).Put(context.Background(), "app", map[string]any{"api_key": kvValue}); err != nil {
				t.Fatal(err)
			}
			policy := s.Policy(t, `
path "`+creds+`" { capabilities = ["read"] }
path "`+create+`" { capabilities = ["update"] }
path "`+kv+`/data/app" { capabilities = ["read"] }
path "sys/leases/revoke" { capabilities = ["update"] }`)
			a := s.AppRole(t, []string{policy}, 4*time.Second, 8*time.Second, true)
			// Unwrap a second wrapped secret_id ourselves to know its value.
			secretIDFile := writeFile(t, "secret_id", a.SecretID)
			logs := newLogBuf()
			logger := hclog.New(&hclog.LoggerOptions{Name: "lease", Level: hclog.Trace, Output: logs, JSONFormat: jsonFormat})
			h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{
				Logger: logger,
				Auth:   AuthConfig{Method: "approle", Mount: a.Mount, RoleIDFile: writeFile(t, "role_id", a.RoleID), SecretIDFile: secretIDFile},
				Specs: []Spec{
					{ID: "db", Path: creds},
					{ID: "tok", Path: create, Params: map[string]string{"ttl": "4s"}},
					{ID: "kv", Path: kv + "/app"},
				},
				StaticRefresh: 200 * time.Millisecond,
			})
			h.log = logs
			snap1, err := h.m.Start(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			secrets := []string{s.RootToken, a.SecretID, kvValue}
			collect := func(snap *Snapshot) {
				secrets = append(secrets, str(t, snap.Secrets["db"], "password"), str(t, snap.Secrets["tok"], "client_token"))
				h.m.ledger.mu.Lock()
				for _, tok := range h.m.ledger.tokens {
					secrets = append(secrets, string(tok.value))
				}
				h.m.ledger.mu.Unlock()
				h.m.vault.unwrapMu.Lock()
				secrets = append(secrets, string(h.m.vault.unwrapped))
				h.m.vault.unwrapMu.Unlock()
				secrets = append(secrets, s.LeaseIDs(t, creds+"/")...)
			}
			collect(snap1)
			stop := h.run()
			snap2 := h.next(20 * time.Second)
			logs.wait(t, "logged in again", 1, 20*time.Second)
			collect(snap2)
			h.m.Retire(snap1)
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if err := h.m.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			// A failing start logs and returns errors too.
			bad := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{Logger: logger, Specs: []Spec{
				{ID: "db", Path: creds}, {ID: "missing", Path: kv + "/missing"},
			}})
			_, err = bad.m.Start(context.Background())
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("bad start: %v", err)
			}
			logger.Error("start failed", "error", err, "snapshot", snap2, "secret", snap2.Secrets["db"])

			out := logs.String() + err.Error()
			for _, want := range []string{"lease issued", "lease renewed", "lease rotated", "lease retired", "lease revoked", "logged in again"} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q", want)
				}
			}
			for _, sec := range secrets {
				if len(sec) < 8 {
					t.Fatalf("implausible secret %q collected", sec)
				}
				if strings.Contains(out, sec) {
					t.Errorf("log contains a secret (%d bytes, starts %.4s...)", len(sec), sec)
				}
			}
			if t.Failed() {
				t.Logf("log:\n%s", out)
			}
		})
	}
}
