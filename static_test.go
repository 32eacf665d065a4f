package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testchild"
	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
)

// staticScenario runs pgApp under leash with a database static role that
// Vault rotates every 6 s, on a PostgreSQL that checks passwords: after
// each rotation the child must be handed the new password (reload signal
// or restart) and log in with it. The old code re-read static secrets only
// every --static-refresh (5 min), so the child held a dead password.
func staticScenario(t *testing.T, extra ...string) {
	srv := testvault.Shared(t)
	db := testpg.NewCluster(t).Database(t)
	db.Exec(t, "CREATE TABLE app_data (id int)")
	db.Exec(t, "INSERT INTO app_data VALUES (1)")
	db.Exec(t, `CREATE ROLE app_static LOGIN PASSWORD 'before-vault'`)
	db.Exec(t, "GRANT SELECT ON app_data TO app_static")
	creds := srv.StaticRole(t, db.VaultURL(), db.User, db.Password, "app_static", 6*time.Second)

	args := append([]string{"--log-level", "debug", "-s", "db=" + creds}, extra...)
	cmd := leashCmd(t, append(append(args, "--"), helperArgs(t, "pgapp")...)...)
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.RootToken,
		fmt.Sprintf(testchild.EnvPGURL+"=postgres://127.0.0.1:%d/%s?sslmode=disable", db.Port, db.Name))
	_, lr, stderr := startPiped(t, cmd)
	t.Cleanup(func() { cmd.Process.Kill() })

	var passwords []string
	deadline := time.After(60 * time.Second)
	for logins := 0; logins < 3; {
		select {
		case line, ok := <-lr.lines:
			if !ok {
				t.Fatalf("app output ended after %d logins; leash stderr:\n%s", logins, stderr.String())
			}
			switch f := strings.SplitN(line, " ", 2); f[0] {
			case "pw":
				passwords = append(passwords, f[1])
			case "user":
				// pgApp logged in with the password it just read.
				logins++
				pw := passwords[len(passwords)-1]
				for _, p := range passwords[:len(passwords)-1] {
					if p == pw {
						t.Fatalf("login %d: the child was handed a password it already had", logins)
					}
				}
				// And it logs in from here too, unless Vault rotated again in
				// the meantime (then Vault no longer hands out pw).
				vault := srv.Read(t, creds).Data
				t.Logf("login %d as %s (Vault's last rotation %v, now %s)", logins, f[1], vault["last_vault_rotation"], time.Now().UTC().Format(time.RFC3339Nano))
				if err := db.Connect("app_static", pw); err != nil && vault["password"] == pw {
					t.Errorf("login %d: Vault's current password does not log in: %v", logins, err)
				}
			default:
				t.Errorf("app: %s", line)
			}
		case <-deadline:
			t.Fatalf("the child logged in with %d passwords in 60 s, want 3 (two rotations); leash stderr:\n%s", len(passwords), stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, line := range lr.rest() {
		if !strings.HasPrefix(line, "pw ") && !strings.HasPrefix(line, "user ") {
			t.Errorf("app: %s", line)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("leash: %v; stderr:\n%s", err, stderr.String())
	}
	log := stderr.String()
	for _, p := range passwords {
		if strings.Contains(log, p) {
			t.Error("a database password appears in leash's log")
		}
	}
	if !strings.Contains(log, "static credential rotated") {
		t.Errorf("leash's log has no static rotation:\n%s", log)
	}
}

func TestStaticRoleSignal(t *testing.T) {
	t.Parallel()
	staticScenario(t, "--on-rotate", "signal", "--reload-grace", "1s")
}

func TestStaticRoleRestart(t *testing.T) {
	t.Parallel()
	staticScenario(t, "--on-rotate", "restart", "--kill-timeout", "5s")
}
