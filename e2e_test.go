package main

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testchild"
	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
)

// seedScenario runs the issue's seed scenario: leash hands PostgreSQL
// credentials from Vault's database engine to pgApp over several max_ttl
// periods with the given flags.
func seedScenario(t *testing.T, extra ...string) {
	srv := testvault.Shared(t)
	cluster := testpg.NewCluster(t)
	db := cluster.Database(t)
	db.Exec(t, "CREATE TABLE app_data (id int)")
	db.Exec(t, "INSERT INTO app_data VALUES (1)")
	creds := srv.Database(t, db.VaultURL(), db.User, db.Password, 3*time.Second, 6*time.Second)

	args := append([]string{"--log-level", "trace", "-s", "db=" + creds}, extra...)
	args = append(args, "--")
	cmd := leashCmd(t, append(args, helperArgs(t, "pgapp")...)...)
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.RootToken,
		fmt.Sprintf(testchild.EnvPGURL+"=postgres://127.0.0.1:%d/%s?sslmode=disable", cluster.Port, db.Name))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lr := newLineReader(t, stdout)
	var users, passwords []string
	deadline := time.After(90 * time.Second)
	for len(users) < 3 {
		select {
		case line, ok := <-lr.lines:
			if !ok {
				t.Fatalf("app output ended after users %q; leash stderr:\n%s", users, stderr.String())
			}
			switch f := strings.SplitN(line, " ", 2); f[0] {
			case "user":
				users = append(users, f[1])
			case "pw":
				passwords = append(passwords, f[1])
			default:
				t.Errorf("app: %s", line)
			}
		case <-deadline:
			t.Fatalf("only %d credentials seen; leash stderr:\n%s", len(users), stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, line := range lr.rest() {
		if !strings.HasPrefix(line, "pw ") && !strings.HasPrefix(line, "user ") {
			t.Errorf("app: %s", line)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("leash: %v; stderr:\n%s", err, stderr.String())
	}
	for i, u := range users {
		for _, v := range users[:i] {
			if u == v {
				t.Errorf("credential %s handed over twice: no new credential was issued", u)
			}
		}
		if db.RoleExists(t, u) {
			t.Errorf("role %s still exists after leash exited: lease not revoked", u)
		}
	}
	if ids := srv.LeaseIDs(t, creds+"/"); len(ids) > 0 {
		t.Errorf("leases left in Vault after exit: %d", len(ids))
	}
	log := stderr.String()
	for _, p := range passwords {
		if strings.Contains(log, p) {
			t.Errorf("a database password appears in leash's log")
		}
	}
	if strings.Contains(log, srv.RootToken) {
		t.Errorf("the Vault token appears in leash's log")
	}
	for _, ev := range []string{"issued", "renewed", "revoked"} {
		if !strings.Contains(log, ev) {
			t.Errorf("leash's log has no %q event", ev)
		}
	}
}

func TestSeedScenarioSignal(t *testing.T) {
	t.Parallel()
	seedScenario(t, "--on-rotate", "signal", "--reload-grace", "500ms")
}

func TestSeedScenarioRestart(t *testing.T) {
	t.Parallel()
	seedScenario(t, "--on-rotate", "restart", "--kill-timeout", "5s")
}

func TestSeedScenarioDirJSONLogs(t *testing.T) {
	t.Parallel()
	seedScenario(t, "--on-rotate", "signal", "--reload-grace", "500ms", "--delivery", "dir", "--log-format", "json")
}

func TestVaultUnreachableExits69(t *testing.T) {
	t.Parallel()
	marker := t.TempDir() + "/started"
	cmd := leashCmd(t, "--startup-timeout", "2s", "-s", "db=database/creds/app", "--", "touch", marker)
	cmd.Env = append(cmd.Env, "VAULT_ADDR=http://127.0.0.1:1", "VAULT_TOKEN=unused")
	got, stderr := exitStatus(t, cmd)
	if got != exitUnavailable {
		t.Errorf("exit %d, want %d; stderr:\n%s", got, exitUnavailable, stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the child was started without its secrets")
	}
}

func TestPermissionDeniedExits77(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "p"}})
	token := srv.LimitedToken(t, `path "sys/*" { capabilities = ["deny"] }`)
	cmd := leashCmd(t, "-s", "pw="+kv+"/app#password", "--", "true")
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+token)
	got, stderr := exitStatus(t, cmd)
	if got != exitNoPerm || !strings.Contains(stderr, kv) {
		t.Errorf("exit %d, want %d with the path named; stderr:\n%s", got, exitNoPerm, stderr)
	}
}

// A login Vault rejects (here a wrong AppRole secret_id) is a permission
// problem, exit 77, not a path or parameter problem.
func TestRejectedLoginExits77(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	a := srv.AppRole(t, []string{"default"}, time.Hour, time.Hour, false)
	dir := t.TempDir()
	roleID, secretID := filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id")
	os.WriteFile(roleID, []byte(a.RoleID), 0o600)
	os.WriteFile(secretID, []byte("00000000-0000-4000-8000-000000000000"), 0o600)
	cmd := leashCmd(t, "--auth", "approle", "--auth-mount", a.Mount, "--role-id-file", roleID, "--secret-id-file", secretID,
		"-s", "k=secret/x", "--", "true")
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr)
	got, stderr := exitStatus(t, cmd)
	if got != exitNoPerm || !strings.Contains(stderr, "auth/"+a.Mount+"/login") {
		t.Errorf("exit %d, want %d naming the login path; stderr:\n%s", got, exitNoPerm, stderr)
	}
}

func TestEnvAndProcHoldNoSecret(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	const secret = "s3cr3t-bytes-Zq9"
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": secret}})
	cmd := leashCmd(t, "--log-level", "trace", "-s", "pw="+kv+"/app#password", "--", "sh", "-c", `env; cat /proc/$$/environ; echo; echo "file=$(cat "$PW_FILE")"`)
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.RootToken)
	out, stderr := leashOutput(t, cmd)
	// The file is the only place the secret may appear.
	rest := strings.Replace(string(out), "file="+secret, "", 1)
	if !strings.Contains(string(out), "file="+secret) {
		t.Errorf("the child could not read the secret from $PW_FILE: %q", out)
	}
	if strings.Contains(rest, secret) || strings.Contains(rest, srv.RootToken) {
		t.Errorf("secret or token in the child's environment:\n%s", out)
	}
	if strings.Contains(stderr, secret) || strings.Contains(stderr, srv.RootToken) {
		t.Errorf("secret or token in leash's trace log")
	}
}

// TestUserRunsChildAsAnotherUser: --user drops the child to nobody, which
// can read its memfd (0400, chowned to it) but not write it.
func TestUserRunsChildAsAnotherUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	srv := testvault.Shared(t)
	kv := srv.KV(t, 1)
	const secret = "user-secret-8Hq"
	srv.Write(t, kv+"/app", map[string]any{"password": secret})
	for _, delivery := range []string{"memfd", "dir"} {
		cmd := leashCmd(t, "--user", "nobody", "--delivery", delivery, "-s", "pw="+kv+"/app#password", "--",
			"sh", "-c", `id -u; cat "$PW_FILE"; echo; stat -L -c %a "$PW_FILE"; (echo x > "$PW_FILE") 2>/dev/null && echo WRITABLE; true`)
		cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.RootToken)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: leash: %v\n%s", delivery, err, stderr.String())
		}
		if want := "65534\n" + secret + "\n400\n"; string(out) != want {
			t.Errorf("%s: child printed %q, want %q", delivery, out, want)
		}
	}
}

// TestHTTP2DebugLogsHoldNoSecret: GODEBUG=http2debug=2 makes Go's HTTP/2
// client print every request header and response body through the standard
// logger, the Vault token and the secret among them. leash discards that
// logger: its stderr must hold neither, and TLS with HTTP/2 (the build
// leaves out net/http's own HTTP/2, see the Makefile) must still work.
func TestHTTP2DebugLogsHoldNoSecret(t *testing.T) {
	t.Parallel()
	srv := testvault.NewTLS(t)
	kv := srv.KV(t, 1)
	stderr := readOverTLS(t, srv, kv+"/app", nil, "VAULT_TOKEN="+srv.RootToken, "GODEBUG=http2debug=2")
	if strings.Contains(stderr, srv.RootToken) {
		t.Errorf("token in leash's stderr with http2debug=2:\n%s", stderr)
	}
}

// readOverTLS runs leash at trace level against srv (from NewTLS) with
// extra flags and environment, its child printing the secret leash wrote
// at the KV v1 path. It checks that the child read the secret and that
// leash's stderr does not hold it, and returns that stderr.
func readOverTLS(t *testing.T, srv *testvault.Server, path string, flags []string, env ...string) string {
	t.Helper()
	secret := "over-tls-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	srv.Write(t, path, map[string]any{"k": secret})
	args := append(append([]string{"--log-level", "trace"}, flags...), "-s", "k="+path+"#k", "--", "sh", "-c", `cat "$K_FILE"`)
	cmd := leashCmd(t, args...)
	cmd.Env = append(append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_CACERT="+srv.CACert), env...)
	out, stderr := leashOutput(t, cmd)
	if string(out) != secret {
		t.Errorf("child read %q, want the secret", out)
	}
	if strings.Contains(stderr, secret) {
		t.Errorf("the secret is in leash's stderr:\n%s", stderr)
	}
	return stderr
}

// TestCertAuthEndToEnd: --auth cert through the binary against a TLS Vault.
// The child reads the secret; leash's stderr, at trace level, holds neither
// the secret nor a line of the client key; and the token leash logged in
// with is revoked on exit.
func TestCertAuthEndToEnd(t *testing.T) {
	t.Parallel()
	srv := testvault.NewTLS(t)
	kv := srv.KV(t, 1)
	c := srv.CertAuth(t, []string{srv.Policy(t, `path "`+kv+`/app" { capabilities = ["read"] }`)}, time.Hour, time.Hour)
	accessors := func() int {
		sec, err := srv.Client.Logical().List("auth/token/accessors")
		if err != nil || sec == nil {
			t.Fatalf("list token accessors: %v", err)
		}
		keys, _ := sec.Data["keys"].([]any)
		return len(keys)
	}
	before := accessors()
	stderr := readOverTLS(t, srv, kv+"/app", []string{"--auth", "cert", "--auth-mount", c.Mount, "--auth-role", c.Role}, c.Env()...)
	if !strings.Contains(stderr, "auth/"+c.Mount+"/login") {
		t.Errorf("no cert login logged:\n%s", stderr)
	}
	key, err := os.ReadFile(c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(key), "\n") {
		if len(line) > 16 && !strings.HasPrefix(line, "-----") && strings.Contains(stderr, line) {
			t.Errorf("a line of the client key is in leash's stderr")
		}
	}
	if after := accessors(); after != before {
		t.Errorf("%d tokens after exit, %d before: leash's login token was not revoked", after, before)
	}
}

// TestPKICertTemplate: Vault Agent's pkiCert template, unchanged, against a
// real PKI engine. The child gets a certificate and its private key that
// form a pair, the key never reaches leash's stderr, and the certificate's
// lease is revoked on exit.
func TestPKICertTemplate(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	issue := srv.PKI(t, time.Hour)
	tmpl := filepath.Join(t.TempDir(), "tls.tmpl")
	// Fields concatenated, as Vault Agent's documentation writes them.
	text := `{{ with pkiCert "` + issue + `" "common_name=app.example.test" "ttl=10m" }}{{ .Cert }}{{ .CA }}{{ .Key }}{{ end }}`
	if err := os.WriteFile(tmpl, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := leashCmd(t, "--log-level", "trace", "-t", "tls="+tmpl, "--", "sh", "-c", `cat "$TLS_FILE"`)
	cmd.Env = append(cmd.Env, vaultEnv(srv.Addr, srv.RootToken)...)
	out, stderr := leashOutput(t, cmd)
	if _, err := tls.X509KeyPair(out, out); err != nil {
		t.Fatalf("the child did not get a certificate and its key: %v\n%s", err, out)
	}
	var key *pem.Block
	for rest := out; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if strings.Contains(b.Type, "PRIVATE KEY") {
			key = b
		}
	}
	if key == nil || strings.Contains(stderr, base64.StdEncoding.EncodeToString(key.Bytes)[:32]) {
		t.Errorf("no private key rendered, or its bytes are in leash's stderr")
	}
	if ids := srv.LeaseIDs(t, issue+"/"); len(ids) != 0 {
		t.Errorf("%d certificate leases left after exit", len(ids))
	}
}
