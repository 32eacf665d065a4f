// Command run is `make demo`: it shows leash rotating a real credential
// under a real application in well under a minute, then proves that
// nothing was left behind.
//
// It starts a throwaway `vault server -dev` on a free loopback port with a
// random root token (HOME is a temporary directory, so ~/.vault-token is
// never touched), points Vault's database engine at a throwaway database on
// the local PostgreSQL with a role whose credentials live a few seconds,
// and runs
//
//	leash -s db=database/creds/ROLE --on-rotate signal -- demo-app
//
// with a limited Vault token. The demo app (examples/demo) prints the
// credential it holds, checks its environment for the secret and exits
// after a few rotations. Without PostgreSQL the demo uses short-lived child
// tokens from a Vault token role instead.
//
// At the end it prints how many leases are left in Vault and how many
// roles are left in PostgreSQL (both must be 0), drops the database, stops
// Vault and exits 0. Ctrl-C at any point stops leash gracefully (it revokes
// what it holds) and cleans up the same way.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leash-dev/leash/internal/devkit"
	"github.com/leash-dev/leash/internal/testvault"
)

type options struct {
	leash, vault, app string
	rotations         int
	ttl, maxTTL       time.Duration
	pgURL             string
	noPG              bool
	timeout           time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.leash, "leash", "bin/leash", "leash binary")
	flag.StringVar(&o.vault, "vault", defaultVault(), "vault binary (the dev server); `make vault` builds .cache/bin/vault")
	flag.StringVar(&o.app, "app", "", "demo app binary (default: go build ./examples/demo)")
	flag.IntVar(&o.rotations, "rotations", 3, "rotations the app waits for before it exits")
	flag.DurationVar(&o.ttl, "ttl", 6*time.Second, "default TTL of each credential")
	flag.DurationVar(&o.maxTTL, "max-ttl", 12*time.Second, "max TTL of each credential: leash must rotate before it")
	flag.StringVar(&o.pgURL, "pg", defaultPG(), "PostgreSQL admin URL (LEASH_TEST_PG_URL overrides the default)")
	flag.BoolVar(&o.noPG, "no-pg", false, "skip PostgreSQL and use Vault child tokens as the rotating credential")
	flag.DurationVar(&o.timeout, "timeout", 0, "give up after this long (default: enough for the rotations asked for)")
	flag.Parse()
	os.Exit(demo(o))
}

func defaultVault() string {
	if p := os.Getenv("LEASH_VAULT_BIN"); p != "" {
		return p
	}
	if _, err := os.Stat(".cache/bin/vault"); err == nil {
		return ".cache/bin/vault"
	}
	if p, err := exec.LookPath("vault"); err == nil {
		return p
	}
	return ".cache/bin/vault"
}

func defaultPG() string {
	if u := os.Getenv("LEASH_TEST_PG_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// out serialises the demo's three voices on stdout: its own, the app's and
// leash's log.
var out struct {
	sync.Mutex
	w io.Writer
}

func emit(who, line string) {
	out.Lock()
	defer out.Unlock()
	fmt.Fprintf(out.w, "%s %-5s | %s\n", time.Now().Format("15:04:05"), who, line)
}

func say(format string, args ...any) { emit("demo", fmt.Sprintf(format, args...)) }

func demo(o options) (code int) {
	out.w = os.Stdout
	// Signals are caught from the first moment, so Ctrl-C during set-up
	// still cleans up.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var interrupted bool
	stopWatch, watchDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case <-sigs:
			interrupted = true
			say("interrupted: cleaning up")
			cancel()
		case <-stopWatch:
		}
	}()
	// stopWatching hands the signals over to runLeash and reports whether
	// one arrived during set-up.
	var watchOnce sync.Once
	stopWatching := func() bool {
		watchOnce.Do(func() { close(stopWatch); <-watchDone })
		return interrupted
	}
	defer stopWatching()

	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	fail := func(format string, args ...any) int {
		if stopWatching() {
			say("stopped by signal")
			return 130
		}
		say("FAILED: "+format, args...)
		return 1
	}

	for _, b := range []struct {
		path *string
		hint string
	}{{&o.leash, "run `make build` or pass -leash"}, {&o.vault, "run `make vault` (builds .cache/bin/vault) or pass -vault"}} {
		abs, err := exec.LookPath(*b.path)
		if err != nil {
			return fail("%s not found: %s", *b.path, b.hint)
		}
		*b.path, _ = filepath.Abs(abs)
	}
	tmp, err := os.MkdirTemp("", "leash-demo-")
	if err != nil {
		return fail("%v", err)
	}
	cleanups = append(cleanups, func() { os.RemoveAll(tmp) })
	if o.app == "" {
		o.app = filepath.Join(tmp, "demo-app")
		say("building the demo app (examples/demo)")
		build := exec.CommandContext(ctx, "go", "build", "-o", o.app, "./examples/demo")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fail("build the demo app: %v", err)
		}
	}
	if o.app, err = filepath.Abs(o.app); err != nil {
		return fail("%v", err)
	}

	// Vault.
	v, err := startVault(ctx, o.vault, tmp)
	if err != nil {
		return fail("start Vault: %v", err)
	}
	cleanups = append(cleanups, v.stop)
	say("Vault dev server on %s (throwaway, in memory, random root token)", v.addr)

	// The credential: PostgreSQL roles from the database engine, or child
	// tokens from a token role.
	role := "demo" + devkit.RandHex(2)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + tmp, "VAULT_ADDR=" + v.addr}
	var secretFlag, fileVar, credsPath, policy string
	var pg *pgTarget
	if !o.noPG {
		pg, err = setUpPostgres(ctx, o.pgURL)
		if err != nil && ctx.Err() == nil {
			say("PostgreSQL is not reachable (%v): using Vault child tokens instead", err)
		}
	}
	if pg != nil {
		cleanups = append(cleanups, pg.drop)
	}
	if ctx.Err() != nil {
		return fail("interrupted")
	}
	if pg != nil {
		say("PostgreSQL at %s: created database %s", pg.hostPort(), pg.db)
		if err := v.setUpDatabase(pg, role, o.ttl, o.maxTTL); err != nil {
			return fail("configure Vault's database engine: %v", err)
		}
		credsPath = "database/creds/" + role
		secretFlag, fileVar = "db="+credsPath, "DB_FILE"
		policy = fmt.Sprintf("path %q { capabilities = [\"read\"] }\n", credsPath)
		env = append(env, "PGHOST="+pg.host, "PGPORT="+strconv.Itoa(pg.port), "PGDATABASE="+pg.db, "PGSSLMODE=disable")
		say("database engine: role %s issues PostgreSQL logins with default_ttl %s, max_ttl %s", role, o.ttl, o.maxTTL)
	} else {
		if err := v.setUpTokenRole(role, o.maxTTL); err != nil {
			return fail("configure a token role: %v", err)
		}
		credsPath = "auth/token/create/" + role
		secretFlag, fileVar = fmt.Sprintf("token=%s?ttl=%s", credsPath, secs(o.ttl)), "TOKEN_FILE"
		policy = fmt.Sprintf("path %q { capabilities = [\"update\"] }\n", credsPath)
		say("token role %s issues child tokens with ttl %s, explicit max ttl %s", role, o.ttl, o.maxTTL)
	}
	// leash logs in with AppRole, as on a VM: its token holds a policy
	// that allows the credential path and revoking its leases, nothing
	// else, and leash revokes it on exit.
	policy += "path \"sys/leases/revoke\" { capabilities = [\"update\"] }\n"
	roleIDFile, secretIDFile, err := v.setUpAppRole(tmp, "leash-demo-"+role, policy)
	if err != nil {
		return fail("configure AppRole: %v", err)
	}
	say("AppRole login for leash: policy allows %s and sys/leases/revoke only", credsPath)
	// leash and the app.
	flags := []string{"--log-level", "info", "-s", secretFlag, "--on-rotate", "signal", "--reload-grace", "2s"}
	args := append([]string{"--auth", "approle", "--role-id-file", roleIDFile, "--secret-id-file", secretIDFile}, flags...)
	args = append(args, "--", o.app, "-var", fileVar, "-rotations", strconv.Itoa(o.rotations))
	say("running: leash --auth approle --role-id-file role-id --secret-id-file secret-id %s -- demo-app -var %s -rotations %d",
		strings.Join(flags, " "), fileVar, o.rotations)
	say("the app prints as 'app', leash logs as 'leash'; the app exits after %d rotations", o.rotations)
	if stopWatching() {
		return fail("interrupted")
	}
	res := runLeash(o, env, args, sigs)
	if res.err != nil && !res.interrupted {
		say("FAILED: %v", res.err)
	}

	// The evidence.
	say("summary:")
	ok := res.err == nil && res.code == 0 && res.appFailures == 0
	say("  credentials the app held:  %d (%d rotations, each announced by SIGHUP)", res.credentials, res.rotations)
	say("  leash exit status:         %d", res.code)
	leases, err := v.countLeases(credsPath)
	if err != nil {
		say("  leases left in Vault:      unknown (%v)", err)
		ok = false
	} else {
		say("  leases left in Vault:      %d", leases)
		ok = ok && leases == 0
	}
	if n, err := v.countLoginTokens(); err != nil {
		say("  leash's login tokens left: unknown (%v)", err)
		ok = false
	} else {
		say("  leash's login tokens left: %d", n)
		ok = ok && n == 0
	}
	if pg != nil {
		left, err := pg.leftoverRoles(role)
		if err != nil {
			say("  roles left in PostgreSQL:  unknown (%v)", err)
			ok = false
		} else {
			say("  roles left in PostgreSQL:  %d", len(left))
			ok = ok && len(left) == 0
			pg.leftover = left
		}
	}
	switch {
	case res.interrupted:
		say("stopped by signal; cleaning up")
		return 130
	case !ok:
		say("FAILED")
		return 1
	}
	say("ok: rotated %d times, revoked everything, left nothing behind", res.rotations)
	return 0
}

type result struct {
	code                   int
	err                    error
	interrupted            bool
	credentials, rotations int
	appFailures            int
}

// runLeash runs leash in its own process group with stdin from /dev/null
// (so it does not take over the terminal) and relays its output. The first
// SIGINT/SIGTERM becomes one SIGTERM to leash, which stops the app and
// revokes; a second one kills leash.
func runLeash(o options, env, args []string, sigs <-chan os.Signal) result {
	var res result
	cmd := exec.Command(o.leash, args...)
	cmd.Env = env
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		res.err = err
		return res
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		res.err = err
		return res
	}
	if err := cmd.Start(); err != nil {
		res.err = fmt.Errorf("start leash: %w", err)
		return res
	}
	var relay sync.WaitGroup
	relay.Add(2)
	go func() {
		defer relay.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "holding "):
				res.credentials++
			case strings.HasPrefix(line, "rotation "):
				res.rotations++
			case strings.HasPrefix(line, "FAIL"), strings.Contains(line, "LEAK"):
				res.appFailures++
			}
			emit("app", line)
		}
	}()
	go func() {
		defer relay.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			emit("leash", trimTimestamp(sc.Text()))
		}
	}()
	done := make(chan error, 1)
	go func() {
		relay.Wait() // all output is read before Wait closes the pipes
		done <- cmd.Wait()
	}()

	timeout := o.timeout
	if timeout == 0 {
		timeout = time.Duration(o.rotations+2)*o.maxTTL*2 + 30*time.Second
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	// escalate asks leash to stop the first time and kills its process
	// group the second time.
	termSent := false
	escalate := func() {
		if !termSent {
			termSent = true
			cmd.Process.Signal(syscall.SIGTERM)
			return
		}
		say("killing leash")
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	var waitErr error
wait:
	for {
		select {
		case waitErr = <-done:
			break wait
		case <-sigs:
			res.interrupted = true
			if !termSent {
				say("interrupted: asking leash to stop (SIGTERM); it stops the app and revokes; Ctrl-C again to kill it")
			}
			escalate()
		case <-deadline.C:
			if !termSent {
				say("no %d rotations after %s: stopping leash", o.rotations, timeout)
				res.err = fmt.Errorf("timed out after %s", timeout)
			}
			escalate()
			deadline.Reset(20 * time.Second)
		}
	}
	var ee *exec.ExitError
	switch {
	case waitErr == nil:
	case errors.As(waitErr, &ee):
		res.code = ee.ExitCode()
		if res.err == nil {
			res.err = fmt.Errorf("leash exited with status %d", res.code)
		}
	default:
		res.code = -1
		res.err = waitErr
	}
	if res.err == nil && res.rotations < o.rotations {
		res.err = fmt.Errorf("the app saw %d rotations, want %d", res.rotations, o.rotations)
	}
	return res
}

// trimTimestamp shortens hclog's RFC 3339 timestamp: the demo prints its
// own clock in front of every line.
func trimTimestamp(line string) string {
	first, rest, ok := strings.Cut(line, " ")
	if !ok {
		return line
	}
	if _, err := time.Parse(time.RFC3339Nano, first); err != nil {
		return line
	}
	return strings.TrimLeft(rest, " ")
}

// vault is the running dev server (internal/testvault's, the one leash's
// tests use) and a minimal HTTP client for it: the demo speaks Vault's
// HTTP API directly.
type vault struct {
	addr, root string
	srv        *testvault.Server
	log        *os.File
}

// startVault starts the dev server with its output in home/vault.log. It
// is in its own process group, so Ctrl-C does not stop Vault before leash
// has revoked, and dies with the demo.
func startVault(ctx context.Context, bin, home string) (*vault, error) {
	logf, err := os.Create(filepath.Join(home, "vault.log"))
	if err != nil {
		return nil, err
	}
	srv, err := testvault.StartDev(ctx, bin, testvault.Options{Output: logf})
	if err != nil {
		logf.Close()
		b, _ := os.ReadFile(logf.Name())
		return nil, fmt.Errorf("%w\n%s", err, b)
	}
	return &vault{addr: srv.Addr, root: srv.RootToken, srv: srv, log: logf}, nil
}

func (v *vault) stop() {
	v.srv.Stop()
	v.log.Close()
}

// call does one Vault API request with the root token. A 404 on LIST is
// "no keys" and returns nil.
func (v *vault) call(method, path string, body any) (map[string]any, error) {
	return v.callAs(v.root, method, path, body)
}

func (v *vault) callAs(token, method, path string, body any) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, v.addr+"/v1/"+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if method == "LIST" && resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Errors []string }
		json.Unmarshal(raw, &e)
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.Join(e.Errors, "; "))
	}
	if len(raw) == 0 {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return m, nil
}

func (v *vault) setUpDatabase(pg *pgTarget, role string, ttl, maxTTL time.Duration) error {
	if _, err := v.call("POST", "sys/mounts/database", map[string]any{"type": "database"}); err != nil {
		return err
	}
	if _, err := v.call("POST", "database/config/demo", map[string]any{
		"plugin_name": "postgresql-database-plugin",
		"connection_url": fmt.Sprintf("postgresql://{{username}}:{{password}}@%s/%s?sslmode=disable",
			pg.hostPort(), pg.db),
		"username":      pg.user,
		"password":      pg.password,
		"allowed_roles": role,
	}); err != nil {
		return err
	}
	_, err := v.call("POST", "database/roles/"+role, map[string]any{
		"db_name": "demo",
		"creation_statements": []string{
			`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
			`GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";`,
		},
		"default_ttl": secs(ttl),
		"max_ttl":     secs(maxTTL),
	})
	return err
}

func (v *vault) setUpTokenRole(role string, maxTTL time.Duration) error {
	_, err := v.call("POST", "auth/token/roles/"+role, map[string]any{
		"renewable":              true,
		"token_explicit_max_ttl": secs(maxTTL),
		"orphan":                 false,
	})
	return err
}

// setUpAppRole writes policy under name, enables AppRole with a role
// whose tokens hold it (and Vault's default policy, which allows renewing
// and revoking themselves and renewing their leases), and writes the role
// id and a secret id to files in dir for leash.
func (v *vault) setUpAppRole(dir, name, policy string) (roleIDFile, secretIDFile string, err error) {
	if _, err := v.call("PUT", "sys/policies/acl/"+name, map[string]any{"policy": policy}); err != nil {
		return "", "", err
	}
	if _, err := v.call("POST", "sys/auth/approle", map[string]any{"type": "approle"}); err != nil {
		return "", "", err
	}
	if _, err := v.call("POST", "auth/approle/role/leash-demo", map[string]any{
		"token_policies": []string{name}, "token_ttl": "10m", "token_max_ttl": "1h",
	}); err != nil {
		return "", "", err
	}
	sec, err := v.call("GET", "auth/approle/role/leash-demo/role-id", nil)
	if err != nil {
		return "", "", err
	}
	roleID, _ := dataOf(sec)["role_id"].(string)
	if sec, err = v.call("POST", "auth/approle/role/leash-demo/secret-id", nil); err != nil {
		return "", "", err
	}
	secretID, _ := dataOf(sec)["secret_id"].(string)
	if roleID == "" || secretID == "" {
		return "", "", errors.New("no role_id or secret_id in Vault's answer")
	}
	roleIDFile, secretIDFile = filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id")
	if err := os.WriteFile(roleIDFile, []byte(roleID), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(secretIDFile, []byte(secretID), 0o600); err != nil {
		return "", "", err
	}
	return roleIDFile, secretIDFile, nil
}

// countLoginTokens counts the live tokens created by AppRole logins:
// leash revokes the one it logged in with when it exits.
func (v *vault) countLoginTokens() (int, error) {
	sec, err := v.call("LIST", "auth/token/accessors", nil)
	if err != nil || sec == nil {
		return 0, err
	}
	keys, _ := dataOf(sec)["keys"].([]any)
	n := 0
	for _, k := range keys {
		acc, _ := k.(string)
		info, err := v.call("POST", "auth/token/lookup-accessor", map[string]any{"accessor": acc})
		if err != nil {
			continue // revoked between the list and the lookup
		}
		if p, _ := dataOf(info)["path"].(string); strings.HasPrefix(p, "auth/approle/") {
			n++
		}
	}
	return n, nil
}

// dataOf is a Vault response's "data" object (nil when absent).
func dataOf(sec map[string]any) map[string]any {
	d, _ := sec["data"].(map[string]any)
	return d
}

// countLeases lists the leases Vault still holds under path.
func (v *vault) countLeases(path string) (int, error) {
	sec, err := v.call("LIST", "sys/leases/lookup/"+path+"/", nil)
	if err != nil || sec == nil {
		return 0, err
	}
	keys, _ := dataOf(sec)["keys"].([]any)
	return len(keys), nil
}

// pgTarget is the throwaway database the demo creates and drops.
type pgTarget struct {
	adminURL       string
	host           string
	port           int
	user, password string
	db             string
	leftover       []string // roles the summary found; dropped before the database
}

func (p *pgTarget) hostPort() string { return net.JoinHostPort(p.host, strconv.Itoa(p.port)) }

func setUpPostgres(ctx context.Context, adminURL string) (*pgTarget, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, adminURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	cfg := conn.Config()
	p := &pgTarget{adminURL: adminURL, host: cfg.Host, port: int(cfg.Port), user: cfg.User, password: cfg.Password,
		db: "leash_demo_" + devkit.RandHex(4)}
	// Not cancelled by Ctrl-C: once asked for, the database is created and
	// the caller drops it.
	xctx, xcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer xcancel()
	if _, err := conn.Exec(xctx, "CREATE DATABASE "+pgx.Identifier{p.db}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	return p, nil
}

// leftoverRoles lists the login roles Vault created for role that still
// exist (Vault names them v-<display name>-<role>-<random>-<time>).
func (p *pgTarget) leftoverRoles(role string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.adminURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT rolname FROM pg_roles WHERE rolname LIKE $1", "v-%-"+role+"-%")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// drop removes roles the summary reported (so even a failed demo leaves
// nothing) and the database.
func (p *pgTarget) drop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if len(p.leftover) > 0 {
		if conn, err := pgx.Connect(ctx, dbURL(p.adminURL, p.db)); err == nil {
			for _, r := range p.leftover {
				id := pgx.Identifier{r}.Sanitize()
				conn.Exec(ctx, "DROP OWNED BY "+id)
				conn.Exec(ctx, "DROP ROLE IF EXISTS "+id)
			}
			conn.Close(ctx)
		}
	}
	conn, err := pgx.Connect(ctx, p.adminURL)
	if err != nil {
		say("cannot drop database %s: %v", p.db, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{p.db}.Sanitize()+" WITH (FORCE)"); err != nil {
		say("cannot drop database %s: %v", p.db, err)
		return
	}
	say("dropped database %s", p.db)
}

// dbURL is adminURL pointed at database db.
func dbURL(adminURL, db string) string {
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return adminURL
	}
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable password='%s'",
		cfg.Host, cfg.Port, cfg.User, db, strings.ReplaceAll(strings.ReplaceAll(cfg.Password, `\`, `\\`), `'`, `\'`))
}

func secs(d time.Duration) string { return strconv.Itoa(int(d.Seconds())) + "s" }
