package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseCLICommandAfterDashDash(t *testing.T) {
	tests := []struct {
		name string
		args []string
		cmd  string
		want []string
	}{
		{"default command", []string{"--", "sh", "-c", "exit 3"}, "run", []string{"sh", "-c", "exit 3"}},
		{"explicit run", []string{"run", "--", "true"}, "run", []string{"true"}},
		{"second dashdash is the child's", []string{"--", "--", "true"}, "run", []string{"--", "true"}},
		{"child flags untouched", []string{"--on-rotate", "signal", "--", "app", "--on-rotate", "x", "-s", "y"}, "run", []string{"app", "--on-rotate", "x", "-s", "y"}},
		{"flags before the command", []string{"-s", "db=database/creds/app", "--", "env"}, "run", []string{"env"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli, kctx, err := parseCLI(tt.args)
			if err != nil {
				t.Fatalf("parseCLI(%q): %v", tt.args, err)
			}
			if !strings.HasPrefix(kctx.Command(), tt.cmd) {
				t.Errorf("command = %q, want %q", kctx.Command(), tt.cmd)
			}
			if !slices.Equal(cli.Run.Command, tt.want) {
				t.Errorf("child argv = %q, want %q", cli.Run.Command, tt.want)
			}
		})
	}
}

func TestParseCLIUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--no-such-flag", "--", "true"},
		{"--delivery", "disk", "--", "true"},
		{"--kill-timeout", "soon", "--", "true"},
	} {
		_, _, err := parseCLI(args)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("parseCLI(%q) = %v, want a usage error", args, err)
		}
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "leash.hcl")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigFileUnknownKeyNamesFileAndLine(t *testing.T) {
	p := writeConfig(t, "auth = \"approle\"\n\nno_such_key = 1\n")
	_, _, err := parseCLI([]string{"-c", p, "--", "true"})
	var ce *configError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a config error", err)
	}
	if want := p + ":3"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "no_such_key") {
		t.Errorf("error %q does not name %s and the key", err, want)
	}
}

func TestConfigFileSyntaxError(t *testing.T) {
	p := writeConfig(t, "auth = \"approle\"\nsecret = [\n")
	_, _, err := parseCLI([]string{"-c", p, "--", "true"})
	var ce *configError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), p+":") {
		t.Fatalf("err = %v, want a config error naming %s", err, p)
	}
}

func TestConfigFilePrecedence(t *testing.T) {
	p := writeConfig(t, `
auth          = "approle"
on_rotate     = "signal"
kill_timeout  = "3s"
secret        = ["db=database/creds/app", "kv=secret/app#password"]
no_revoke     = true
`)
	t.Setenv("LEASH_ON_ROTATE", "none")
	cli, _, err := parseCLI([]string{"-c", p, "--auth", "jwt", "--", "true"})
	if err != nil {
		t.Fatal(err)
	}
	o := cli.Run.Options
	if o.Auth != "jwt" {
		t.Errorf("auth = %q: the flag must win over the file", o.Auth)
	}
	if o.OnRotate != "none" {
		t.Errorf("on_rotate = %q: the environment must win over the file", o.OnRotate)
	}
	if o.KillTimeout.String() != "3s" || !o.NoRevoke {
		t.Errorf("kill_timeout = %v, no_revoke = %v: file values not applied", o.KillTimeout, o.NoRevoke)
	}
	if want := []string{"db=database/creds/app", "kv=secret/app#password"}; !slices.Equal(o.Secrets, want) {
		t.Errorf("secrets = %q, want %q", o.Secrets, want)
	}
}

func TestConfigFileBadEnumIsReported(t *testing.T) {
	p := writeConfig(t, "delivery = \"disk\"\n")
	_, _, err := parseCLI([]string{"-c", p, "--", "true"})
	if err == nil || !strings.Contains(err.Error(), "delivery") {
		t.Fatalf("err = %v, want an error naming delivery", err)
	}
}

func TestParseCLIExplicitRunKeepsChildDashDash(t *testing.T) {
	for args, want := range map[string][]string{
		"run -- -- x":       {"--", "x"},
		"run app -- x":      {"app", "--", "x"},
		"-s a=b/c app --x":  {"app", "--x"},
		"run -s a=b/c -- y": {"y"},
	} {
		cli, _, err := parseCLI(strings.Fields(args))
		if err != nil {
			t.Fatalf("%s: %v", args, err)
		}
		if !slices.Equal(cli.Run.Command, want) {
			t.Errorf("%s: child argv %q, want %q", args, cli.Run.Command, want)
		}
	}
	if _, _, err := parseCLI([]string{"validate", "--", "true"}); err == nil {
		t.Error("validate accepted a command")
	}
}
