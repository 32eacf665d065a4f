package lease

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestRenewAt(t *testing.T) {
	tests := []struct {
		name      string
		remaining time.Duration
		r         float64
		want      time.Duration
	}{
		{"no jitter is two thirds", 90 * time.Second, 0, 60 * time.Second},
		{"full jitter is 0.15 earlier", 90 * time.Second, 1, 46500 * time.Millisecond},
		{"half jitter", 30 * time.Minute, 0.5, 1065 * time.Second},
		{"expired renews now", -time.Second, 0.3, 0},
		{"short lease", 6 * time.Second, 0, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := defaultSchedule.renewAt(t0, t0.Add(tt.remaining), tt.r).Sub(t0)
			if d := got - tt.want; d < -time.Millisecond || d > time.Millisecond {
				t.Fatalf("renewAt = +%s, want +%s", got, tt.want)
			}
		})
	}
}

func TestRenewAtJitterBounds(t *testing.T) {
	exp := t0.Add(time.Hour)
	for i := range 101 {
		r := float64(i) / 101
		got := defaultSchedule.renewAt(t0, exp, r).Sub(t0)
		if got > 40*time.Minute || got < 31*time.Minute {
			t.Fatalf("r=%v: renewAt +%s outside [31m, 40m]", r, got)
		}
	}
}

func TestRotateBefore(t *testing.T) {
	tests := []struct {
		name     string
		ttl, cfg time.Duration
		fraction float64
		switched time.Duration // the child's switch time
		want     time.Duration
	}{
		{"default a third", 30 * time.Minute, 0, 0, 0, 10 * time.Minute},
		{"configured", time.Hour, 5 * time.Minute, 0, 0, 5 * time.Minute},
		{"configured wins over fraction", time.Hour, 5 * time.Minute, 0.5, 0, 5 * time.Minute},
		{"fraction", time.Hour, 0, 0.25, 0, 15 * time.Minute},
		{"at least a few seconds", 6 * time.Second, 0, 0, 0, 3 * time.Second},
		{"never beyond three quarters", 2 * time.Second, 0, 0, 0, 1500 * time.Millisecond},
		{"configured above lease is capped", time.Minute, time.Hour, 0, 0, 45 * time.Second},
		// Issue 16: a 15 s max_ttl and a 5 s reload grace handed over 5 s
		// before the end, less than the grace plus the loss margin.
		{"reload grace plus a second before the loss point", 15 * time.Second, 0, 0, 5 * time.Second, 6750 * time.Millisecond},
		{"switch time below the default changes nothing", 30 * time.Minute, 0, 0, 5 * time.Second, 10 * time.Minute},
		{"switch time wins over a configured margin", time.Hour, 2 * time.Second, 0, 5 * time.Second, 7 * time.Second},
		{"switch time wins over a fraction", time.Minute, 0, 0.1, 10 * time.Second, 12 * time.Second},
		{"restart: splay, kill timeout and start", time.Minute, 0, 0, 16 * time.Second, 20 * time.Second},
		{"switch time capped at three quarters", 8 * time.Second, 0, 0, 10 * time.Second, 6 * time.Second},
		{"a configured margin leaves the switch time after the issue", 20 * time.Second, 30 * time.Second, 0, 6 * time.Second, 14 * time.Second},
		{"too short for a switch after the issue", 10 * time.Second, 0, 0, 5 * time.Second, 6500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultSchedule.rotateBefore(tt.ttl, tt.cfg, tt.fraction, tt.switched); got != tt.want {
				t.Fatalf("rotateBefore(%s, %s, %v, %s) = %s, want %s", tt.ttl, tt.cfg, tt.fraction, tt.switched, got, tt.want)
			}
		})
	}
}

// The planned hand-over leaves the child its switch time plus a second
// before the old credential's loss point (Manager.lostAt), and comes no
// sooner than the switch time after the issue (the previous switch is
// over), whatever the jitter, unless the lease is too short: then the
// floor still holds, up to three quarters of the lease. The Manager's
// clock is fixed at t0.
func TestHandOverLeavesSwitchTime(t *testing.T) {
	for _, switched := range []time.Duration{0, 2 * time.Second, 5 * time.Second, 16 * time.Second} {
		for _, ttl := range []time.Duration{4 * time.Second, 8 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute, time.Hour} {
			for _, r := range []float64{0, 0.5, 0.999} {
				m, err := New(Config{Env: []string{}, SwitchTime: switched})
				if err != nil {
					t.Fatal(err)
				}
				m.now = func() time.Time { return t0 }
				e := &entry{lease: &held{owner: &token{expires: t0.Add(2 * time.Hour)}}, leaseExp: t0.Add(ttl), ttl: ttl, r: r, cur: &Secret{IssuedAt: t0}}
				e.next = m.plan.entryNext(e, m.now())
				left := m.plan.lostAt(e).Sub(e.next)
				short := defaultSchedule.tooShort(ttl, switched)
				switch {
				case e.next.Before(t0):
					t.Errorf("switch %s, ttl %s, r %v: hand-over before the issue", switched, ttl, r)
				case !short && left < switched+time.Second:
					t.Errorf("switch %s, ttl %s, r %v: hand-over %s before the loss point, want at least %s", switched, ttl, r, left, switched+time.Second)
				case !short && e.next.Before(t0.Add(switched)):
					t.Errorf("switch %s, ttl %s, r %v: hand-over %s after the issue, want at least the switch time", switched, ttl, r, e.next.Sub(t0))
				case short && r == 0 && e.next != t0.Add(ttl-min(max(ttl/3, defaultSchedule.switchFloor(ttl, switched)), ttl*3/4)):
					t.Errorf("switch %s, ttl %s: too short, hand-over at +%s, want the switch floor, at most three quarters in", switched, ttl, e.next.Sub(t0))
				}
			}
		}
	}
}

func TestTooShort(t *testing.T) {
	tests := []struct {
		ttl, switched time.Duration
		want          bool
	}{
		{15 * time.Second, 5 * time.Second, false},
		{8 * time.Second, 5 * time.Second, true}, // 5+1+0.4 > 6
		{time.Hour, 16 * time.Second, false},
		{15 * time.Second, 16 * time.Second, true},
		{12 * time.Second, 5 * time.Second, false}, // 5+1+0.6 <= 12-5
		{10 * time.Second, 5 * time.Second, true},  // 5+1+0.5 > 10-5: the next hand-over would come within the grace
		{4 * time.Second, 0, false},                // no switch time: the old rules
		{0, 5 * time.Second, false},                // no lease
	}
	for _, tt := range tests {
		if got := defaultSchedule.tooShort(tt.ttl, tt.switched); got != tt.want {
			t.Errorf("tooShort(%s, %s) = %v, want %v", tt.ttl, tt.switched, got, tt.want)
		}
	}
}

// warnTooShort names the switch time's source, the shortest lease and the
// margin it gets instead, once for all leases.
func TestWarnTooShort(t *testing.T) {
	var buf strings.Builder
	m, err := New(Config{Env: []string{}, SwitchTime: 5 * time.Second, SwitchSource: "--reload-grace 5s",
		Logger: hclog.New(&hclog.LoggerOptions{Output: &buf})})
	if err != nil {
		t.Fatal(err)
	}
	lease := func(id string, ttl time.Duration) *entry {
		return &entry{spec: Spec{ID: id, Outputs: []string{id}}, leaseExp: t0.Add(ttl), ttl: ttl, cur: &Secret{}}
	}
	m.keeper.entries = []*entry{lease("long", time.Hour), lease("a", 8*time.Second), lease("b", 6*time.Second), {spec: Spec{ID: "kv"}}}
	m.keeper.warnTooShort(m.cfg.SwitchTime, m.cfg.SwitchSource)
	out := buf.String()
	if n := strings.Count(out, "lease too short"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, out)
	}
	for _, want := range []string{`switch="--reload-grace 5s"`, "ttl=6s", "hand_over_before=4.5s", "needed=6.3s", `outputs=["a", "b"]`} {
		if !strings.Contains(out, want) {
			t.Errorf("warning lacks %s:\n%s", want, out)
		}
	}
	buf.Reset()
	m.cfg.SwitchTime = time.Second
	m.keeper.warnTooShort(m.cfg.SwitchTime, m.cfg.SwitchSource)
	if buf.Len() != 0 {
		t.Errorf("warned with a switch time the leases allow:\n%s", buf.String())
	}
}

func TestRotateAt(t *testing.T) {
	exp := t0.Add(time.Hour)
	tests := []struct {
		name      string
		margin    time.Duration
		r         float64
		notBefore time.Time
		want      time.Time
	}{
		{"no jitter", 20 * time.Minute, 0, t0, t0.Add(40 * time.Minute)},
		{"full jitter is a quarter of the margin earlier", 20 * time.Minute, 1, t0, t0.Add(35 * time.Minute)},
		{"never before issue", 2 * time.Hour, 0.5, t0, t0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultSchedule.rotateAt(exp, tt.margin, tt.r, tt.notBefore); !got.Equal(tt.want) {
				t.Fatalf("rotateAt = %s, want %s", got, tt.want)
			}
		})
	}
}

// A fleet drawing different r values must spread out: the
// consul-template pkiCert bug was jitter that always came out 0.
func TestRotateAtJitterSpreads(t *testing.T) {
	exp := t0.Add(24 * time.Hour)
	seen := map[time.Time]bool{}
	for i := range 10 {
		seen[defaultSchedule.rotateAt(exp, 8*time.Hour, float64(i)/10, t0)] = true
	}
	if len(seen) != 10 {
		t.Fatalf("10 jitter values gave %d distinct rotate points", len(seen))
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{0, 0, 250 * time.Millisecond},
		{0, 1, 500 * time.Millisecond},
		{1, 0, 500 * time.Millisecond},
		{3, 0.5, 3 * time.Second},
		{10, 0, 15 * time.Second},
		{100, 1, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("attempt%d-r%v", tt.attempt, tt.r), func(t *testing.T) {
			if got := backoff(tt.attempt, 500*time.Millisecond, 30*time.Second, tt.r); got != tt.want {
				t.Fatalf("backoff = %s, want %s", got, tt.want)
			}
		})
	}
}

// The runtime retry: capped at retryMax (the longest leash may keep
// waiting after Vault is back), denser near a deadline so several tries fit
// before it, never denser than the floor.
func TestRetry(t *testing.T) {
	tests := []struct {
		name    string
		attempt int
		left    time.Duration
		r       float64
		want    time.Duration
	}{
		{"first retry", 0, time.Hour, 0, 250 * time.Millisecond},
		{"doubles", 2, time.Hour, 1, 2 * time.Second},
		{"capped far from the deadline", 100, time.Hour, 1, 10 * time.Second},
		{"equal jitter keeps half", 100, time.Hour, 0, 5 * time.Second},
		{"no deadline known", 100, 0, 1, 10 * time.Second},
		{"an eighth of the time left", 100, 40 * time.Second, 1, 5 * time.Second},
		{"never below the floor", 100, 8 * time.Second, 1, 2 * time.Second},
		{"floor with jitter", 100, time.Second, 0, time.Second},
		{"early retries unchanged near a deadline", 0, 8 * time.Second, 1, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultSchedule.retry(tt.attempt, tt.left, tt.r); got != tt.want {
				t.Fatalf("retry(%d, %s, %v) = %s, want %s", tt.attempt, tt.left, tt.r, got, tt.want)
			}
		})
	}
}

func TestLostBefore(t *testing.T) {
	tests := []struct {
		ttl, want time.Duration
	}{
		{0, time.Second},
		{6 * time.Second, 300 * time.Millisecond},
		{40 * time.Second, time.Second},
		{time.Hour, time.Second},
	}
	for _, tt := range tests {
		if got := defaultSchedule.lostBefore(tt.ttl); got != tt.want {
			t.Errorf("lostBefore(%s) = %s, want %s", tt.ttl, got, tt.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		h    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{"Thu, 01 Jan 2026 00:00:30 GMT", 30 * time.Second, true},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := retryAfter(tt.h, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("retryAfter(%q) = %s, %v; want %s, %v", tt.h, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDataCannotBePrinted(t *testing.T) {
	d := Data{map[string]any{"password": "hunter2", "nested": map[string]any{"k": "hunter2"}}}
	s := &Secret{ID: "db", Data: d, Raw: d}
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{
		fmt.Sprint(d), fmt.Sprintf("%v %+v %#v %s %q %x", d, d, d, d, d, d),
		fmt.Sprintf("%v %+v %#v", s, s, *s), string(j),
	} {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("secret printed: %s", out)
		}
	}
	m := d.Map()
	m["nested"].(map[string]any)["k"] = "changed"
	if d.m["nested"].(map[string]any)["k"] != "hunter2" {
		t.Fatal("Map is not a deep copy")
	}
}

// planEntry picks renewal, hand-over or refresh from an entry's state; the
// clock is the Manager's field, fixed here.
func TestPlanEntry(t *testing.T) {
	m, err := New(Config{Env: []string{}, StaticRefresh: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	m.now = func() time.Time { return t0 }
	renewable := &token{expires: t0.Add(time.Hour)}                // not hard: does not bound
	dying := &token{expires: t0.Add(10 * time.Minute), hard: true} // bounds the lease
	tests := []struct {
		name string
		e    entry
		want time.Time
	}{
		{"static refreshes", entry{}, t0.Add(time.Minute)},
		{"renewable lease renews at two thirds", entry{
			lease: &held{owner: renewable}, renewable: true, leaseExp: t0.Add(30 * time.Minute), ttl: 30 * time.Minute,
		}, t0.Add(20 * time.Minute)},
		{"first renewal is jittered", entry{
			lease: &held{owner: renewable}, renewable: true, leaseExp: t0.Add(30 * time.Minute), ttl: 30 * time.Minute, r: 1,
		}, t0.Add(15*time.Minute + 30*time.Second)},
		{"later renewals at two thirds without jitter", entry{
			lease: &held{owner: renewable}, renewable: true, leaseExp: t0.Add(30 * time.Minute), ttl: 30 * time.Minute, r: 1, steady: true,
		}, t0.Add(20 * time.Minute)},
		{"later renewals no later than the margin", entry{
			lease: &held{owner: renewable}, renewable: true, leaseExp: t0.Add(6 * time.Second), ttl: 6 * time.Second, r: 1, steady: true,
		}, t0.Add(3 * time.Second)},
		{"short lease renews at the hand-over point", entry{
			lease: &held{owner: renewable}, renewable: true, leaseExp: t0.Add(6 * time.Second), ttl: 6 * time.Second,
		}, t0.Add(3 * time.Second)},
		{"renewal capped: hand over a third before expiry", entry{
			lease: &held{owner: renewable}, renewable: true, maxed: true, leaseExp: t0.Add(30 * time.Minute), ttl: 30 * time.Minute,
		}, t0.Add(20 * time.Minute)},
		{"non-renewable with configured jitter r=1", entry{
			lease: &held{owner: renewable}, leaseExp: t0.Add(30 * time.Minute), ttl: 30 * time.Minute, r: 1,
		}, t0.Add(30*time.Minute - 10*time.Minute - 150*time.Second)},
		{"dying token bounds the lease", entry{
			lease: &held{owner: dying}, renewable: true, leaseExp: t0.Add(time.Hour), ttl: 6 * time.Minute,
		}, t0.Add(8 * time.Minute)},
		{"certificate NotAfter before the lease", entry{
			lease: &held{owner: renewable}, leaseExp: t0.Add(time.Hour), notAfter: t0.Add(30 * time.Minute), ttl: 30 * time.Minute,
		}, t0.Add(20 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.e
			e.cur = &Secret{IssuedAt: t0}
			e.next = m.plan.entryNext(&e, t0)
			if d := e.next.Sub(tt.want); d < -time.Millisecond || d > time.Millisecond { // float jitter
				t.Fatalf("next = +%s, want +%s", e.next.Sub(t0), tt.want.Sub(t0))
			}
		})
	}
}

func TestVaultMessage(t *testing.T) {
	got := vaultMessage([]string{"2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"})
	if got != "permission denied; invalid token" {
		t.Fatalf("vaultMessage = %q", got)
	}
	if got := vaultMessage([]string{"unknown role r"}); got != "unknown role r" {
		t.Fatalf("vaultMessage = %q", got)
	}
	// Whatever answers at VAULT_ADDR writes these: nothing a terminal acts
	// on gets through, and at most a KiB of it.
	for _, tc := range []struct{ in, want string }{
		{"bad\x1b[2J\x1b]0;title\x07x", `bad\x1b[2J\x1b]0;title\x07x`},
		{"line\r[INFO] fake", `line\x0d[INFO] fake`},
		{"a\u202eb\u0085c\x7f", `a\u202eb\u0085c\x7f`},
		{"bad \xff\xfe utf-8", `bad \xff\xfe utf-8`},
		{`common name "é.example" not allowed`, `common name "é.example" not allowed`},
	} {
		if got := vaultMessage([]string{tc.in}); got != tc.want {
			t.Errorf("vaultMessage(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := vaultMessage([]string{strings.Repeat("a", 1<<20)})
	if want := strings.Repeat("a", maxVaultMessage) + fmt.Sprintf("... (%d bytes more)", 1<<20-maxVaultMessage); long != want {
		t.Errorf("a 1 MiB message: %d bytes, %q...", len(long), long[len(long)-30:])
	}
	// The message reaches the error classifyResponse returns.
	err, _ := classifyResponse(&api.ResponseError{StatusCode: 400, Errors: []string{"no\x1b[2J"}})
	if strings.ContainsRune(err.Error(), 0x1b) {
		t.Errorf("classifyResponse: %q", err)
	}
}

// Run acts on what is due plus what falls due within 1% of the lease's
// ttl, earliest first; never early for a retry or a static secret.
func TestDueAtBatches(t *testing.T) {
	m, err := New(Config{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(10 * time.Second)
	lease := func(id string, next time.Time, ttl time.Duration, failures int) *entry {
		return &entry{spec: Spec{ID: id}, next: next, ttl: ttl, failures: failures}
	}
	m.keeper.entries = []*entry{
		lease("later", at.Add(500*time.Millisecond), time.Minute, 0), // within 600ms
		lease("now", at, time.Minute, 0),
		lease("too-late", at.Add(700*time.Millisecond), time.Minute, 0),
		lease("retrying", at.Add(100*time.Millisecond), time.Minute, 1),
		lease("static", at.Add(100*time.Millisecond), 0, 0),
		lease("idle", time.Time{}, time.Minute, 0),
		lease("overdue", at.Add(-time.Second), time.Minute, 3),
	}
	var got []string
	for _, e := range m.keeper.dueAt(at) {
		got = append(got, e.spec.ID)
	}
	if want := "overdue now later"; strings.Join(got, " ") != want {
		t.Fatalf("due = %q, want %q", got, want)
	}
}

// scan finds the next wake-up among the token, the entries' actions and
// loss points and the held leases, and the first lost credential.
func TestScan(t *testing.T) {
	m, err := New(Config{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	m.tokens.cur = &token{next: t0.Add(time.Hour)}
	a := &entry{spec: Spec{ID: "a"}, next: t0.Add(40 * time.Second), leaseExp: t0.Add(time.Minute), lease: &held{}}
	b := &entry{spec: Spec{ID: "b"}, next: t0.Add(30 * time.Second), leaseExp: t0.Add(20 * time.Second), lease: &held{}}
	c := &entry{spec: Spec{ID: "c"}, next: t0.Add(50 * time.Second), leaseExp: t0.Add(10 * time.Second), lease: &held{}}
	m.keeper.entries = []*entry{a, b}
	if next, lost := m.keeper.scan(t0); !next.Equal(t0.Add(19*time.Second)) || lost != nil {
		t.Fatalf("scan = +%s, %v; want +19s (a second before b's expiry), nothing lost", next.Sub(t0), lost)
	}
	m.ledger.pruneAt = t0.Add(5 * time.Second)
	if next, _ := m.keeper.scan(t0); !next.Equal(m.ledger.pruneAt) {
		t.Fatalf("scan = +%s, want the held lease's expiry +5s", next.Sub(t0))
	}
	m.keeper.entries = []*entry{a, b, c}
	if _, lost := m.keeper.scan(t0.Add(25 * time.Second)); lost != b {
		t.Fatalf("lost = %v, want b (first in Spec order)", lost)
	}
}

// prune drops expired leases the entries no longer hold, keeps the rest,
// and wakes next at the earliest expiry still ahead.
func TestPrune(t *testing.T) {
	m, err := New(Config{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	tok := &token{leases: 3}
	old := &held{fp: "old", owner: tok, expires: t0.Add(time.Second)}
	cur := &held{fp: "cur", owner: tok, expires: t0.Add(2 * time.Second)}
	other := &held{fp: "other", owner: tok, expires: t0.Add(time.Minute)}
	m.ledger.held = map[string]*held{"old": old, "cur": cur, "other": other}
	m.keeper.entries = []*entry{{lease: cur}}
	m.ledger.pruneAt = old.expires
	m.ledger.prune(t0, m.keeper.isCurrent) // not yet
	if len(m.ledger.held) != 3 {
		t.Fatalf("pruned before the earliest expiry: %d held", len(m.ledger.held))
	}
	m.ledger.prune(t0.Add(3*time.Second), m.keeper.isCurrent)
	if _, ok := m.ledger.held["old"]; ok || len(m.ledger.held) != 2 || tok.leases != 2 {
		t.Fatalf("held %v, token leases %d: want cur and other, 2", m.ledger.held, tok.leases)
	}
	if !m.ledger.pruneAt.Equal(other.expires) {
		t.Fatalf("pruneAt = +%s, want +1m (other's expiry)", m.ledger.pruneAt.Sub(t0))
	}
}

func TestStaticReadAt(t *testing.T) {
	due := t0.Add(10 * time.Second)
	refresh := 5 * time.Minute
	tests := []struct {
		name   string
		now    time.Time
		due    time.Time
		stale  int
		r      float64
		want   time.Time
		wantOK bool
	}{
		{"no rotation time: the refresh", t0, time.Time{}, 0, 0, t0.Add(refresh), true},
		{"a second after the rotation time", t0, due, 0, 0, due.Add(time.Second), true},
		{"rotation time past: now", due.Add(3 * time.Second), due, 0, 0, due.Add(3 * time.Second), true},
		{"far rotation: the refresh first", t0, t0.Add(time.Hour), 0, 0, t0.Add(refresh), true},
		{"first retry short", due.Add(time.Second), due, 1, 0, due.Add(time.Second + 125*time.Millisecond), true},
		{"first retry full jitter", due.Add(time.Second), due, 1, 1, due.Add(time.Second + 250*time.Millisecond), true},
		{"retries cap at a second", due.Add(5 * time.Second), due, 6, 1, due.Add(6 * time.Second), true},
		{"retries cap, no jitter", due.Add(5 * time.Second), due, 6, 0, due.Add(5*time.Second + 500*time.Millisecond), true},
		{"last retry in the window", due.Add(10 * time.Second), due, 9, 0, due.Add(10*time.Second + 500*time.Millisecond), true},
		{"window over: the refresh", due.Add(11 * time.Second), due, 10, 0, due.Add(11*time.Second + refresh), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := defaultSchedule.staticReadAt(tt.now, tt.due, tt.stale, refresh, tt.r)
			if !got.Equal(tt.want) || ok != tt.wantOK {
				t.Fatalf("staticReadAt = %s, %v; want %s, %v", got.Sub(t0), ok, tt.want.Sub(t0), tt.wantOK)
			}
		})
	}
}

// TestStaticRetriesDeliverWithinTwoSeconds walks the retries after a
// rotation time with the worst jitter: wherever in Vault's 5 s queue tick
// the rotation falls, a read finds it within a second, and the retries
// stop within the window.
func TestStaticRetriesDeliverWithinTwoSeconds(t *testing.T) {
	due := t0
	for _, r := range []float64{0, 0.5, 0.999} {
		now, _ := defaultSchedule.staticReadAt(due.Add(-10*time.Second), due, 0, time.Hour, r)
		reads := []time.Time{now}
		for stale := 1; ; stale++ {
			next, ok := defaultSchedule.staticReadAt(now, due, stale, time.Hour, r)
			if !ok {
				break
			}
			if stale > 100 {
				t.Fatalf("r=%v: more than 100 retries", r)
			}
			now = next
			reads = append(reads, now)
		}
		for rot := due; rot.Before(due.Add(10 * time.Second)); rot = rot.Add(100 * time.Millisecond) {
			i := 0
			for i < len(reads) && reads[i].Before(rot) {
				i++
			}
			if i == len(reads) {
				t.Fatalf("r=%v: no read after a rotation at +%s", r, rot.Sub(due))
			}
			if lag := reads[i].Sub(rot); lag > time.Second && rot.After(due) {
				t.Errorf("r=%v: rotation at +%s found %s later", r, rot.Sub(due), lag)
			}
		}
		if len(reads) > 25 {
			t.Errorf("r=%v: %d reads for one rotation", r, len(reads))
		}
	}
}
