package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testchild"
	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
)

// Scheduled drills log their result; the audit record (drill) has it too.
const (
	logDrillPassed = "scheduled drill passed"
	logDrillFailed = "scheduled drill failed"
)

// timedRecord is an audit record with its time, read from the audit file.
type timedRecord struct {
	Record
	Time time.Time `json:"time"`
}

// auditFile reads an audit file's records in order.
func auditFile(t *testing.T, path string) []timedRecord {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []timedRecord
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var r timedRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// reloadToRetire returns, for each reload signal in recs, how long after
// it the old lease was revoked (the next retired record).
func reloadToRetire(recs []timedRecord) []time.Duration {
	var gaps []time.Duration
	var reload time.Time
	for _, r := range recs {
		switch r.Event {
		case "child_reload":
			reload = r.Time
		case "retired":
			if !reload.IsZero() {
				gaps = append(gaps, r.Time.Sub(reload))
				reload = time.Time{}
			}
		}
	}
	return gaps
}

// drillLeash runs the signals helper under leash in signal mode on a
// database credential of an hour (no scheduled hand-over interferes); it
// returns once the child is ready.
func drillLeash(t *testing.T, extra ...string) (p *Leash, srv *testvault.Server, creds string) {
	srv = testvault.Shared(t)
	db := testpg.Database(t)
	creds = srv.Database(t, db.VaultURL(), db.User, db.Password, time.Hour, 2*time.Hour)
	args := append([]string{"-s", "db=" + creds, "--on-rotate", "signal"}, extra...)
	p = Start(t, vaultEnv(srv.Addr, srv.RootToken), append(append(args, "--"), testchild.Argv(t, "signals")...)...)
	if l := p.Next(60 * time.Second); l != "ready" {
		t.Fatalf("child said %q, want ready", l)
	}
	return p, srv, creds
}

// stopDrillLeash ends leash, checks the child saw only reload signals and
// SIGTERM, and that the audit file verifies.
func stopDrillLeash(t *testing.T, p *Leash) {
	t.Helper()
	p.Signal(syscall.SIGTERM)
	if code := p.Exit(30 * time.Second); code != 0 {
		t.Fatalf("leash exited %d", code)
	}
	for _, l := range p.Rest() {
		if l != "sig 1" && l != "sig 15" {
			t.Errorf("child: %q", l)
		}
	}
	Output(t, Command(t, "audit", "verify", p.Audit))
}

// TestDrillSkipsReloadGrace: `leash rotate` revokes the old lease
// --reload-grace after the reload signal; `leash rotate --drill` revokes it
// right after the delivery, without the grace (README, "Rotation on demand
// and drills"), and returns before the grace could have passed. The audit
// trail times both, from the reload signal to the revocation.
func TestDrillSkipsReloadGrace(t *testing.T) {
	t.Parallel()
	const grace = 8 * time.Second
	sock := filepath.Join(t.TempDir(), "control", "leash.sock")
	p, srv, creds := drillLeash(t, "--reload-grace", grace.String(), "--control-socket", sock)

	start := time.Now()
	Output(t, Command(t, "rotate", "--control-socket", sock))
	if took := time.Since(start); took < grace {
		t.Errorf("leash rotate returned after %s, before the %s grace", took, grace)
	}
	start = time.Now()
	out, _ := Output(t, Command(t, "rotate", "--drill", "--watch", "1s", "--control-socket", sock))
	took := time.Since(start)
	if !strings.Contains(string(out), "child running: true") {
		t.Errorf("leash rotate --drill printed:\n%s", out)
	}
	if took >= grace {
		t.Errorf("leash rotate --drill returned after %s: it waited the %s grace", took, grace)
	}
	// Revoked before rotate returned: only the current lease is left.
	if ids := leaseIDs(t, srv, creds); len(ids) != 1 {
		t.Errorf("Vault holds %d leases after the drill, want 1", len(ids))
	}
	stopDrillLeash(t, p)

	gaps := reloadToRetire(auditFile(t, p.Audit))
	if len(gaps) != 2 {
		t.Fatalf("audit: %d reload-then-retire pairs, want 2 (rotate, drill)", len(gaps))
	}
	t.Logf("reload signal to revocation: rotate %s, drill %s", gaps[0], gaps[1])
	if gaps[0] < grace {
		t.Errorf("leash rotate revoked the old lease %s after the reload signal, before the %s grace", gaps[0], grace)
	}
	if gaps[1] >= grace/2 {
		t.Errorf("the drill revoked the old lease %s after the reload signal, want at once (grace %s)", gaps[1], grace)
	}
}

// TestDrillEvery: --drill-every runs drills on its own, about that often:
// each hands over (the child gets its reload signal and survives), revokes
// the old lease at once (the hour-long grace is skipped), and is an audit
// record with its outcome.
func TestDrillEvery(t *testing.T) {
	t.Parallel()
	p, srv, creds := drillLeash(t, "--reload-grace", "1h", "--drill-every", "2s")
	p.WaitEvent("drill", 2, 90*time.Second, nil)
	if ids := leaseIDs(t, srv, creds); len(ids) != 1 {
		t.Errorf("Vault holds %d leases after the drills, want 1", len(ids))
	}
	stopDrillLeash(t, p)
	if n, failed := p.Log.Count(logDrillPassed), p.Log.Count(logDrillFailed); n < 2 || failed != 0 {
		t.Errorf("logged %d drills passed and %d failed, want at least 2 and none", n, failed)
	}

	recs := auditFile(t, p.Audit)
	var retired int
	var at []time.Time
	for _, r := range recs {
		switch {
		case r.Event == "drill" && r.Outcome == "ok":
			at = append(at, r.Time)
		case r.Event == "drill":
			t.Errorf("audit: drill %s: %s", r.Outcome, r.Error)
		case r.Event == "retired":
			retired++
		}
	}
	if len(at) < 2 || retired < len(at) {
		t.Errorf("audit: %d drills ok, %d leases retired; want at least 2, each retiring one", len(at), retired)
	}
	// A drill watches the child for 5 s, then the next comes 1.5-2.5 s later.
	for i := 1; i < len(at); i++ {
		if d := at[i].Sub(at[i-1]); d < 6*time.Second || d > 30*time.Second {
			t.Errorf("drills %d and %d were %s apart, want about 5 s watch + 2 s", i, i+1, d)
		}
	}
	for _, g := range reloadToRetire(recs) {
		if g >= 30*time.Second {
			t.Errorf("a drill revoked the old lease %s after the reload signal: it waited the grace", g)
		}
	}
}
