package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leash-dev/leash/render"
)

// parseRunOptions parses `leash ARGS -- true` and returns run's options
// without the config-file fields, for comparing two ways of configuring.
func parseRunOptions(t *testing.T, args ...string) Options {
	t.Helper()
	cli, _, err := parseCLI(append(args, "--", "true"))
	if err != nil {
		t.Fatalf("parseCLI(%q): %v", args, err)
	}
	o := cli.Run.Options
	o.Config, o.AgentConfig = "", ""
	return o
}

// Every agent config of testdata/agent reaches Options the same way
// through --agent-config, through -c (recognised), and through the native
// file `leash convert` prints, loaded with -c: the conversion is a valid
// native config that behaves the same.
func TestAgentConfigConvertRoundTrip(t *testing.T) {
	files, err := filepath.Glob("testdata/agent/*.hcl")
	if err != nil || len(files) < 6 {
		t.Fatalf("agent configs: %v, %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var out bytes.Buffer
			if err := (&ConvertCmd{File: f}).run(&out); err != nil {
				t.Fatal(err)
			}
			native := filepath.Join(t.TempDir(), "leash.hcl")
			if err := os.WriteFile(native, out.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			if isAgentConfig(out.Bytes()) {
				t.Fatal("the converted config looks like a Vault Agent config")
			}
			fromAgent := parseRunOptions(t, "--agent-config", f)
			fromC := parseRunOptions(t, "-c", f)
			fromNative := parseRunOptions(t, "-c", native)
			if !reflect.DeepEqual(fromAgent, fromNative) {
				t.Errorf("--agent-config and the converted file differ:\n%+v\n%+v\nconverted:\n%s", fromAgent, fromNative, out.String())
			}
			if !reflect.DeepEqual(fromAgent, fromC) {
				t.Errorf("--agent-config and -c differ:\n%+v\n%+v", fromAgent, fromC)
			}
			// Every stanza has its comment.
			c, err := loadAgentConfig(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range c.notes {
				first := strings.Fields(n)[0]
				if !strings.Contains(out.String(), "# - "+first) {
					t.Errorf("no comment for %q", n)
				}
			}
		})
	}
}

// What each stanza becomes, key by key.
func TestAgentConfigMapping(t *testing.T) {
	o := parseRunOptions(t, "--agent-config", "testdata/agent/issue-approle.hcl")
	want := Options{}
	want.Auth, want.RoleIDFile, want.SecretIDFile, want.RemoveSecretIDFile = "approle", "/etc/app/role-id", "/etc/app/secret-id", true
	want.TemplateTexts = []string{"db-creds={{ with secret \"database/creds/app-readonly\" }}\nDB_USER={{ .Data.username }}\nDB_PASS={{ .Data.password }}\n{{ end }}\n"}
	want.OutputPaths = []string{"db-creds=/etc/secrets/db-creds"}
	want.Vault = []string{"address=https://vault.internal:8200"}
	want.OnRotate = "none"
	got := Options{Auth: o.Auth, RoleIDFile: o.RoleIDFile, SecretIDFile: o.SecretIDFile, RemoveSecretIDFile: o.RemoveSecretIDFile,
		TemplateTexts: o.TemplateTexts, OutputPaths: o.OutputPaths, Vault: o.Vault, OnRotate: o.OnRotate, AuthMount: o.AuthMount}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("issue config:\n got %+v\nwant %+v", got, want)
	}

	o = parseRunOptions(t, "--agent-config", "testdata/agent/supervisor.hcl")
	if o.Auth != "token" || o.TokenFile != "/home/app/.vault-token" || o.OnRotate != "none" || o.StopSignal != "SIGINT" ||
		o.KillTimeout != 30*time.Second || o.StaticRefresh != 5*time.Minute ||
		!slices.Equal(o.Exec, []string{"/usr/bin/app", "--port", "8080"}) || !slices.Equal(o.SetEnv, []string{"APP_MODE=production"}) ||
		!slices.Equal(o.TemplateDelims, []string{"DB_PASS=<% %>"}) || !slices.Equal(o.Templates, []string{"API_KEY=/etc/templates/api-key.ctmpl"}) {
		t.Errorf("supervisor config: %+v", o)
	}
	o = parseRunOptions(t, "--agent-config", "testdata/agent/kubernetes.hcl")
	if o.Auth != "kubernetes" || o.AuthMount != "k8s-prod" || o.AuthRole != "app-service-role" || o.JWTFile != "/var/run/secrets/tokens/vault" ||
		!slices.Contains(o.Vault, "namespace=team-a") || !slices.Equal(o.OutputModes, []string{"app.conf=0440"}) ||
		!slices.Equal(o.TemplateDelims, []string{"app.conf=[[ ]]"}) {
		t.Errorf("kubernetes config: %+v", o)
	}
	o = parseRunOptions(t, "--agent-config", "testdata/agent/jwt.hcl")
	if o.Auth != "jwt" || o.AuthRole != "ci" || o.JWTFile != "/var/run/ci/jwt" || o.RotateBefore != "25%" ||
		o.StaticRefresh != 10*time.Minute || !slices.Equal(o.AllowMissingKey, []string{"ci.json"}) {
		t.Errorf("jwt config: %+v", o)
	}
	o = parseRunOptions(t, "--agent-config", "testdata/agent/cert.hcl")
	if o.Auth != "cert" || o.AuthRole != "web" || !slices.Contains(o.Vault, "client_cert=/etc/vault/client.pem") {
		t.Errorf("cert config: %+v", o)
	}
	o = parseRunOptions(t, "--agent-config", "testdata/agent/approle-keep.hcl")
	if o.RemoveSecretIDFile || o.AuthMount != "apps" || o.OnRotate != "restart" || o.SecretIDWrapPath != "auth/apps/role/app/secret-id" {
		t.Errorf("approle-keep config: %+v", o)
	}
	// --secret-id-wrap-path's own errors name it; on the command line they
	// are usage errors.
	for _, tt := range []struct{ args, want string }{
		{"--secret-id-wrap-path auth/approle/role/app/secret-id", "--secret-id-wrap-path is for --auth approle, not token"},
		{"--auth approle --role-id-file /r --secret-id-file /s --secret-id-wrap-path /auth/approle/role/app/secret-id", `--secret-id-wrap-path "/auth/approle/role/app/secret-id": Vault's creation_path never starts`},
	} {
		cli, _, err := parseCLI(append(strings.Fields(tt.args), "--", "true"))
		if err == nil {
			_, err = cli.Run.settings(func(string) string { return "" })
		}
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want a usage error with %q", tt.args, err, tt.want)
		}
	}
	// Flags win over the file.
	o = parseRunOptions(t, "--agent-config", "testdata/agent/supervisor.hcl", "--on-rotate", "signal")
	if o.OnRotate != "signal" {
		t.Errorf("--on-rotate on the command line: %q, want signal", o.OnRotate)
	}
}

// Errors name the file, line and column, and what leash does instead.
func TestAgentConfigErrors(t *testing.T) {
	const method = "auto_auth {\n  method \"approle\" {\n    config = {\n      role_id_file_path = \"/r\"\n      secret_id_file_path = \"/s\"\n    }\n  }\n}\n"
	tests := []struct {
		name, src, want string
	}{
		{"cache", method + "cache {\n  use_auto_auth_token = true\n}\n", ":9:1: cache stanza: leash has no proxy, cache or listener"},
		{"listener", method + "listener \"tcp\" {\n  address = \"127.0.0.1:8100\"\n}\n", ":9:1: listener stanza"},
		{"api_proxy", method + "api_proxy { use_auto_auth_token = true }\n", ":9:1: api_proxy stanza"},
		{"telemetry", method + "telemetry { prometheus_retention_time = \"1h\" }\n", ":9:1: telemetry stanza"},
		{"other top-level key", method + "pid_file = \"/run/agent.pid\"\n", ":9:1: pid_file: not something leash can take over"},
		{"template command", method + "template {\n  destination = \"/dev/shm/x\"\n  contents = \"x\"\n  command = \"systemctl reload app\"\n}\n", ":12:3: template: command: leash runs no command"},
		{"template exec", method + "template {\n  destination = \"/dev/shm/x\"\n  contents = \"x\"\n  exec { command = [\"x\"] }\n}\n", ":12:3: template: exec: leash runs no command"},
		{"template backup", method + "template {\n  destination = \"/dev/shm/x\"\n  contents = \"x\"\n  backup = true\n}\n", ":12:3: template: backup would keep a copy"},
		{"exit_after_auth", method + "exit_after_auth = true\n", ":9:1: exit_after_auth = true: leash runs the app"},
		{"template parse error", method + "template {\n  destination = \"/dev/shm/x\"\n  contents = \"{{ nosuchfunc }}\"\n}\n", ":11:3: template contents: "},
		{"template both", method + "template {\n  destination = \"/dev/shm/x\"\n  contents = \"x\"\n  source = \"/y\"\n}\n", ":12:3: template: contents and source cannot both be set"},
		{"template no destination", method + "template {\n  contents = \"x\"\n}\n", ":9:1: template: needs a destination"},
		{"relative destination", method + "template {\n  destination = \"secrets/x\"\n  contents = \"x\"\n}\n", ":10:3: template: destination \"secrets/x\": leash needs an absolute path"},
		{"unclean destination", method + "template {\n  destination = \"/dev/shm/../x\"\n  contents = \"x\"\n}\n", ":10:3: template: destination \"/dev/shm/../x\": leash needs an absolute path"},
		{"bad perms", method + "template {\n  destination = \"/dev/shm/x\"\n  contents = \"x\"\n  perms = \"rw\"\n}\n", ":12:3: perms: want an octal mode"},
		{"env_template destination", method + "env_template \"X\" {\n  destination = \"/dev/shm/x\"\n  contents = \"x\"\n}\n", ":10:3: env_template \"X\": destination is not allowed"},
		{"unknown method", "auto_auth {\n  method \"alicloud\" {\n    config = { role = \"r\" }\n  }\n}\n", ":2:3: auto_auth method \"alicloud\": leash takes over approle, kubernetes, jwt, cert, token_file"},
		{"unknown method key", "auto_auth {\n  method \"kubernetes\" {\n    config = { role = \"r\", audience = \"x\" }\n  }\n}\n", ":3:28: auto_auth method \"kubernetes\" config: unknown key \"audience\""},
		{"empty wrapping path", strings.Replace(method, "\"/s\"\n", "\"/s\"\n      secret_id_response_wrapping_path = \"\"\n", 1), ":6:7: secret_id_response_wrapping_path: empty"},
		{"wrapping path with a slash", strings.Replace(method, "\"/s\"\n", "\"/s\"\n      secret_id_response_wrapping_path = \"/auth/approle/role/app/secret-id\"\n", 1), ":6:7: secret_id_response_wrapping_path \"/auth/approle/role/app/secret-id\": Vault's creation_path never starts or ends with \"/\""},
		{"namespaces differ", "vault { namespace = \"a\" }\n" + strings.Replace(method, "method \"approle\" {", "method \"approle\" {\n    namespace = \"b\"", 1), ":4:5: namespace \"b\" differs from \"a\""},
		{"two vault stanzas", "vault { address = \"a\" }\nvault { address = \"b\" }\n", ":2:1: a second vault stanza (the first is at "},
		{"exec bad restart", method + "exec {\n  command = [\"x\"]\n  restart_on_secret_changes = \"sometimes\"\n}\n", ":11:3: exec: restart_on_secret_changes \"sometimes\""},
		{"exec child output", method + "exec {\n  command = [\"x\"]\n  child_process_stdout = \"/var/log/app\"\n}\n", ":11:3: exec: child_process_stdout"},
		{"template_config unknown", method + "template_config { nope = 1 }\n", ":9:19: template_config: unknown key \"nope\""},
		{"lease_renewal_threshold", method + "template_config { lease_renewal_threshold = 1.5 }\n", ":9:19: lease_renewal_threshold: want a fraction"},
		{"syntax", "vault {\n  address = \n", ":"},
		{"json", "\n  {\"vault\": {\"address\": \"http://127.0.0.1:8200\"}}\n", ":2:3: a Vault Agent config in JSON: leash reads the HCL form only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseAgentConfig("agent.hcl", []byte(tt.src))
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a config error", err)
			}
			if !strings.HasPrefix(err.Error(), "agent.hcl:") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// A sink is refused at run time, naming its line, unless --ignore-sinks;
// a destination on disk is refused naming its line, unless --allow-disk;
// env_template's notice is logged.
func TestAgentConfigChecks(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rid, sid := write("role-id", "r"), write("secret-id", "s")
	auth := "auto_auth {\n  method \"approle\" {\n    config = {\n      role_id_file_path = \"" + rid + "\"\n      secret_id_file_path = \"" + sid + "\"\n    }\n  }\n  sink \"file\" { config = { path = \"/tmp/t\" } }\n}\n"
	settingsOf := func(args ...string) (*settings, error) {
		cli, _, err := parseCLI(append(args, "--", "true"))
		if err != nil {
			return nil, err
		}
		return cli.Run.settings(func(string) string { return "" })
	}
	shm := "/dev/shm"
	agent := write("agent.hcl", auth+"template {\n  destination = \""+filepath.Join(shm, "leash-agent-test")+"\"\n  contents = \"x\"\n}\n")
	if _, err := settingsOf("--agent-config", agent); err == nil || !strings.Contains(err.Error(), agent+":8:3: auto_auth sink: leash keeps its Vault token in memory only") {
		t.Errorf("sink: err = %v", err)
	}
	if _, err := settingsOf("--agent-config", agent, "--ignore-sinks"); err != nil {
		t.Errorf("--ignore-sinks: %v", err)
	}
	if _, err := settingsOf("-c", agent, "--ignore-sinks"); err != nil {
		t.Errorf("-c --ignore-sinks: %v", err)
	}
	onDisk := write("disk.hcl", auth+"template {\n  destination = \""+filepath.Join(dir, "out")+"\"\n  contents = \"x\"\n}\n")
	if !isOnDisk(t, dir) {
		t.Skip("the temporary directory is on tmpfs here")
	}
	if _, err := settingsOf("--agent-config", onDisk, "--ignore-sinks"); err == nil || !strings.Contains(err.Error(), onDisk+":11:3: template destination: ") || !strings.Contains(err.Error(), "not on tmpfs or ramfs") {
		t.Errorf("destination on disk: err = %v", err)
	}
	if _, err := settingsOf("--agent-config", onDisk, "--ignore-sinks", "--allow-disk"); err != nil {
		t.Errorf("--allow-disk: %v", err)
	}
	env := write("env.hcl", auth+"env_template \"DB_PASS\" {\n  contents = \"x\"\n}\nexec { command = [\"/bin/true\"] }\n")
	s, err := settingsOf("--agent-config", env, "--ignore-sinks")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.notices) != 1 || !strings.Contains(s.notices[0], "the app must read the file $DB_PASS_FILE instead of $DB_PASS") {
		t.Errorf("notices = %q", s.notices)
	}
	if _, err := settingsOf("-c", env, "--agent-config", env); err == nil {
		t.Error("-c and --agent-config together: accepted")
	}
	// A JSON agent config given to -c is recognised, and refused as such
	// rather than as a native config's syntax error.
	js := write("agent.json", `{"vault": {"address": "http://127.0.0.1:8200"}, "auto_auth": {"method": [{"type": "approle"}]}}`)
	if _, _, err := parseCLI([]string{"-c", js, "--", "true"}); err == nil || !strings.Contains(err.Error(), js+":1:1: a Vault Agent config in JSON") {
		t.Errorf("-c with a JSON agent config: err = %v", err)
	}
	if _, _, err := parseCLI([]string{"-c", write("native.json", `{"secret": ["a=kv/a"]}`), "--", "true"}); err == nil || strings.Contains(err.Error(), "Vault Agent") {
		t.Errorf("-c with JSON that is no agent config: err = %v, want the native config's syntax error", err)
	}
}

func isOnDisk(t *testing.T, dir string) bool {
	t.Helper()
	return render.CheckPath(filepath.Join(dir, "x")) != nil
}

// The native flags Vault Agent's stanzas become: inline templates with
// their delimiters, exact output paths with modes, plain child variables.
func TestNativeAgentFlags(t *testing.T) {
	shm := t.TempDir()
	o := Options{
		TemplateTexts:  []string{"a=[[ with secret \"secret/app\" ]][[ .Data.user ]][[ end ]]{{ not an action }}"},
		TemplateDelims: []string{"a=[[ ]]"},
		OutputPaths:    []string{"a=" + filepath.Join(shm, "a")},
		OutputModes:    []string{"a=0440"},
		SetEnv:         []string{"APP_MODE=production"},
	}
	p, err := o.buildPlan(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if len(p.outputs) != 1 || p.outputs[0].Path != filepath.Join(shm, "a") || p.outputs[0].Mode != 0o440 || len(p.specs) != 1 || p.specs[0].Path != "secret/app" {
		t.Fatalf("plan: %+v", p)
	}
	if !slices.Equal(p.setEnv, []string{"APP_MODE=production"}) {
		t.Fatalf("setEnv = %q", p.setEnv)
	}
	for _, bad := range []Options{
		{TemplateTexts: []string{"novalue"}},
		{TemplateTexts: []string{"a={{ x"}},
		{TemplateTexts: []string{"a=x"}, TemplateDelims: []string{"a=[["}},
		{TemplateTexts: []string{"a=x"}, TemplateDelims: []string{"b=[[ ]]"}},
		{TemplateTexts: []string{"a=x"}, OutputPaths: []string{"b=/dev/shm/b"}},
		{TemplateTexts: []string{"a=x"}, OutputPaths: []string{"a=relative"}},
		{TemplateTexts: []string{"a=x"}, OutputModes: []string{"a=0400"}},
		{TemplateTexts: []string{"a=x"}, OutputPaths: []string{"a=/dev/shm/a"}, OutputModes: []string{"a=9"}},
		{TemplateTexts: []string{"a=x"}, OutputPaths: []string{"a=/dev/shm/a", "a=/dev/shm/b"}},
		{SetEnv: []string{"=x"}},
		{Secrets: []string{"a=secret/x"}, TemplateDelims: []string{"a=[[ ]]"}},
	} {
		var ce *configError
		if _, err := bad.buildPlan(func(string) string { return "" }); !errors.As(err, &ce) {
			t.Errorf("buildPlan(%+v) = %v, want a config error", bad, err)
		}
	}
	if _, err := (&Options{Vault: []string{"adress=x"}}).vaultEnv(); err == nil {
		t.Error("--vault with an unknown key accepted")
	}
	t.Setenv("VAULT_ADDR", "")
	t.Setenv("BAO_ADDR", "")
	t.Setenv("VAULT_NAMESPACE", "from-env")
	env, err := (&Options{Vault: []string{"address=http://127.0.0.1:1", "namespace=from-file"}}).vaultEnv()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(env, "VAULT_ADDR=http://127.0.0.1:1") || slices.Contains(env, "VAULT_NAMESPACE=from-file") {
		t.Errorf("vaultEnv: the file's address must apply and the environment's namespace win: %q", env)
	}
}

// A bad value in a Vault Agent config is reported at the stanza it came
// from in that file (exit 78), not at a line of the converted text, which
// the user never sees.
func TestAgentConfigBadValueNamesStanza(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := filepath.Join(dir, "agent.hcl")
	src := "auto_auth {\n  method \"token_file\" {\n    config = { token_file_path = \"" + tok + "\" }\n  }\n}\n\nexec {\n  command = [\"true\"]\n  restart_stop_signal = \"SIGNOPE\"\n}\n"
	if err := os.WriteFile(agent, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"--agent-config", "-c"} {
		_, _, err := parseCLI([]string{flag, agent, "--", "true"})
		var ce *configError
		if want := "exec (" + agent + ":7:1): stop_signal: parse signal \"SIGNOPE\""; !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: err = %v, want a config error starting %q", flag, err, want)
		}
	}
}

// Keys set to what leash does anyway are accepted, with a note: Vault
// Agent examples often spell out exit_after_auth = false and backup =
// false.
func TestAgentConfigNoOpKeys(t *testing.T) {
	const src = "auto_auth {\n  method \"approle\" {\n    config = {\n      role_id_file_path = \"/r\"\n      secret_id_file_path = \"/s\"\n    }\n  }\n}\n" +
		"exit_after_auth = false\ntemplate {\n  destination = \"/dev/shm/x\"\n  contents = \"x\"\n  backup = false\n}\n"
	c, err := parseAgentConfig("agent.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(c.notes, "\n")
	for _, want := range []string{"exit_after_auth (agent.hcl:9:1): false is what leash does", "backup = false dropped"} {
		if !strings.Contains(notes, want) {
			t.Errorf("no note %q in:\n%s", want, notes)
		}
	}
}

// convert says in one line per env_template that the app must read
// $NAME_FILE, however long the file's path, as the start-up log does.
func TestAgentConvertNoticeOneLine(t *testing.T) {
	const src = "auto_auth {\n  method \"approle\" {\n    config = {\n      role_id_file_path = \"/r\"\n      secret_id_file_path = \"/s\"\n    }\n  }\n}\n" +
		"env_template \"DB_PASS\" {\n  contents = \"x\"\n}\nexec {\n  command = [\"/app\"]\n}\n"
	for _, name := range []string{"a.hcl", "/etc/deployments/" + strings.Repeat("long-directory-name/", 4) + "agent.hcl"} {
		c, err := parseAgentConfig(name, []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := c.writeNative(&b); err != nil {
			t.Fatal(err)
		}
		notice := c.notices[0]
		n := 0
		for _, line := range strings.Split(b.String(), "\n") {
			if strings.HasPrefix(line, "#") && strings.Contains(line, notice) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d comment lines hold %q, want 1:\n%s", name, n, notice, b.String())
		}
	}
}
