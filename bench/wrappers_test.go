//go:build bench

package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func (e *env) childArgv(sc *scenario, cred string) []string {
	argv := []string{e.child, "-fifo", sc.fifo}
	if cred != "" {
		argv = append(argv, "-cred", cred)
	}
	if sc.exit {
		argv = append(argv, "-exit")
	}
	return argv
}

// direct runs the child itself: the floor.
var direct = wrapper{name: "direct", argv: func(e *env, sc *scenario) ([]string, []string, error) {
	return e.childArgv(sc, ""), nil, nil
}}

// tini is the signal-forwarding baseline (-s: subreaper, since it is not PID 1 here).
var tini = wrapper{name: "tini", argv: func(e *env, sc *scenario) ([]string, []string, error) {
	if e.tini == "" {
		return nil, nil, errors.New(e.buildErr["tini"])
	}
	return append([]string{e.tini, "-s", "--"}, e.childArgv(sc, "")...), nil, nil
}}

// leash: one -s output per credential, JSON, read by the child via $DBn_FILE.
var leash = wrapper{name: "leash", signal: true, argv: func(e *env, sc *scenario) ([]string, []string, error) {
	if e.leash == "" {
		return nil, nil, fmt.Errorf("leash did not build: %s", e.buildErr["leash"])
	}
	argv := []string{e.leash, "--on-rotate", sc.onRotate}
	var srcs []string
	for i, p := range sc.creds {
		argv = append(argv, "-s", fmt.Sprintf("db%d=%s", i, p))
		srcs = append(srcs, fmt.Sprintf("file:DB%d_FILE", i))
	}
	argv = append(argv, "--")
	argv = append(argv, e.childArgv(sc, strings.Join(srcs, ","))...)
	return argv, []string{"VAULT_ADDR=" + sc.addr, "VAULT_TOKEN=" + sc.token}, nil
}}

// hclList renders a string list for HCL.
func hclList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// vaultAgent is Vault Agent's process-supervisor mode: env_template + exec,
// auto-auth with the run's token from a file. Credentials reach the child
// as environment variables (username and password per credential).
var vaultAgent = wrapper{name: "vault-agent", argv: func(e *env, sc *scenario) ([]string, []string, error) {
	tokenFile := filepath.Join(sc.dir, "token")
	if err := os.WriteFile(tokenFile, []byte(sc.token), 0o600); err != nil {
		return nil, nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "vault {\n  address = %q\n}\n", sc.addr)
	fmt.Fprintf(&b, "auto_auth {\n  method \"token_file\" {\n    config = {\n      token_file_path = %q\n    }\n  }\n}\n", tokenFile)
	var srcs []string
	for i, p := range sc.creds {
		for _, field := range []string{"username", "password"} {
			name := fmt.Sprintf("DB%d_%s", i, strings.ToUpper(field))
			tmpl := fmt.Sprintf("{{ with secret %q }}{{ .Data.%s }}{{ end }}", p, field)
			fmt.Fprintf(&b, "env_template %q {\n  contents = %q\n  error_on_missing_key = true\n}\n", name, tmpl)
		}
		srcs = append(srcs, fmt.Sprintf("env:DB%d_USERNAME", i))
	}
	fmt.Fprintf(&b, "exec {\n  command = %s\n  restart_on_secret_changes = \"always\"\n  restart_stop_signal = \"SIGTERM\"\n}\n",
		hclList(e.childArgv(sc, strings.Join(srcs, ","))))
	cfg := filepath.Join(sc.dir, "agent.hcl")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		return nil, nil, err
	}
	return []string{e.vault, "agent", "-config=" + cfg}, []string{"VAULT_LOG_LEVEL=warn"}, nil
}}

// consulTemplate is consul-template's exec mode: one template per credential
// (the username; the password shares the lease) rendered to a file in the
// run's directory (consul-template writes to a file system), exec with a
// reload signal in signal mode and a restart otherwise.
var consulTemplate = wrapper{name: "consul-template", signal: true, argv: func(e *env, sc *scenario) ([]string, []string, error) {
	if e.ct == "" {
		return nil, nil, fmt.Errorf("consul-template did not build: %s", e.buildErr["consul-template"])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "log_level = \"warn\"\nvault {\n  address = %q\n  token = %q\n  renew_token = true\n}\n", sc.addr, sc.token)
	var srcs []string
	for i, p := range sc.creds {
		dest := filepath.Join(sc.dir, fmt.Sprintf("db%d", i))
		tmpl := fmt.Sprintf("{{ with secret %q }}{{ .Data.username }}\n{{ .Data.password }}{{ end }}", p)
		fmt.Fprintf(&b, "template {\n  contents = %q\n  destination = %q\n  perms = \"0600\"\n}\n", tmpl, dest)
		srcs = append(srcs, "path:"+dest)
	}
	reload := ""
	if sc.onRotate == "signal" {
		reload = "  reload_signal = \"SIGHUP\"\n"
	}
	fmt.Fprintf(&b, "exec {\n  command = %s\n%s  kill_signal = \"SIGTERM\"\n}\n",
		hclList(e.childArgv(sc, strings.Join(srcs, ","))), reload)
	cfg := filepath.Join(sc.dir, "ct.hcl")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		return nil, nil, err
	}
	return []string{e.ct, "-config=" + cfg}, nil, nil
}}
