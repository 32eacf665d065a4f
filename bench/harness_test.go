//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"

	"github.com/leash-dev/leash/internal/devkit"
)

// env is one benchmark run: the binaries, Vault, PostgreSQL and the report.
type env struct {
	t     *testing.T
	short bool
	root  string // repository root
	work  string // scratch directory for configs, FIFOs and rendered files
	cache string // .cache/bench: built binaries

	leash, child, ct, vault, tini string
	buildErr                      map[string]string // wrapper -> why it is missing

	v       *testvault.Server
	db      *testpg.DB
	dbMount string // database engine mount; roles are added per scenario

	md  *report
	seq int
	got map[string]float64 // headline numbers for the targets section
}

// metric records a headline number under key (see benchTargets).
func (e *env) metric(key string, v float64) {
	if e.got == nil {
		e.got = map[string]float64{}
	}
	e.got[key] = v
}

// wrapper is one way of running the child: leash, a peer or a baseline.
type wrapper struct {
	name   string
	signal bool // can hand over credentials with a reload signal
	// argv returns the command line and extra environment for sc, writing
	// any config files it needs into sc.dir.
	argv func(e *env, sc *scenario) ([]string, []string, error)
}

// scenario describes one run of a wrapper.
type scenario struct {
	addr     string   // Vault address the wrapper talks to (direct or the proxy)
	token    string   // a fresh token for this run only
	creds    []string // Vault paths of the database credentials
	exit     bool     // the child exits right after start
	timed    bool     // run under /usr/bin/time to measure peak RSS (see proc.peakRSS)
	onRotate string   // "restart" or "signal"
	dir      string
	fifo     string
}

// event is one line the child reported on the FIFO.
type event struct {
	at   time.Time
	kind string // start, reload, usr1, term
	pid  int
	n    int    // credentials readable (start, reload) or SIGUSR1 count (term)
	user string // first credential's username
	rot  string // first credential's last_vault_rotation (static roles), else "-"
	line string
}

// proc is a running wrapper.
type proc struct {
	name    string
	cmd     *exec.Cmd
	started time.Time
	events  chan event
	fifo    *os.File
	stderr  *devkit.LockedBuffer
	done    chan struct{} // closed when Wait returned
	exitAt  time.Time
	waitErr error
	rssFile string // /usr/bin/time output when scenario.timed
}

func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no repository root above the working directory")
		}
		dir = parent
	}
}

// setup builds every binary it can; a wrapper that fails to build is
// recorded, not fatal.
func setup(t *testing.T) *env {
	e := &env{t: t, short: os.Getenv("BENCH_SHORT") != "" && os.Getenv("BENCH_SHORT") != "0",
		root: repoRoot(t), work: t.TempDir(), buildErr: map[string]string{}, md: &report{}}
	e.cache = filepath.Join(e.root, ".cache", "bench")
	if err := os.MkdirAll(e.cache, 0o755); err != nil {
		t.Fatal(err)
	}
	// The stand-in application.
	e.child = filepath.Join(e.cache, "child")
	if out, err := e.goBuild(e.root, e.child, "./bench/child"); err != nil {
		t.Fatalf("build child: %v\n%s", err, out)
	}
	// leash as `make build` builds it: static, stripped.
	e.leash = filepath.Join(e.cache, "leash")
	if out, err := e.goBuild(e.root, e.leash, "-trimpath", "-tags", "nethttpomithttp2", "-ldflags", "-s -w", "."); err != nil {
		e.buildErr["leash"] = buildError(out)
		e.leash = ""
	}
	// consul-template from the pinned tools module.
	e.ct = filepath.Join(e.root, ".cache", "bin", "consul-template")
	if out, err := e.goBuild(filepath.Join(e.root, "tools", "consul-template"), e.ct, "github.com/hashicorp/consul-template"); err != nil {
		e.buildErr["consul-template"] = buildError(out)
		e.ct = ""
	}
	e.vault = testvault.Require(t)
	e.tini = "/usr/bin/tini"
	if _, err := os.Stat(e.tini); err != nil {
		e.buildErr["tini"] = "no /usr/bin/tini (apt-get install -y tini)"
		e.tini = ""
	}
	e.v = testvault.Shared(t)
	e.db = testpg.Database(t)
	path := e.v.Database(t, e.db.VaultURL(), e.db.User, e.db.Password, time.Hour, time.Hour)
	e.dbMount = strings.TrimSuffix(path, "/creds/app")
	return e
}

func (e *env) goBuild(dir, out string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", append([]string{"build", "-o", out}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd.CombinedOutput()
}

// buildError keeps the first compiler error of go build's output.
func buildError(out []byte) string {
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			return strings.TrimSpace(line)
		}
	}
	return strings.TrimSpace(string(out))
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "; ")
}

// roles creates n database roles with the given TTLs on the shared mount and
// returns their creds paths.
func (e *env) roles(prefix string, n int, ttl, maxTTL time.Duration) []string {
	e.t.Helper()
	var paths []string
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i)
		e.v.Write(e.t, e.dbMount+"/roles/"+name, map[string]any{
			"db_name": "pg",
			"creation_statements": []string{
				`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
			},
			"default_ttl": int(ttl.Seconds()),
			"max_ttl":     int(maxTTL.Seconds()),
		})
		paths = append(paths, e.dbMount+"/creds/"+name)
	}
	return paths
}

// token returns a fresh renewable token with the root policy for one run, so
// a wrapper that revokes its token on exit cannot take Vault's root with it;
// revoking it afterwards revokes every lease the run left behind.
func (e *env) token() string {
	e.t.Helper()
	sec, err := e.v.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"root"}, TTL: "2h"})
	if err != nil {
		e.t.Fatalf("create run token: %v", err)
	}
	return sec.Auth.ClientToken
}

func (e *env) revoke(token string) {
	e.v.Client.Auth().Token().RevokeTree(token) // may already be revoked by the wrapper
}

// cleanup revokes what a run left behind before the next run starts.
// Revoking a token revokes its leases in the background, and those DROP
// ROLEs would slow the next run's credential creation, so the run's leases
// are revoked synchronously first (revoke-prefix per role, sync by default).
func (e *env) cleanup(sc *scenario) {
	for _, c := range sc.creds {
		e.v.Client.Logical().Write("sys/leases/revoke-prefix/"+c, nil)
	}
	e.revoke(sc.token)
}

// newScenario returns a scenario with a fresh dir, FIFO and token.
func (e *env) newScenario(addr string, creds []string) *scenario {
	e.seq++
	dir := filepath.Join(e.work, fmt.Sprintf("run%d", e.seq))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	fifo := filepath.Join(dir, "events")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return &scenario{addr: addr, token: e.token(), creds: creds, dir: dir, fifo: fifo, onRotate: "restart"}
}

// start launches w for sc. The returned proc's events carry the child's
// reports; stop it with stop or wait for it to exit.
func (e *env) start(w wrapper, sc *scenario) (*proc, error) {
	argv, extraEnv, err := w.argv(e, sc)
	if err != nil {
		return nil, err
	}
	// O_RDWR: opening does not wait for a writer, and the FIFO never reports
	// EOF between children (restarts).
	fifo, err := os.OpenFile(sc.fifo, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	p := &proc{name: w.name, events: make(chan event, 1<<16), fifo: fifo, stderr: &devkit.LockedBuffer{Limit: 4 << 20}, done: make(chan struct{})}
	go func() {
		r := bufio.NewReader(fifo)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			ev := event{at: time.Now(), line: strings.TrimSpace(line)}
			f := strings.Fields(ev.line)
			if len(f) > 0 {
				ev.kind = f[0]
			}
			if len(f) > 1 {
				ev.pid, _ = strconv.Atoi(f[1])
			}
			if len(f) > 2 {
				ev.n, _ = strconv.Atoi(f[2])
			}
			if len(f) > 3 {
				ev.user = f[3]
			}
			if len(f) > 4 {
				ev.rot = f[4]
			}
			p.events <- ev
		}
	}()
	if sc.timed {
		// A child forked by this (large) Go process inherits its memory
		// high-water mark into ru_maxrss at exec (vfork shares the mm), so
		// wait4 here would report at least the harness's own RSS. GNU time
		// forks from a small process.
		p.rssFile = filepath.Join(sc.dir, "maxrss")
		argv = append([]string{"/usr/bin/time", "-f", "%M", "-o", p.rssFile}, argv...)
	}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = sc.dir
	p.cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + sc.dir}, extraEnv...)
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		fifo.Close()
		return nil, err
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		p.exitAt = time.Now()
		close(p.done)
	}()
	e.t.Cleanup(func() { p.kill() })
	return p, nil
}

// next returns the next event of one of kinds within timeout, dropping others.
func (p *proc) next(timeout time.Duration, kinds ...string) (event, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case ev := <-p.events:
			for _, k := range kinds {
				if ev.kind == k {
					return ev, nil
				}
			}
		case <-p.done:
			// The wrapper is gone, but what its child wrote may still be in
			// the FIFO on its way to the reader goroutine.
			grace := time.NewTimer(time.Second)
			defer grace.Stop()
			for {
				select {
				case ev := <-p.events:
					for _, k := range kinds {
						if ev.kind == k {
							return ev, nil
						}
					}
				case <-grace.C:
					return event{}, fmt.Errorf("%s exited (%v) before reporting %v: %s", p.name, p.waitErr, kinds, p.tail())
				}
			}
		case <-deadline.C:
			return event{}, fmt.Errorf("%s: no %v within %v: %s", p.name, kinds, timeout, p.tail())
		}
	}
}

func (p *proc) tail() string {
	s := p.stderr.String()
	if len(s) > 1500 {
		s = "..." + s[len(s)-1500:]
	}
	return strings.TrimSpace(s)
}

// ctx returns a context that ends after timeout or when the wrapper exits.
func (p *proc) ctx(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// wait waits up to timeout for the wrapper to exit.
func (p *proc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s did not exit within %v", p.name, timeout)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitCode is the wrapper's exit code, 128+N for a signal, -1 while running.
func (p *proc) exitCode() int {
	if !p.exited() || p.cmd.ProcessState == nil {
		return -1
	}
	ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// peakRSS is the wrapper's peak resident set in bytes, as GNU time reports
// it from wait4 (the largest of the wrapper and the small child); 0 when the
// scenario was not timed.
func (p *proc) peakRSS() int64 {
	b, err := os.ReadFile(p.rssFile)
	if err != nil {
		return 0
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	kb, _ := strconv.ParseInt(lines[len(lines)-1], 10, 64) // a "Command exited" line may come first
	return kb * 1024
}

// hwm reads VmHWM (peak RSS) of a running pid in bytes.
func hwm(pid int) int64 { return procStatus(pid, "VmHWM:") }

// stop sends SIGTERM and waits; SIGKILL to the group after timeout.
func (p *proc) stop(timeout time.Duration) {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if p.wait(timeout) != nil {
		p.kill()
	}
}

func (p *proc) kill() {
	if !p.exited() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		p.cmd.Process.Kill()
		<-p.done
	}
	p.fifo.Close()
}

// rss reads VmRSS of pid in bytes (0 if gone).
func rss(pid int) int64 { return procStatus(pid, "VmRSS:") }

// procStatus reads a kB field of /proc/PID/status in bytes.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// threadStats sums, over pid's threads, the CPU time they have run
// (schedstat, in nanoseconds, unlike the 10 ms ticks of /proc/PID/stat) and
// their context switches (each voluntary one is a block and a wake-up).
func threadStats(pid int) (cpu time.Duration, switches int64) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, _ := os.ReadDir(dir)
	for _, t := range tasks {
		if b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat")); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				ns, _ := strconv.ParseInt(f[0], 10, 64)
				cpu += time.Duration(ns)
			}
		}
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			for _, field := range []string{"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"} {
				if v, ok := strings.CutPrefix(line, field); ok {
					n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					switches += n
				}
			}
		}
	}
	return cpu, switches
}

// cpuTime reads utime+stime of pid (without children).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// --- statistics ---

type summary struct {
	n                       int
	min, p50, p90, p99, max float64
}

func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return summary{n: len(s), min: s[0], p50: rank(0.5), p90: rank(0.9), p99: rank(0.99), max: s[len(s)-1]}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func mb(b int64) float64         { return float64(b) / (1 << 20) }

// --- report ---

type report struct {
	buf bytes.Buffer
}

func (r *report) p(format string, args ...any) { fmt.Fprintf(&r.buf, format+"\n", args...) }

func (r *report) table(header []string, rows [][]string) {
	r.p("| %s |", strings.Join(header, " | "))
	seps := make([]string, len(header))
	for i := range seps {
		seps[i] = "---"
	}
	r.p("|%s|", strings.Join(seps, "|"))
	for _, row := range rows {
		r.p("| %s |", strings.Join(row, " | "))
	}
	r.p("")
}

func f2(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }
func f1(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }

// ratio formats a/b as "0.12x" (leash / peer).
func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	r := a / b
	if r < 0.1 {
		return strconv.FormatFloat(r, 'f', 3, 64) + "x"
	}
	return strconv.FormatFloat(r, 'f', 2, 64) + "x"
}

func errCell(err error) string {
	s := strings.ReplaceAll(err.Error(), "|", "/")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return "failed: " + s
}

var errSkip = errors.New("skipped")

// withTimeout is a context for one wait in a scenario.
func withTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
