package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leash-dev/leash/internal/testchild"
	"github.com/leash-dev/leash/internal/testvault"
)

// Bad input: hostile flags and paths, and secrets of unexpected shapes.
// Each is a clear error with the documented exit code, or works with the
// exact bytes; never a panic.

// Hostile names and paths, duplicates and bad --dir parents: a clear error
// and the documented exit code, before Vault is contacted (VAULT_ADDR points
// at a closed port, so contacting it would show as 69).
func TestBadInputClearErrors(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir() // on /tmp: a disk file system on most machines
	shm, err := os.MkdirTemp("/dev/shm", "leash-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	link := filepath.Join(shm, "link")
	real := filepath.Join(shm, "real")
	world := filepath.Join(shm, "world")
	foreign := filepath.Join(shm, "foreign")
	for _, d := range []string{real, world, foreign} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(world, 0o777)
	os.Symlink(real, link)
	group := filepath.Join(shm, "group")
	groupSub := filepath.Join(group, "sub")
	for _, d := range []string{group, groupSub} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(group, 0o770)
	ownedByOther := os.Geteuid() == 0 && os.Chown(foreign, 65534, 65534) == nil

	onDisk := onDiskFS(tmp)

	dir := func(d string) []string { return []string{"--delivery", "dir", "--dir", d, "-s", "db=secret/app"} }
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
		skip bool
	}{
		{"dot-dot name", []string{"-s", "../x=secret/app"}, exitConfig, "../x", false},
		{"slash in name", []string{"-s", "a/b=secret/app"}, exitConfig, "a/b", false},
		{"empty name", []string{"-s", "=secret/app"}, exitConfig, "--secret", false},
		{"empty path", []string{"-s", "db="}, exitConfig, "--secret", false},
		{"long name", []string{"-s", strings.Repeat("n", 300) + "=secret/app"}, exitConfig, "--secret", false},
		{"dot-dot path", []string{"-s", "db=secret/../sys/raw"}, exitConfig, "bad Vault path", false},
		{"control char in name", []string{"-s", "d\tb=secret/app"}, exitConfig, "--secret", false},
		{"newline in path", []string{"-s", "db=secret/a\nb"}, exitConfig, "bad Vault path", false},
		{"repeated parameter", []string{"-s", "db=pki/issue/x?a=1&a=2"}, exitConfig, "given 2 times", false},
		{"duplicate output", []string{"-s", "db=secret/a", "-s", "db=secret/b"}, exitConfig, `--secret db=secret/a and --secret db=secret/b: output "db" is defined twice`, false},
		{"duplicate env variable", []string{"-s", "a.b=secret/a", "-s", "a-b=secret/b"}, exitConfig, "--secret a.b=secret/a and --secret a-b=secret/b: outputs \"a.b\" and \"a-b\" both use variable A_B_FILE", false},
		{"dangling --env", []string{"-s", "db=secret/a", "--env", "PGPASSFILE=nope"}, exitConfig, "nope", false},
		{"missing template", []string{"-t", "t=/nonexistent/leash.tmpl"}, exitConfig, "/nonexistent/leash.tmpl", false},
		{"--dir without dir delivery", []string{"--dir", real, "-s", "db=secret/a"}, exitUsage, "--delivery dir", false},
		{"--dir symlink", dir(link), exitConfig, "symlink", false},
		{"--dir world-writable", dir(world), exitConfig, "world-writable", false},
		{"--dir missing", dir(filepath.Join(shm, "nope")), exitConfig, "nope", false},
		{"--dir group-writable", dir(group), exitConfig, "run chmod g-w " + group, false},
		{"--dir group-writable ancestor", dir(groupSub), exitConfig, "its ancestor " + group + " (mode 0770) is group-writable", false},
		{"--dir not owned", dir(foreign), exitConfig, foreign, !ownedByOther},
		{"--dir on disk", dir(tmp), exitConfig, tmp, !onDisk},
		{"bad rotate-before", []string{"--rotate-before", "0%", "-s", "db=secret/a"}, exitUsage, "--rotate-before", false},
		{"negative kill-timeout", []string{"--kill-timeout", "-1s", "-s", "db=secret/a"}, exitUsage, "--kill-timeout", false},
		{"jwt without role and file", []string{"--auth", "jwt", "-s", "db=secret/a"}, exitConfig, "--auth jwt needs --auth-role and --jwt-file", false},
		{"approle without secret_id", []string{"--auth", "approle", "--role-id-file", "/x", "-s", "db=secret/a"}, exitConfig, "--secret-id-file", false},
		{"azure without role", []string{"--auth", "azure", "-s", "db=secret/a"}, exitConfig, "--auth azure needs --auth-role", false},
		{"gcp without role", []string{"--auth", "gcp", "-s", "db=secret/a"}, exitConfig, "--auth gcp needs --auth-role", false},
		{"cert without client certificate", []string{"--auth", "cert", "-s", "db=secret/a"}, exitConfig, "VAULT_CLIENT_CERT and VAULT_CLIENT_KEY", false},
		{"zero revoke-timeout", []string{"--revoke-timeout", "0s", "-s", "db=secret/a"}, exitUsage, "--no-revoke", false},
		{"duplicate --env variable", []string{"-s", "a=secret/a", "-s", "b=secret/b", "--env", "X=a", "--env", "X=b"}, exitConfig, `--env "X=a"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				t.Skip("not applicable on this machine")
			}
			marker := filepath.Join(t.TempDir(), "started")
			cmd := Command(t, append(append(tt.args, "--startup-timeout", "1s", "--"), "touch", marker)...)
			cmd.Env = append(cmd.Env, vaultEnv("http://127.0.0.1:1", "unused")...)
			code, stderr := ExitStatus(t, cmd)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, want %d with %q in stderr:\n%s", code, tt.code, tt.want, stderr)
			}
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
				t.Errorf("panic:\n%s", stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("the child was started")
			}
		})
	}
	if left, _ := os.ReadDir(real); len(left) != 0 {
		t.Errorf("something was created through the symlink: %v", left)
	}
}

// Secrets of unexpected shapes: nested and non-string fields, null, a
// missing field, huge values, a missing or deleted secret. Each either
// works with exact bytes or fails with a clear error naming the path;
// never a panic.
func TestUnexpectedSecretShapes(t *testing.T) {
	t.Parallel()
	g := &subtests{t: t}
	defer g.wait()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	huge := strings.Repeat("0123456789abcdef", 1<<15) // 512 KiB (Vault caps JSON strings near 1 MiB)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{
		"nested": map[string]any{"a": 1, "b": []any{"x", true}}, "num": 5, "yes": true, "nil": nil, "huge": huge,
	}})
	srv.Write(t, kv+"/data/gone", map[string]any{"data": map[string]any{"k": "v"}})
	if _, err := srv.Client.Logical().Delete(kv + "/data/gone"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		spec string
		code int
		want string // child's output (code 0) or text in stderr
	}{
		{"x=" + kv + "/app#nested", 0, `{"a":1,"b":["x",true]}`},
		{"x=" + kv + "/app#num", 0, "5"},
		{"x=" + kv + "/app#yes", 0, "true"},
		{"x=" + kv + "/app#nil", 0, ""},
		{"x=" + kv + "/app#huge", 0, huge},
		{"x=" + kv + "/app#missing", exitConfig, kv + "/app"},
		{"x.env=" + kv + "/app", -1, kv + "/app"}, // dotenv of nested values: either works or says why
		{"x=" + kv + "/nope", exitConfig, kv + "/nope"},
		{"x=" + kv + "/gone", exitConfig, kv + "/gone"},
	}
	for _, tt := range tests {
		g.run(tt.spec[strings.Index(tt.spec, "/")+1:], func(t *testing.T) {
			cmd := Command(t, append([]string{"-s", tt.spec, "--"}, testchild.Argv(t, "cat-file", "X_FILE")...)...)
			if strings.HasPrefix(tt.spec, "x.env") {
				cmd = Command(t, append([]string{"-s", tt.spec, "--"}, testchild.Argv(t, "cat-file", "X_ENV_FILE")...)...)
			}
			cmd.Env = append(cmd.Env, vaultEnv(srv.Addr, srv.RootToken)...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(stderr.String(), "panic") || strings.Contains(stderr.String(), "goroutine ") {
				t.Fatalf("panic:\n%s", stderr.String())
			}
			switch {
			case tt.code == 0:
				if code != 0 || stdout.String() != tt.want {
					t.Errorf("exit %d, child read %d bytes (%.40q), want %d bytes (%.40q); stderr:\n%s",
						code, stdout.Len(), stdout.String(), len(tt.want), tt.want, stderr.String())
				}
			case tt.code < 0:
				if code != 0 && (code != exitConfig || !strings.Contains(stderr.String(), tt.want)) {
					t.Errorf("exit %d, want 0 or %d naming %s; stderr:\n%s", code, exitConfig, tt.want, stderr.String())
				}
				t.Logf("exit %d", code)
			default:
				if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
					t.Errorf("exit %d, want %d naming %s; stderr:\n%s", code, tt.code, tt.want, stderr.String())
				}
			}
			if stderr.Len() > 0 && strings.Contains(stderr.String(), huge[:64]) {
				t.Error("the secret's bytes are in leash's stderr")
			}
		})
	}
}

// leash validate refuses, with exit 78 and the template's line, what
// rendering would refuse whatever Vault returns: fields the secret and
// pkiCert objects do not have, a field of the empty top-level dot, a
// function given the wrong number of arguments. What only the data can
// decide (a map key) passes.
func TestValidateRefusesWhatRenderRefuses(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		text string
		ok   bool
		want string
	}{
		{`{{ with secret "database/creds/app" }}{{ .LeaseID }} {{ .LeaseDuration }} {{ .Renewable }} {{ .RequestID }} {{ .Warnings }} {{ .Auth }} {{ .WrapInfo }} {{ .Data.username }}{{ end }}`, true, ""},
		{`{{ with secret "auth/token/create" "policies=x" }}{{ .Auth.ClientToken }}{{ .Auth.Metadata.k }}{{ end }}`, true, ""},
		{`{{ with pkiCert "pki/issue/web" "common_name=a" }}{{ .Data.Cert }}{{ .Data.Key }}{{ .Data.CA }}{{ .Cert }}{{ end }}`, true, ""},
		{`{{ $s := secret "secret/data/app" }}{{ $s.Data.data.x }}{{ (secret "secret/data/app").Data.data.y }}`, true, ""},
		{"a\n{{ with secret \"database/creds/app\" }}{{ .LeaseId }}{{ end }}", false, ":2:"},
		{`{{ with secret "database/creds/app" }}{{ .data.username }}{{ end }}`, false, "the secret object has no field data"},
		{`{{ with pkiCert "pki/issue/web" "common_name=a" }}{{ .Data.certificate }}{{ end }}`, false, "the pkiCert object has no field certificate"},
		{`{{ $s := secret "secret/data/app" }}{{ $s.Auth.Token }}`, false, "the secret's .Auth has no field Token"},
		{`{{ (secret "secret/data/app").Lease }}`, false, "has no field Lease"},
		{`{{ .Data.password }}`, false, "the dot is empty here"},
		{`{{ "x" | indent }}`, false, "wrong number of args for indent: want 2 got 1"},
	}
	for i, c := range cases {
		f := filepath.Join(dir, "t"+string(rune('a'+i))+".tmpl")
		if err := os.WriteFile(f, []byte(c.text), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := Command(t, "validate", "-t", "out="+f)
		cmd.Env = append(cmd.Env, "VAULT_ADDR=http://127.0.0.1:1", "VAULT_TOKEN=hvs.validate-only")
		code, stderr := ExitStatus(t, cmd)
		switch {
		case c.ok && code != 0:
			t.Errorf("%s: exit %d, want 0; stderr:\n%s", c.text, code, stderr)
		case !c.ok && code != exitConfig:
			t.Errorf("%s: exit %d, want 78; stderr:\n%s", c.text, code, stderr)
		case !c.ok && (!strings.Contains(stderr, c.want) || !strings.Contains(stderr, f)):
			t.Errorf("%s: stderr does not name %s and %q:\n%s", c.text, f, c.want, stderr)
		}
	}
}
