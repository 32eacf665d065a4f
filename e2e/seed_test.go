package e2e

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

// The seed scenario (issue 1) and its static-role variant: leash hands
// PostgreSQL credentials from Vault's database engine to a real client,
// internal/testchild's pgapp, which queries every 20ms and swaps its
// connection on SIGHUP.

// pgAppDB is a fresh database with the table pgapp queries, on a
// PostgreSQL cluster of its own that checks passwords.
func pgAppDB(t *testing.T) *testpg.DB {
	db := testpg.NewCluster(t).Database(t)
	db.Exec(t, "CREATE TABLE app_data (id int)")
	db.Exec(t, "INSERT INTO app_data VALUES (1)")
	return db
}

// startPGApp runs leash with args over pgapp connecting to db.
func startPGApp(t *testing.T, srv *testvault.Server, db *testpg.DB, args ...string) *Leash {
	env := append(vaultEnv(srv.Addr, srv.RootToken),
		fmt.Sprintf("%s=postgres://127.0.0.1:%d/%s?sslmode=disable", testchild.EnvPGURL, db.Port, db.Name))
	return Start(t, env, append(append(args, "--"), testchild.Argv(t, "pgapp")...)...)
}

// appLogins reads pgapp's report until it has connected n times, calling
// login (if not nil) after each connection with the role and the password
// it used, and returns the passwords it was handed. Any other report (a
// failed query, a leak) fails the test.
func appLogins(t *testing.T, p *Leash, n int, limit time.Duration, login func(user, pw string)) (users, passwords []string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for len(users) < n {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("the app connected %d times in %s, want %d", len(users), limit, n)
		}
		line, ok := p.Out.Next(left)
		if !ok {
			t.Fatalf("app output ended after %d connections (leash: %v)", len(users), p.exitErr(10*time.Second))
		}
		switch f := strings.SplitN(line, " ", 2); f[0] {
		case "pw":
			passwords = append(passwords, f[1])
		case "user":
			users = append(users, f[1])
			if login != nil {
				login(f[1], passwords[len(passwords)-1])
			}
		default:
			t.Errorf("app: %s", line)
		}
	}
	return users, passwords
}

// stopApp stops leash with SIGTERM: the app must report nothing but
// connections until its output ends, and leash must exit 0.
func stopApp(t *testing.T, p *Leash) {
	t.Helper()
	p.Signal(syscall.SIGTERM)
	for _, line := range p.Rest() {
		if !strings.HasPrefix(line, "pw ") && !strings.HasPrefix(line, "user ") {
			t.Errorf("app: %s", line)
		}
	}
	if code := p.Exit(60 * time.Second); code != 0 {
		t.Fatalf("leash exited %d", code)
	}
}

// seedScenario: over several max_ttl periods with the given flags, every
// hand-over brings a new credential, the app keeps querying, everything is
// revoked at exit, and no password or token reaches leash's log.
//
// The margins are for a loaded machine (2 cores shared, -race): an 8s
// lease renewable to 16s, handed over 5s before it ends, gives Vault and
// PostgreSQL seconds to issue the next credential (a 3s/6s lease left
// 2.25s, the floor of leash's margin being 3s and its cap three quarters
// of the lease), and the app 2s of grace to switch in signal mode.
func seedScenario(t *testing.T, extra ...string) {
	srv := testvault.Shared(t)
	db := pgAppDB(t)
	creds := srv.Database(t, db.VaultURL(), db.User, db.Password, 8*time.Second, 16*time.Second)

	args := append([]string{"--log-level", "trace", "--rotate-before", "5s", "-s", "db=" + creds}, extra...)
	p := startPGApp(t, srv, db, args...)
	users, passwords := appLogins(t, p, 3, 180*time.Second, nil)
	stopApp(t, p)
	for i, u := range users {
		for _, v := range users[:i] {
			if u == v {
				t.Errorf("credential %s handed over twice: no new credential was issued", u)
			}
		}
		if db.RoleExists(t, u) {
			t.Errorf("role %s still exists after leash exited: lease not revoked", u)
		}
	}
	if ids := srv.LeaseIDs(t, creds+"/"); len(ids) > 0 {
		t.Errorf("leases left in Vault after exit: %d", len(ids))
	}
	log := p.Log.String()
	for _, pw := range passwords {
		if strings.Contains(log, pw) {
			t.Errorf("a database password appears in leash's log")
		}
	}
	if strings.Contains(log, srv.RootToken) {
		t.Errorf("the Vault token appears in leash's log")
	}
	for _, ev := range []string{evIssued, evRenewed, evRotated, evRevoked} {
		if len(p.Log.Events(ev)) == 0 {
			t.Errorf("no %q audit event", ev)
		}
	}
}

func TestSeedScenarioSignal(t *testing.T) {
	t.Parallel()
	seedScenario(t, "--on-rotate", "signal", "--reload-grace", "2s")
}

func TestSeedScenarioRestart(t *testing.T) {
	t.Parallel()
	seedScenario(t, "--on-rotate", "restart", "--kill-timeout", "5s")
}

func TestSeedScenarioDirJSONLogs(t *testing.T) {
	t.Parallel()
	seedScenario(t, "--on-rotate", "signal", "--reload-grace", "2s", "--delivery", "dir", "--log-format", "json")
}

// staticScenario runs pgapp under leash with a database static role that
// Vault rotates every 6 s: after each rotation the child must be handed
// the new password (reload signal or restart) and log in with it. The old
// code re-read static secrets only every --static-refresh (5 min), so the
// child held a dead password.
func staticScenario(t *testing.T, extra ...string) {
	srv := testvault.Shared(t)
	db := pgAppDB(t)
	db.Exec(t, `CREATE ROLE app_static LOGIN PASSWORD 'before-vault'`)
	db.Exec(t, "GRANT SELECT ON app_data TO app_static")
	creds := srv.StaticRole(t, db.VaultURL(), db.User, db.Password, "app_static", 6*time.Second)

	p := startPGApp(t, srv, db, append([]string{"--log-level", "debug", "-s", "db=" + creds}, extra...)...)
	var seen []string
	_, passwords := appLogins(t, p, 3, 120*time.Second, func(user, pw string) {
		// pgapp logged in with the password it just read, a new one.
		for _, old := range seen {
			if old == pw {
				t.Fatalf("login %d: the child was handed a password it already had", len(seen)+1)
			}
		}
		seen = append(seen, pw)
		// And it logs in from here too, unless Vault rotated again in the
		// meantime (then Vault no longer hands out pw).
		vault := srv.Read(t, creds).Data
		t.Logf("login %d as %s (Vault's last rotation %v, now %s)", len(seen), user, vault["last_vault_rotation"], time.Now().UTC().Format(time.RFC3339Nano))
		if err := db.Connect("app_static", pw); err != nil && vault["password"] == pw {
			t.Errorf("login %d: Vault's current password does not log in: %v", len(seen), err)
		}
	})
	stopApp(t, p)
	log := p.Log.String()
	for _, pw := range passwords {
		if strings.Contains(log, pw) {
			t.Error("a database password appears in leash's log")
		}
	}
	if len(p.Log.Events(evChanged)) == 0 {
		t.Error("no static rotation (audit event changed)")
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
