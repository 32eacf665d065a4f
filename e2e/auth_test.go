package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
	"github.com/leash-dev/leash/internal/vaultproxy"
)

// Logins through the binary: every --auth method leash wires, and what a
// rejected or forbidden login exits with.

func TestPermissionDeniedExits77(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "p"}})
	token := srv.LimitedToken(t, `path "sys/*" { capabilities = ["deny"] }`)
	cmd := Command(t, "-s", "pw="+kv+"/app#password", "--", "true")
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+token)
	got, stderr := ExitStatus(t, cmd)
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
	cmd := Command(t, "--auth", "approle", "--auth-mount", a.Mount, "--role-id-file", roleID, "--secret-id-file", secretID,
		"-s", "k=secret/x", "--", "true")
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr)
	got, stderr := ExitStatus(t, cmd)
	if got != exitNoPerm || !strings.Contains(stderr, "auth/"+a.Mount+"/login") {
		t.Errorf("exit %d, want %d naming the login path; stderr:\n%s", got, exitNoPerm, stderr)
	}
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

// awsEnv is the environment of a leash using only kv for AWS: every
// other variable of the SDK's chain cleared, the shared files pointed at
// nothing, IMDS off (no test may reach 169.254.169.254). Later entries of
// an exec.Cmd's Env win.
func awsEnv(t *testing.T, kv ...string) []string {
	dir := t.TempDir()
	env := []string{
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_DEFAULT_PROFILE=",
		"AWS_WEB_IDENTITY_TOKEN_FILE=", "AWS_ROLE_ARN=", "AWS_REGION=", "AWS_DEFAULT_REGION=",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=", "AWS_ENDPOINT_URL=", "AWS_ENDPOINT_URL_STS=",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
	}
	return append(env, kv...)
}

// awsEnvValue is the last value env gives name.
func awsEnvValue(env []string, name string) string {
	v := ""
	for _, kv := range env {
		if k, val, _ := strings.Cut(kv, "="); k == name {
			v = val
		}
	}
	return v
}

// TestAWSAuthEndToEnd: --auth aws through the binary against Vault's aws
// auth (its STS a loopback fake, see testvault.AWSAuth). The child reads
// the secret, `validate --online` logs in too, and leash's stderr at trace
// level, text and JSON, holds neither the secret access key nor the session
// token; nor does it when STS rejects the signature. The child's
// environment and templates' env lack the AWS credential variables.
func TestAWSAuthEndToEnd(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 1)
	const secret = "aws-kv-secret-4Tq"
	srv.Write(t, kv+"/app", map[string]any{"k": secret})
	a := srv.AWS(t, []string{srv.Policy(t, `path "`+kv+`/app" { capabilities = ["read"] }`)}, time.Hour, time.Hour, "vault.example.test")
	k := a.NewKey(t, true)
	env := append(awsEnv(t, "AWS_ACCESS_KEY_ID="+k.ID, "AWS_SECRET_ACCESS_KEY="+k.Secret, "AWS_SESSION_TOKEN="+k.Session),
		"VAULT_ADDR="+srv.Addr)
	flags := []string{"--log-level", "trace", "--auth", "aws", "--auth-mount", a.Mount, "--auth-role", a.Role,
		"--aws-iam-server-id", "vault.example.test", "-s", "k=" + kv + "/app#k"}
	leaks := func(what, stderr string) {
		t.Helper()
		for _, s := range []string{k.Secret, k.Session} {
			if strings.Contains(stderr, s) {
				t.Errorf("%s: an AWS secret is in leash's stderr:\n%s", what, stderr)
			}
		}
	}
	for _, format := range []string{"text", "json"} {
		cmd := Command(t, append(append([]string{"--log-format", format}, flags...), "--", "sh", "-c", `cat "$K_FILE"`)...)
		cmd.Env = append(cmd.Env, env...)
		out, stderr := Output(t, cmd)
		if string(out) != secret {
			t.Errorf("%s: child read %q", format, out)
		}
		if !strings.Contains(stderr, "auth/"+a.Mount+"/login") {
			t.Errorf("%s: no aws login logged:\n%s", format, stderr)
		}
		leaks(format, stderr)
	}

	// The child sees none of leash's AWS credentials, in its environment
	// or through a template's env; the rest of the environment it gets.
	tmpl := filepath.Join(t.TempDir(), "t.tmpl")
	if err := os.WriteFile(tmpl, []byte(`{{ env "AWS_SECRET_ACCESS_KEY" }}|{{ env "AWS_SESSION_TOKEN" }}|{{ env "AWS_CONFIG_FILE" }}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := Command(t, append(slices.Clone(flags), "-t", "t="+tmpl, "--", "sh", "-c", `cat "$T_FILE"; echo; env`)...)
	cmd.Env = append(cmd.Env, env...)
	out, stderr := Output(t, cmd)
	rendered, childEnv, _ := strings.Cut(string(out), "\n")
	if want := "||" + awsEnvValue(env, "AWS_CONFIG_FILE"); rendered != want {
		t.Errorf("template rendered %q, want %q", rendered, want)
	}
	for _, kv := range strings.Split(childEnv, "\n") {
		name, _, _ := strings.Cut(kv, "=")
		if slices.Contains([]string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}, name) {
			t.Errorf("the child's environment has %s", name)
		}
	}
	for _, s := range []string{k.ID, k.Secret, k.Session} {
		if strings.Contains(childEnv, s) {
			t.Errorf("an AWS credential is in the child's environment:\n%s", childEnv)
		}
	}
	if !strings.Contains(childEnv, "AWS_CONFIG_FILE=") {
		t.Errorf("the child lost AWS_CONFIG_FILE, which is no secret:\n%s", childEnv)
	}
	leaks("child env", stderr)

	cmd = Command(t, append([]string{"validate", "--online"}, flags...)...)
	cmd.Env = append(cmd.Env, env...)
	out, stderr = Output(t, cmd)
	if !strings.HasPrefix(string(out), "ok:") {
		t.Errorf("validate --online printed %q", out)
	}
	leaks("validate", stderr)

	cmd = Command(t, append(flags, "--", "true")...)
	cmd.Env = append(append(cmd.Env, env...), "AWS_SECRET_ACCESS_KEY=wrong-"+k.Secret)
	got, stderr := ExitStatus(t, cmd)
	if got != exitNoPerm || !strings.Contains(stderr, "SignatureDoesNotMatch") {
		t.Errorf("rejected signature: exit %d, want %d with STS's answer; stderr:\n%s", got, exitNoPerm, stderr)
	}
	leaks("rejected", stderr)
}

// With no AWS credentials anywhere leash exits 69 before starting the
// child, saying where it looked.
func TestAWSAuthNoCredentialsExits69(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	marker := filepath.Join(t.TempDir(), "started")
	cmd := Command(t, "--auth", "aws", "--startup-timeout", "5s", "-s", "k=secret/x", "--", "touch", marker)
	cmd.Env = append(append(cmd.Env, awsEnv(t)...), "VAULT_ADDR="+srv.Addr)
	got, stderr := ExitStatus(t, cmd)
	if got != exitUnavailable || !strings.Contains(stderr, "aws credentials") || !strings.Contains(stderr, "cloud identity") {
		t.Errorf("exit %d, want %d naming the AWS credential chain; stderr:\n%s", got, exitUnavailable, stderr)
	}
}

// requestLog records the requests a metadata stand-in got.
type requestLog struct {
	mu   sync.Mutex
	reqs []string
}

func (l *requestLog) add(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, r.Header.Get("Metadata-Flavor")+r.Header.Get("Metadata")+" "+r.URL.RequestURI())
}

func (l *requestLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.reqs, "\n")
}

// TestCloudAuthFlags: the gcp and azure flags reach the metadata requests
// leash makes (through `validate --online`, the binary's own wiring), and
// Vault's verdict on the login is exit 77. Neither login can succeed here
// (see lease's TestGCPLogin* and TestAzureLogin*): the tokens are not
// Google's or Azure AD's.
func TestCloudAuthFlags(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	const token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJzdWIiOiIxIn0.c2ln"
	var log requestLog
	md := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		switch r.URL.Path {
		case "/computeMetadata/v1/instance/service-accounts/app@p.iam.gserviceaccount.com/identity":
			w.Write([]byte(token))
		case "/metadata/identity/oauth2/token":
			w.Write([]byte(`{"access_token":"` + token + `"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(md.Close)

	gcp := srv.EnableAuth(t, "gcp")
	srv.Write(t, "auth/"+gcp+"/config", map[string]any{"custom_endpoint": map[string]any{"api": md.URL, "iam": md.URL, "crm": md.URL, "compute": md.URL}})
	srv.Write(t, "auth/"+gcp+"/role/web", map[string]any{"type": "gce", "bound_projects": []string{"p"}})
	azure := srv.EnableAuth(t, "azure")
	srv.Write(t, "auth/"+azure+"/role/web", map[string]any{"bound_subscription_ids": []string{"11111111-2222-4333-8444-555555555555"}, "token_bound_cidrs": []string{"192.0.2.0/24"}})

	for _, c := range []struct {
		name  string
		flags []string
		env   []string
		want  string // the metadata request
	}{
		{"gcp", []string{"--auth", "gcp", "--auth-mount", gcp, "--auth-role", "web", "--gcp-service-account", "app@p.iam.gserviceaccount.com"},
			[]string{"GCE_METADATA_HOST=" + strings.TrimPrefix(md.URL, "http://")},
			"Google /computeMetadata/v1/instance/service-accounts/app@p.iam.gserviceaccount.com/identity?audience=vault%2Fweb&format=full"},
		{"azure", []string{"--auth", "azure", "--auth-mount", azure, "--auth-role", "web", "--azure-imds-url", md.URL,
			"--azure-resource", "https://vault.example.test/", "--azure-client-id", "cid",
			"--azure-subscription-id", "11111111-2222-4333-8444-555555555555", "--azure-resource-group", "rg", "--azure-vm-name", "vm"},
			nil,
			"true /metadata/identity/oauth2/token?api-version=2018-02-01&client_id=cid&resource=https%3A%2F%2Fvault.example.test%2F"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := Command(t, append(append([]string{"validate", "--online", "--log-level", "trace"}, c.flags...), "-s", "k=secret/x")...)
			cmd.Env = append(append(cmd.Env, "VAULT_ADDR="+srv.Addr), c.env...)
			got, stderr := ExitStatus(t, cmd)
			if got != exitNoPerm || !strings.Contains(stderr, "/login") {
				t.Errorf("exit %d, want %d for the login Vault refused; stderr:\n%s", got, exitNoPerm, stderr)
			}
			if !strings.Contains(log.String(), c.want) {
				t.Errorf("metadata requests:\n%s\nwant %s", log.String(), c.want)
			}
			if strings.Contains(stderr, token) {
				t.Errorf("the identity token is in leash's stderr")
			}
		})
	}
}

// Against a TLS Vault: a certificate that does not verify (unknown CA,
// wrong server name) is a configuration problem, exit 78 naming the fix,
// not 70; VAULT_SKIP_VERIFY and BAO_SKIP_VERIFY connect, with one WARN
// line at start-up, in run and in validate.
func TestVaultTLSExitAndSkipVerifyWarning(t *testing.T) {
	t.Parallel()
	srv := testvault.NewTLS(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "p"}})
	leash := func(env []string, args ...string) (int, string) {
		// -s goes after a command name and before "--".
		i := 0
		if args[0] == "validate" {
			i = 1
		}
		args = append(append(append([]string{}, args[:i]...), "-s", "pw="+kv+"/app#password"), args[i:]...)
		cmd := Command(t, args...)
		cmd.Env = append(cmd.Env, append([]string{"VAULT_ADDR=" + srv.Addr, "VAULT_TOKEN=" + srv.RootToken,
			"VAULT_CACERT=", "VAULT_CAPATH=", "VAULT_SKIP_VERIFY=", "BAO_SKIP_VERIFY=", "VAULT_TLS_SERVER_NAME="}, env...)...)
		return ExitStatus(t, cmd)
	}
	const warning = "SKIP_VERIFY is set: Vault's TLS certificate is not verified"
	for _, tt := range []struct {
		name string
		env  []string
	}{
		{"unknown CA", nil},
		{"wrong server name", []string{"VAULT_CACERT=" + srv.CACert, "VAULT_TLS_SERVER_NAME=other.example"}},
	} {
		got, stderr := leash(tt.env, "--", "true")
		if got != exitConfig || !strings.Contains(stderr, "VAULT_CACERT") {
			t.Errorf("%s: exit %d, want %d with a hint naming VAULT_CACERT; stderr:\n%s", tt.name, got, exitConfig, stderr)
		}
		if strings.Contains(stderr, warning) {
			t.Errorf("%s: warned about a skip that is off:\n%s", tt.name, stderr)
		}
	}
	for _, tt := range []struct {
		name, skip string
		args       []string
	}{
		{"run", "VAULT_SKIP_VERIFY=true", []string{"--", "true"}},
		{"validate --online", "BAO_SKIP_VERIFY=1", []string{"validate", "--online"}},
		{"validate", "VAULT_SKIP_VERIFY=1", []string{"validate"}},
	} {
		got, stderr := leash([]string{tt.skip}, tt.args...)
		if got != 0 {
			t.Errorf("%s with %s: exit %d; stderr:\n%s", tt.name, tt.skip, got, stderr)
		}
		name, _, _ := strings.Cut(tt.skip, "=")
		if n := strings.Count(stderr, "[WARN]  leash.lease: "+name+" is set"); n != 1 {
			t.Errorf("%s with %s: %d warnings, want 1; stderr:\n%s", tt.name, tt.skip, n, stderr)
		}
	}
}

// A redirect from VAULT_ADDR to another host is refused with exit 78, an
// error naming both addresses and the flag that allows it, and nothing
// sent there; --vault-redirect-allow, its environment variable and its
// config key let it through.
func TestVaultRedirectAllow(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "p"}})
	token := srv.LimitedToken(t, `path "`+kv+`/data/app" { capabilities = ["read"] }`)
	// other is Vault too, under another host name: a followed redirect
	// works, and a refused one shows as no request there.
	other := vaultproxy.Start(t, srv.Addr)
	otherAddr := strings.Replace(other.Addr(), "127.0.0.1", "localhost", 1)
	front := vaultproxy.Start(t, srv.Addr)
	front.Redirect(otherAddr, -1)
	conf := filepath.Join(t.TempDir(), "leash.hcl")
	if err := os.WriteFile(conf, []byte(`vault_redirect_allow = ["localhost"]`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	leash := func(env []string, args ...string) (int, string) {
		cmd := Command(t, append(args, "-s", "pw="+kv+"/app#password", "--", "true")...)
		cmd.Env = append(cmd.Env, append(env, "VAULT_ADDR="+front.Addr(), "VAULT_TOKEN="+token)...)
		return ExitStatus(t, cmd)
	}

	got, stderr := leash(nil)
	if got != exitConfig {
		t.Fatalf("exit %d, want %d; stderr:\n%s", got, exitConfig, stderr)
	}
	if n := other.Requests(""); n != 0 {
		t.Fatalf("the other host received %d requests", n)
	}
	for _, want := range []string{front.Addr(), otherAddr, "--vault-redirect-allow"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not name %s:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, token) {
		t.Errorf("stderr holds the token:\n%s", stderr)
	}

	for _, tt := range []struct {
		name string
		env  []string
		args []string
	}{
		{"flag", nil, []string{"--vault-redirect-allow", "localhost"}},
		{"environment", []string{"LEASH_VAULT_REDIRECT_ALLOW=example.invalid,localhost"}, nil},
		{"config file", nil, []string{"-c", conf}},
	} {
		before := other.Requests("")
		if got, stderr := leash(tt.env, tt.args...); got != 0 {
			t.Errorf("%s: exit %d, want 0; stderr:\n%s", tt.name, got, stderr)
		}
		if other.Requests("") == before {
			t.Errorf("%s: the allowed host received no request", tt.name)
		}
	}

	got, stderr = leash(nil, "--vault-redirect-allow", otherAddr)
	if got != exitConfig || !strings.Contains(stderr, "--vault-redirect-allow") {
		t.Errorf("a URL for --vault-redirect-allow: exit %d, want %d naming the flag; stderr:\n%s", got, exitConfig, stderr)
	}
}

// TestAWSEC2EndToEnd: --auth aws --aws-type ec2 through the binary against
// Vault's real aws backend (IMDSv2 and EC2 loopback fakes, see
// testvault.AWSEC2Auth). The child reads the secret; `validate --online`
// logs in on a fresh mount; a leash started after it there has another
// nonce and Vault refuses it with exit 77, as the README says.
func TestAWSEC2EndToEnd(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 1)
	const secret = "ec2-kv-secret-7Rw"
	srv.Write(t, kv+"/app", map[string]any{"k": secret})
	pol := srv.Policy(t, `path "`+kv+`/app" { capabilities = ["read"] }`)
	leash := func(a *testvault.AWSEC2Auth, args ...string) *exec.Cmd {
		flags := []string{"--log-level", "trace", "--auth", "aws", "--aws-type", "ec2", "--auth-mount", a.Mount, "--auth-role", a.Role, "-s", "k=" + kv + "/app#k"}
		if args[0] == "validate" {
			flags = append([]string{"validate", "--online"}, flags...)
			args = nil
		}
		cmd := Command(t, append(flags, args...)...)
		cmd.Env = append(append(cmd.Env, awsEnv(t, "AWS_EC2_METADATA_DISABLED=false", "AWS_EC2_METADATA_SERVICE_ENDPOINT="+a.URL)...), "VAULT_ADDR="+srv.Addr)
		return cmd
	}

	a := srv.AWSEC2(t, []string{pol}, time.Hour, time.Hour)
	out, _ := Output(t, leash(a, "--", "sh", "-c", `cat "$K_FILE"`))
	if string(out) != secret {
		t.Errorf("child read %q", out)
	}

	b := srv.AWSEC2(t, []string{pol}, time.Hour, time.Hour)
	out, _ = Output(t, leash(b, "validate"))
	if !strings.HasPrefix(string(out), "ok:") {
		t.Errorf("validate --online printed %q", out)
	}
	got, stderr := ExitStatus(t, leash(b, "--", "true"))
	if got != exitNoPerm || !strings.Contains(stderr, "client nonce mismatch") {
		t.Errorf("leash after validate: exit %d, want %d with Vault's nonce mismatch; stderr:\n%s", got, exitNoPerm, stderr)
	}
}

// TestGCPEndToEnd: --auth gcp, iam and gce types, through the binary to a
// successful login at Vault's real gcp backend, Google a loopback fake
// (testvault.GCPAuth: Google cannot be reached from the test machines).
// The child reads the secret, `validate --online` logs in too, and leash's
// stderr at trace level holds no private key, access token or JWT.
func TestGCPEndToEnd(t *testing.T) {
	t.Parallel()
	g := testvault.GCP(t, nil, time.Hour, time.Hour)
	srv := g.Server
	kv := srv.KV(t, 1)
	const secret = "gcp-kv-secret-9Zx"
	srv.Write(t, kv+"/app", map[string]any{"k": secret})
	pol := srv.Policy(t, `path "`+kv+`/app" { capabilities = ["read"] }`)
	srv.Write(t, "auth/"+g.Mount+"/role/app", map[string]any{"token_policies": []string{pol}})
	srv.Write(t, "auth/"+g.Mount+"/role/"+g.GCERole, map[string]any{"token_policies": []string{pol}})
	key, err := os.ReadFile(g.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	var kf struct {
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(key, &kf); err != nil {
		t.Fatal(err)
	}
	leaks := func(what, stderr string) {
		t.Helper()
		for _, s := range []string{strings.Split(kf.PrivateKey, "\n")[2], "ya29.fake-", "eyJhbGciOiJSUzI1NiIs"} {
			if strings.Contains(stderr, s) {
				t.Errorf("%s: leash's stderr holds %q (a private key, an access token or the signed JWT):\n%s", what, s, stderr)
			}
		}
	}
	for _, c := range []struct {
		typ   string
		flags []string
		env   []string
	}{
		{"iam", []string{"--gcp-type", "iam", "--auth-role", g.Role, "--gcp-iam-credentials-url", g.URL},
			// No metadata server: the key file is the identity.
			[]string{"GOOGLE_APPLICATION_CREDENTIALS=" + g.KeyFile, "GCE_METADATA_HOST=127.0.0.1:1"}},
		{"gce", []string{"--auth-role", g.GCERole}, []string{"GCE_METADATA_HOST=" + g.MetadataHost()}},
	} {
		env := append([]string{"VAULT_ADDR=" + srv.Addr, "CLOUDSDK_CONFIG=" + t.TempDir(), "GOOGLE_APPLICATION_CREDENTIALS="}, c.env...)
		flags := append([]string{"--log-level", "trace", "--auth", "gcp", "--auth-mount", g.Mount, "-s", "k=" + kv + "/app#k"}, c.flags...)
		cmd := Command(t, append(flags, "--", "sh", "-c", `cat "$K_FILE"`)...)
		cmd.Env = append(cmd.Env, env...)
		out, stderr := Output(t, cmd)
		if string(out) != secret {
			t.Errorf("%s: child read %q; fake google refused: %q", c.typ, out, g.Rejects())
		}
		leaks(c.typ+" run", stderr)

		cmd = Command(t, append([]string{"validate", "--online"}, flags...)...)
		cmd.Env = append(cmd.Env, env...)
		out, stderr = Output(t, cmd)
		if !strings.HasPrefix(string(out), "ok:") {
			t.Errorf("%s: validate --online printed %q", c.typ, out)
		}
		leaks(c.typ+" validate", stderr)
	}
	if n := g.Signed.Load(); n < 2 {
		t.Errorf("%d JWTs signed, want one per iam login", n)
	}
	if n := len(g.Audiences()); n < 2 {
		t.Errorf("%d identity tokens issued, want one per gce login", n)
	}
}

// TestCloudValidateOnlineNamesTheSource: `validate --online` with a cloud
// identity that cannot be had exits 69 naming the credential source or
// metadata endpoint that failed, for each cloud login type.
func TestCloudValidateOnlineNamesTheSource(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // connection refused from now on
	missing := filepath.Join(t.TempDir(), "missing.json")
	gcpEnv := []string{"CLOUDSDK_CONFIG=" + t.TempDir(), "GOOGLE_APPLICATION_CREDENTIALS=", "GCE_METADATA_HOST=" + strings.TrimPrefix(down.URL, "http://")}
	for _, c := range []struct {
		name  string
		flags []string
		env   []string
		want  string
	}{
		{"aws iam", []string{"--auth", "aws"}, awsEnv(t), "aws credentials"},
		{"aws ec2", []string{"--auth", "aws", "--aws-type", "ec2"},
			awsEnv(t, "AWS_EC2_METADATA_DISABLED=false", "AWS_EC2_METADATA_SERVICE_ENDPOINT="+down.URL),
			"EC2 instance metadata (" + down.URL + ") /latest/dynamic/instance-identity/pkcs7"},
		{"gcp gce", []string{"--auth", "gcp", "--auth-role", "app"}, gcpEnv,
			"metadata server " + down.URL + "/computeMetadata/v1/instance/service-accounts/default/identity"},
		{"gcp iam key file", []string{"--auth", "gcp", "--gcp-type", "iam", "--auth-role", "app"},
			append(gcpEnv, "GOOGLE_APPLICATION_CREDENTIALS="+missing), "GOOGLE_APPLICATION_CREDENTIALS=" + missing},
		{"gcp iam metadata", []string{"--auth", "gcp", "--gcp-type", "iam", "--auth-role", "app"}, gcpEnv,
			"metadata server " + down.URL + "/computeMetadata/v1/instance/service-accounts/default/token"},
		{"azure", []string{"--auth", "azure", "--auth-role", "app", "--azure-imds-url", down.URL}, nil,
			"metadata server " + down.URL + "/metadata/identity/oauth2/token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cmd := Command(t, append(append([]string{"validate", "--online", "--startup-timeout", "3s"}, c.flags...), "-s", "k=secret/x")...)
			cmd.Env = append(append(cmd.Env, c.env...), "VAULT_ADDR="+srv.Addr)
			got, stderr := ExitStatus(t, cmd)
			if got != exitUnavailable || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, want %d naming %q; stderr:\n%s", got, exitUnavailable, c.want, stderr)
			}
		})
	}
}
