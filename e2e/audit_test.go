package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
)

// The audit trail through the binary: real runs' trails verify with
// `leash audit verify`, tampering is reported at its line, and --audit-file
// refuses what it must not write to.

// auditRuns runs leash n times against the real Vault, each run appending
// to file, and returns leash's stderr of every run.
func auditRuns(t *testing.T, srv *testvault.Server, file string, n int, extra ...string) []string {
	t.Helper()
	create := srv.TokenRole(t, time.Minute)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "audit-pw-Zr4"}})
	var logs []string
	for range n {
		args := append([]string{"--audit-file", file, "-s", "tok=" + create + "?ttl=30s", "-s", "pw=" + kv + "/app#password"}, extra...)
		cmd := Command(t, append(args, "--", "true")...)
		cmd.Env = append(cmd.Env, vaultEnv(srv.Addr, srv.RootToken)...)
		_, stderr := Output(t, cmd)
		logs = append(logs, stderr)
	}
	return logs
}

// verifyFile runs `leash audit verify` on a file holding lines.
func verifyFile(t *testing.T, lines [][]byte, args ...string) (int, string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, append(bytes.Join(lines, []byte("\n")), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := Command(t, append([]string{"audit", "verify", path}, args...)...)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	code, stderr := ExitStatus(t, cmd)
	return code, stdout.String(), stderr
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

// lineOf returns the 1-based line of the first record with event ev at or
// after line from.
func lineOf(t *testing.T, lines [][]byte, from int, ev string) int {
	t.Helper()
	for i := from - 1; i < len(lines); i++ {
		var rec Record
		if err := json.Unmarshal(lines[i], &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Event == ev {
			return i + 1
		}
	}
	t.Fatalf("no %s record from line %d", ev, from)
	return 0
}

func edit(lines [][]byte, f func([][]byte) [][]byte) [][]byte {
	c := make([][]byte, len(lines))
	for i, l := range lines {
		c[i] = bytes.Clone(l)
	}
	return f(c)
}

// TestAuditVerify checks real runs' trails: two runs of leash appending to
// one file verify run by run, every record is also on stderr, and each kind
// of tampering is reported at its line.
func TestAuditVerify(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	dir := t.TempDir()
	file, other := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "other.jsonl")
	logs := auditRuns(t, srv, file, 2)
	auditRuns(t, srv, other, 1)
	lines, otherLines := readLines(t, file), readLines(t, other)

	// Every record is logged on stderr as written.
	stderr := strings.Join(logs, "")
	for i, l := range lines {
		if !strings.Contains(stderr, strconv.Quote(string(l))) {
			t.Errorf("line %d is not on leash's stderr: %s", i+1, l)
		}
	}
	code, out, errOut := verifyFile(t, lines)
	if code != 0 {
		t.Fatalf("verify of an untouched trail exited %d: %s%s", code, out, errOut)
	}
	sum := sha256.Sum256(lines[len(lines)-1])
	if !strings.Contains(out, "ok: runs 2") || !strings.Contains(out, "hash "+hex.EncodeToString(sum[:])) {
		t.Errorf("verify output lacks the run count or the last hash:\n%s", out)
	}
	// An anchor taken now catches a tail cut off later.
	lastHash := hex.EncodeToString(sum[:])
	if code, out, errOut := verifyFile(t, lines, "--anchor", lastHash); code != 0 {
		t.Errorf("verify --anchor with the last hash exited %d: %s%s", code, out, errOut)
	}
	if code, out, errOut := verifyFile(t, lines[:len(lines)-1], "--anchor", lastHash); code != exitAuditBroken || !strings.Contains(errOut, "removed from the tail") {
		t.Errorf("verify --anchor of a trail without its last record exited %d, want %d:\n%s%s", code, exitAuditBroken, out, errOut)
	}
	second := lineOf(t, lines, 2, "audit_start")
	// A record from the middle of the first run, safe to change.
	mid := lineOf(t, lines, 1, "child_start")
	if mid+1 >= second {
		t.Fatalf("first run too short: child_start at %d, next run at %d", mid, second)
	}

	for _, tc := range []struct {
		name   string
		lines  [][]byte
		line   int
		reason string
	}{
		{"changed byte", edit(lines, func(l [][]byte) [][]byte {
			l[mid-1] = bytes.Replace(l[mid-1], []byte(`"outcome":"ok"`), []byte(`"outcome":"ko"`), 1)
			return l
		}), mid + 1, "prev does not match"},
		{"changed seed", edit(lines, func(l [][]byte) [][]byte {
			l[second-1] = bytes.Replace(l[second-1], []byte(`"pid":`), []byte(`"pid":1`), 1)
			return l
		}), second + 1, "prev does not match"},
		{"deleted line", edit(lines, func(l [][]byte) [][]byte {
			return append(l[:mid-1], l[mid:]...)
		}), mid, "missing"},
		{"swapped lines", edit(lines, func(l [][]byte) [][]byte {
			l[mid-1], l[mid] = l[mid], l[mid-1]
			return l
		}), mid, "out of order"},
		{"spliced from another run", edit(lines, func(l [][]byte) [][]byte {
			return append(l[:mid], append([][]byte{otherLines[2]}, l[mid:]...)...)
		}), mid + 1, "spliced in"},
		{"moved across runs", edit(lines, func(l [][]byte) [][]byte {
			moved := l[second+1]
			l = append(l[:second+1], l[second+2:]...)
			return append(l[:mid], append([][]byte{moved}, l[mid:]...)...)
		}), mid + 1, "spliced in"},
		{"head cut off", lines[1:], 1, "before any audit_start"},
		{"run started twice", append(edit(lines, func(l [][]byte) [][]byte { return l }), lines[0]), len(lines) + 1, "starts again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := verifyFile(t, tc.lines)
			want := "line " + strconv.Itoa(tc.line) + ": "
			if code != exitAuditBroken || !strings.Contains(errOut, want) || !strings.Contains(errOut, tc.reason) {
				t.Errorf("verify exited %d, want %d naming %q and %q:\n%s%s", code, exitAuditBroken, want, tc.reason, out, errOut)
			}
		})
	}
}

// TestAuditVerifyKeyed: with --audit-key-file the links are HMACs; verify
// fails without the key, with another key, and refuses an unkeyed trail
// when given a key. A key file others can read is refused by both.
func TestAuditVerifyKeyed(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	dir := t.TempDir()
	key, wrong, loose := filepath.Join(dir, "key"), filepath.Join(dir, "wrong"), filepath.Join(dir, "loose")
	for path, mode := range map[string]os.FileMode{key: 0o600, wrong: 0o600, loose: 0o640} {
		if err := os.WriteFile(path, []byte(testvault.Unique(t, "k")+strings.Repeat("x", 32)+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	file, plain := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "plain.jsonl")
	auditRuns(t, srv, file, 1, "--audit-key-file", key)
	auditRuns(t, srv, plain, 1)
	lines := readLines(t, file)

	if code, out, errOut := verifyFile(t, lines, "--audit-key-file", key); code != 0 {
		t.Fatalf("verify with the key exited %d: %s%s", code, out, errOut)
	}
	sum := sha256.Sum256(lines[len(lines)-1])
	if code, out, _ := verifyFile(t, lines, "--audit-key-file", key); code != 0 || strings.Contains(out, hex.EncodeToString(sum[:])) {
		t.Errorf("a keyed trail's last hash is its plain SHA-256:\n%s", out)
	}
	for _, tc := range []struct {
		name   string
		lines  [][]byte
		args   []string
		code   int
		reason string
	}{
		{"without the key", lines, nil, exitAuditBroken, "pass its --audit-key-file"},
		{"wrong key", lines, []string{"--audit-key-file", wrong}, exitAuditBroken, "a different --audit-key-file"},
		{"unkeyed trail with a key", readLines(t, plain), []string{"--audit-key-file", key}, exitAuditBroken, "is not keyed"},
		{"loose key file", lines, []string{"--audit-key-file", loose}, exitConfig, "chmod 600"},
		{"changed byte", edit(lines, func(l [][]byte) [][]byte {
			l[2] = bytes.Replace(l[2], []byte(`"outcome":"ok"`), []byte(`"outcome":"ko"`), 1)
			return l
		}), []string{"--audit-key-file", key}, exitAuditBroken, "line 4: prev does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := verifyFile(t, tc.lines, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.reason) {
				t.Errorf("verify exited %d, want %d with %q:\n%s%s", code, tc.code, tc.reason, out, errOut)
			}
		})
	}

	// leash itself refuses the loose key before contacting Vault.
	cmd := Command(t, "--audit-file", filepath.Join(dir, "x.jsonl"), "--audit-key-file", loose, "-s", "x=secret/x", "--", "true")
	if code, errOut := ExitStatus(t, cmd); code != exitConfig || !strings.Contains(errOut, loose) {
		t.Errorf("leash with a 0640 key file exited %d, want %d naming it:\n%s", code, exitConfig, errOut)
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
			cmd := Command(t, "--audit-file", tc.path, "--", "true")
			// A blocking open would hang here: Exit's deadline catches it.
			lp := StartCmd(t, cmd)
			if code := lp.Exit(60 * time.Second); code != exitConfig {
				t.Fatalf("leash exited %d, want %d", code, exitConfig)
			}
			if want := "--audit-file " + tc.path + ": not a regular file (" + tc.kind + ")"; !strings.Contains(lp.Log.String(), want) {
				t.Errorf("stderr does not say %q:\n%s", want, lp.Log.String())
			}
		})
	}
}

// TestAuditSyslog: with --audit-syslog-addr a run's audit records reach
// the system log as RFC 5424 messages whose MSG is each record's exact line
// in --audit-file, so the system log's copy verifies on its own; no secret
// byte is in it. The system log is a Unix datagram socket of the test's:
// journald and rsyslog do not run in this sandbox.
func TestAuditSyslog(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	dir := t.TempDir()
	logSock := filepath.Join(dir, "log")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: logSock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var msgs [][]byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := l.Read(buf)
			if err != nil {
				return
			}
			msgs = append(msgs, bytes.Clone(buf[:n]))
		}
	}()
	file := filepath.Join(dir, "audit.jsonl")
	logs := auditRuns(t, srv, file, 1, "--audit-syslog-addr", logSock)
	l.Close() // leash has exited: every message it sent is queued here
	<-done
	lines := readLines(t, file)
	if len(msgs) != len(lines) {
		t.Fatalf("%d messages in the system log, %d records in the file; log:\n%s", len(msgs), len(lines), logs[0])
	}
	msgRE := regexp.MustCompile(`^<(84|86)>1 \S+ \S+ leash \d+ audit - (.*)$`)
	var copied [][]byte
	for i, m := range msgs {
		if bytes.Contains(m, []byte("audit-pw-Zr4")) {
			t.Errorf("message %d holds the secret", i)
		}
		sub := msgRE.FindSubmatch(m)
		if sub == nil || !bytes.Equal(sub[2], lines[i]) {
			t.Fatalf("message %d:\n%s\nwant RFC 5424 carrying\n%s", i, m, lines[i])
		}
		copied = append(copied, sub[2])
	}
	if code, out, stderr := verifyFile(t, copied); code != 0 {
		t.Errorf("the system log's copy does not verify: exit %d\n%s%s", code, out, stderr)
	}
}
