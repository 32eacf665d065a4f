package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testchild"
	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
	"github.com/rogpeppe/go-internal/testscript"
)

// leashBin is the leash binary under test, built once by TestMain.
var leashBin string

// TestMain turns the test binary into a helper child when
// internal/testchild's environment asks for it, or into a testscript
// command (see scriptCommands); otherwise it builds leash as `make build`
// does (with -race when the tests have it) and runs the tests.
func TestMain(m *testing.M) {
	testchild.Main()
	testscript.Main(buildFirst{m}, scriptCommands)
}

// buildFirst runs the tests once leash is built.
type buildFirst struct{ m *testing.M }

func (b buildFirst) Run() int {
	testchild.RequireSIGHUP() // the helper modes have returned by now
	dir, err := os.MkdirTemp("", "leash-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	leashBin = filepath.Join(dir, "leash")
	args := []string{"build", "-tags", "nethttpomithttp2", "-o", leashBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/leash-dev/leash")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build leash:", err)
		return 1
	}
	// leash and the helpers are -race binaries too: spare every exit the
	// race runtime's one-second sleep.
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	return b.m.Run()
}

// leash's documented exit codes (README, "Exit codes"): the contract these
// tests pin, so they are spelled out here, not imported.
const (
	exitAuditBroken  = 1  // leash audit verify: the trail does not verify
	exitRotateFailed = 1  // leash rotate: refused or failed
	exitUsage        = 64 // a bad flag or argument
	exitUnavailable  = 69 // Vault unreachable or secrets not obtained in time
	exitTempFail     = 75 // a credential expired at runtime with no replacement
	exitNoPerm       = 77 // Vault denied permission
	exitConfig       = 78 // a config, template or output problem
)

// Audit events the tests wait on: lease.EventKind values and leash's own
// child and control events, the audit trail's stable vocabulary.
const (
	evLogin      = "login"
	evIssued     = "issued"
	evRenewed    = "renewed"
	evRotated    = "rotated"
	evChanged    = "changed"
	evRetired    = "retired"
	evRevoked    = "revoked"
	evFailed     = "failed" // Record.Op names the operation
	evKept       = "kept"   // past the hand-over point Vault did not answer: renewing again
	evLost       = "lost"
	evChildStart = "child_start"
	evRotateNow  = "rotate_now"
	// The control socket turned a request down.
	evControlRefused = "control_refused"
	// A killed leash's --dir directory was removed at start-up.
	evStaleDirRemoved = "stale_dir_removed"
)

// Command prepares leash with args; the caller adds to its Env.
func Command(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(leashBin, args...)
	cmd.Env = os.Environ()
	return cmd
}

// Output runs cmd and returns its stdout and stderr; a non-zero exit fails
// the test, showing stderr.
func Output(t testing.TB, cmd *exec.Cmd) ([]byte, string) {
	t.Helper()
	var stderr Log
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("leash: %v; stderr:\n%s", err, stderr.String())
	}
	return out, stderr.String()
}

// ExitStatus runs cmd and returns its exit code and stderr.
func ExitStatus(t testing.TB, cmd *exec.Cmd) (int, string) {
	t.Helper()
	var stderr Log
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	}
	t.Fatalf("run %v: %v", cmd.Args, err)
	return -1, ""
}

// vaultEnv is the environment naming a Vault and its token.
func vaultEnv(addr, token string) []string {
	return []string{"VAULT_ADDR=" + addr, "VAULT_TOKEN=" + token}
}

// Record is an audit record as leash logs it (the fields the tests use).
type Record struct {
	Event   string   `json:"event"`
	Name    string   `json:"name"`
	Outputs []string `json:"outputs"`
	Path    string   `json:"path"`
	Lease   string   `json:"lease"`
	Op      string   `json:"op"`
	Outcome string   `json:"outcome"`
	Error   string   `json:"error"`
}

// Log collects a process's stderr: safe for the os/exec goroutine that
// writes it and the test that reads it at the same time. It parses the
// audit records leash logs (at info level, with --audit-file) and wakes
// waiters on every write.
type Log struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	line    []byte // the unterminated tail
	records []Record
	changed chan struct{} // closed and replaced on every write
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() < 64<<20 { // a runaway process cannot exhaust memory
		l.buf.Write(p)
	}
	l.line = append(l.line, p...)
	for {
		i := bytes.IndexByte(l.line, '\n')
		if i < 0 {
			break
		}
		if r, ok := parseRecord(l.line[:i]); ok {
			l.records = append(l.records, r)
		}
		l.line = l.line[i+1:]
	}
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	return len(p), nil
}

// String returns everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Count returns how often substr occurs so far.
func (l *Log) Count(substr string) int { return strings.Count(l.String(), substr) }

// Events returns the audit records of kind so far ("" for all).
func (l *Log) Events(kind string) []Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Record
	for _, r := range l.records {
		if kind == "" || r.Event == kind {
			out = append(out, r)
		}
	}
	return out
}

// wait returns a channel closed at the next write.
func (l *Log) wait() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.changed
}

// parseRecord extracts the audit record from one line of leash's log, in
// text (record="<quoted JSON>") or JSON (a "record" string field) format.
func parseRecord(line []byte) (Record, bool) {
	var raw string
	if bytes.HasPrefix(line, []byte("{")) {
		var m struct {
			Message string `json:"@message"`
			Record  string `json:"record"`
		}
		if json.Unmarshal(line, &m) != nil || m.Message != "record" {
			return Record{}, false
		}
		raw = m.Record
	} else {
		_, rest, ok := bytes.Cut(line, []byte(" leash.audit: record: record="))
		if !ok {
			return Record{}, false
		}
		q, err := strconv.QuotedPrefix(string(rest))
		if err != nil {
			return Record{}, false
		}
		raw, _ = strconv.Unquote(q)
	}
	var r Record
	return r, json.Unmarshal([]byte(raw), &r) == nil && r.Event != ""
}

// Lines reads a child's output line by line in the background.
type Lines struct {
	t     testing.TB
	lines chan string
}

// NewLines reads r until EOF.
func NewLines(t testing.TB, r io.Reader) *Lines {
	l := &Lines{t: t, lines: make(chan string, 1024)}
	go func() {
		defer close(l.lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			l.lines <- sc.Text()
		}
	}()
	return l
}

// Next returns the next line; ok is false at EOF. The test fails after
// limit without a line.
func (l *Lines) Next(limit time.Duration) (line string, ok bool) {
	l.t.Helper()
	select {
	case line, ok = <-l.lines:
		return line, ok
	case <-time.After(limit):
		l.t.Fatalf("no line from the child within %s", limit)
		return "", false
	}
}

// Expect fails the test unless the next line is want.
func (l *Lines) Expect(want string) {
	l.t.Helper()
	got, ok := l.Next(60 * time.Second)
	if !ok {
		l.t.Fatalf("child output ended, want %q", want)
	}
	if got != want {
		l.t.Fatalf("child said %q, want %q", got, want)
	}
}

// Rest returns every remaining line once the output ends.
func (l *Lines) Rest() []string {
	l.t.Helper()
	var out []string
	for {
		line, ok := l.Next(60 * time.Second)
		if !ok {
			return out
		}
		out = append(out, line)
	}
}

// Leash is a leash process under test: its child's stdout read line by line
// (Out), its stderr collected (Log), one goroutine waiting for its exit.
type Leash struct {
	t     testing.TB
	Cmd   *exec.Cmd
	Out   *Lines
	Log   *Log
	Audit string // the --audit-file
	done  chan struct{}
	err   error
}

// Start starts leash with args, env added to the test's environment. Unless
// args give one, it adds an --audit-file in a temporary directory, so the
// test can wait on audit events. The process is killed at the end of the
// test if still running, and its stderr shown if the test failed.
func Start(t testing.TB, env []string, args ...string) *Leash {
	t.Helper()
	audit := flagValue(args, "--audit-file")
	if audit == "" {
		audit = filepath.Join(t.TempDir(), "audit.jsonl")
		i := 0
		if len(args) > 0 && args[0] == "run" {
			i = 1
		}
		args = append(append(append([]string{}, args[:i]...), "--audit-file", audit), args[i:]...)
	}
	cmd := Command(t, args...)
	cmd.Env = append(cmd.Env, env...)
	p := StartCmd(t, cmd)
	p.Audit = audit
	return p
}

// flagValue returns the value of flag in args before "--".
func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

// StartCmd starts a prepared command (leash, or something that runs it)
// with its stdout read by Out and its stderr collected in Log.
func StartCmd(t testing.TB, cmd *exec.Cmd) *Leash {
	t.Helper()
	p := &Leash{t: t, Cmd: cmd, Log: &Log{}, done: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = p.Log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.Out = NewLines(t, stdout)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", filepath.Base(cmd.Path), p.Log.String())
		}
	})
	return p
}

// Pid is leash's process id.
func (p *Leash) Pid() int { return p.Cmd.Process.Pid }

// Signal sends sig to leash.
func (p *Leash) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// Next returns the child's next line; the end of its output fails the test.
func (p *Leash) Next(limit time.Duration) string {
	p.t.Helper()
	l, ok := p.Out.Next(limit)
	if !ok {
		p.t.Fatalf("child output ended (leash: %v)", p.exitErr(10*time.Second))
	}
	return l
}

// Rest returns the child's remaining lines once its output ends.
func (p *Leash) Rest() []string {
	p.t.Helper()
	return p.Out.Rest()
}

// Ready waits for a watch child's "ready PID B64" and returns the pid and
// the file's contents.
func (p *Leash) Ready() (int, []byte) {
	p.t.Helper()
	l := p.Next(90 * time.Second)
	pid, b, ok := parseReady(l)
	if !ok {
		p.t.Fatalf("child said %q, want ready", l)
	}
	return pid, b
}

func (p *Leash) exitErr(limit time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(limit):
		return errors.New("still running")
	}
}

// Exit waits for leash to exit and returns its code.
func (p *Leash) Exit(limit time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		p.t.Fatalf("leash still running after %s", limit)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	}
	p.t.Fatalf("leash: %v", p.err)
	return -1
}

// Done is closed once leash has exited.
func (p *Leash) Done() <-chan struct{} { return p.done }

// Err is cmd.Wait's result, valid once Done is closed.
func (p *Leash) Err() error { return p.err }

// waitUntil waits until cond holds, re-checking at every write to leash's
// stderr, and fails the test with what after limit or if leash exits first.
func (p *Leash) waitUntil(what string, limit time.Duration, cond func() bool) {
	p.t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		changed := p.Log.wait()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-p.done:
			if cond() {
				return
			}
			p.t.Fatalf("leash exited (%v) before %s", p.err, what)
		case <-deadline.C:
			p.t.Fatalf("no %s within %s", what, limit)
		}
	}
}

// WaitEvent waits until leash has logged at least n audit records of kind
// matching match (nil: any) and returns them.
func (p *Leash) WaitEvent(kind string, n int, limit time.Duration, match func(Record) bool) []Record {
	p.t.Helper()
	var got []Record
	p.waitUntil(fmt.Sprintf("%d %q audit events", n, kind), limit, func() bool {
		got = got[:0]
		for _, r := range p.Log.Events(kind) {
			if match == nil || match(r) {
				got = append(got, r)
			}
		}
		return len(got) >= n
	})
	return got
}

// AuditRecords returns the records of kind ("" for all) in the audit file
// at path, of a leash that has exited.
func AuditRecords(t testing.TB, path, kind string) []Record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []Record
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("audit file %s: %v in %q", path, err, line)
		}
		if kind == "" || r.Event == kind {
			out = append(out, r)
		}
	}
	return out
}

// withOp keeps the records of operation op.
func withOp(rs []Record, op string) []Record {
	var out []Record
	for _, r := range rs {
		if r.Op == op {
			out = append(out, r)
		}
	}
	return out
}

// parseReady parses a watch child's "ready PID B64".
func parseReady(l string) (int, []byte, bool) {
	f := strings.Fields(l)
	if len(f) != 3 || f[0] != "ready" {
		return 0, nil, false
	}
	pid, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, nil, false
	}
	b, err := base64.StdEncoding.DecodeString(f[2])
	return pid, b, err == nil
}

// watchArgs is the argv of a watch helper child reading the file named by
// $v.
func watchArgs(t testing.TB, v string) []string { return testchild.Argv(t, "watch", v) }

// ctxTimeout is a context cancelled after d or at the end of the test.
func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// subtests runs subtests at the same time without taking -parallel slots
// (t.Run may be called from several goroutines): these spend their time
// waiting for lease schedules, not on CPU, and -parallel defaults to
// GOMAXPROCS, 2 on the CI machines.
type subtests struct {
	t  *testing.T
	wg sync.WaitGroup
}

func (s *subtests) run(name string, f func(t *testing.T)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.t.Run(name, f)
	}()
}

func (s *subtests) wait() { s.wg.Wait() }

// dbCreds mounts the database engine on the shared PostgreSQL server (a
// fresh database) and returns the creds path.
func dbCreds(t *testing.T, srv *testvault.Server, ttl, maxTTL time.Duration) string {
	db := testpg.Database(t)
	return srv.Database(t, db.VaultURL(), db.User, db.Password, ttl, maxTTL)
}

// leaseIDs lists the leases Vault holds under path.
func leaseIDs(t *testing.T, srv *testvault.Server, path string) []string {
	return srv.LeaseIDs(t, path+"/")
}
