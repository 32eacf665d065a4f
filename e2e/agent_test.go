package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testchild"
	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
)

// Vault Agent configs run by the leash binary (issue 19): the stanzas
// leash takes over, against the real Vault and PostgreSQL, with the
// template output compared byte for byte with what Vault Agent itself
// renders from the same file, Vault Agent being the Vault binary the test
// server runs (`vault agent`). Template destinations are on a tmpfs
// mounted for the test (memDir), as a Kubernetes emptyDir with medium
// Memory is.

// agentFixture is what the agent configs of a test log in to and read: a
// KV v2 secret, an AppRole whose role_id and secret_id are in files, and,
// when asked, PostgreSQL credentials from the database engine.
type agentFixture struct {
	srv              *testvault.Server
	kv               string // KV v2 mount holding "app"
	ar               *testvault.AppRole
	roleID, secretID string // the AppRole's files
	policy           string // what every login of the test gets
	dir              string // on disk: configs, credential files, outputs
	mem              string // memDir: template destinations
	db               *testpg.DB
	creds            string // MOUNT/creds/app, with db
}

// agentApp is the KV secret "app": characters a renderer must pass
// through untouched.
var agentApp = map[string]any{
	"user": "app", "password": `hunter2<>&"'`, "port": 5432, "multi": "line1\nline2\n", "unicode": "héllo wörld",
}

// newAgentFixture sets up a fixture on srv; with db, database
// credentials with credsTTL as their TTL and max TTL.
func newAgentFixture(t *testing.T, srv *testvault.Server, db bool, credsTTL time.Duration) *agentFixture {
	t.Helper()
	f := &agentFixture{srv: srv, kv: srv.KV(t, 2), dir: t.TempDir(), mem: memDir(t)}
	srv.Write(t, f.kv+"/data/app", map[string]any{"data": agentApp})
	rules := `path "` + f.kv + `/*" { capabilities = ["read", "list"] }
path "sys/leases/revoke" { capabilities = ["update"] }
`
	if db {
		f.db = testpg.Database(t)
		f.creds = srv.Database(t, f.db.VaultURL(), f.db.User, f.db.Password, credsTTL, credsTTL)
		rules += `path "` + f.creds + `" { capabilities = ["read"] }` + "\n"
	}
	f.policy = srv.Policy(t, rules)
	f.ar = srv.AppRole(t, []string{f.policy}, time.Hour, time.Hour, false)
	f.roleID, f.secretID = filepath.Join(f.dir, "role-id"), filepath.Join(f.dir, "secret-id")
	f.writeFile(t, f.roleID, f.ar.RoleID)
	f.resetSecretID(t)
	return f
}

// resetSecretID writes the secret_id file again: Vault Agent and leash
// remove it after reading unless told not to.
func (f *agentFixture) resetSecretID(t *testing.T) {
	t.Helper()
	f.writeFile(t, f.secretID, f.ar.SecretID)
}

func (f *agentFixture) writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// config writes an agent config, its @NAME@ placeholders replaced, and
// returns its path and text.
func (f *agentFixture) config(t *testing.T, name, text string, more ...string) (string, string) {
	t.Helper()
	pairs := []string{"@ADDR@", f.srv.Addr, "@APPROLE@", f.ar.Mount, "@ROLE_ID@", f.roleID, "@SECRET_ID@", f.secretID,
		"@KV@", f.kv, "@CREDS@", f.creds, "@MEM@", f.mem, "@DIR@", f.dir}
	text = strings.NewReplacer(append(pairs, more...)...).Replace(text)
	p := filepath.Join(f.dir, name)
	f.writeFile(t, p, text)
	return p, text
}

// agentApprole is the vault and auto_auth stanzas of most configs here.
const agentApprole = `vault { address = "@ADDR@" }
auto_auth {
  method "approle" {
    mount_path = "auth/@APPROLE@"
    config = {
      role_id_file_path                   = "@ROLE_ID@"
      secret_id_file_path                 = "@SECRET_ID@"
      remove_secret_id_file_after_reading = false
    }
  }
}
`

// at returns "FILE:LINE:COL" of the first occurrence of what in the
// config text, as leash's errors name a stanza or key.
func at(t *testing.T, file, text, what string) string {
	t.Helper()
	return atAfter(t, file, text, what, 0)
}

// atAfter is at for the first occurrence from byte from on.
func atAfter(t *testing.T, file, text, what string, from int) string {
	t.Helper()
	i := strings.Index(text[from:], what)
	if i < 0 {
		t.Fatalf("%q not in the config", what)
	}
	i += from
	line := strings.Count(text[:i], "\n") + 1
	col := i - strings.LastIndex(text[:i], "\n")
	return fmt.Sprintf("%s:%d:%d", file, line, col)
}

// hclList writes argv as an HCL list of strings.
func hclList(argv ...string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// agentEnv is the environment of leash and Vault Agent running an agent
// config: the test's without VAULT_* and BAO_* variables, which would win
// over the config's vault {} stanza.
func agentEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") && !strings.HasPrefix(kv, "BAO_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// agentCommand prepares leash with args in agentEnv.
func agentCommand(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := Command(t, args...)
	cmd.Env = agentEnv()
	return cmd
}

// startAgent starts leash with args in agentEnv, with an --audit-file so
// that the test can wait on its events.
func startAgent(t *testing.T, args ...string) *Leash {
	t.Helper()
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	p := StartCmd(t, agentCommand(t, append([]string{"--audit-file", audit}, args...)...))
	p.Audit = audit
	return p
}

// vaultAgent runs `vault agent -config FILE` (with -exit-after-auth for a
// config of templates: it renders each once and exits; a config with exec
// exits with its child) and fails the test unless it exits 0.
func vaultAgent(t *testing.T, config string, exitAfterAuth bool) {
	t.Helper()
	args := []string{"agent", "-config=" + config, "-log-level=warn"}
	if exitAfterAuth {
		args = append(args, "-exit-after-auth")
	}
	ctx := ctxTimeout(t, 2*time.Minute)
	cmd := exec.CommandContext(ctx, testvault.Require(t), args...)
	cmd.Env = agentEnv("HOME=" + t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vault agent: %v\n%s", err, out)
	}
}

// dbLine finds "KEY=VALUE" lines of rendered credentials.
func dbLine(b []byte, key string) string {
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	return ""
}

// TestAgentIssueConfig: the config in the shape issue 19 shows, with
// approle instead of kubernetes, and PostgreSQL credentials from the
// database engine. Its sink is refused, naming its line, before anything
// is read or issued; with --ignore-sinks the child finds the credentials
// at exactly the destination, mode 0400, and they log in to PostgreSQL;
// the secret_id file is removed after reading (Vault Agent's default); no
// token is written anywhere; on exit the file is removed and the lease
// revoked. Vault Agent renders the same bytes from the same file.
func TestAgentIssueConfig(t *testing.T) {
	t.Parallel()
	f := newAgentFixture(t, testvault.Shared(t), true, time.Hour)
	config, text := f.config(t, "agent.hcl", `# The issue's example, with approle instead of kubernetes.
vault { address = "@ADDR@" }
auto_auth {
  method "approle" {
    mount_path = "auth/@APPROLE@"
    config = {
      role_id_file_path   = "@ROLE_ID@"
      secret_id_file_path = "@SECRET_ID@"
    }
  }
  sink "file" { config = { path = "@MEM@/vault-token" } }
}
template {
  destination = "@MEM@/db-creds"
  contents = <<EOT
{{ with secret "@CREDS@" }}
DB_USER={{ .Data.username }}
DB_PASS={{ .Data.password }}
{{ end }}
EOT
}
`)
	dest, sink := filepath.Join(f.mem, "db-creds"), filepath.Join(f.mem, "vault-token")
	marker := filepath.Join(f.dir, "started")

	code, stderr := ExitStatus(t, agentCommand(t, "--agent-config", config, "--", "touch", marker))
	want := at(t, config, text, `sink "file"`) + ": auto_auth sink: leash keeps its Vault token in memory only"
	if code != exitConfig || !strings.Contains(stderr, want) || !strings.Contains(stderr, "--ignore-sinks") {
		t.Fatalf("with a sink: exit %d, want %d with %q and --ignore-sinks in stderr:\n%s", code, exitConfig, want, stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the child ran although the sink was refused")
	}
	if _, err := os.Stat(f.secretID); err != nil {
		t.Errorf("the secret_id file was read although the sink was refused: %v", err)
	}
	if ids := leaseIDs(t, f.srv, f.creds); len(ids) != 0 {
		t.Errorf("%d credentials issued although the sink was refused", len(ids))
	}

	lp := startAgent(t, append([]string{"--agent-config", config, "--ignore-sinks", "--", "env", "DEST=" + dest}, watchArgs(t, "DEST")...)...)
	_, b := lp.Ready()
	user, pw := dbLine(b, "DB_USER"), dbLine(b, "DB_PASS")
	if user == "" || pw == "" || string(b) != "\nDB_USER="+user+"\nDB_PASS="+pw+"\n\n" {
		t.Fatalf("the child read %q at %s, want the issue's template rendered", b, dest)
	}
	if err := f.db.Connect(user, pw); err != nil || !f.db.RoleExists(t, user) {
		t.Errorf("the rendered credentials do not log in to PostgreSQL: %v", err)
	}
	if fi, err := os.Lstat(dest); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o400 {
		t.Errorf("destination: %v, %v; want a regular file, mode 0400", fi, err)
	}
	if _, err := os.Stat(f.secretID); !os.IsNotExist(err) {
		t.Errorf("the secret_id file is still there (%v); Vault Agent's default removes it", err)
	}
	if _, err := os.Stat(sink); !os.IsNotExist(err) {
		t.Errorf("the sink's file exists (%v): leash wrote its token", err)
	}
	if strings.Contains(lp.Log.String(), pw) {
		t.Error("leash's log holds the password")
	}
	lp.Signal(syscall.SIGTERM)
	if l := lp.Next(60 * time.Second); l != "term" {
		t.Errorf("child said %q, want term", l)
	}
	if code := lp.Exit(60 * time.Second); code != 0 {
		t.Errorf("leash exited %d", code)
	}
	if _, err := os.Lstat(dest); !os.IsNotExist(err) {
		t.Errorf("destination after exit: %v, want it removed", err)
	}
	if ids := leaseIDs(t, f.srv, f.creds); len(ids) != 0 || f.db.RoleExists(t, user) {
		t.Errorf("after exit: %d leases left, role exists %v; want the credentials revoked", len(ids), f.db.RoleExists(t, user))
	}

	// Vault Agent renders the same bytes from the same file (its own
	// credentials: the user name's random part and the password masked).
	f.resetSecretID(t)
	vaultAgent(t, config, true)
	a, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	if ml, ma := maskCreds(string(b)), maskCreds(string(a)); ml != ma || ml == string(b) {
		t.Errorf("leash and Vault Agent differ (masked):\nleash:       %q\nVault Agent: %q", ml, ma)
	}
}

// A secret_id file removed after reading (Vault Agent's default) is gone
// when leash runs again: a config error naming the file, at once, not 30
// s of "Vault unreachable".
func TestAgentSecretIDFileGone(t *testing.T) {
	t.Parallel()
	f := newAgentFixture(t, testvault.Shared(t), false, 0)
	config, _ := f.config(t, "agent.hcl", strings.Replace(agentApprole, "remove_secret_id_file_after_reading = false", "remove_secret_id_file_after_reading = true", 1)+`template {
  destination = "@MEM@/app.txt"
  contents    = "{{ with secret \"@KV@/data/app\" }}{{ .Data.data.user }}{{ end }}"
}
`)
	Output(t, agentCommand(t, "--agent-config", config, "--", "true"))
	if _, err := os.Stat(f.secretID); !os.IsNotExist(err) {
		t.Fatalf("the secret_id file after the first run: %v, want it removed", err)
	}
	start := time.Now()
	code, stderr := ExitStatus(t, agentCommand(t, "--agent-config", config, "--", "true"))
	if code != exitConfig || !strings.Contains(stderr, f.secretID) || strings.Contains(stderr, "unreachable") {
		t.Errorf("second run: exit %d, want %d naming %s (not unreachable); stderr:\n%s", code, exitConfig, f.secretID, stderr)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the second run took %s: the missing file was retried until --startup-timeout", d)
	}
}

// secret_id_response_wrapping_path: a secret_id wrapped at the role's
// secret-id path logs in, with leash and with Vault Agent, which render the
// same bytes; one unwrapped in transit and wrapped again (sys/wrapping/wrap)
// is refused by both before it is unwrapped: leash exits 77 naming the
// file and both paths, with neither the token nor the secret_id in its
// output, and the child does not run.
func TestAgentSecretIDWrapPath(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	f := newAgentFixture(t, srv, false, 0)
	wantPath := "auth/" + f.ar.Mount + "/role/app/secret-id"
	// exit_on_err: Vault Agent gives up on the refused token instead of
	// retrying it (leash drops the key; it never retries a refusal).
	config, _ := f.config(t, "agent.hcl", `vault { address = "@ADDR@" }
auto_auth {
  method "approle" {
    mount_path  = "auth/@APPROLE@"
    exit_on_err = true
    config = {
      role_id_file_path                   = "@ROLE_ID@"
      secret_id_file_path                 = "@SECRET_ID@"
      remove_secret_id_file_after_reading = false
      secret_id_response_wrapping_path    = "@WRAP_PATH@"
    }
  }
}
template {
  destination = "@MEM@/app.txt"
  contents    = "{{ with secret \"@KV@/data/app\" }}{{ .Data.data.user }}{{ end }}"
}
`, "@WRAP_PATH@", wantPath)
	c, err := srv.Client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(srv.RootToken)
	c.SetWrappingLookupFunc(func(_, path string) string {
		if path == "sys/wrapping/unwrap" || path == "sys/wrapping/lookup" {
			return ""
		}
		return "5m"
	})
	// wrapped returns a wrapping token for a new secret_id, created at
	// wantPath, or (rewrap) wrapped again at sys/wrapping/wrap, and the
	// secret_id.
	wrapped := func(t *testing.T, rewrap bool) (string, string) {
		t.Helper()
		sec, err := c.Logical().Write(wantPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		tok := sec.WrapInfo.Token
		if !rewrap {
			return tok, ""
		}
		uw, err := c.Logical().Unwrap(tok)
		if err != nil {
			t.Fatal(err)
		}
		sid := uw.Data["secret_id"].(string)
		sec, err = c.Logical().Write("sys/wrapping/wrap", map[string]any{"secret_id": sid})
		if err != nil {
			t.Fatal(err)
		}
		return sec.WrapInfo.Token, sid
	}
	dest := filepath.Join(f.mem, "app.txt")

	tok, _ := wrapped(t, false)
	f.writeFile(t, f.secretID, tok)
	vaultAgent(t, config, true)
	a, err := os.ReadFile(dest)
	if err != nil || string(a) != "app" {
		t.Fatalf("vault agent rendered %q (%v), want app", a, err)
	}
	os.Remove(dest)
	tok, _ = wrapped(t, false)
	f.writeFile(t, f.secretID, tok)
	out, stderr := Output(t, agentCommand(t, "--agent-config", config, "--", "sh", "-c", `cat "$0"`, dest))
	if string(out) != string(a) {
		t.Errorf("the child read %q, Vault Agent rendered %q; stderr:\n%s", out, a, stderr)
	}

	tok, sid := wrapped(t, true)
	f.writeFile(t, f.secretID, tok)
	marker := filepath.Join(f.dir, "started")
	code, stderr := ExitStatus(t, agentCommand(t, "--agent-config", config, "--", "touch", marker))
	for _, w := range []string{f.secretID, `created at "sys/wrapping/wrap"`, `not at "` + wantPath + `"`, "find out who replaced"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr does not name %s:\n%s", w, stderr)
		}
	}
	if code != exitNoPerm || strings.Contains(stderr, tok) || strings.Contains(stderr, sid) {
		t.Errorf("re-wrapped secret_id: exit %d, want %d without the token or the secret_id in stderr:\n%s", code, exitNoPerm, stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the child ran with a re-wrapped secret_id")
	}
	// Vault Agent refuses it too, and neither has unwrapped it.
	if _, err := c.Logical().Write("sys/wrapping/lookup", map[string]any{"token": tok}); err != nil {
		t.Fatalf("leash used the refused wrapping token up: %v", err)
	}
	cmd := exec.CommandContext(ctxTimeout(t, 2*time.Minute), testvault.Require(t), "agent", "-config="+config, "-exit-after-auth")
	cmd.Env = agentEnv("HOME=" + t.TempDir())
	ao, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(ao), "unable to validate wrapping token creation path") {
		t.Errorf("vault agent on the re-wrapped secret_id: %v, want it refused:\n%s", err, ao)
	}
	if _, err := c.Logical().Write("sys/wrapping/lookup", map[string]any{"token": tok}); err != nil {
		t.Errorf("vault agent used the refused wrapping token up: %v", err)
	}
}

// Relative paths in vault {} and in a template's file function name files
// in the directory leash was started in, as in Vault Agent, even after
// leash has left it (it does once the child runs): cert logins, which
// read the CA and the client certificate again for a fresh connection
// each, keep working for tokens of 6 s, and the template renders again
// with `file "marker"` for a new database credential.
func TestAgentRelativeVaultPaths(t *testing.T) {
	t.Parallel()
	srv := testvault.NewTLS(t)
	f := newAgentFixture(t, srv, true, 8*time.Second)
	f.writeFile(t, filepath.Join(f.dir, "marker"), "found")
	c := srv.CertAuth(t, []string{f.policy}, 6*time.Second, 6*time.Second)
	for name, from := range map[string]string{"ca.pem": srv.CACert, "client.pem": c.CertFile, "client-key.pem": c.KeyFile} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		f.writeFile(t, filepath.Join(f.dir, name), string(b))
	}
	f.config(t, "agent.hcl", `vault {
  address     = "@ADDR@"
  ca_cert     = "ca.pem"
  client_cert = "./client.pem"
  client_key  = "client-key.pem"
}
auto_auth {
  method "cert" {
    mount_path = "auth/@CERT@"
    config     = { name = "@ROLE@" }
  }
}
template_config {
  lease_renewal_threshold = 0.5
}
template {
  destination = "@MEM@/app.txt"
  contents    = "{{ file \"marker\" }} {{ with secret \"@CREDS@\" }}{{ .Data.username }}{{ end }}"
}
`, "@CERT@", c.Mount, "@ROLE@", c.Role)
	cmd := agentCommand(t, append([]string{"--audit-file", "audit.jsonl", "--agent-config", "agent.hcl", "--", "env", "DEST=" + filepath.Join(f.mem, "app.txt")}, watchArgs(t, "DEST")...)...)
	cmd.Dir = f.dir
	lp := StartCmd(t, cmd)
	_, first := lp.Ready()
	if !strings.HasPrefix(string(first), "found v-") {
		t.Fatalf("child read %q", first)
	}
	lp.WaitEvent(evLogin, 3, 60*time.Second, nil)   // two logins after leash left
	lp.WaitEvent(evRetired, 1, 60*time.Second, nil) // a render after leash left
	if b, err := os.ReadFile(filepath.Join(f.mem, "app.txt")); err != nil || !strings.HasPrefix(string(b), "found v-") || string(b) == string(first) {
		t.Errorf("after the hand-over the destination holds %q (%v), was %q", b, err, first)
	}
	if strings.Contains(lp.Log.String(), "no such file") || len(lp.Log.Events(evFailed)) > 0 {
		t.Errorf("leash lost a relative path:\n%s", lp.Log.String())
	}
	lp.Signal(syscall.SIGTERM)
	if code := lp.Exit(60 * time.Second); code != 0 {
		t.Errorf("leash exited %d", code)
	}
}

// A destination on disk is a config error naming the template's
// destination line, before anything is issued; --allow-disk writes it
// there (and removes it on exit).
func TestAgentDestinationOnDisk(t *testing.T) {
	t.Parallel()
	f := newAgentFixture(t, testvault.Shared(t), false, 0)
	if !onDiskFS(f.dir) {
		t.Skip("the temporary directory is on tmpfs here")
	}
	config, text := f.config(t, "agent.hcl", agentApprole+`template {
  destination = "@DIR@/app.txt"
  contents    = "{{ with secret \"@KV@/data/app\" }}{{ .Data.data.user }}{{ end }}"
}
`)
	dest := filepath.Join(f.dir, "app.txt")
	code, stderr := ExitStatus(t, agentCommand(t, "--agent-config", config, "--", "true"))
	want := at(t, config, text, "destination =") + ": template destination: "
	if code != exitConfig || !strings.Contains(stderr, want) || !strings.Contains(stderr, "not on tmpfs or ramfs") {
		t.Errorf("destination on disk: exit %d, want %d with %q in stderr:\n%s", code, exitConfig, want, stderr)
	}
	if strings.Contains(stderr, "auth/"+f.ar.Mount+"/login") {
		t.Error("leash logged in although the destination was refused")
	}
	out, _ := Output(t, agentCommand(t, "--agent-config", config, "--allow-disk", "--", "sh", "-c", `cat "$0"`, dest))
	if string(out) != "app" {
		t.Errorf("with --allow-disk the child read %q", out)
	}
	if _, err := os.Lstat(dest); !os.IsNotExist(err) {
		t.Errorf("destination after exit: %v, want it removed", err)
	}
}

// Every auto_auth method leash takes over, each logging in to the real
// Vault (kubernetes through testvault's fake TokenReview API, cert over
// TLS) and rendering a KV template to a tmpfs destination; Vault Agent
// renders the same bytes from each file.
func TestAgentAuthMethods(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	const tmpl = `template {
  destination = "@MEM@/app.txt"
  contents    = "{{ with secret \"@KV@/data/app\" }}{{ .Data.data.user }}:{{ .Data.data.password }}{{ end }}"
}
`
	want := "app:" + agentApp["password"].(string)
	// run runs Vault Agent and then leash on config: each must render
	// the destination, with the same bytes.
	run := func(t *testing.T, f *agentFixture, config string, flags ...string) {
		t.Helper()
		dest := filepath.Join(f.mem, "app.txt")
		vaultAgent(t, config, true)
		b, err := os.ReadFile(dest)
		if err != nil || string(b) != want {
			t.Errorf("vault agent rendered %q (%v), want %q", b, err, want)
		}
		os.Remove(dest)
		args := append(append([]string{"--agent-config", config}, flags...), "--", "sh", "-c", `cat "$0"`, dest)
		out, stderr := Output(t, agentCommand(t, args...))
		if string(out) != want {
			t.Errorf("the child read %q, want %q; stderr:\n%s", out, want, stderr)
		}
	}
	s := &subtests{t: t}
	s.run("approle", func(t *testing.T) {
		// mount_path, and remove_secret_id_file_after_reading = false.
		f := newAgentFixture(t, srv, false, 0)
		config, _ := f.config(t, "agent.hcl", agentApprole+tmpl)
		run(t, f, config)
		if _, err := os.Stat(f.secretID); err != nil {
			t.Errorf("remove_secret_id_file_after_reading = false, yet: %v", err)
		}
	})
	s.run("token_file", func(t *testing.T) {
		f := newAgentFixture(t, srv, false, 0)
		token := filepath.Join(f.dir, "token")
		f.writeFile(t, token, srv.LimitedToken(t, `path "`+f.kv+`/*" { capabilities = ["read"] }`)+"\n")
		config, _ := f.config(t, "agent.hcl", `vault { address = "@ADDR@" }
auto_auth {
  method "token_file" {
    config = { token_file_path = "@TOKEN@" }
  }
}
`+tmpl, "@TOKEN@", token)
		run(t, f, config)
	})
	s.run("jwt", func(t *testing.T) {
		f := newAgentFixture(t, srv, false, 0)
		j := srv.JWT(t, []string{f.policy}, time.Hour, time.Hour)
		jwt := filepath.Join(f.dir, "jwt")
		f.writeFile(t, jwt, j.Token(t, time.Hour))
		const method = `vault { address = "@ADDR@" }
auto_auth {
  method {
    type       = "jwt"
    mount_path = "auth/@JWT@"
    config = {
      role = "@ROLE@"
      path = "@FILE@"
      remove_jwt_after_reading = false
    }
  }
}
`
		more := []string{"@JWT@", j.Mount, "@ROLE@", j.Role, "@FILE@", jwt}
		config, _ := f.config(t, "agent.hcl", method+tmpl, more...)
		run(t, f, config)
		if _, err := os.Stat(jwt); err != nil {
			t.Errorf("the JWT file: %v", err)
		}
		// wrap_ttl wraps the token for a sink (Vault Agent's templates
		// then get the wrapped token and fail): leash drops both.
		wrapped, _ := f.config(t, "wrapped.hcl", `vault { address = "@ADDR@" }
auto_auth {
  method "jwt" {
    mount_path = "auth/@JWT@"
    wrap_ttl   = "5m"
    config     = { role = "@ROLE@", path = "@FILE@" }
  }
  sink "file" { config = { path = "@MEM@/token" } }
}
`+tmpl, more...)
		out, stderr := Output(t, agentCommand(t, "--agent-config", wrapped, "--ignore-sinks", "--", "sh", "-c", `cat "$0"`, filepath.Join(f.mem, "app.txt")))
		if string(out) != want {
			t.Errorf("with wrap_ttl and a sink: the child read %q; stderr:\n%s", out, stderr)
		}
		if _, err := os.Stat(filepath.Join(f.mem, "token")); !os.IsNotExist(err) {
			t.Errorf("the sink's file exists (%v): leash wrote its token", err)
		}
	})
	s.run("kubernetes", func(t *testing.T) {
		f := newAgentFixture(t, srv, false, 0)
		k := srv.Kubernetes(t, []string{f.policy}, time.Hour, time.Hour)
		token := filepath.Join(f.dir, "sa-token")
		f.writeFile(t, token, k.JWT)
		config, _ := f.config(t, "agent.hcl", `vault { address = "@ADDR@" }
auto_auth {
  method "kubernetes" {
    mount_path = "auth/@K8S@/"
    config = {
      role       = "@ROLE@"
      token_path = "@FILE@"
    }
  }
}
`+tmpl, "@K8S@", k.Mount, "@ROLE@", k.Role, "@FILE@", token)
		run(t, f, config)
		if k.Reviews.Load() == 0 {
			t.Error("Vault never asked the TokenReview API: no kubernetes login happened")
		}
	})
	s.run("cert", func(t *testing.T) {
		// Over TLS, with vault {}'s TLS keys: the CA by ca_path and the
		// name checked by tls_server_name; a wrong name fails, and
		// tls_skip_verify turns the check off (with leash's warning).
		tls := testvault.NewTLS(t)
		f := newAgentFixture(t, tls, false, 0)
		c := tls.CertAuth(t, []string{f.policy}, time.Hour, time.Hour)
		caDir := filepath.Join(f.dir, "ca.d")
		ca, err := os.ReadFile(tls.CACert)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(caDir, 0o700); err != nil {
			t.Fatal(err)
		}
		f.writeFile(t, filepath.Join(caDir, "vault-ca.pem"), string(ca))
		more := []string{"@CA_DIR@", caDir, "@CA@", tls.CACert, "@CERT@", c.Mount, "@ROLE@", c.Role, "@CLIENT_CERT@", c.CertFile, "@CLIENT_KEY@", c.KeyFile}
		// The client certificate in vault {}: Vault Agent's cert method
		// then logs in with the vault {} client, ca_path and all.
		config, _ := f.config(t, "agent.hcl", `vault {
  address         = "@ADDR@"
  ca_path         = "@CA_DIR@"
  tls_server_name = "localhost"
  client_cert     = "@CLIENT_CERT@"
  client_key      = "@CLIENT_KEY@"
}
auto_auth {
  method "cert" {
    mount_path = "auth/@CERT@"
    config     = { name = "@ROLE@" }
  }
}
`+tmpl, more...)
		run(t, f, config)

		// The client certificate in the method's config (Vault Agent's
		// login client then takes its CA from there only; leash has one
		// set of TLS settings for every request).
		const method = `auto_auth {
  method "cert" {
    mount_path = "auth/@CERT@"
    config = {
      name        = "@ROLE@"
      client_cert = "@CLIENT_CERT@"
      client_key  = "@CLIENT_KEY@"
    }
  }
}
`
		wrong, _ := f.config(t, "wrong-name.hcl", `vault {
  address         = "@ADDR@"
  ca_cert         = "@CA@"
  tls_server_name = "wrong.example.test"
}
`+method+tmpl, more...)
		code, stderr := ExitStatus(t, agentCommand(t, "--agent-config", wrong, "--startup-timeout", "5s", "--", "true"))
		if code == 0 || !strings.Contains(stderr, "wrong.example.test") {
			t.Errorf("tls_server_name %q: exit %d, want a failure naming it; stderr:\n%s", "wrong.example.test", code, stderr)
		}
		skip, _ := f.config(t, "skip-verify.hcl", `vault {
  address         = "@ADDR@"
  tls_skip_verify = true
}
`+method+tmpl, more...)
		out, stderr := Output(t, agentCommand(t, "--agent-config", skip, "--", "sh", "-c", `cat "$0"`, filepath.Join(f.mem, "app.txt")))
		if string(out) != want || !strings.Contains(stderr, "VAULT_SKIP_VERIFY") {
			t.Errorf("tls_skip_verify: the child read %q; want %q and leash's warning in stderr:\n%s", out, want, stderr)
		}
	})
	s.wait()
}

// agentTemplates is a config of template stanzas: contents and source,
// a heredoc, an indented heredoc and a quoted string holding ${...}
// literally (HCL 1 has no interpolation), error_on_missing_key both ways,
// perms (a string and an HCL number, both octal for Vault Agent),
// delimiters, KV and PostgreSQL credentials; and exit_after_auth and
// backup set to false, as Vault Agent examples often have them.
const agentTemplates = agentApprole + `exit_after_auth = false
template {
  destination = "@MEM@/app.env"
  backup      = false
  contents = <<EOT
{{ with secret "@KV@/data/app" }}USER={{ .Data.data.user }}
PASSWORD={{ .Data.data.password }}
PORT={{ .Data.data.port }}
KEYS={{ range $k, $v := .Data.data }}{{ $k }};{{ end }}
MULTI={{ .Data.data.multi }}
UNICODE={{ .Data.data.unicode }}
{{ .Data.data | toJSON }}
{{ end }}
EOT
}
template {
  source               = "@SOURCE@"
  destination          = "@MEM@/app.conf"
  perms                = "0440"
  left_delimiter       = "[["
  right_delimiter      = "]]"
  error_on_missing_key = true
}
template {
  destination          = "@MEM@/missing.txt"
  error_on_missing_key = false
  contents             = "{{ with secret \"@KV@/data/app\" }}[{{ .Data.data.nosuchkey }}]{{ end }}"
}
template {
  destination = "@MEM@/pretty.json"
  perms       = 0600
  contents    = "{{ with secret \"@KV@/data/app\" }}{{ .Data.data | toJSONPretty }}{{ end }}"
}
template {
  destination = "@MEM@/db.ini"
  contents = <<EOT
{{ with secret "@CREDS@" }}[db]
user={{ .Data.username }}
password={{ .Data.password }}
lease={{ .LeaseDuration }} {{ .Renewable }}
{{ end }}
EOT
}
template {
  destination = "@MEM@/indented.sh"
  contents = <<-EOT
    {{ with secret "@KV@/data/app" -}}
    export PATH=${PATH}:/opt/app
    export APP_USER='{{ .Data.data.user }}' APP_B64={{ base64Encode .Data.data.password }}
      # version {{ .Data.metadata.version }}
    {{- end }}
    EOT
}
template {
  destination = "@MEM@/quoted.txt"
  contents    = "${HOME} {{ with secret \"@KV@/data/app\" }}{{ .Data.data | toYAML }}{{ end }}\ttab"
}
`

// agentTemplateSource is the source file of agentTemplates, with [[ ]]
// delimiters and a {{ }} left alone.
const agentTemplateSource = `[[ with secret "@KV@/data/app" ]]user = "[[ .Data.data.user ]]"
password = [[ .Data.data.password | toJSON ]]
literal = "{{ not an action }}"
[[ end ]]
`

// agentOutputs are agentTemplates' destinations.
var agentOutputs = []string{"app.env", "app.conf", "missing.txt", "pretty.json", "db.ini", "indented.sh", "quoted.txt"}

// maskCreds replaces what Vault issues anew per login in rendered database
// credentials: the random part and time of the user name, the password.
func maskCreds(s string) string {
	s = regexp.MustCompile(`(v-approle-+app-)[A-Za-z0-9]{20}-[0-9]+`).ReplaceAllString(s, "${1}<random>-<time>")
	return regexp.MustCompile(`(?m)((?:password|DB_PASS)=)[A-Za-z0-9-]{20}$`).ReplaceAllString(s, "${1}<password>")
}

// The template stanzas render to the same bytes under leash and under
// Vault Agent (`vault agent -exit-after-auth`, the test server's binary)
// from the same config file against the same Vault; only the database
// user name's random part and the password, issued anew per login, are
// masked. Modes: perms are honoured by both; without perms Vault Agent
// writes 0644 and leash 0400 (documented). leash -c on what leash convert
// prints gives the same bytes and modes as --agent-config.
func TestAgentTemplatesMatchVaultAgent(t *testing.T) {
	t.Parallel()
	f := newAgentFixture(t, testvault.Shared(t), true, time.Hour)
	source := filepath.Join(f.dir, "app.ctmpl")
	f.writeFile(t, source, strings.ReplaceAll(agentTemplateSource, "@KV@", f.kv))
	config, _ := f.config(t, "agent.hcl", agentTemplates, "@SOURCE@", source)

	vaultAgent(t, config, true)
	agent := map[string][]byte{}
	agentModes := map[string]os.FileMode{}
	for _, n := range agentOutputs {
		p := filepath.Join(f.mem, n)
		b, err := os.ReadFile(p)
		fi, err2 := os.Stat(p)
		if err != nil || err2 != nil {
			t.Fatalf("vault agent did not write %s: %v %v", n, err, err2)
		}
		agent[n], agentModes[n] = b, fi.Mode().Perm()
		os.Remove(p)
	}

	// leash, on the agent config and on what leash convert makes of it.
	run := func(args ...string) (map[string][]byte, map[string]os.FileMode, string) {
		t.Helper()
		out := filepath.Join(f.dir, "leash-out")
		os.RemoveAll(out)
		if err := os.Mkdir(out, 0o700); err != nil {
			t.Fatal(err)
		}
		script := `cd "$0" && for f in ` + strings.Join(agentOutputs, " ") + `; do stat -c "%n %a" "$f"; cp "$f" "$1/"; done`
		stdout, stderr := Output(t, agentCommand(t, append(args, "--", "sh", "-c", script, f.mem, out)...))
		files, modes := map[string][]byte{}, map[string]os.FileMode{}
		for _, l := range strings.Split(strings.TrimSpace(string(stdout)), "\n") {
			var n string
			var m uint32
			if _, err := fmt.Sscanf(l, "%s %o", &n, &m); err != nil {
				t.Fatalf("child said %q", l)
			}
			modes[n] = os.FileMode(m)
			b, err := os.ReadFile(filepath.Join(out, n))
			if err != nil {
				t.Fatal(err)
			}
			files[n] = b
		}
		return files, modes, stderr
	}
	leash, leashModes, stderr := run("--agent-config", config)
	converted, _ := Output(t, agentCommand(t, "convert", config))
	native := filepath.Join(f.dir, "native.hcl")
	f.writeFile(t, native, string(converted))
	fromNative, nativeModes, nativeStderr := run("-c", native)
	for _, n := range agentOutputs {
		b := leash[n]
		if ml, ma := maskCreds(string(b)), maskCreds(string(agent[n])); ml != ma {
			t.Errorf("%s differs (masked):\nleash:       %q\nVault Agent: %q", n, ml, ma)
		} else if os.Getenv("LEASH_AGENT_SHOW") != "" {
			t.Logf("%s: %q", n, ml)
		}
		if n == "db.ini" && maskCreds(string(b)) == string(b) {
			t.Errorf("db.ini: nothing masked in %q; the comparison would not see the credentials", b)
		}
		if ml, mn := maskCreds(string(b)), maskCreds(string(fromNative[n])); ml != mn || leashModes[n] != nativeModes[n] {
			t.Errorf("%s: leash -c CONVERTED gives %q mode %04o; --agent-config %q mode %04o", n, mn, nativeModes[n], ml, leashModes[n])
		}
	}
	for n, want := range map[string][2]os.FileMode{
		"app.conf": {0o440, 0o440}, "pretty.json": {0o600, 0o600}, // perms
		"app.env": {0o400, 0o644}, "db.ini": {0o400, 0o644}, "missing.txt": {0o400, 0o644}, // the defaults
		"indented.sh": {0o400, 0o644}, "quoted.txt": {0o400, 0o644},
	} {
		if leashModes[n] != want[0] || agentModes[n] != want[1] {
			t.Errorf("%s: mode %04o under leash, %04o under Vault Agent; want %04o and %04o", n, leashModes[n], agentModes[n], want[0], want[1])
		}
	}
	// Neither run logs the KV password or the database password it issued.
	for _, pw := range []string{"hunter2", dbLine(leash["db.ini"], "password"), dbLine(fromNative["db.ini"], "password")} {
		if pw == "" {
			t.Fatal("db.ini holds no password to search the logs for")
		}
		if strings.Contains(stderr, pw) || strings.Contains(nativeStderr, pw) {
			t.Errorf("leash's log holds a password (%d bytes)", len(pw))
		}
	}
}

// Where leash deliberately differs from Vault Agent: a missing key without
// error_on_missing_key is an error (Vault Agent renders "<no value>"), and
// error_on_missing_key = true fails at start instead of retrying. Both
// exit 78 naming the template's output.
func TestAgentMissingKeyIsAnError(t *testing.T) {
	t.Parallel()
	f := newAgentFixture(t, testvault.Shared(t), false, 0)
	for _, opt := range []string{"", "error_on_missing_key = true\n"} {
		config, _ := f.config(t, "agent.hcl", agentApprole+`template {
  destination = "@MEM@/missing.txt"
  `+opt+`  contents = "{{ with secret \"@KV@/data/app\" }}[{{ .Data.data.nosuchkey }}]{{ end }}"
}
`)
		code, stderr := ExitStatus(t, agentCommand(t, "--agent-config", config, "--", "true"))
		if code != exitConfig || !strings.Contains(stderr, "missing.txt") || !strings.Contains(stderr, "nosuchkey") {
			t.Errorf("%q: exit %d, want %d naming the output and the key; stderr:\n%s", opt, code, exitConfig, stderr)
		}
	}
}

// agentExecScript is an exec child that runs under both Vault Agent and
// leash: it writes each env_template's value to OUT/NAME, from $NAME_FILE
// under leash and from $NAME under Vault Agent, and APP_MODE, and marks
// OUT/LEAK when DB_PASS's value (a database password) is anywhere in its
// environment, under any name.
const agentExecScript = `out=$0
get() { if [ -n "$2" ]; then cat "$2"; else printf %s "$3"; fi > "$out/$1"; }
get DB_USER "$DB_USER_FILE" "$DB_USER"
get DB_PASS "$DB_PASS_FILE" "$DB_PASS"
get APP_KEY "$APP_KEY_FILE" "$APP_KEY"
printf %s "$APP_MODE" > "$out/APP_MODE"
pw=$(cat "$out/DB_PASS")
if [ -n "$pw" ] && env | grep -qF -- "$pw"; then echo yes > "$out/LEAK"; fi`

// agentSupervisor is a process supervisor config: env_template with
// contents, delimiters and source, and exec. (Vault Agent 1.21's exec has
// no env, which leash takes: see TestAgentConvertBehavesTheSame.)
const agentSupervisor = agentApprole + `template_config {
  exit_on_retry_failure = true
}
env_template "DB_USER" {
  contents             = "{{ with secret \"@CREDS@\" }}{{ .Data.username }}{{ end }}"
  error_on_missing_key = true
}
env_template "DB_PASS" {
  contents        = "<% with secret \"@CREDS@\" %><% .Data.password %><% end %>"
  left_delimiter  = "<%"
  right_delimiter = "%>"
}
env_template "APP_KEY" {
  source = "@SOURCE@"
}
exec {
  command                   = @COMMAND@
  restart_on_secret_changes = "never"
}
`

// Process supervisor mode: each env_template reaches leash's child as a
// file named by NAME_FILE, never in its environment, holding the bytes
// Vault Agent puts in the variable NAME; leash logs, once per
// env_template, that the app must read $NAME_FILE. Both run the same
// file, exec's command included.
func TestAgentEnvTemplateMatchesVaultAgent(t *testing.T) {
	t.Parallel()
	f := newAgentFixture(t, testvault.Shared(t), true, time.Hour)
	source := filepath.Join(f.dir, "app-key.ctmpl")
	f.writeFile(t, source, `{{ with secret "`+f.kv+`/data/app" }}{{ .Data.data.user }}/{{ .Data.data.password }}{{ end }}`)
	out := filepath.Join(f.dir, "out")
	config, _ := f.config(t, "agent.hcl", agentSupervisor, "@SOURCE@", source, "@COMMAND@", hclList("sh", "-c", agentExecScript, out))
	read := func() map[string]string {
		got := map[string]string{}
		for _, n := range []string{"DB_USER", "DB_PASS", "APP_KEY", "APP_MODE", "LEAK"} {
			if b, err := os.ReadFile(filepath.Join(out, n)); err == nil {
				got[n] = string(b)
			}
		}
		return got
	}
	mkdir := func() {
		os.RemoveAll(out)
		if err := os.Mkdir(out, 0o700); err != nil {
			t.Fatal(err)
		}
	}

	mkdir()
	vaultAgent(t, config, false)
	agent := read()
	mkdir()
	_, stderr := Output(t, agentCommand(t, "--agent-config", config))
	got := read()

	user := regexp.MustCompile(`^v-approle-+app-[A-Za-z0-9]{20}-[0-9]+$`)
	pw := regexp.MustCompile(`^[A-Za-z0-9-]{20}$`)
	for who, m := range map[string]map[string]string{"leash": got, "Vault Agent": agent} {
		if !user.MatchString(m["DB_USER"]) || !pw.MatchString(m["DB_PASS"]) {
			t.Errorf("%s: DB_USER %q, DB_PASS of %d bytes: not credentials from the database engine", who, m["DB_USER"], len(m["DB_PASS"]))
		}
		if m["APP_KEY"] != "app/"+agentApp["password"].(string) {
			t.Errorf("%s: APP_KEY %q", who, m["APP_KEY"])
		}
	}
	if agent["LEAK"] == "" {
		t.Error("Vault Agent's child had no DB_PASS in its environment: the script does not tell the two apart")
	}
	if got["LEAK"] != "" {
		t.Error("leash's child has DB_PASS in its environment")
	}
	for _, env := range []string{"DB_USER", "DB_PASS", "APP_KEY"} {
		notice := "env_template " + env + ": the app must read the file $" + env + "_FILE instead of $" + env
		if n := strings.Count(stderr, notice); n != 1 {
			t.Errorf("leash logged %q %d times, want once:\n%s", notice, n, stderr)
		}
	}
}

// exec {} with restart_on_secret_changes = "always" and a
// restart_stop_signal: a changed KV secret (re-read every second, as
// template_config's static_secret_render_interval asks) gets the child
// SIGUSR2, and once it has exited it is started again with the new value.
// Vault Agent, on the same file, does the same, line for line: its child
// prints $ROT, leash's the file $ROT_FILE. No command after --: exec's
// runs.
func TestAgentExecRestartAlways(t *testing.T) {
	t.Parallel()
	f := newAgentFixture(t, testvault.Shared(t), false, 0)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := `if [ -n "$ROT_FILE" ]; then cat "$ROT_FILE"; else printf %s "$ROT"; fi; echo; exec env LEASH_TESTCHILD=signals "$0"`
	config, _ := f.config(t, "agent.hcl", agentApprole+`template_config {
  static_secret_render_interval = "1s"
}
env_template "ROT" {
  contents = "{{ with secret \"@KV@/data/rot\" }}{{ .Data.data.v }}{{ end }}"
}
exec {
  command                   = @COMMAND@
  restart_on_secret_changes = "always"
  restart_stop_signal       = "SIGUSR2"
}
`, "@COMMAND@", hclList("sh", "-c", script, self))
	usr2, term := fmt.Sprintf("sig %d", syscall.SIGUSR2), fmt.Sprintf("sig %d", syscall.SIGTERM)
	// next is the child's next line; Vault Agent's own output (its
	// configuration banner, on the same stdout) is skipped.
	next := func(p *Leash, agent bool) string {
		t.Helper()
		for {
			l := p.Next(90 * time.Second)
			switch {
			case !agent, l == "v1", l == "v2", l == "ready", strings.HasPrefix(l, "sig "):
				return l
			}
		}
	}
	check := func(who string, p *Leash, agent bool) {
		t.Helper()
		for _, want := range []string{"v1", "ready"} {
			if l := next(p, agent); l != want {
				t.Fatalf("%s: child said %q, want %q", who, l, want)
			}
		}
		f.srv.Write(t, f.kv+"/data/rot", map[string]any{"data": map[string]any{"v": "v2"}})
		for _, want := range []string{usr2, "v2", "ready"} {
			if l := next(p, agent); l != want {
				t.Fatalf("%s: after the change the child said %q, want %q", who, l, want)
			}
		}
		p.Signal(syscall.SIGTERM)
		if l := next(p, agent); l != term && l != usr2 {
			t.Errorf("%s: child said %q after SIGTERM", who, l)
		}
		if code := p.Exit(60 * time.Second); code != 0 {
			t.Errorf("%s exited %d", who, code)
		}
	}

	f.srv.Write(t, f.kv+"/data/rot", map[string]any{"data": map[string]any{"v": "v1"}})
	agent := exec.Command(testvault.Require(t), "agent", "-config="+config, "-log-level=warn")
	agent.Env = agentEnv("HOME=" + t.TempDir())
	check("vault agent", StartCmd(t, agent), true)

	f.srv.Write(t, f.kv+"/data/rot", map[string]any{"data": map[string]any{"v": "v1"}})
	lp := startAgent(t, "--agent-config", config)
	check("leash", lp, false)
}

// exec {} with restart_on_secret_changes = "never": a new database
// credential (at half its lease, as template_config's
// lease_renewal_threshold = 0.5 asks) replaces the bytes of $DB_FILE and
// the old one is revoked at once, the child neither restarted nor
// signalled; it finds the new credential when it reads the file again.
// (Vault Agent's child keeps its old environment, and credential, until
// the lease expires.)
func TestAgentExecRestartNever(t *testing.T) {
	t.Parallel()
	f := newAgentFixture(t, testvault.Shared(t), true, 10*time.Second)
	config, _ := f.config(t, "agent.hcl", agentApprole+`template_config {
  lease_renewal_threshold = 0.5
}
env_template "DB" {
  contents = "{{ with secret \"@CREDS@\" }}{{ .Data | toJSON }}{{ end }}"
}
exec {
  command                   = @COMMAND@
  restart_on_secret_changes = "never"
}
`, "@COMMAND@", hclList(watchArgs(t, "DB_FILE")...))
	type creds struct{ Username, Password string }
	parse := func(b []byte) creds {
		var c creds
		if err := json.Unmarshal(b, &c); err != nil || c.Username == "" {
			t.Fatalf("not credentials: %q", b)
		}
		return c
	}
	lp := startAgent(t, "--agent-config", config)
	_, b := lp.Ready()
	first := parse(b)
	lp.WaitEvent(evRetired, 1, 90*time.Second, nil) // the first credential, once replaced
	if f.db.RoleExists(t, first.Username) {
		t.Errorf("the first credential's role %s still exists after the hand-over", first.Username)
	}
	// The child was told nothing: its next line answers this SIGHUP.
	lp.Signal(syscall.SIGHUP)
	l := lp.Next(60 * time.Second)
	reload, ok := strings.CutPrefix(l, "reload ")
	if !ok {
		t.Fatalf("child said %q, want its reload (no restart, no signal before)", l)
	}
	b, _ = base64.StdEncoding.DecodeString(reload)
	if c := parse(b); c.Username == first.Username || !f.db.RoleExists(t, c.Username) {
		t.Errorf("the child reads %s after the hand-over from %s; want a new, live credential", c.Username, first.Username)
	}
	lp.Signal(syscall.SIGTERM)
	if l := lp.Next(60 * time.Second); l != "term" {
		t.Errorf("child said %q, want term", l)
	}
	if code := lp.Exit(60 * time.Second); code != 0 {
		t.Errorf("leash exited %d", code)
	}
}

// exec {}'s child gets Vault Agent's fixed 30 s to stop, not leash's
// default 10 s: a child that takes 40 s after SIGTERM is killed about 30 s
// after it got it.
func TestAgentExecKillTimeout(t *testing.T) {
	t.Parallel()
	f := newAgentFixture(t, testvault.Shared(t), false, 0)
	command := append([]string{"env", testchild.EnvTermDelay + "=40s"}, watchArgs(t, "APP_FILE")...)
	config, _ := f.config(t, "agent.hcl", agentApprole+`env_template "APP" {
  contents = "{{ with secret \"@KV@/data/app\" }}{{ .Data.data.user }}{{ end }}"
}
exec {
  command = @COMMAND@
}
`, "@COMMAND@", hclList(command...))
	lp := startAgent(t, "--agent-config", config)
	if _, b := lp.Ready(); string(b) != "app" {
		t.Fatalf("child read %q", b)
	}
	lp.Signal(syscall.SIGTERM)
	lp.Out.Expect("term")
	stopped := time.Now()
	code := lp.Exit(90 * time.Second)
	if d := time.Since(stopped); d < 29*time.Second || d >= 39*time.Second {
		t.Errorf("leash exited %s after the child got SIGTERM, want about 30 s (Vault Agent's kill timeout)", d.Round(time.Millisecond))
	}
	if code != 128+int(syscall.SIGKILL) {
		t.Errorf("leash exited %d, want %d: the child killed", code, 128+int(syscall.SIGKILL))
	}
}

// Templates without exec {}: a new database credential (at a quarter of
// the lease left, template_config's lease_renewal_threshold = 0.75)
// replaces the destination by a rename, so a reader holding the old file
// open keeps the old bytes whole, and the new file has the mode asked;
// the child is neither signalled nor restarted, as with Vault Agent, and
// the old credential is revoked.
func TestAgentTemplateRewrittenAtomically(t *testing.T) {
	t.Parallel()
	f := newAgentFixture(t, testvault.Shared(t), true, 12*time.Second)
	dest := filepath.Join(f.mem, "db.json")
	config, _ := f.config(t, "agent.hcl", agentApprole+`template_config {
  lease_renewal_threshold = 0.75
}
template {
  destination = "@MEM@/db.json"
  perms       = "0440"
  contents    = "{{ with secret \"@CREDS@\" }}{{ .Data | toJSON }}{{ end }}"
}
`)
	type creds struct{ Username, Password string }
	parse := func(b []byte) creds {
		var c creds
		if err := json.Unmarshal(b, &c); err != nil || c.Username == "" {
			t.Fatalf("not credentials: %q", b)
		}
		return c
	}
	lp := startAgent(t, append([]string{"--agent-config", config, "--", "env", "DEST=" + dest}, watchArgs(t, "DEST")...)...)
	_, b := lp.Ready()
	first := parse(b)
	old, err := os.Open(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	lp.WaitEvent(evRetired, 1, 90*time.Second, nil)
	nb, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	if next := parse(nb); next.Username == first.Username || !f.db.RoleExists(t, next.Username) || f.db.RoleExists(t, first.Username) {
		t.Errorf("after the hand-over %s holds %s (was %s); want a new live credential and the old one revoked", dest, next.Username, first.Username)
	}
	if kept, err := io.ReadAll(old); err != nil || string(kept) != string(b) {
		t.Errorf("the file opened before the hand-over reads %q (%v), want the old bytes whole", kept, err)
	}
	if fi, err := os.Lstat(dest); err != nil || fi.Mode().Perm() != 0o440 {
		t.Errorf("after the rewrite: %v, %v; want mode 0440", fi, err)
	}
	if ents, _ := os.ReadDir(f.mem); len(ents) != 1 {
		t.Errorf("the destination's directory holds %d entries, want the file alone (no temporary left)", len(ents))
	}
	// Nothing told the child: its next line answers this SIGHUP.
	lp.Signal(syscall.SIGHUP)
	l := lp.Next(60 * time.Second)
	if !strings.HasPrefix(l, "reload ") {
		t.Fatalf("child said %q, want its reload (no restart, no signal before)", l)
	}
	lp.Signal(syscall.SIGTERM)
	if l := lp.Next(60 * time.Second); l != "term" {
		t.Errorf("child said %q, want term", l)
	}
	if code := lp.Exit(60 * time.Second); code != 0 {
		t.Errorf("leash exited %d", code)
	}
}

// The stanzas leash has no equivalent for, and a template that runs a
// command, are config errors naming the file, line and column, through
// --agent-config, -c and `leash convert` alike, before Vault is contacted.
func TestAgentRefusedStanzas(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const auth = `vault { address = "http://127.0.0.1:1" }
auto_auth {
  method "approle" {
    config = {
      role_id_file_path   = "/nonexistent/role-id"
      secret_id_file_path = "/nonexistent/secret-id"
    }
  }
}
`
	tests := []struct{ name, stanza, at, want string }{
		{"cache", "cache {\n  use_auto_auth_token = true\n}\n", "cache", "cache stanza: leash has no proxy, cache or listener"},
		{"listener", "listener \"tcp\" {\n  address     = \"127.0.0.1:8100\"\n  tls_disable = true\n}\n", "listener", "listener stanza: leash has no proxy, cache or listener"},
		{"api_proxy", "api_proxy {\n  use_auto_auth_token = true\n}\n", "api_proxy", "api_proxy stanza: leash has no proxy, cache or listener"},
		{"telemetry", "telemetry {\n  prometheus_retention_time = \"24h\"\n}\n", "telemetry", "telemetry stanza: leash has no telemetry settings"},
		{"exit_after_auth", "exit_after_auth = true\n", "exit_after_auth", "exit_after_auth = true: leash runs the app and stays with it"},
		{"pid_file", "pid_file = \"./pidfile\"\n", "pid_file", "pid_file: not something leash can take over"},
		{"template command", "template {\n  destination = \"/dev/shm/x\"\n  contents    = \"x\"\n  command     = \"systemctl reload app\"\n}\n", "command", "template: command: leash runs no command"},
		{"template exec", "template {\n  destination = \"/dev/shm/x\"\n  contents    = \"x\"\n  exec {\n    command = [\"systemctl\", \"reload\", \"app\"]\n  }\n}\n", "exec {", "template: exec: leash runs no command"},
		{"aws method", "", "method", `auto_auth method "aws": leash takes over`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := auth + tt.stanza
			if tt.name == "aws method" {
				text = strings.Replace(auth, `method "approle"`, `method "aws"`, 1)
			}
			config := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".hcl")
			if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			from := len(auth) // the stanza's, not a word of the auth stanza
			if tt.name == "aws method" {
				from = 0
			}
			want := atAfter(t, config, text, tt.at, from) + ": " + tt.want
			marker := filepath.Join(t.TempDir(), "started")
			for _, args := range [][]string{
				{"--agent-config", config, "--", "touch", marker},
				{"-c", config, "--", "touch", marker},
				{"convert", config},
			} {
				code, stderr := ExitStatus(t, agentCommand(t, args...))
				if code != exitConfig || !strings.Contains(stderr, want) {
					t.Errorf("leash %s: exit %d, want %d with %q in stderr:\n%s", args[0], code, exitConfig, want, stderr)
				}
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("the child ran")
			}
		})
	}
}

// `leash convert` prints a native config that leash runs as it runs the
// agent config itself: the same bytes at the destination, with the same
// mode, from -c CONVERTED, --agent-config and -c AGENT; an exec config's
// command runs from it, its env_templates as NAME_FILE. The converted file
// has no sink, so it needs no --ignore-sinks.
func TestAgentConvertBehavesTheSame(t *testing.T) {
	t.Parallel()
	f := newAgentFixture(t, testvault.Shared(t), false, 0)
	convert := func(config string) (string, string) {
		t.Helper()
		out, _ := Output(t, agentCommand(t, "convert", config))
		native := strings.TrimSuffix(config, ".hcl") + "-native.hcl"
		f.writeFile(t, native, string(out))
		return native, string(out)
	}

	t.Run("templates", func(t *testing.T) {
		// The issue's shape (its sink, the secret_id removed after
		// reading) with KV, whose bytes are the same at every read.
		config, _ := f.config(t, "issue.hcl", `vault { address = "@ADDR@" }
auto_auth {
  method "approle" {
    mount_path = "auth/@APPROLE@"
    config = {
      role_id_file_path   = "@ROLE_ID@"
      secret_id_file_path = "@SECRET_ID@"
    }
  }
  sink "file" { config = { path = "@MEM@/vault-token" } }
}
template {
  destination = "@MEM@/app.env"
  contents = <<EOT
{{ with secret "@KV@/data/app" }}
USER={{ .Data.data.user }}
PASSWORD={{ .Data.data.password }}
{{ end }}
EOT
}
template {
  destination     = "@MEM@/app.conf"
  perms           = "0440"
  left_delimiter  = "[["
  right_delimiter = "]]"
  contents        = "[[ with secret \"@KV@/data/app\" ]][[ .Data.data | toJSON ]][[ end ]] {{ literal }}"
}
`)
		native, text := convert(config)
		for _, s := range []string{"# - auto_auth sink (", "): dropped:", "template_text = [", "output_path = ["} {
			if !strings.Contains(text, s) {
				t.Errorf("the converted config lacks %q:\n%s", s, text)
			}
		}
		script := `cd "$0" && for f in app.env app.conf; do stat -c "%n %a" "$f"; cat "$f"; echo; done`
		var first string
		for _, args := range [][]string{
			{"--agent-config", config, "--ignore-sinks"},
			{"-c", config, "--ignore-sinks"},
			{"-c", native},
		} {
			f.resetSecretID(t)
			out, _ := Output(t, agentCommand(t, append(args, "--", "sh", "-c", script, f.mem)...))
			if first == "" {
				first = string(out)
				if !strings.Contains(first, "PASSWORD=hunter2") || !strings.Contains(first, "app.conf 440") || !strings.Contains(first, "{{ literal }}") {
					t.Fatalf("%v: the child saw:\n%s", args, out)
				}
			} else if string(out) != first {
				t.Errorf("%v: the child saw:\n%s\nwant, as with --agent-config:\n%s", args, out, first)
			}
			if _, err := os.Stat(f.secretID); !os.IsNotExist(err) {
				t.Errorf("%v: the secret_id file was not removed after reading: %v", args, err)
			}
		}
	})

	t.Run("supervisor", func(t *testing.T) {
		out := filepath.Join(f.dir, "out")
		source := filepath.Join(f.dir, "app-key.ctmpl")
		f.writeFile(t, source, `{{ with secret "`+f.kv+`/data/app" }}{{ .Data.data.user }}/{{ .Data.data.password }}{{ end }}`)
		// agentSupervisor with KV instead of database credentials.
		text := strings.ReplaceAll(agentSupervisor, `"@CREDS@\" }}{{ .Data.username }}`, `"@KV@/data/app\" }}{{ .Data.data.user }}`)
		text = strings.ReplaceAll(text, `"@CREDS@\" %><% .Data.password %>`, `"@KV@/data/app\" %><% .Data.data.password %>`)
		// And with exec's env, which leash takes (Vault Agent 1.21 does not).
		text = strings.ReplaceAll(text, `restart_on_secret_changes = "never"`, `restart_on_secret_changes = "never"
  env = {
    APP_MODE = "production"
  }`)
		if strings.Contains(text, "@CREDS@") {
			t.Fatal("agentSupervisor changed: the KV replacement missed a database path")
		}
		config, _ := f.config(t, "supervisor.hcl", text, "@SOURCE@", source, "@COMMAND@", hclList("sh", "-c", agentExecScript, out))
		native, ntext := convert(config)
		if !strings.Contains(ntext, "the app must read the file $DB_PASS_FILE instead of $DB_PASS") || !strings.Contains(ntext, "exec = [") {
			t.Errorf("the converted config lacks the env_template notice or exec:\n%s", ntext)
		}
		var first map[string]string
		for _, args := range [][]string{{"--agent-config", config}, {"-c", native}} {
			f.resetSecretID(t) // the templates subtest's runs removed it
			os.RemoveAll(out)
			if err := os.Mkdir(out, 0o700); err != nil {
				t.Fatal(err)
			}
			Output(t, agentCommand(t, args...))
			got := map[string]string{}
			ents, _ := os.ReadDir(out)
			for _, e := range ents {
				b, _ := os.ReadFile(filepath.Join(out, e.Name()))
				got[e.Name()] = string(b)
			}
			if first == nil {
				first = got
				if got["DB_USER"] != "app" || got["DB_PASS"] != agentApp["password"] || got["APP_MODE"] != "production" || got["LEAK"] != "" {
					t.Fatalf("%v: the child wrote %q", args, got)
				}
			} else if fmt.Sprint(got) != fmt.Sprint(first) {
				t.Errorf("%v: the child wrote %q, want %q as with --agent-config", args, got, first)
			}
		}
	})
}
