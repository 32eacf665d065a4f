package main

import (
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leash-dev/leash/render"
)

func TestParseSecretFlag(t *testing.T) {
	tests := []struct {
		in     string
		name   string
		path   string
		kind   render.Kind
		field  string
		params map[string]string
	}{
		{in: "db=database/creds/app", name: "db", path: "database/creds/app", kind: render.JSON},
		{in: "pw=secret/data/app#password", name: "pw", path: "secret/data/app", kind: render.Field, field: "password"},
		{in: "app.env=secret/app", name: "app.env", path: "secret/app", kind: render.Dotenv},
		{in: "cert=pki/issue/web?common_name=web.internal&ttl=1h", name: "cert", path: "pki/issue/web", kind: render.JSON,
			params: map[string]string{"common_name": "web.internal", "ttl": "1h"}},
		{in: "key=pki/issue/web?common_name=a%23b#private_key", name: "key", path: "pki/issue/web", kind: render.Field, field: "private_key",
			params: map[string]string{"common_name": "a#b"}},
		{in: "x=/secret/app/", name: "x", path: "secret/app", kind: render.JSON},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			out, ref, err := parseSecretFlag(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if out.Name != tt.name || ref.Path != tt.path || out.Kind != tt.kind || out.Field != tt.field {
				t.Errorf("got name=%q path=%q kind=%v field=%q", out.Name, ref.Path, out.Kind, out.Field)
			}
			if !maps.Equal(ref.Params, tt.params) {
				t.Errorf("params = %v, want %v", ref.Params, tt.params)
			}
			if out.Secret != ref.ID() {
				t.Errorf("output reads %q, want the ref's ID %q", out.Secret, ref.ID())
			}
		})
	}
}

func TestParseSecretFlagErrors(t *testing.T) {
	for _, in := range []string{
		"", "db", "=database/creds/app", "db=", "../x=secret/app", "a/b=secret/app",
		"db=secret/../sys/raw", "db=secret/app#", "db=secret/app?a=1&a=2", "db=?x=1",
		"db=secret//app", "na\x00me=secret/app", strings.Repeat("n", 300) + "=secret/app",
	} {
		if _, _, err := parseSecretFlag(in); err == nil {
			t.Errorf("parseSecretFlag(%q) accepted bad input", in)
		} else if in != "" && !strings.Contains(err.Error(), "--secret") {
			t.Errorf("parseSecretFlag(%q) error %q does not name the flag", in, err)
		}
	}
}

func TestSameSourceSharesOneLease(t *testing.T) {
	o := Options{Secrets: []string{"user=database/creds/app#username", "pass=database/creds/app#password", "all=database/creds/app"}}
	p, err := o.buildPlan(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if len(p.specs) != 1 || len(p.outputs) != 3 {
		t.Fatalf("specs = %d, outputs = %d; want one lease for three outputs", len(p.specs), len(p.outputs))
	}
}

func TestPlanRejectsDuplicatesAndDanglingPointers(t *testing.T) {
	for _, o := range []Options{
		{Secrets: []string{"db=database/creds/a", "db=database/creds/b"}},
		{Secrets: []string{"db=database/creds/a"}, Env: []string{"PGPASSFILE=nope"}},
		{Secrets: []string{"db=database/creds/a"}, Env: []string{"=db"}},
		{Secrets: []string{"db=database/creds/a", "x=database/creds/b"}, Env: []string{"DB_FILE=x"}},
		{Secrets: []string{"db=database/creds/a", "x=database/creds/b"}, Env: []string{"PGPASSFILE=db", "PGPASSFILE=x"}},
		{Secrets: []string{"db=database/creds/a"}, Env: []string{"CREDENTIALS_DIRECTORY=db"}},
		{Templates: []string{"t=/nonexistent/leash.tmpl"}},
	} {
		if _, err := o.buildPlan(func(string) string { return "" }); err == nil {
			t.Errorf("buildPlan(%+v) accepted bad input", o)
		} else if _, ok := err.(*configError); !ok {
			t.Errorf("buildPlan(%+v) = %T, want *configError", o, err)
		}
	}
}

// Outputs that cannot both be delivered fail the plan (so leash validate
// too), naming both flags; render.Check decides what conflicts.
func TestPlanNamesConflictingOutputs(t *testing.T) {
	for _, tt := range []struct {
		o    Options
		want string
	}{
		{Options{Secrets: []string{"db=database/creds/a", "db=database/creds/b"}},
			`--secret db=database/creds/a and --secret db=database/creds/b: output "db" is defined twice`},
		{Options{Secrets: []string{"a.b=kv/x"}, TemplateTexts: []string{"a-b=x"}},
			`--secret a.b=kv/x and --template-text a-b=...: outputs "a.b" and "a-b" both use variable A_B_FILE`},
		{Options{Secrets: []string{"a=kv/x", "b=kv/y"}, OutputPaths: []string{"a=/run/x", "b=/run/x"}},
			`--output-path a=/run/x and --output-path b=/run/x: outputs "a" and "b" are both written at /run/x`},
		// A name given twice with one output path is a name conflict.
		{Options{Secrets: []string{"a=kv/x", "a=kv/y"}, OutputPaths: []string{"a=/run/x"}},
			`--secret a=kv/x and --secret a=kv/y: output "a" is defined twice`},
	} {
		_, err := tt.o.buildPlan(func(string) string { return "" })
		if _, ok := err.(*configError); !ok || err.Error() != tt.want {
			t.Errorf("buildPlan(%+v) = %T %v, want *configError %s", tt.o, err, err, tt.want)
		}
	}
}

func TestParseRotateBefore(t *testing.T) {
	for in, ok := range map[string]bool{"": true, "30s": true, "25%": true, "0.5%": true, "0%": false, "100%": false, "-1s": false, "x": false} {
		_, _, err := parseRotateBefore(in)
		if (err == nil) != ok {
			t.Errorf("parseRotateBefore(%q) err = %v, want ok=%v", in, err, ok)
		}
	}
}

func FuzzParseSecretFlag(f *testing.F) {
	for _, s := range []string{"db=database/creds/app", "k=pki/issue/w?common_name=x&ttl=1h#certificate", "a.env=secret/a", "x=../y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, ref, err := parseSecretFlag(s)
		if err != nil {
			return
		}
		if render.ValidateName(out.Name) != nil {
			t.Fatalf("accepted invalid name %q", out.Name)
		}
		if render.ValidatePath(ref.Path) != nil {
			t.Fatalf("accepted bad path %q", ref.Path)
		}
	})
}

func FuzzConfig(f *testing.F) {
	f.Add("auth = \"approle\"\nsecret = [\"db=database/creds/app\"]\n")
	f.Add("kill_timeout = \"3s\"\nno_revoke = true\n")
	f.Add("x = [[1]]\n")
	f.Fuzz(func(t *testing.T, src string) {
		c, err := parseHCLConfig("fuzz.hcl", []byte(src))
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.hcl") && !strings.Contains(err.Error(), "blocks") {
				t.Fatalf("config error does not name the file: %v", err)
			}
			return
		}
		for _, a := range c.attrs {
			v, err := hclValue(a.val, true)
			if err != nil {
				continue
			}
			if l, ok := v.([]any); ok {
				for _, e := range l {
					if _, nested := e.([]any); nested {
						t.Fatalf("%s: nested list accepted", a.name)
					}
				}
			}
		}
	})
}

// --allow-missing-key NAME reaches that template alone: it renders
// <no value> for a missing key, the other template still fails.
func TestAllowMissingKeyPerTemplate(t *testing.T) {
	dir := t.TempDir()
	text := `{{ with secret "secret/app" }}{{ .Data.user }}:{{ .Data.nope }}{{ end }}`
	for _, n := range []string{"lax.tmpl", "strict.tmpl"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	o := Options{
		Templates:       []string{"lax=" + filepath.Join(dir, "lax.tmpl"), "strict=" + filepath.Join(dir, "strict.tmpl")},
		AllowMissingKey: []string{"lax"},
	}
	p, err := o.buildPlan(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]render.Secret{"secret/app": {Raw: render.NewValues(map[string]any{"user": "u"})}}
	for _, out := range p.outputs {
		r, err := render.New(render.Options{Mode: render.Memfd, UID: -1, GID: -1}, []render.Output{out})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		_, err = r.Update(secrets, true)
		switch out.Name {
		case "lax":
			if err != nil {
				t.Fatalf("lax: %v", err)
			}
			b, err := io.ReadAll(r.Files()[0])
			if err != nil || string(b) != "u:<no value>" {
				t.Fatalf("lax rendered %q, %v; want %q", b, err, "u:<no value>")
			}
		case "strict":
			if err == nil || !strings.Contains(err.Error(), `map has no entry for key "nope"`) {
				t.Fatalf("strict: err = %v, want a missing-key error", err)
			}
		}
	}
	for _, bad := range []Options{
		{Templates: o.Templates, AllowMissingKey: []string{"nope"}},
		{Templates: o.Templates, Secrets: []string{"db=database/creds/a"}, AllowMissingKey: []string{"db"}},
	} {
		if _, err := bad.buildPlan(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "--allow-missing-key") {
			t.Errorf("buildPlan(%v) = %v, want an --allow-missing-key error", bad.AllowMissingKey, err)
		} else if _, ok := err.(*configError); !ok {
			t.Errorf("buildPlan(%v) = %T, want *configError", bad.AllowMissingKey, err)
		}
	}
}
