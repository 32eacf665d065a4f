package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
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

// Every way a config file can be wrong is a config error (exit 78) that
// names the file, the line and what is wrong; nothing is silently dropped.
func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, where, what string
	}{
		{"duplicate", "auth = \"approle\"\n\nauth = \"jwt\"\n", ":3:1", `"auth" is set twice (first at line 1)`},
		{"quoted duplicate", "auth = \"approle\"\n\"auth\" = \"jwt\"\n", ":2:1", "set twice"},
		{"value missing at the end", "auth = \"token\"\nno_revoke = # later\n", ":2:11", "missing value"},
		{"block", "secret \"db\" {\n  path = \"database/creds/app\"\n}\n", ":1:1", "blocks and objects are not supported"},
		{"object", "secret = { db = \"x\" }\n", ":1:1", "blocks and objects are not supported"},
		{"function", "auth = upper(\"token\")\n", ":1:8", "no functions or variables"},
		{"unterminated string", "auth = \"token\n", ":1:", "not terminated"},
		{"unterminated list", "secret = [\"a=b/c\",\n", ":2:1", "list"},
		{"nested list", "secret = [[\"a=b/c\"]]\n", ":1:1", "nested lists"},
		// Values kong or leash rejects: the same file:line:column and key.
		{"bad duration", "auth = \"token\"\nreload_grace = \"abc\"\n", ":2:1", `reload_grace: expected duration but got "abc"`},
		{"number for a duration", "kill_timeout = 3\n", ":1:1", "kill_timeout: expected duration"},
		{"list for a duration", "kill_timeout = [\"3s\"]\n", ":1:1", "kill_timeout: expected duration"},
		{"bool for a string", "secret = [true]\n", ":1:1", "secret: "},
		{"enum", "delivery = \"disk\"\n", ":1:1", `delivery: must be one of "memfd", "dir", not "disk"`},
		{"unknown signal", "\nstop_signal = \"SIGNOPE\"\n", ":2:1", "stop_signal: "},
		{"unknown reload signal", "reload_signal = \"KILLME\"\n", ":1:1", "reload_signal: "},
		{"negative duration", "splay = \"-1s\"\n", ":1:1", "splay: -1s: must not be negative"},
		{"bad rotate_before", "rotate_before = \"150%\"\n", ":1:1", "rotate_before: "},
		{"unknown user", "user = \"leash-no-such-user\"\n", ":1:1", "user: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.text)
			_, _, err := parseCLI([]string{"-c", p, "--", "true"})
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a config error", err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, p+tc.where) || !strings.Contains(msg, tc.what) {
				t.Errorf("error %q: want %s%s and %q", msg, p, tc.where, tc.what)
			}
		})
	}
}

// HCL values arrive at the flags as written: heredocs, numbers as text for
// kong to parse, strings with "${" kept literally (no interpolation).
func TestConfigFileValues(t *testing.T) {
	p := writeConfig(t, "\uFEFF# comment\nsecret = [\"db=database/creds/${app}\", <<EOT\nkv=secret/app\nEOT\n]\nkill_timeout = \"3s\"\nsplay = \"0s\"\n")
	cli, _, err := parseCLI([]string{"-c", p, "--", "true"})
	if err != nil {
		t.Fatal(err)
	}
	o := cli.Run.Options
	want := []string{"db=database/creds/${app}", "kv=secret/app\n"}
	if !slices.Equal(o.Secrets, want) {
		t.Errorf("secrets = %q, want %q", o.Secrets, want)
	}
	if o.KillTimeout != 3*time.Second {
		t.Errorf("kill timeout = %v", o.KillTimeout)
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

// FuzzParseCLIFast checks parseCLI's shortcut (runCLI first) against
// parsing with the whole CLI: the same command, flags and child argv, or
// the same error.
func FuzzParseCLIFast(f *testing.F) {
	for _, s := range []string{
		"", "--", "-- true", "run -- true", "run", "run run", "app", "app -- x",
		"-s db=database/creds/app -- env", "-s validate", "-s x validate",
		"validate", "validate -s x", "validate --online", "status", "status --status-addr /x",
		"version", "version -- x", "--help", "-h", "run --help", "validate --help",
		"--log-level debug -- true", "--log-level loud -- true", "--no-such-flag -- x",
		"--delivery disk -- x", "--kill-timeout soon -- x", "--on-rotate signal app -s y",
		"-c testdata/cli/online.hcl -- true", "-c testdata/cli/run.hcl -- true",
		"-c testdata/cli/missing.hcl -- true", "-c testdata/cli/run.hcl validate",
		"--online -- true", "--check", "versio", "--env PGPASSFILE=db -s db=p app",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Fields(s)
		fastCLI, fastCtx, fastErr := parseArgs(args, true, io.Discard, io.Discard)
		cli, kctx, err := parseArgs(args, false, io.Discard, io.Discard)
		if (fastErr == nil) != (err == nil) || err != nil && (fastErr.Error() != err.Error() || reflect.TypeOf(fastErr) != reflect.TypeOf(err)) {
			t.Fatalf("%q: shortcut error %v, whole CLI error %v", args, fastErr, err)
		}
		if err != nil {
			return
		}
		if fastCtx.Command() != kctx.Command() {
			t.Fatalf("%q: shortcut command %q, whole CLI %q", args, fastCtx.Command(), kctx.Command())
		}
		if fastCLI.Globals != cli.Globals || !reflect.DeepEqual(fastCLI.Run, cli.Run) {
			t.Fatalf("%q: shortcut parsed\n%+v\nwhole CLI\n%+v", args, *fastCLI, *cli)
		}
	})
}

// TestParseCLIShortcut checks that the shortcut is taken for a plain run
// and left for anything runCLI cannot parse like CLI.
func TestParseCLIShortcut(t *testing.T) {
	for _, tt := range []struct {
		args []string
		fast bool
	}{
		{[]string{"-s", "db=database/creds/app", "--", "app"}, true},
		{[]string{"run", "--", "app"}, true},
		{[]string{"app", "arg"}, true},
		{[]string{"validate", "-s", "db=database/creds/app"}, false},
		{[]string{"-c", "testdata/cli/online.hcl", "--", "app"}, false}, // a key only validate has
		{[]string{"version"}, false},
		{[]string{"--help"}, false},
		{[]string{"--no-such-flag", "--", "app"}, false},
	} {
		args := tt.args
		if i := slices.Index(args, "--"); i >= 0 {
			args = args[:i]
		}
		if cli, _ := parseRun(args); (cli != nil) != tt.fast {
			t.Errorf("parseRun(%q) took the shortcut: %v, want %v", tt.args, cli != nil, tt.fast)
		}
	}
}

// TestCommandNames keeps commandNames in step with CLI's commands.
func TestCommandNames(t *testing.T) {
	var got []string
	typ := reflect.TypeFor[CLI]()
	for i := range typ.NumField() {
		if f := typ.Field(i); hasTag(f, "cmd") {
			got = append(got, strings.ToLower(f.Name))
		}
	}
	if !slices.Equal(got, commandNames) {
		t.Errorf("CLI's commands are %q, commandNames %q", got, commandNames)
	}
}

func hasTag(f reflect.StructField, key string) bool {
	_, ok := f.Tag.Lookup(key)
	return ok
}

// BenchmarkParseCLI is the command line's share of leash's start-up: a
// plain run (runCLI) and a command that needs the whole CLI.
func BenchmarkParseCLI(b *testing.B) {
	for _, bc := range []struct {
		name string
		args []string
	}{
		{"run", []string{"-s", "db=database/creds/app", "--", "app"}},
		{"validate", []string{"validate", "-s", "db=database/creds/app"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := parseCLI(bc.args); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Whatever a config file holds, parsing it never panics (kong's decoders
// run on the file's values in checkFileValue), and a config error names
// the file first.
func FuzzConfigFileValues(f *testing.F) {
	for _, s := range []string{
		`reload_grace = "abc"`, `kill_timeout = 3`, `kill_timeout = 3.5`, `kill_timeout = ["3s"]`, `kill_timeout = true`,
		`delivery = "disk"`, `delivery = ["memfd"]`, `stop_signal = "SIGNOPE"`, `stop_signal = 9`, `stop_signal = ""`,
		`splay = "-1s"`, `rotate_before = "150%"`, `rotate_before = 5`, `user = "nobody"`, `secret = [true, 1]`,
		`secret = "x=y/z"`, `no_revoke = "yes"`, `no_revoke = 1`, `vault = [1.5]`, `exec = []`, `log_level = "loud"`,
		"template_text = [<<EOT\nx=y\nEOT\n]", `revoke_timeout = "0s"`, `drill_every = "-1h"`,
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src string) {
		p := filepath.Join(dir, "fuzz.hcl")
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := parseArgs([]string{"validate", "-c", p}, false, io.Discard, io.Discard)
		var ce *configError
		// A Vault Agent stanza's error names the file inside: "exec (FILE:7:1): ...".
		if errors.As(err, &ce) && !strings.HasPrefix(err.Error(), p) && !strings.Contains(err.Error(), "("+p+":") {
			t.Fatalf("config error does not start with the file: %v", err)
		}
	})
}
