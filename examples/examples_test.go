package examples

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testchild"
	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
	"gopkg.in/yaml.v3"
)

// binDir holds the binaries the tests build, once per test binary.
var binDir string

func TestMain(m *testing.M) {
	// The examples reload on SIGHUP through leash.
	testchild.RequireSIGHUP()
	dir, err := os.MkdirTemp("", "leash-examples-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var builds struct {
	sync.Mutex
	done map[string]built
}

type built struct {
	path string
	err  error
}

// build compiles the main package pkg (a module path) into binDir once and
// returns the binary's path.
func build(t *testing.T, pkg string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	if builds.done == nil {
		builds.done = map[string]built{}
	}
	b, ok := builds.done[pkg]
	if !ok {
		b.path = filepath.Join(binDir, strings.NewReplacer("/", "_", ".", "_").Replace(pkg))
		cmd := exec.Command("go", "build", "-o", b.path, pkg)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, stderr.String())
		}
		builds.done[pkg] = b
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func leashBin(t *testing.T) string { return build(t, "github.com/leash-dev/leash") }

// cleanEnv is the test's environment without anything that would change
// leash's behaviour (LEASH_*, VAULT_*, PG*).
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "LEASH_") || strings.HasPrefix(k, "VAULT_") || strings.HasPrefix(k, "BAO_") || strings.HasPrefix(k, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// exitCode runs cmd and returns its exit status and combined output.
func exitCode(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("run %s: %v", cmd.Path, err)
	return 0, ""
}

func TestConfigsValidate(t *testing.T) {
	leash := leashBin(t)
	files, err := filepath.Glob("*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found %d example configs (%v), want one per case", len(files), files)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			cmd := exec.Command(leash, "validate", "-c", f)
			cmd.Env = cleanEnv()
			code, out := exitCode(t, cmd)
			if code != 0 || !strings.Contains(out, "ok:") {
				t.Errorf("leash validate -c %s: exit %d\n%s", f, code, out)
			}
		})
	}
	// A control: validate does reject a config it should, so the passes
	// above mean something.
	t.Run("control", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.hcl")
		if err := os.WriteFile(bad, []byte("secret = [\"db=database/creds/app\"]\nno_such_key = true\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(leash, "validate", "-c", bad)
		cmd.Env = cleanEnv()
		if code, out := exitCode(t, cmd); code != 78 {
			t.Errorf("leash validate of a config with an unknown key: exit %d, want 78\n%s", code, out)
		}
	})
}

func TestExampleProgramsBuild(t *testing.T) {
	for _, pkg := range []string{"demo", "demo/run", "postgres"} {
		t.Run(pkg, func(t *testing.T) {
			build(t, "github.com/leash-dev/leash/examples/"+pkg)
		})
	}
}

// k8sObject is the part of a Kubernetes object the test looks at.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Spec struct {
		Template struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	ServiceAccountName            string           `yaml:"serviceAccountName"`
	TerminationGracePeriodSeconds int              `yaml:"terminationGracePeriodSeconds"`
	ShareProcessNamespace         bool             `yaml:"shareProcessNamespace"`
	InitContainers                []map[string]any `yaml:"initContainers"`
	Volumes                       []map[string]any `yaml:"volumes"`
	Containers                    []struct {
		Name         string           `yaml:"name"`
		Command      []string         `yaml:"command"`
		Args         []string         `yaml:"args"`
		VolumeMounts []map[string]any `yaml:"volumeMounts"`
		Env          []struct {
			Name  string `yaml:"name"`
			Value string `yaml:"value"`
		} `yaml:"env"`
	} `yaml:"containers"`
}

// TestKubernetesManifest parses deployment.yaml and checks the layout the
// example promises: one container whose entrypoint is leash, no sidecar,
// no init container, no volume, and the Dockerfile's ENTRYPOINT/CMD agree.
func TestKubernetesManifest(t *testing.T) {
	f, err := os.Open("kubernetes/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	objs := map[string]k8sObject{}
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("deployment.yaml: %v", err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("deployment.yaml: an object without apiVersion, kind or name: %+v", o)
		}
		objs[o.Kind] = o
	}
	sa, ok := objs["ServiceAccount"]
	if !ok {
		t.Fatal("no ServiceAccount")
	}
	dep, ok := objs["Deployment"]
	if !ok {
		t.Fatal("no Deployment")
	}
	if dep.APIVersion != "apps/v1" {
		t.Errorf("Deployment apiVersion %q, want apps/v1", dep.APIVersion)
	}
	pod := dep.Spec.Template.Spec
	if pod.ServiceAccountName != sa.Metadata.Name || dep.Metadata.Namespace != sa.Metadata.Namespace {
		t.Errorf("pod runs as %s/%s, the manifest's ServiceAccount is %s/%s",
			dep.Metadata.Namespace, pod.ServiceAccountName, sa.Metadata.Namespace, sa.Metadata.Name)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1 (no sidecar)", len(pod.Containers))
	}
	if len(pod.InitContainers) != 0 || len(pod.Volumes) != 0 || len(pod.Containers[0].VolumeMounts) != 0 || pod.ShareProcessNamespace {
		t.Errorf("want no init container, volume or shared process namespace; got %d, %d, %d, %v",
			len(pod.InitContainers), len(pod.Volumes), len(pod.Containers[0].VolumeMounts), pod.ShareProcessNamespace)
	}
	c := pod.Containers[0]
	if len(c.Command) < 2 || filepath.Base(c.Command[0]) != "leash" || c.Command[len(c.Command)-1] != "--" || len(c.Args) == 0 {
		t.Errorf("command %q args %q: want leash ... -- as the prefix of the app's command", c.Command, c.Args)
	}
	for _, e := range c.Env {
		if strings.Contains(e.Name, "TOKEN") || strings.Contains(e.Name, "PASSWORD") || strings.Contains(e.Name, "SECRET") {
			t.Errorf("env %s: the example must not put secrets in the environment", e.Name)
		}
	}
	// The kubelet's SIGKILL must not cut leash's stop short: the grace
	// period exceeds everything kubernetes.hcl lets a stop take.
	hcl, err := os.ReadFile("kubernetes.hcl")
	if err != nil {
		t.Fatal(err)
	}
	var stopTime time.Duration
	for _, key := range []string{"stop_delay", "kill_timeout", "revoke_timeout"} {
		m := regexp.MustCompile(`(?m)^` + key + `\s*=\s*"([^"]+)"`).FindSubmatch(hcl)
		if m == nil {
			t.Fatalf("kubernetes.hcl does not set %s", key)
		}
		d, err := time.ParseDuration(string(m[1]))
		if err != nil {
			t.Fatalf("kubernetes.hcl %s: %v", key, err)
		}
		stopTime += d
	}
	if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace <= stopTime {
		t.Errorf("terminationGracePeriodSeconds %s: must exceed leash's stop_delay + kill_timeout + revoke_timeout (%s)", grace, stopTime)
	}

	// The Dockerfile bakes in the same entrypoint and command.
	df, err := os.ReadFile("kubernetes/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	instr := map[string][]string{}
	for _, line := range strings.Split(string(df), "\n") {
		key, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		if key == "ENTRYPOINT" || key == "CMD" {
			var argv []string
			if err := json.Unmarshal([]byte(rest), &argv); err != nil {
				t.Errorf("Dockerfile %s is not exec form: %v", key, err)
			}
			instr[key] = argv
		}
	}
	if !slices.Equal(instr["ENTRYPOINT"], c.Command) || !slices.Equal(instr["CMD"], c.Args) {
		t.Errorf("Dockerfile ENTRYPOINT %q CMD %q differ from the Deployment's command %q args %q",
			instr["ENTRYPOINT"], instr["CMD"], c.Command, c.Args)
	}
}

// lines streams a command's output line by line for tests that wait on
// what it prints.
type lines struct {
	ch   chan string
	mu   sync.Mutex
	all  strings.Builder
	done chan struct{}
}

func streamLines(r io.Reader) *lines {
	l := &lines{ch: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		defer close(l.ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.mu.Lock()
			l.all.WriteString(sc.Text() + "\n")
			l.mu.Unlock()
			l.ch <- sc.Text()
		}
	}()
	return l
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// waitFor returns the submatches of the first line matching re, failing
// the test at the deadline or when the output ends.
func (l *lines) waitFor(t *testing.T, re *regexp.Regexp, limit time.Duration, context func() string) []string {
	t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case line, ok := <-l.ch:
			if !ok {
				t.Fatalf("output ended before a line matching %q:\n%s", re, context())
			}
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-deadline:
			t.Fatalf("no line matching %q after %s:\n%s", re, limit, context())
		}
	}
}

// vaultSetup runs examples/postgres/setup.sh, the README's Vault commands,
// with the real vault CLI against the shared dev server, pointed at a fresh
// database in a throwaway cluster that checks passwords (scram-sha-256), so
// a login proves the credential was delivered. It returns the database and
// a token holding only the app-readonly policy the script wrote.
func vaultSetup(t *testing.T, ttl, maxTTL string) (*testvault.Server, *testpg.DB, string) {
	t.Helper()
	srv := testvault.Shared(t)
	db := testpg.NewCluster(t).Database(t)
	cmd := exec.Command("bash", "postgres/setup.sh")
	cmd.Env = cleanEnv(
		"PATH="+filepath.Dir(testvault.Bin())+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+t.TempDir(),
		"VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.RootToken,
		"PGHOST="+db.Host, "PGPORT="+strconv.Itoa(db.Port), "PGDATABASE="+db.Name,
		"VAULT_PG_USER="+db.User, "VAULT_PG_PASSWORD="+db.Password,
		"DEFAULT_TTL="+ttl, "MAX_TTL="+maxTTL,
	)
	if code, out := exitCode(t, cmd); code != 0 {
		t.Fatalf("postgres/setup.sh: exit %d\n%s", code, out)
	}
	sec := srv.Write(t, "auth/token/create", map[string]any{"policies": []string{"app-readonly"}, "ttl": "10m"})
	return srv, db, sec.Auth.ClientToken
}

// leaseCheck fails the test when Vault holds app-readonly leases that were
// not there before (leases left by another test are not this one's) or
// PostgreSQL still has the roles the app used.
func leaseCheck(t *testing.T, srv *testvault.Server, db *testpg.DB, before []string, users ...string) {
	t.Helper()
	old := map[string]bool{}
	for _, id := range before {
		old[id] = true
	}
	for _, id := range srv.LeaseIDs(t, "database/creds/app-readonly/") {
		if !old[id] {
			t.Errorf("lease left in Vault after leash exited")
		}
	}
	for _, u := range users {
		if db.RoleExists(t, u) {
			t.Errorf("role %s still exists after leash exited", u)
		}
	}
}

// TestPostgresExample runs examples/postgres as its README says: setup.sh,
// then leash -c postgres.hcl -- app, with credentials that last seconds, and
// waits for the app to swap pools to a new credential and query with it.
func TestPostgresExample(t *testing.T) {
	leash := leashBin(t)
	app := build(t, "github.com/leash-dev/leash/examples/postgres")
	srv, db, token := vaultSetup(t, "4s", "8s")
	db.Exec(t, "CREATE TABLE orders (id int)")
	before := srv.LeaseIDs(t, "database/creds/app-readonly/")

	cmd := exec.Command(leash, "-c", "postgres.hcl", "--", app, "-interval", "50ms")
	cmd.Env = cleanEnv("VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+token,
		"PGHOST="+db.Host, "PGPORT="+strconv.Itoa(db.Port), "PGDATABASE="+db.Name, "PGSSLMODE=disable")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	out := streamLines(stdout)
	ctx := func() string { return "app:\n" + out.String() + "leash:\n" + stderr.String() }

	first := out.waitFor(t, regexp.MustCompile(`connected as (\S+)`), 30*time.Second, ctx)[1]
	out.waitFor(t, regexp.MustCompile(`query ok as `+regexp.QuoteMeta(first)), 10*time.Second, ctx)
	m := out.waitFor(t, regexp.MustCompile(`reloaded: now (\S+) \(was (\S+)\)`), 30*time.Second, ctx)
	second := m[1]
	if second == first || m[2] != first {
		t.Fatalf("reload from %s to %s, want a new credential after %s", m[2], second, first)
	}
	out.waitFor(t, regexp.MustCompile(`query ok as `+regexp.QuoteMeta(second)), 10*time.Second, ctx)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-out.done
	if err := cmd.Wait(); err != nil {
		t.Fatalf("leash: %v\n%s", err, ctx())
	}
	for _, bad := range []string{"query failed", "query ran as", "reload failed", "error:"} {
		if strings.Contains(out.String(), bad) {
			t.Errorf("app reported %q:\n%s", bad, ctx())
		}
	}
	leaseCheck(t, srv, db, before, first, second)
}

// TestLegacyExample runs psql, unchanged, under leash -c legacy.hcl: the
// user name comes from the rendered pg_service.conf and the password from
// the rendered .pgpass.
func TestLegacyExample(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("no psql on PATH")
	}
	leash := leashBin(t)
	srv, db, token := vaultSetup(t, "1m", "2m")
	before := srv.LeaseIDs(t, "database/creds/app-readonly/")
	cmd := exec.Command(leash, "-c", "legacy.hcl", "--", psql, "service=app", "-tA", "-c", "SELECT current_user")
	cmd.Env = cleanEnv("VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+token,
		"PGHOST="+db.Host, "PGPORT="+strconv.Itoa(db.Port), "PGDATABASE="+db.Name, "PGSSLMODE=disable")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("leash -c legacy.hcl -- psql: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	user := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(user, "v-") || strings.Contains(user, "\n") {
		t.Fatalf("psql logged in as %q, want one Vault-issued role\nstderr:\n%s", user, stderr.String())
	}
	leaseCheck(t, srv, db, before, user)
}

// TestKubernetesExample runs the container's entrypoint, leash -c
// kubernetes.hcl, with the examples/postgres app as its command, logging in
// with Kubernetes auth (Vault checks the service-account token against a
// fake TokenReview API). Flags override only what differs outside a pod:
// the auth mount, the token file and the stop delay.
func TestKubernetesExample(t *testing.T) {
	leash := leashBin(t)
	app := build(t, "github.com/leash-dev/leash/examples/postgres")
	srv, db, _ := vaultSetup(t, "1m", "2m")
	k8s := srv.Kubernetes(t, []string{"app-readonly"}, 10*time.Minute, time.Hour)
	jwt := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(jwt, []byte(k8s.JWT), 0o600); err != nil {
		t.Fatal(err)
	}
	before := srv.LeaseIDs(t, "database/creds/app-readonly/")

	cmd := exec.Command(leash, "-c", "kubernetes.hcl", "--auth-mount", k8s.Mount, "--jwt-file", jwt, "--stop-delay", "0s",
		"--", app, "-interval", "50ms")
	cmd.Env = cleanEnv("VAULT_ADDR="+srv.Addr,
		"PGHOST="+db.Host, "PGPORT="+strconv.Itoa(db.Port), "PGDATABASE="+db.Name, "PGSSLMODE=disable")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	out := streamLines(stdout)
	ctx := func() string { return "app:\n" + out.String() + "leash:\n" + stderr.String() }
	user := out.waitFor(t, regexp.MustCompile(`connected as (\S+)`), 30*time.Second, ctx)[1]
	out.waitFor(t, regexp.MustCompile(`query ok as `+regexp.QuoteMeta(user)), 10*time.Second, ctx)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-out.done
	if err := cmd.Wait(); err != nil {
		t.Fatalf("leash: %v\n%s", err, ctx())
	}
	if k8s.Reviews.Load() == 0 {
		t.Errorf("Vault never asked the TokenReview API: leash did not log in with Kubernetes auth")
	}
	// kubernetes.hcl asks for JSON logs.
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("leash log line is not JSON: %s", line)
			break
		}
	}
	leaseCheck(t, srv, db, before, user)
}

// TestSystemdExample runs the unit's command line with systemd.hcl against
// Vault: AppRole login, the user name on /dev/fd/3 and the password on
// /dev/fd/4 from one lease, an audit trail without the secret. Flags
// override only the paths systemd would provide and the AppRole mount; the
// stand-in for legacy-report prints what it was given.
func TestSystemdExample(t *testing.T) {
	leash := leashBin(t)
	srv, db, _ := vaultSetup(t, "1m", "2m")
	// The README's Vault side: a legacy-report role, policy and AppRole.
	srv.Write(t, "database/roles/legacy-report", map[string]any{
		"db_name": "app-db",
		"creation_statements": []string{
			`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
		},
		"default_ttl": "1m", "max_ttl": "2m",
	})
	if _, err := srv.Client.Logical().Write("database/config/app-db", map[string]any{"allowed_roles": "app-readonly,legacy-report"}); err != nil {
		t.Fatal(err)
	}
	pol := srv.Policy(t, `
path "database/creds/legacy-report" { capabilities = ["read"] }
path "sys/leases/revoke"            { capabilities = ["update"] }
`)
	ar := srv.AppRole(t, []string{pol}, 10*time.Minute, time.Hour, false)
	dir := t.TempDir()
	roleID, secretID, audit := filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id"), filepath.Join(dir, "audit.jsonl")
	for f, v := range map[string]string{roleID: ar.RoleID, secretID: ar.SecretID} {
		if err := os.WriteFile(f, []byte(v), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	before := srv.LeaseIDs(t, "database/creds/legacy-report/")

	// The stand-in reads the two descriptors the unit names and logs in
	// with them (psql's password comes from the fd, not the environment).
	report := `user=$(cat /dev/fd/3); pw=$(cat /dev/fd/4); echo "user $user"; echo "pw $pw"`
	cmd := exec.Command(leash, "-c", "systemd.hcl", "--auth-mount", ar.Mount,
		"--role-id-file", roleID, "--secret-id-file", secretID, "--audit-file", audit,
		"--", "sh", "-c", report)
	cmd.Env = cleanEnv("VAULT_ADDR=" + srv.Addr)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("leash -c systemd.hcl: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var user, pw string
	for _, line := range strings.Split(stdout.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "user "); ok {
			user = v
		}
		if v, ok := strings.CutPrefix(line, "pw "); ok {
			pw = v
		}
	}
	if !strings.HasPrefix(user, "v-") || !strings.Contains(user, "-legacy-r") || len(pw) < 16 {
		t.Fatalf("the binary got user %q and a %d-byte password, want a legacy-report credential", user, len(pw))
	}
	trail, err := os.ReadFile(audit)
	if err != nil {
		t.Fatalf("audit file: %v", err)
	}
	for _, ev := range []string{"issued", "revoked"} {
		if !strings.Contains(string(trail), ev) {
			t.Errorf("audit trail has no %q event:\n%s", ev, trail)
		}
	}
	if strings.Contains(string(trail), pw) || strings.Contains(stderr.String(), pw) {
		t.Errorf("the password appears in leash's audit file or log")
	}
	for _, id := range srv.LeaseIDs(t, "database/creds/legacy-report/") {
		if !slices.Contains(before, id) {
			t.Errorf("lease left in Vault after leash exited")
		}
	}
	if db.RoleExists(t, user) {
		t.Errorf("role %s still exists after leash exited", user)
	}
}

// demoCmd runs `make demo`'s program with the binaries built here.
func demoCmd(t *testing.T, extra ...string) *exec.Cmd {
	t.Helper()
	bin := testvault.Require(t)
	args := append([]string{
		"-leash", leashBin(t),
		"-vault", bin,
		"-app", build(t, "github.com/leash-dev/leash/examples/demo"),
	}, extra...)
	cmd := exec.Command(build(t, "github.com/leash-dev/leash/examples/demo/run"), args...)
	pgURL := testpg.AdminURL()
	cmd.Env = cleanEnv("LEASH_TEST_PG_URL=" + pgURL)
	return cmd
}

// TestDemo runs the demo end to end in its short mode (one rotation) with
// PostgreSQL, and with child tokens when PostgreSQL is not used.
func TestDemo(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		want  []string
	}{
		{"postgres", nil, []string{"PostgreSQL role v-", "roles left in PostgreSQL:  0", "dropped database"}},
		{"tokens", []string{"-no-pg"}, []string{"Vault token with accessor"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := demoCmd(t, append([]string{"-rotations", "1"}, tc.flags...)...)
			code, out := exitCode(t, cmd)
			if code != 0 {
				t.Fatalf("demo: exit %d\n%s", code, out)
			}
			want := append([]string{
				"rotation 1 of 1", "leases left in Vault:      0", "leash's login tokens left: 0",
				"leash.lease: lease issued", "leash.lease: lease rotated", "ok: rotated 1 times",
			}, tc.want...)
			if tc.name == "postgres" && strings.Contains(out, "PostgreSQL is not reachable") {
				if os.Getenv("LEASH_REQUIRE_VAULT") == "1" {
					t.Fatalf("PostgreSQL not reachable:\n%s", out)
				}
				t.Skip("PostgreSQL not reachable")
			}
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("demo output lacks %q\n%s", w, out)
				}
			}
		})
	}
}

// TestDemoInterrupt sends Ctrl-C's SIGINT to the demo while the app runs:
// leash must stop it and revoke, and the demo must clean up and exit 130.
func TestDemoInterrupt(t *testing.T) {
	cmd := demoCmd(t, "-rotations", "5")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	out := streamLines(stdout)
	out.waitFor(t, regexp.MustCompile(`app +\| holding `), 60*time.Second, out.String)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { <-out.done; done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		t.Fatalf("demo did not exit within 60s of SIGINT:\n%s", out.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("demo after SIGINT: %v, want exit 130\n%s", err, out.String())
	}
	for _, w := range []string{"leases left in Vault:      0", "leash's login tokens left: 0", "stopped by signal"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("demo output lacks %q\n%s", w, out.String())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSystemdUnit checks the unit with systemd-analyze verify (when
// installed) and that it agrees with systemd.hcl: the credentials it loads
// are the files the config reads, and the binary's /dev/fd numbers are the
// config's outputs in order.
func TestSystemdUnit(t *testing.T) {
	raw, err := os.ReadFile("systemd/legacy-report.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.ReplaceAll(string(raw), "\\\n", " ")
	var execStart []string
	var creds []string
	for _, line := range strings.Split(unit, "\n") {
		key, val, ok := strings.Cut(strings.TrimSpace(line), "=")
		switch {
		case !ok:
		case key == "ExecStart":
			execStart = strings.Fields(val)
		case key == "LoadCredential":
			name, _, _ := strings.Cut(val, ":")
			creds = append(creds, name)
		}
	}
	if len(execStart) == 0 || execStart[0] != "/usr/local/bin/leash" {
		t.Fatalf("ExecStart %q: want /usr/local/bin/leash first", execStart)
	}
	hcl, err := os.ReadFile("systemd.hcl")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range creds {
		if !strings.Contains(string(hcl), `"/run/credentials/legacy-report.service/`+c+`"`) {
			t.Errorf("LoadCredential %s: systemd.hcl does not read /run/credentials/legacy-report.service/%s", c, c)
		}
	}
	if len(creds) != 2 {
		t.Errorf("LoadCredential for %v, want role-id and secret-id", creds)
	}
	// Outputs are fds 3, 4, ... in order: db_user then db_password.
	cmdline := strings.Join(execStart, " ")
	if !strings.Contains(cmdline, "--db-user-file /dev/fd/3 --db-password-file /dev/fd/4") ||
		strings.Index(string(hcl), `"db_user=`) > strings.Index(string(hcl), `"db_password=`) {
		t.Errorf("ExecStart's /dev/fd numbers do not match systemd.hcl's output order")
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: unit syntax not verified")
		return
	}
	// verify wants ExecStart's binary to exist: any executable will do.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unitCopy := strings.Replace(string(raw), "/usr/local/bin/leash", self, 1)
	path := filepath.Join(dir, "legacy-report.service")
	if err := os.WriteFile(path, []byte(unitCopy), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", path)
	cmd.Dir = dir
	code, out := exitCode(t, cmd)
	// verify exits 0 on directives it ignores; any message is a problem.
	if code != 0 || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: exit %d\n%s", code, out)
	}
}

// TestECSTaskDefinition: ecs/task-definition.json parses, runs leash as
// the entry point with --auth aws and the task role, leaves ECS time for
// leash's clean-up, and its flags pass `leash validate`.
func TestECSTaskDefinition(t *testing.T) {
	b, err := os.ReadFile("ecs/task-definition.json")
	if err != nil {
		t.Fatal(err)
	}
	var td struct {
		TaskRoleArn          string `json:"taskRoleArn"`
		ContainerDefinitions []struct {
			EntryPoint  []string `json:"entryPoint"`
			Command     []string `json:"command"`
			StopTimeout int      `json:"stopTimeout"`
		} `json:"containerDefinitions"`
	}
	if err := json.Unmarshal(b, &td); err != nil {
		t.Fatalf("task-definition.json: %v", err)
	}
	if td.TaskRoleArn == "" || len(td.ContainerDefinitions) != 1 {
		t.Fatalf("want a task role and one container: %+v", td)
	}
	c := td.ContainerDefinitions[0]
	i := slices.Index(c.EntryPoint, "--")
	if len(c.EntryPoint) == 0 || filepath.Base(c.EntryPoint[0]) != "leash" || i != len(c.EntryPoint)-1 || len(c.Command) == 0 {
		t.Fatalf("entryPoint %q, command %q: want leash [flags] -- and the app as the command", c.EntryPoint, c.Command)
	}
	flags := c.EntryPoint[1:i]
	if !slices.Contains(flags, "aws") {
		t.Errorf("entryPoint flags %q: want --auth aws", flags)
	}
	if c.StopTimeout < 25 {
		t.Errorf("stopTimeout %d: below kill timeout 20s + revoke timeout 5s", c.StopTimeout)
	}
	cmd := exec.Command(leashBin(t), append([]string{"validate"}, flags...)...)
	cmd.Env = cleanEnv("VAULT_ADDR=https://vault.example.com:8200")
	if code, out := exitCode(t, cmd); code != 0 || !strings.Contains(out, "ok:") {
		t.Errorf("leash validate %q: exit %d\n%s", flags, code, out)
	}
}
