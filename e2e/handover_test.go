package e2e

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testchild"
	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
)

// logTooShort starts leash's warning that a lease is too short for the
// child's switch time (issue 16).
const logTooShort = "lease too short for the child's switch time"

// TestHandOverLeavesReloadGrace: on a lease too short for the default
// margin to cover the reload grace, the hand-over still comes early
// enough: each time pgapp has switched to the new database role, Vault's
// old lease has at least --reload-grace left, so leash revokes it after
// the grace rather than Vault expiring it under the child. Issue 16: with
// a 15 s max_ttl the hand-over came 3-5 s before the end while the grace
// was 5 s. Here the lease is 14 s and the grace 6 s: the old margin was a
// third of the lease, 4.7-5.8 s with its jitter; the second switch shows
// that one grace is over before the next hand-over is due.
func TestHandOverLeavesReloadGrace(t *testing.T) {
	t.Parallel()
	const grace = 6 * time.Second
	srv := testvault.Shared(t)
	db := testpg.Database(t)
	db.Exec(t, "CREATE TABLE app_data (id int)")
	db.Exec(t, "INSERT INTO app_data VALUES (1)")
	creds := srv.Database(t, db.VaultURL(), db.User, db.Password, 14*time.Second, 14*time.Second)

	env := append(vaultEnv(srv.Addr, srv.RootToken), fmt.Sprintf("%s=postgres://%s:%d/%s?sslmode=disable", testchild.EnvPGURL, db.Host, db.Port, db.Name))
	args := []string{"--log-level", "debug", "-s", "db=" + creds, "--on-rotate", "signal", "--reload-grace", grace.String(), "--"}
	p := Start(t, env, append(args, testchild.Argv(t, "pgapp")...)...)

	var users []string
	for len(users) < 3 {
		f := strings.SplitN(p.Next(60*time.Second), " ", 2)
		switch f[0] {
		case "pw":
			continue
		case "user":
		default:
			t.Fatalf("app: %s", strings.Join(f, " "))
		}
		users = append(users, f[1])
		if len(users) == 1 {
			continue
		}
		// The child now uses the new role. The old lease is the one that
		// ends first; it must still have the grace to run.
		now := time.Now()
		var left []time.Duration
		for _, id := range leaseIDs(t, srv, creds) {
			if exp, _, ok := srv.LeaseLookup(t, id); ok {
				left = append(left, exp.Sub(now))
			}
		}
		slices.Sort(left)
		if len(left) != 2 {
			t.Fatalf("switch %d: Vault holds leases with %v left, want the old and the new", len(users)-1, left)
		}
		t.Logf("switch %d to %s: the old lease had %s left", len(users)-1, f[1], left[0].Round(time.Millisecond))
		if left[0] < grace {
			t.Errorf("switch %d: the old lease had %s left when the child switched, less than --reload-grace %s", len(users)-1, left[0].Round(time.Millisecond), grace)
		}
	}
	if p.Log.Count(logTooShort) != 0 {
		t.Errorf("warned that a 14s lease is too short for a %s grace", grace)
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Exit(30 * time.Second); code != 0 {
		t.Fatalf("leash exited %d", code)
	}
	for _, l := range p.Rest() {
		if strings.HasPrefix(l, "FAIL") {
			t.Errorf("app: %s", l)
		}
	}
}

// TestHandOverTooShortWarns: when the lease cannot leave the child its
// switch time, leash says so once at start-up, naming the flags and both
// durations.
func TestHandOverTooShortWarns(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	create := srv.TokenRole(t, time.Hour)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"signal", []string{"--on-rotate", "signal", "--reload-grace", "10s"}, `switch="--reload-grace 10s"`},
		{"restart", []string{"--on-rotate", "restart", "--splay", "2s", "--kill-timeout", "7s"}, `switch="--splay 2s + --kill-timeout 7s + 1s to start"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"-s", "tok=" + create + "?ttl=12s"}, tt.args...)
			p := Start(t, vaultEnv(srv.Addr, srv.RootToken), append(append(args, "--"), testchild.Argv(t, "signals")...)...)
			if l := p.Next(60 * time.Second); l != "ready" {
				t.Fatalf("child said %q, want ready", l)
			}
			// Warned in the start-up, before the child started: the
			// child_start record comes after it on stderr.
			p.WaitEvent(evChildStart, 1, 30*time.Second, nil)
			if n := p.Log.Count(logTooShort); n != 1 {
				t.Fatalf("warned %d times before the child started, want once:\n%s", n, p.Log.String())
			}
			for _, want := range []string{tt.want, "ttl=12s", "hand_over_before=9s"} {
				if !strings.Contains(p.Log.String(), want) {
					t.Errorf("warning lacks %s:\n%s", want, p.Log.String())
				}
			}
			p.Signal(syscall.SIGTERM)
			if code := p.Exit(30 * time.Second); code != 0 {
				t.Errorf("leash exited %d", code)
			}
			if n := p.Log.Count(logTooShort); n != 1 {
				t.Errorf("warned %d times, want once", n)
			}
		})
	}
}
