package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
	"github.com/leash-dev/leash/internal/vaultproxy"
)

// What leash tells about itself: the status server, metrics, the audit
// trail beside the log, and sd_notify.

// statusGet fetches path from a leash status server on a Unix socket.
func statusGet(t *testing.T, sock, path string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := client.Get("http://leash" + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitHealth polls /healthz until it answers want (the server gives no
// event to wait on; the poll is bounded).
func waitHealth(t *testing.T, sock string, want int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := statusGet(t, sock, "/healthz")
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz = %d %q, want %d", code, body, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leaseRow is a row of /v1/leases (the fields the tests use).
type leaseRow struct {
	Name         string    `json:"name"`
	Outputs      []string  `json:"outputs"`
	Path         string    `json:"path"`
	Kind         string    `json:"kind"`
	Fingerprint  string    `json:"fingerprint"`
	Expires      time.Time `json:"expires"`
	NextRenewal  time.Time `json:"next_renewal"`
	NextRead     time.Time `json:"next_read"`
	NextRotation time.Time `json:"next_rotation"`
	Renewals     int       `json:"renewals"`
}

// TestStatusAuditAndHealth runs leash with the status server and the audit
// trail against a real Vault behind the fault proxy: the lease table matches
// Vault's own view, health flips to 503 while Vault is unreachable, and no
// secret byte appears in any endpoint or audit line.
func TestStatusAuditAndHealth(t *testing.T) {
	t.Parallel()
	srv := testvault.New(t)
	proxy := vaultproxy.Start(t, srv.Addr)
	// A 24s lease: health turns 503 at the first failed renewal, two
	// thirds into it, and the test must bring Vault back within the last
	// third (8s) or leash fails closed; 2s (a 6s lease) was too little
	// under load.
	create := srv.TokenRole(t, 5*time.Minute)
	kv := srv.KV(t, 2)
	const kvSecret = "kv-secret-Qm7x"
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": kvSecret}})

	dir := t.TempDir()
	sock := filepath.Join(dir, "status.sock")
	auditPath := filepath.Join(dir, "audit.jsonl")
	cmd := Command(t, "--status-addr", sock, "--audit-file", auditPath, "--log-level", "trace",
		"-s", "tok="+create+"?ttl=24s", "-s", "pw="+kv+"/app#password",
		"--on-rotate", "none", "--", "sh", "-c", "cat $TOK_FILE > /dev/null; exec sleep 600")
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+proxy.Addr(), "VAULT_TOKEN="+srv.RootToken)
	lp := StartCmd(t, cmd)
	waitHealth(t, sock, http.StatusOK)

	// The lease table agrees with Vault.
	code, body := statusGet(t, sock, "/v1/leases")
	if code != http.StatusOK {
		t.Fatalf("/v1/leases: %d %s", code, body)
	}
	var table struct{ Leases []leaseRow }
	if err := json.Unmarshal([]byte(body), &table); err != nil {
		t.Fatal(err)
	}
	if len(table.Leases) != 2 {
		t.Fatalf("lease table has %d rows, want 2: %s", len(table.Leases), body)
	}
	ids := srv.LeaseIDs(t, create+"/")
	if len(ids) != 1 {
		t.Fatalf("Vault holds %d leases under %s, want 1", len(ids), create)
	}
	vaultExpire, _, ok := srv.LeaseLookup(t, ids[0])
	if !ok {
		t.Fatal("Vault does not know leash's lease")
	}
	var tokRow leaseRow
	for _, r := range table.Leases {
		if strings.HasPrefix(r.Path, create) {
			tokRow = r
		}
	}
	if tokRow.Fingerprint == "" || tokRow.Expires.IsZero() || tokRow.NextRenewal.IsZero() {
		t.Fatalf("token lease row incomplete: %+v", tokRow)
	}
	// Renewals may move Vault's expiry between the two reads; a renewal
	// extends by at most the 24 s TTL.
	if d := vaultExpire.Sub(tokRow.Expires); d < -time.Second || d > 25*time.Second {
		t.Errorf("status expiry %v, Vault's %v", tokRow.Expires, vaultExpire)
	}

	// A renewal: leash updates the table before it records the event.
	lp.WaitEvent(evRenewed, 1, 60*time.Second, nil)
	if _, b := statusGet(t, sock, "/v1/leases"); !strings.Contains(b, `"renewals": 1`) {
		t.Fatalf("a renewal was audited, not counted in the table: %s", b)
	}

	// Health flips to 503 while Vault is unreachable past the threshold,
	// and back once it returns.
	if out, err := Command(t, "status", "--check", "--status-addr", sock).Output(); err != nil || string(out) != "ok\n" {
		t.Errorf("leash status --check while healthy: %v %q", err, out)
	}
	proxy.Down()
	waitHealth(t, sock, http.StatusServiceUnavailable)
	if code, _ := ExitStatus(t, Command(t, "status", "--check", "--status-addr", sock)); code != 1 {
		t.Errorf("leash status --check while unhealthy exited %d, want 1", code)
	}
	proxy.Up()
	waitHealth(t, sock, http.StatusOK)

	code, metrics := statusGet(t, sock, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	sample := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eE]+$`)
	for _, line := range strings.Split(strings.TrimSpace(metrics), "\n") {
		if !strings.HasPrefix(line, "#") && !sample.MatchString(line) {
			t.Errorf("malformed metrics line %q", line)
		}
	}
	for _, want := range []string{"leash_lease_expiry_timestamp_seconds{", "leash_renewals_total{", "leash_failures_total{", "leash_vault_request_duration_seconds_count "} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// `leash status` prints the table.
	out, err := Command(t, "status", "--status-addr", sock).Output()
	if err != nil || !strings.Contains(string(out), "RENEWALS") || !strings.Contains(string(out), kv+"/app") {
		t.Errorf("leash status: %v\n%s", err, out)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	lp.Exit(60 * time.Second)

	// The audit trail: 0600, every line JSON, issuance, renewal, failure
	// and revocation recorded, no secret.
	fi, err := os.Stat(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %04o, want 0600", fi.Mode().Perm())
	}
	f, err := os.Open(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		events[rec.Event]++
	}
	for _, ev := range []string{"login", "issued", "renewed", "failed", "revoked", "child_start", "child_exit"} {
		if events[ev] == 0 {
			t.Errorf("audit trail has no %q event: %v", ev, events)
		}
	}
	raw, _ := os.ReadFile(auditPath)
	for _, secret := range []string{kvSecret, srv.RootToken} {
		for name, where := range map[string]string{"audit file": string(raw), "metrics": metrics, "lease table": body, "log": lp.Log.String()} {
			if strings.Contains(where, secret) {
				t.Errorf("a secret appears in the %s", name)
			}
		}
	}
}

// TestMetricsCountStartupRequests: after a start with a token lookup, a
// mount lookup and a KV read, the request histogram has counted them (it
// counted only renewals and rotations, so 0 here: issue 16).
func TestMetricsCountStartupRequests(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "pw-Hq2r"}})
	sock := filepath.Join(t.TempDir(), "status.sock")
	cmd := Command(t, "--status-addr", sock, "-s", "pw="+kv+"/app#password", "--on-rotate", "none",
		"--", "sleep", "600")
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.RootToken)
	lp := StartCmd(t, cmd)
	waitHealth(t, sock, http.StatusOK)
	_, metrics := statusGet(t, sock, "/metrics")
	m := regexp.MustCompile(`(?m)^leash_vault_request_duration_seconds_count (\d+)$`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no request count in /metrics:\n%s", metrics)
	}
	// lookup-self, sys/internal/ui/mounts, the read.
	if n, _ := strconv.Atoi(m[1]); n < 3 {
		t.Errorf("leash_vault_request_duration_seconds_count = %d after a login and a read, want >= 3; leash:\n%s", n, lp.Log.String())
	}
	if !strings.Contains(metrics, `leash_vault_request_duration_seconds_bucket{le="+Inf"} `+m[1]+"\n") {
		t.Errorf("+Inf bucket disagrees with the count:\n%s", metrics)
	}
}

// TestOutputNamesEverywhere: the names the user gave the outputs (db, pw)
// are in /v1/leases, the metrics' outputs label, every lease log line and
// every lease audit record; a secret feeding two outputs names both. They
// used to carry only the Vault path (issue 16).
func TestOutputNamesEverywhere(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	create := srv.TokenRole(t, time.Minute)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "pw-N4xe"}})
	dir := t.TempDir()
	sock := filepath.Join(dir, "status.sock")
	auditPath := filepath.Join(dir, "audit.jsonl")
	cmd := Command(t, "--status-addr", sock, "--audit-file", auditPath, "--log-level", "trace",
		"-s", "tok="+create+"?ttl=6s", "-s", "app="+kv+"/app", "-s", "pw="+kv+"/app#password",
		"--on-rotate", "none", "--", "sleep", "600")
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.RootToken)
	lp := StartCmd(t, cmd)
	waitHealth(t, sock, http.StatusOK)

	// A renewal: leash updates the table before it records the event.
	lp.WaitEvent(evRenewed, 1, 60*time.Second, nil)
	var table struct{ Leases []leaseRow }
	_, body := statusGet(t, sock, "/v1/leases")
	if err := json.Unmarshal([]byte(body), &table); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{kv + "/app": {"app", "pw"}}
	for _, r := range table.Leases {
		if strings.HasPrefix(r.Name, create) {
			want[r.Name] = []string{"tok"}
		}
	}
	for _, r := range table.Leases {
		if !slices.Equal(r.Outputs, want[r.Name]) {
			t.Errorf("/v1/leases row %s: outputs %q, want %q", r.Name, r.Outputs, want[r.Name])
		}
	}
	_, metrics := statusGet(t, sock, "/metrics")
	for _, w := range []string{`leash_renewals_total{name="` + create + `?ttl=6s",outputs="tok"}`,
		`leash_lease_next_renewal_timestamp_seconds{name="` + kv + `/app",outputs="app,pw",`} {
		if !strings.Contains(metrics, w) {
			t.Errorf("/metrics lacks %s:\n%s", w, metrics)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	lp.Exit(60 * time.Second)
	lines := 0
	for _, l := range strings.Split(lp.Log.String(), "\n") {
		if !strings.Contains(l, " leash.lease: ") || !strings.Contains(l, " name=") {
			continue
		}
		lines++
		if !strings.Contains(l, ` outputs=["tok"]`) && !strings.Contains(l, ` outputs=["app", "pw"]`) {
			t.Errorf("lease log line without the output names: %s", l)
		}
	}
	if lines < 4 { // issued ×2, renewed, revoked
		t.Errorf("only %d lease log lines name a secret:\n%s", lines, lp.Log.String())
	}
	raw, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	records := 0
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var rec Record
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		if rec.Name == "" {
			continue
		}
		records++
		if !slices.Equal(rec.Outputs, want[rec.Name]) {
			t.Errorf("audit record %s %s: outputs %q, want %q", rec.Event, rec.Name, rec.Outputs, want[rec.Name])
		}
	}
	if records < 4 {
		t.Errorf("only %d audit records name a secret:\n%s", records, raw)
	}
}

// TestSecretsWithoutLeaseSaySo: a KV read and a static role are not
// "lease issued ... lease=\"\" expires=never" (issue 16): the log says
// what happened, and /v1/leases and leash status show the next read and,
// for the static role, Vault's next rotation.
func TestSecretsWithoutLeaseSaySo(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "pw-Zt6c"}})
	db := testpg.Database(t)
	// Roles are the server's, not the database's: a unique one, dropped after.
	role := "static_" + db.Name
	db.Exec(t, `CREATE ROLE `+role+` LOGIN`)
	t.Cleanup(func() { db.Exec(t, `DROP ROLE IF EXISTS `+role) })
	static := srv.StaticRole(t, db.VaultURL(), db.User, db.Password, role, time.Hour)
	sock := filepath.Join(t.TempDir(), "status.sock")
	cmd := Command(t, "--status-addr", sock, "-s", "app="+kv+"/app", "-s", "db="+static,
		"--on-rotate", "none", "--", "sleep", "600")
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.RootToken)
	lp := StartCmd(t, cmd)
	waitHealth(t, sock, http.StatusOK)

	_, body := statusGet(t, sock, "/v1/leases")
	var table struct{ Leases []leaseRow }
	if err := json.Unmarshal([]byte(body), &table); err != nil {
		t.Fatal(err)
	}
	for _, r := range table.Leases {
		want := map[string]string{kv + "/app": "secret", static: "static"}[r.Name]
		if r.Kind != want || r.NextRead.IsZero() || !r.NextRenewal.IsZero() || r.Fingerprint != "" {
			t.Errorf("row %s: kind %q next_read %s next_renewal %s, want kind %q and a next read only", r.Name, r.Kind, r.NextRead, r.NextRenewal, want)
		}
		if (want == "static") == r.NextRotation.IsZero() {
			t.Errorf("row %s: next_rotation %s", r.Name, r.NextRotation)
		}
		// Vault's hour-long period: the next rotation is about an hour away,
		// and the read is planned at --static-refresh (5m), before it.
		if want == "static" && (time.Until(r.NextRotation) < 50*time.Minute || time.Until(r.NextRead) > 6*time.Minute) {
			t.Errorf("static row: next rotation %s, next read %s", r.NextRotation, r.NextRead)
		}
	}
	if strings.Contains(body, `"fingerprint"`) {
		t.Errorf("rows without a lease show an empty lease: %s", body)
	}
	out, err := Command(t, "status", "--status-addr", sock).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"none (static role, rotates ", "read "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("leash status lacks %q:\n%s", want, out)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	lp.Exit(60 * time.Second)
	log := lp.Log.String()
	for _, want := range []string{"secret read: name=" + kv + "/app", "static credential read: name=" + static, "next_rotation=", "next_read="} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, `lease=""`) {
		t.Errorf("log shows an empty lease:\n%s", log)
	}
}

// TestNotifySocket: with NOTIFY_SOCKET set, leash reports READY=1 once the
// child runs with its credentials, pings the watchdog every half
// WATCHDOG_USEC when it is addressed to leash, and reports STOPPING=1 once
// the child has exited; the child inherits none of the variables. The
// receiving end is a datagram socket of the test's: systemd, the real
// service manager, does not run in this sandbox. Both address forms
// systemd uses are tried.
func TestNotifySocket(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 1)
	const secret = "notify-secret-Xr8"
	srv.Write(t, kv+"/app", map[string]any{"k": secret})
	for _, tt := range []struct {
		name, addr  string
		watchdogPID string // "" : leash's
		pings       bool
	}{
		{"path", filepath.Join(t.TempDir(), "notify"), "", true},
		{"abstract, watchdog for another process", "@leash-test-notify-" + strconv.FormatInt(time.Now().UnixNano(), 36), "1", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: tt.addr, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			// next returns the next notification; the deadline is a bound,
			// not a synchronisation: the datagram is the event.
			next := func() string {
				t.Helper()
				l.SetReadDeadline(time.Now().Add(30 * time.Second))
				buf := make([]byte, 4096)
				n, err := l.Read(buf)
				if err != nil {
					t.Fatalf("no notification: %v", err)
				}
				got := string(buf[:n])
				if strings.Contains(got, secret) {
					t.Fatalf("the secret is in a notification: %q", got)
				}
				return got
			}
			has := func(msg, line string) bool { return strings.Contains("\n"+msg+"\n", "\n"+line+"\n") }
			cmd := Command(t, "-s", "k="+kv+"/app#k", "--", "sh", "-c",
				`echo "child ${NOTIFY_SOCKET:-unset} ${WATCHDOG_USEC:-unset} ${WATCHDOG_PID:-unset} $(cat "$K_FILE")"; read x; exit 0`)
			cmd.Env = append(cmd.Env, vaultEnv(srv.Addr, srv.RootToken)...)
			cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+tt.addr, "WATCHDOG_USEC=100000")
			if tt.watchdogPID != "" {
				cmd.Env = append(cmd.Env, "WATCHDOG_PID="+tt.watchdogPID)
			}
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			lp := StartCmd(t, cmd)
			if msg := next(); !has(msg, "READY=1") {
				t.Fatalf("first notification %q, want READY=1", msg)
			}
			lp.Out.Expect("child unset unset unset " + secret)
			if tt.pings {
				for range 2 {
					if msg := next(); !has(msg, "WATCHDOG=1") {
						t.Fatalf("notification %q, want WATCHDOG=1", msg)
					}
				}
			}
			stdin.Close() // the child exits 0
			for {
				msg := next()
				if has(msg, "STOPPING=1") {
					break
				}
				if !tt.pings || !has(msg, "WATCHDOG=1") {
					t.Fatalf("notification %q, want STOPPING=1", msg)
				}
			}
			if code := lp.Exit(60 * time.Second); code != 0 {
				t.Fatalf("leash exited %d", code)
			}
		})
	}
}
