package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testchild"
	"github.com/leash-dev/leash/internal/testvault"
	"github.com/leash-dev/leash/internal/vaultproxy"
)

// getStatus fetches path from a leash status server on a Unix socket.
func getStatus(t *testing.T, sock, path string) (int, string) {
	t.Helper()
	client, base := statusClient(sock)
	resp, err := client.Get(base + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitStatus polls /healthz until it answers want (the server gives no
// event to wait on; the poll is bounded).
func waitHealth(t *testing.T, sock string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := getStatus(t, sock, "/healthz")
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz = %d %q, want %d", code, body, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStatusAuditAndHealth runs leash with the status server and the audit
// trail against a real Vault behind the fault proxy: the lease table matches
// Vault's own view, health flips to 503 while Vault is unreachable, and no
// secret byte appears in any endpoint or audit line.
func TestStatusAuditAndHealth(t *testing.T) {
	t.Parallel()
	srv := testvault.New(t)
	proxy := vaultproxy.Start(t, srv.Addr)
	create := srv.TokenRole(t, 30*time.Second)
	kv := srv.KV(t, 2)
	const kvSecret = "kv-secret-Qm7x"
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": kvSecret}})

	dir := t.TempDir()
	sock := filepath.Join(dir, "status.sock")
	auditPath := filepath.Join(dir, "audit.jsonl")
	cmd := leashCmd(t, "--status-addr", sock, "--audit-file", auditPath, "--log-level", "trace",
		"-s", "tok="+create+"?ttl=6s", "-s", "pw="+kv+"/app#password",
		"--on-rotate", "none", "--", "sh", "-c", "cat $TOK_FILE > /dev/null; exec sleep 600")
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+proxy.Addr(), "VAULT_TOKEN="+srv.RootToken)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitHealth(t, sock, http.StatusOK)

	// The lease table agrees with Vault.
	code, body := getStatus(t, sock, "/v1/leases")
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
	// extends by at most the 6 s TTL.
	if d := vaultExpire.Sub(tokRow.Expires); d < -time.Second || d > 7*time.Second {
		t.Errorf("status expiry %v, Vault's %v", tokRow.Expires, vaultExpire)
	}

	// Wait for a renewal (bounded poll: the table has no change event).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, b := getStatus(t, sock, "/v1/leases")
		if strings.Contains(b, `"renewals": 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewal within 30s: %s", b)
		}
	}

	// Health flips to 503 while Vault is unreachable past the threshold,
	// and back once it returns.
	if out, err := leashCmd(t, "status", "--check", "--status-addr", sock).Output(); err != nil || string(out) != "ok\n" {
		t.Errorf("leash status --check while healthy: %v %q", err, out)
	}
	proxy.Down()
	waitHealth(t, sock, http.StatusServiceUnavailable)
	if code, _ := exitStatus(t, leashCmd(t, "status", "--check", "--status-addr", sock)); code != 1 {
		t.Errorf("leash status --check while unhealthy exited %d, want 1", code)
	}
	proxy.Up()
	waitHealth(t, sock, http.StatusOK)

	code, metrics := getStatus(t, sock, "/metrics")
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
	out, err := leashCmd(t, "status", "--status-addr", sock).Output()
	if err != nil || !strings.Contains(string(out), "RENEWALS") || !strings.Contains(string(out), kv+"/app") {
		t.Errorf("leash status: %v\n%s", err, out)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

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
		var rec auditRecord
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
		for name, where := range map[string]string{"audit file": string(raw), "metrics": metrics, "lease table": body, "log": stderr.String()} {
			if strings.Contains(where, secret) {
				t.Errorf("a secret appears in the %s", name)
			}
		}
	}
}

func TestStatusAddrMustBeLoopback(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:9000", ":9000", "[::]:9000", "10.1.2.3:80", "[::ffff:10.1.2.3]:80", "example.com:80", "127.0.0.1.nip.io:80", "nonsense"} {
		if l, err := listenStatus(addr); err == nil {
			l.Close()
			t.Errorf("listenStatus(%q) accepted a non-loopback address", addr)
		}
	}
}

// localhost in --status-addr is resolved once; every address must be
// loopback, and leash listens on that address, not on whatever the name
// resolves to at bind time. The resolver stands in for a hosts file.
func TestStatusAddrLocalhostMustResolveToLoopback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		addrs   []string
		err     error
		want    string // the address listened on, or "" for an error
		wantErr string
	}{
		{"loopback v4", []string{"127.0.0.1"}, nil, "127.0.0.1", ""},
		{"loopback v4 first", []string{"::1", "127.0.0.1"}, nil, "127.0.0.1", ""},
		{"v4-mapped loopback", []string{"::ffff:127.0.0.1"}, nil, "127.0.0.1", ""},
		{"all addresses", []string{"0.0.0.0"}, nil, "", "localhost resolves to 0.0.0.0, which is not loopback"},
		{"one not loopback", []string{"127.0.0.1", "192.0.2.7"}, nil, "", "localhost resolves to 192.0.2.7, which is not loopback"},
		{"nothing", nil, nil, "", "localhost resolves to no address"},
		{"lookup fails", nil, errors.New("no such host"), "", "resolve localhost: no such host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sl := statusListener{lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
				if host != "localhost" {
					t.Errorf("looked up %q", host)
				}
				var out []netip.Addr
				for _, a := range tc.addrs {
					out = append(out, netip.MustParseAddr(a))
				}
				return out, tc.err
			}}
			l, err := sl.listen("localhost:0")
			if tc.want == "" {
				if err == nil {
					l.Close()
					t.Fatalf("listened on %s", l.Addr())
				}
				if !strings.Contains(err.Error(), `--status-addr "localhost:0": `+tc.wantErr) {
					t.Errorf("error %q does not name the flag and say %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if got := l.Addr().(*net.TCPAddr).IP.String(); got != tc.want {
				t.Errorf("listening on %s, want %s", l.Addr(), tc.want)
			}
		})
	}
	t.Run("localhost", func(t *testing.T) { // the system resolver
		l, err := listenStatus("localhost:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if ip := l.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
			t.Errorf("localhost:0 listens on %s", l.Addr())
		}
	})
}

// listenAndClose listens on the socket path, checks what it made and
// closes it.
func listenAndClose(t *testing.T, path string) error {
	t.Helper()
	l, err := listenStatus(path)
	if err != nil {
		return err
	}
	defer func() {
		l.Close()
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind after Close (%v)", path, err)
		}
	}()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	// 0660 whatever the umask (the test's is 022).
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("%s: mode %v, want a socket with mode 0660", path, fi.Mode())
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != os.Geteuid() {
		t.Errorf("%s: owned by uid %d", path, st.Uid)
	}
	if got := l.Addr().String(); got != path {
		t.Errorf("Addr = %s, want %s", got, path)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".leash-") {
			t.Errorf("private directory %s left behind", e.Name())
		}
	}
	if _, err := net.Dial("unix", path); err != nil {
		t.Errorf("dial %s: %v", path, err)
	}
	return nil
}

// The status socket's directory and its ancestors must not be writable by
// other users unless sticky, nor owned by another user: they could replace
// the socket. What is there already is replaced only if it is a dead
// socket.
func TestStatusSocketDirMustBeSafe(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give a directory to another user")
	}
	root := t.TempDir()
	mkdir := func(name string, mode os.FileMode, uid int) string {
		d := filepath.Join(root, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, -1); err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tc := range []struct {
		name, dir, wantErr string // "" for accepted
	}{
		{"private", mkdir("private", 0o700, 0), ""},
		{"0755", mkdir("shared", 0o755, 0), ""},
		{"sticky world-writable", mkdir("tmp", os.ModeSticky|0o777, 0), ""},
		{"world-writable", mkdir("open", 0o777, 0), "(mode 0777) can be written by other users"},
		{"group-writable", mkdir("group", 0o770, 0), "(mode 0770) can be written by other users"},
		{"another user's", mkdir("nobody", 0o755, 65534), "is owned by uid 65534, not by root or leash's user"},
		{"under a world-writable one", mkdir("open/sub", 0o700, 0), filepath.Join(root, "open") + " (mode 0777)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := listenAndClose(t, filepath.Join(tc.dir, "s.sock"))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && err == nil:
				t.Fatal("accepted")
			case tc.wantErr != "" && (!strings.Contains(err.Error(), "--status-addr "+filepath.Join(tc.dir, "s.sock")+": ") || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %q does not name the flag and say %q", err, tc.wantErr)
			}
		})
	}

	dir := mkdir("existing", 0o700, 0)
	victim := filepath.Join(root, "victim")
	if err := os.WriteFile(victim, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	if err := os.Symlink(victim, sock); err != nil {
		t.Fatal(err)
	}
	if err := listenAndClose(t, sock); err == nil || !strings.Contains(err.Error(), "exists and is not a socket") {
		t.Errorf("a symlink at the path: %v, want refused", err)
	}
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o600 {
		t.Errorf("the symlink's target became %v", fi.Mode())
	}
	os.Remove(sock)
	live, err := listenStatus(sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := listenStatus(sock); err == nil || !strings.Contains(err.Error(), "another process is serving there") {
		t.Errorf("a live socket at the path: %v, want refused", err)
	}
	// A socket whose server died (a killed leash) is replaced.
	live.(*unixListener).UnixListener.Close()
	if err := listenAndClose(t, sock); err != nil {
		t.Errorf("a dead socket at the path: %v, want it replaced", err)
	}
}

// A second user who can write the socket's directory races leash's bind:
// in a directory it could swap the socket in, leash refuses to listen; in
// a sticky one it listens, and nothing the attacker places there makes a
// root leash change another file's mode.
func TestStatusSocketRace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the attacker as nobody")
	}
	// The attacker is the test binary, as nobody: a copy it can run.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	binDir, err := os.MkdirTemp("", "leash-attacker-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	attacker := filepath.Join(binDir, "attacker")
	if err := os.WriteFile(attacker, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mode   os.FileMode
		refuse bool
	}{
		{"writable", 0o777, true},
		{"sticky", os.ModeSticky | 0o777, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			victim := filepath.Join(t.TempDir(), "victim")
			if err := os.WriteFile(victim, []byte("root's"), 0o600); err != nil {
				t.Fatal(err)
			}
			dir, err := os.MkdirTemp("", "leash-race-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			sock := filepath.Join(dir, "s.sock")
			cmd := exec.Command(attacker, sock, victim)
			cmd.Env = []string{testchild.EnvMode + "=swap-socket"}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			_, lines, stderr := startPiped(t, cmd)
			defer func() {
				cmd.Process.Kill()
				cmd.Wait()
				if s := stderr.String(); s != "" {
					t.Logf("attacker: %s", s)
				}
			}()
			lines.expect("ready")
			var listened, refused int
			for range 2000 {
				l, err := listenStatus(sock)
				if err != nil {
					refused++
					// Refused for the directory, or for the attacker's
					// symlink at the name.
					want := "exists and is not a socket"
					if tc.refuse {
						want = "can be written by other users"
					}
					if !strings.Contains(err.Error(), want) {
						t.Fatalf("refused for another reason: %v", err)
					}
					continue
				}
				listened++
				l.Close()
			}
			if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o600 {
				t.Errorf("the attacker's target became %v", fi.Mode().Perm())
			}
			if tc.refuse && listened > 0 {
				t.Errorf("listened %d times in a directory others can write", listened)
			}
			if !tc.refuse && listened == 0 {
				t.Errorf("never listened in the sticky directory (refused %d times)", refused)
			}
			t.Logf("listened %d, refused %d", listened, refused)
		})
	}
}

func TestAuditFileRefusesLooseModeAndSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose")
	if err := os.WriteFile(loose, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := openAudit(loose); err == nil || !strings.Contains(err.Error(), loose) {
		t.Errorf("openAudit(0644 file) = %v, want an error naming it", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "target"), link); err != nil {
		t.Fatal(err)
	}
	if _, err := openAudit(link); err == nil {
		t.Error("openAudit followed a symlink")
	}
}

// --audit-file naming a FIFO, with nobody reading it, or a device is a
// config error at once: a blocking open(2) of the FIFO would wait for a
// reader forever, and SIGTERM would not end it.
func TestAuditFileRefusesFIFOAndDevice(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "audit.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, kind string }{
		{"fifo", fifo, "a named pipe"},
		{"device", "/dev/null", "a character device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := leashCmd(t, "--audit-file", tc.path, "--", "true")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("leash --audit-file %s did not exit; stderr:\n%s", tc.path, stderr.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitConfig {
				t.Fatalf("leash = %v, want exit %d; stderr:\n%s", err, exitConfig, stderr.String())
			}
			if want := "--audit-file " + tc.path + ": not a regular file (" + tc.kind + ")"; !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
			}
		})
	}
}
