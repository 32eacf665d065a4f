package render

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Data shaped exactly like Vault's responses (json.Number, as vault/api
// decodes them).
func dbSecret() Secret {
	raw := map[string]any{"username": "v-token-readonly-3Xz", "password": "A1a-8Qk\"<pw>&"}
	return Secret{Data: NewValues(raw), Raw: NewValues(raw), LeaseDuration: time.Hour, Renewable: true}
}

func kv2Secret() Secret {
	inner := map[string]any{"username": "app", "password": "hunter2<>", "port": json.Number("5432")}
	raw := map[string]any{
		"data": inner,
		"metadata": map[string]any{
			"created_time": "2026-11-25T19:00:00.000000Z", "custom_metadata": nil,
			"deletion_time": "", "destroyed": false, "version": json.Number("3"),
		},
	}
	return Secret{Data: NewValues(inner), Raw: NewValues(raw), Version: 3}
}

func pkiSecret() Secret {
	raw := map[string]any{
		"certificate":      "-----BEGIN CERTIFICATE-----\nMIIcert\n-----END CERTIFICATE-----",
		"issuing_ca":       "-----BEGIN CERTIFICATE-----\nMIIca\n-----END CERTIFICATE-----",
		"ca_chain":         []any{"-----BEGIN CERTIFICATE-----\nMIIca\n-----END CERTIFICATE-----"},
		"private_key":      "-----BEGIN RSA PRIVATE KEY-----\nMIIkey\n-----END RSA PRIVATE KEY-----",
		"private_key_type": "rsa",
		"serial_number":    "39:dd:2e",
		"expiration":       json.Number("1764100000"),
	}
	return Secret{Data: NewValues(raw), Raw: NewValues(raw), LeaseDuration: 2 * time.Minute}
}

func testSecrets() map[string]Secret {
	pki := pkiSecret()
	return map[string]Secret{
		"database/creds/readonly":  dbSecret(),
		"secret/data/myapp/config": kv2Secret(),
		"pki_int/issue/example-dot-com?common_name=foo.example.com&ttl=2m": pki,
		"pki/issue/web?common_name=web.example.com&ttl=1h":                 pki,
	}
}

func execTemplate(t *testing.T, text string, env func(string) string) (string, error) {
	t.Helper()
	tmpl, err := ParseTemplate("test.tmpl", text, env)
	if err != nil {
		return "", err
	}
	var w buffer
	err = tmpl.render(&w, testSecrets())
	return string(w.b), err
}

// Templates from the Vault Agent and consul-template documentation; the
// expected bytes are what Vault Agent writes for the same data.
func TestTemplatesFromDocs(t *testing.T) {
	cases := []struct{ name, text, want string }{
		{
			"agent database creds",
			`{{ with secret "database/creds/readonly" }}
username: "{{ .Data.username }}"
password: "{{ .Data.password }}"
{{ end }}
`,
			"\nusername: \"v-token-readonly-3Xz\"\npassword: \"A1a-8Qk\"<pw>&\"\n\n",
		},
		{
			"agent connection string with trim markers",
			`{{- with secret "database/creds/readonly" -}}
postgresql://{{ .Data.username }}:{{ .Data.password }}@postgres:5432/wizard
{{- end }}
`,
			"postgresql://v-token-readonly-3Xz:A1a-8Qk\"<pw>&@postgres:5432/wizard\n",
		},
		{
			"agent pki cert.tpl",
			`{{- /* /tmp/cert.tpl */ -}}
{{ with secret "pki_int/issue/example-dot-com" "common_name=foo.example.com" "ttl=2m" }}
{{ .Data.certificate }}{{ end }}
`,
			"\n-----BEGIN CERTIFICATE-----\nMIIcert\n-----END CERTIFICATE-----\n",
		},
		{
			"agent pki ca.tpl",
			`{{- /* /tmp/ca.tpl */ -}}
{{ with secret "pki_int/issue/example-dot-com" "common_name=foo.example.com" "ttl=2m" }}
{{ .Data.issuing_ca }}{{ end }}
`,
			"\n-----BEGIN CERTIFICATE-----\nMIIca\n-----END CERTIFICATE-----\n",
		},
		{
			"agent pki key.tpl",
			`{{- /* /tmp/key.tpl */ -}}
{{ with secret "pki_int/issue/example-dot-com" "common_name=foo.example.com" "ttl=2m" }}
{{ .Data.private_key }}{{ end }}
`,
			"\n-----BEGIN RSA PRIVATE KEY-----\nMIIkey\n-----END RSA PRIVATE KEY-----\n",
		},
		{
			"consul-template pki bundle",
			`{{ with secret "pki/issue/web" "common_name=web.example.com" "ttl=1h" }}
{{ .Data.certificate }}
{{ .Data.private_key }}
{{ range .Data.ca_chain }}{{ . }}
{{ end }}{{ end }}`,
			"\n-----BEGIN CERTIFICATE-----\nMIIcert\n-----END CERTIFICATE-----\n-----BEGIN RSA PRIVATE KEY-----\nMIIkey\n-----END RSA PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nMIIca\n-----END CERTIFICATE-----\n",
		},
		{
			"kv v2 .Data.data",
			`{{ with secret "secret/data/myapp/config" -}}
{{ .Data.data.username }}:{{ .Data.data.password }} (v{{ .Data.metadata.version }})
{{- end }}`,
			"app:hunter2<> (v3)",
		},
		{
			"kv v2 range",
			`{{ with secret "secret/data/myapp/config" }}{{ range $k, $v := .Data.data }}export {{ $k | toUpper }}="{{ $v }}"
{{ end }}{{ end }}`,
			"export PASSWORD=\"hunter2<>\"\nexport PORT=\"5432\"\nexport USERNAME=\"app\"\n",
		},
		{
			"toJSON of .Data.data escapes HTML like consul-template",
			`{{ with secret "secret/data/myapp/config" }}{{ .Data.data | toJSON }}{{ end }}`,
			`{"password":"hunter2\u003c\u003e","port":5432,"username":"app"}`,
		},
		{
			"toJSONPretty",
			`{{ with secret "database/creds/readonly" }}{{ .Data | toJSONPretty }}{{ end }}`,
			"{\n  \"password\": \"A1a-8Qk\\\"\\u003cpw\\u003e\\u0026\",\n  \"username\": \"v-token-readonly-3Xz\"\n}",
		},
		{
			"lease fields",
			`{{ with secret "database/creds/readonly" }}{{ .LeaseDuration }} {{ .Renewable }}{{ end }}`,
			"3600 true",
		},
		{
			"index for optional keys",
			`{{ with secret "database/creds/readonly" }}{{ with index .Data "missing" }}x{{ else }}none{{ end }}{{ end }}`,
			"none",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := execTemplate(t, c.text, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestTemplateFunctions(t *testing.T) {
	env := func(k string) string {
		if k == "APP_ENV" {
			return "Prod"
		}
		return ""
	}
	cases := []struct{ text, want string }{
		{`{{ "aGVsbG8=" | base64Decode }}`, "hello"},
		{`{{ "hello" | base64Encode }}`, "aGVsbG8="},
		{`{{ env "APP_ENV" | toLower }}-{{ env "UNSET" }}`, "prod-"},
		{`{{ "  x \n" | trimSpace }}`, "x"},
		{`{{ "a,b,c" | split "," | join ";" }}`, "a;b;c"},
		{`{{ "" | split "," | len }}`, "0"},
		{`{{ "a.b.c" | replaceAll "." "_" }}`, "a_b_c"},
		{`{{ if "foobar" | contains "oba" }}y{{ end }}{{ if "foo,bar" | split "," | contains "baz" }}n{{ end }}`, "y"},
		{`{{ with secret "pki/issue/web" "common_name=web.example.com" "ttl=1h" }}{{ if .Data.ca_chain | contains "nope" }}n{{ else }}{{ .Data.ca_chain | join "+" | len }}{{ end }}{{ end }}`, "59"},
		{`{{ "a\n\nb\n" | indent 2 }}`, "  a\n\n  b\n"},
		{"x:\n{{ with secret \"database/creds/readonly\" }}{{ .Data | toJSONPretty | indent 4 }}{{ end }}", "x:\n    {\n      \"password\": \"A1a-8Qk\\\"\\u003cpw\\u003e\\u0026\",\n      \"username\": \"v-token-readonly-3Xz\"\n    }"},
		{`{{ "AbC" | toUpper }}{{ "AbC" | toLower }}`, "ABCabc"},
		{`{{ "aGk_" | base64URLDecode }}{{ "hi?" | base64URLEncode }}`, "hi?aGk_"},
		{`{{ envOrDefault "APP_ENV" "dev" }}-{{ envOrDefault "UNSET" "dev" }}`, "Prod-dev"},
		{`{{ "--a--" | trim "-" }}{{ "app-x" | trimPrefix "app-" }}{{ "y.pem" | trimSuffix ".pem" }}`, "axy"},
		{`{{ "abc" | sha256Hex }}`, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{`{{ with parseJSON "{\"port\": 5432, \"tls\": true, \"n\": 0}" }}{{ .port }}/{{ .tls }}{{ if .n }}!{{ end }}{{ end }}{{ len (parseJSON "") }}`, "5432/true0"},
		{`{{ if parseBool "true" }}t{{ end }}{{ if parseBool "" }}f{{ end }}{{ if gt (parseInt "1025") 1024 }}>{{ end }}{{ parseInt "" }}`, "t>0"},
		{`{{ if "v-token-x" | regexMatch "^v-token-" }}y{{ end }}{{ "a1b22" | regexReplaceAll "[0-9]+" "#" }}`, "ya#b#"},
		{`{{ with secret "database/creds/readonly" }}{{ .Data.username | regexReplaceAll "^v-token-(.*)-.*$" "$1" }}{{ end }}`, "readonly"},
		// Vault Agent's pkiCert example, and the same lease seen through secret.
		{`{{ with pkiCert "pki/issue/web" "common_name=web.example.com" "ttl=1h" }}{{ .Cert }}|{{ .Key }}|{{ .CA }}|{{ len .CAChain }}{{ end }}`,
			"-----BEGIN CERTIFICATE-----\nMIIcert\n-----END CERTIFICATE-----\n|-----BEGIN RSA PRIVATE KEY-----\nMIIkey\n-----END RSA PRIVATE KEY-----\n|-----BEGIN CERTIFICATE-----\nMIIca\n-----END CERTIFICATE-----\n|1"},
		// Concatenated, as Vault Agent's docs write it: each field ends its line.
		{`{{ with pkiCert "pki/issue/web" "common_name=web.example.com" "ttl=1h" }}{{ .Cert }}{{ .CA }}{{ index .CAChain 0 }}{{ end }}`,
			"-----BEGIN CERTIFICATE-----\nMIIcert\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nMIIca\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nMIIca\n-----END CERTIFICATE-----\n"},
		{`{{ (pkiCert "pki/issue/web" "ttl=1h" "common_name=web.example.com").Cert | eq (printf "%s\n" (secret "pki/issue/web" "common_name=web.example.com" "ttl=1h").Data.certificate) }}`, "true"},
	}
	for _, c := range cases {
		got, err := execTemplate(t, c.text, env)
		if err != nil {
			t.Errorf("%s: %v", c.text, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s:\ngot  %q\nwant %q", c.text, got, c.want)
		}
	}
}

func TestTemplateDefaultEnvHidesVaultVariables(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "hvs.leak")
	t.Setenv("LEASH_TEST_PLAIN", "plain")
	got, err := execTemplate(t, `{{ env "VAULT_TOKEN" }}{{ env "BAO_TOKEN" }}{{ env "LEASH_TEST_PLAIN" }}`, nil)
	if err != nil || got != "plain" {
		t.Fatalf("got %q err %v", got, err)
	}
}

func TestTemplateRefs(t *testing.T) {
	tmpl, err := ParseTemplate("refs", `{{ define "db" }}{{ with secret "database/creds/app" }}{{ .Data.username }}{{ end }}{{ end }}
{{ with secret "secret/data/app" }}{{ .Data.data.x }}{{ end }}
{{ if true }}{{ (secret "pki/issue/web" "ttl=1h" " common_name = x " "").Data.certificate }}{{ end }}
{{ range $i, $s := split "," "a,b" }}{{ with secret "secret/data/app" }}{{ end }}{{ end }}
{{ template "db" }}{{ printf "%s" (secret "/transit/keys/k/").Data }}
{{ with pkiCert "pki/issue/web" "common_name=x" "ttl=1h" }}{{ .Cert }}{{ end }}{{ with pkiCert "pki/issue/api" "common_name=api" }}{{ end }}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Ref{
		{Path: "secret/data/app"},
		{Path: "pki/issue/web", Params: map[string]string{"common_name": "x", "ttl": "1h"}},
		{Path: "transit/keys/k"},
		{Path: "pki/issue/api", Params: map[string]string{"common_name": "api"}},
		{Path: "database/creds/app"},
	}
	if got := tmpl.Refs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
	if id := want[1].ID(); id != "pki/issue/web?common_name=x&ttl=1h" {
		t.Fatalf("ID = %q", id)
	}
	if id := want[0].ID(); id != "secret/data/app" {
		t.Fatalf("ID = %q", id)
	}
}

func TestTemplateErrors(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string
	}{
		{"missing key", "line one\n{{ with secret \"database/creds/readonly\" }}\n  {{ .Data.usernmae }}{{ end }}",
			[]string{"test.tmpl:3:", `map has no entry for key "usernmae"`}},
		{"missing nested key", "{{ with secret \"secret/data/myapp/config\" }}{{ .Data.data.nope.deeper }}{{ end }}",
			[]string{"test.tmpl:1:", `"nope"`}},
		{"bad syntax", "ok\n\n{{ if }}x{{ end }}\n", []string{"test.tmpl:3:", "missing value for if"}},
		{"unclosed action", "a\n{{ with secret \"x\" }}\n", []string{"test.tmpl:", "unexpected EOF"}},
		{"unknown function", "a\n{{ toYAMLX . }}", []string{"test.tmpl:2:", `"toYAMLX" not defined`}},
		{"writeToFile", "a\n{{ \"x\" | writeToFile \"/tmp/f\" \"\" \"\" \"0644\" }}", []string{"test.tmpl:2:", "leash does not support writeToFile: it writes to disk"}},
		{"Consul", "{{ range ls \"app\" }}{{ end }}", []string{"leash does not support ls: it reads Consul or Nomad"}},
		{"timestamp as an argument", "{{ printf \"%s\" timestamp }}", []string{"leash does not support timestamp"}},
		{"bad YAML", "{{ parseYAML \"a: b\\n c: Zq: [\" }}", []string{"test.tmpl:1:", "parseYAML: invalid YAML at line 2"}},
		{"bad float", "{{ parseFloat \"Zq\" }}", []string{"parseFloat: not a number"}},
		{"divide by zero", "{{ divide 0 1 }}", []string{"divide: division by zero"}},
		{"mustEnv", "{{ mustEnv \"LEASH_TEST_UNSET_Q\" }}", []string{"required environment variable LEASH_TEST_UNSET_Q is empty"}},
		{"no file", "{{ file \"/nonexistent/leash\" }}", []string{"file /nonexistent/leash: no such file"}},
		{"loop too long", "{{ range loop 100000000 }}{{ end }}", []string{"loop: more than"}},
		{"no path", "{{ secret }}", []string{"needs a path"}},
		{"bad param", "{{ secret \"pki/issue/web\" \"ttl\" }}", []string{`"ttl" is not k=v`}},
		{"pkiCert without parameters", "{{ pkiCert \"pki/issue/web\" }}", []string{"test.tmpl:1:", "`pkiCert` needs parameters"}},
		{"not fetched", "{{ with secret \"database/creds/other\" }}{{ end }}", []string{`secret "database/creds/other" was not fetched`}},
		{"bad base64", "{{ \"!!\" | base64Decode }}", []string{"base64Decode", "illegal base64"}},
		{"bad JSON", "{{ parseJSON \"{Zq\" }}", []string{"test.tmpl:1:", "parseJSON: invalid JSON at byte 2"}},
		{"two JSON values", "{{ parseJSON \"1 Zq\" }}", []string{"parseJSON: invalid JSON at byte 3"}},
		{"bad pattern", "{{ regexMatch \"(Zq\" \"x\" }}", []string{"regexMatch: invalid pattern: missing closing )"}},
		{"bad integer", "{{ parseInt \"Zq1\" }}", []string{"parseInt: not a base-10 integer"}},
		{"bad boolean", "{{ parseBool \"Zq\" }}", []string{"parseBool: not a boolean"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := execTemplate(t, c.text, nil)
			if err == nil {
				t.Fatalf("no error; output %q", out)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "<no value>") {
				t.Errorf("error mentions <no value>: %v", err)
			}
			// The parse and regex functions never quote their input, not
			// even the one character encoding/json would (the location
			// before it quotes the template's own text).
			if _, msg, _ := strings.Cut(err.Error(), "error calling "); strings.ContainsRune(msg, 'Z') {
				t.Errorf("error quotes the function's input: %v", err)
			}
		})
	}
}

// Execution errors that text/template would print with the value (%v)
// must not carry the secret.
func TestTemplateErrorsRedactSecrets(t *testing.T) {
	pw := dbSecret().Data.m["password"].(string)
	for _, text := range []string{
		`{{ with secret "database/creds/readonly" }}{{ range .Data.password }}{{ end }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ range .Data.password | toUpper }}{{ end }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ .Data.password.field }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ index .Data.password 1000 }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ eq .Data .Data }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ .Data.password | base64Decode }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ .Data.password | indent -1 }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ .Data.password | parseJSON }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ .Data.password | parseInt }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ .Data.password | parseBool }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ regexMatch (printf "(%s" .Data.password) "x" }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ .Data.password | base64URLDecode }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ printf "a: [%s" .Data.password | parseYAML }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ printf "%s: [" .Data.password | parseYAML }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ printf "%s: 1" .Data.password | parseYAML | toTOML }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ .Data.password | toYAML | parseJSON }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ .Data.password | parseFloat }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ .Data.password | parseUint }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ add 1 .Data.password }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ .Data.password | minimum 1 }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ range loop .Data.password }}{{ end }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ mergeMap .Data (dict) }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ explodeMap (sprig_dict "a" .Data.password "a/b" "c") }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ .Data.password | sprig_mustFromJson }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ .Data.password | sprig_semver }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ sprig_mustRegexMatch (printf "(%s" .Data.password) "x" }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ sprig_fail .Data.password }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ .Data.password | sprig_mustToDate "2006" }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ executeTemplate "x" .Data.password }}{{ end }}{{ define "x" }}{{ range . }}{{ end }}{{ end }}`,
		`{{ with secret "database/creds/readonly" }}{{ file .Data.password }}{{ end }}`,
	} {
		_, err := execTemplate(t, text, nil)
		if err == nil {
			t.Fatalf("%s: no error", text)
		}
		msg := err.Error()
		if strings.Contains(msg, pw) || strings.Contains(msg, strings.ToUpper(pw)) || strings.Contains(msg, "A1a-8Qk") {
			t.Fatalf("%s: secret in error %q", text, msg)
		}
		if !strings.Contains(msg, "test.tmpl:1:") {
			t.Fatalf("%s: no location in %q", text, msg)
		}
	}
}

// A missing key fails by default; MissingKeyNoValue renders consul-template's
// <no value>, in nested maps and on the top-level dot too. (A key under a
// missing one is still an error, "nil pointer evaluating", as in
// consul-template: text/template decides both.)
func TestTemplateMissingKeyNoValue(t *testing.T) {
	text := `{{ with secret "database/creds/readonly" }}{{ .Data.username }}|{{ .Data.nope }}{{ end }}|{{ with secret "secret/data/myapp/config" }}{{ .Data.data.nope }}{{ end }}|{{ .top }}`
	if _, err := execTemplate(t, strings.TrimSuffix(text, "|{{ .top }}"), nil); err == nil || !strings.Contains(err.Error(), `map has no entry for key "nope"`) {
		t.Fatalf("default: err = %v, want a missing-key error", err)
	}
	// The top-level dot is refused as soon as the template is parsed.
	if _, err := ParseTemplate("test.tmpl", text, nil); err == nil || !strings.Contains(err.Error(), "test.tmpl:1:") || !strings.Contains(err.Error(), ".top has no value") {
		t.Fatalf("default: parse err = %v, want the empty dot refused", err)
	}
	tmpl, err := ParseTemplateOptions("test.tmpl", text, TemplateOptions{MissingKeyNoValue: true})
	if err != nil {
		t.Fatal(err)
	}
	var w buffer
	if err := tmpl.render(&w, testSecrets()); err != nil {
		t.Fatal(err)
	}
	if want := "v-token-readonly-3Xz|<no value>|<no value>|<no value>"; string(w.b) != want {
		t.Fatalf("got %q, want %q", w.b, want)
	}
}

// Custom delimiters (Vault Agent's left_delimiter, right_delimiter): the
// braces of the file are left alone, and secret calls are still found.
func TestTemplateDelims(t *testing.T) {
	text := `{"user": "[[ with secret "database/creds/readonly" ]][[ .Data.username ]][[ end ]]", "x": {{ 1 }}}`
	tmpl, err := ParseTemplateOptions("test.tmpl", text, TemplateOptions{LeftDelim: "[[", RightDelim: "]]"})
	if err != nil {
		t.Fatal(err)
	}
	if refs := tmpl.Refs(); len(refs) != 1 || refs[0].Path != "database/creds/readonly" {
		t.Fatalf("refs = %v", refs)
	}
	var w buffer
	if err := tmpl.render(&w, testSecrets()); err != nil {
		t.Fatal(err)
	}
	if want := `{"user": "v-token-readonly-3Xz", "x": {{ 1 }}}`; string(w.b) != want {
		t.Fatalf("got %q, want %q", w.b, want)
	}
}

// The secret object has consul-template's fields, filled from Response;
// pkiCert's .Data is the object itself (func_pkiCert_Data_compat).
func TestTemplateSecretObject(t *testing.T) {
	tok := dbSecret()
	tok.Response = NewValues(map[string]any{
		"request_id": "req-1", "lease_id": "", "lease_duration": 0, "renewable": false,
		"warnings": []string{"w1", "w2"},
		"auth": map[string]any{
			"client_token": "hvs.Zq-child-token", "accessor": "acc", "policies": []string{"default", "app"},
			"metadata": map[string]string{"k": "v"}, "lease_duration": 3600, "renewable": true,
		},
		"wrap_info": nil,
	})
	db := dbSecret()
	db.Response = NewValues(map[string]any{"request_id": "req-2", "lease_id": "database/creds/readonly/abc", "lease_duration": 3600, "renewable": true, "warnings": []string(nil)})
	secrets := testSecrets()
	secrets["auth/token/create?policies=app"] = tok
	secrets["database/creds/readonly"] = db
	for _, c := range []struct{ text, want string }{
		{`{{ with secret "database/creds/readonly" }}{{ .RequestID }}|{{ .LeaseID }}|{{ .LeaseDuration }}|{{ .Renewable }}|{{ .Warnings }}|{{ .Auth }}|{{ .WrapInfo }}{{ end }}`,
			"req-2|database/creds/readonly/abc|3600|true|[]|<nil>|<nil>"},
		{`{{ with secret "auth/token/create" "policies=app" }}{{ .Auth.ClientToken }}|{{ .Auth.Accessor }}|{{ join "," .Auth.Policies }}|{{ .Auth.Metadata.k }}|{{ .Auth.LeaseDuration }}|{{ .Auth.Renewable }}|{{ range .Warnings }}{{ . }};{{ end }}{{ end }}`,
			"hvs.Zq-child-token|acc|default,app|v|3600|true|w1;w2;"},
		// Without Response (a Secret built by hand): LeaseDuration and Renewable.
		{`{{ with secret "secret/data/myapp/config" }}{{ .LeaseDuration }}{{ .RequestID }}{{ end }}`, "0"},
		{`{{ with pkiCert "pki/issue/web" "common_name=web.example.com" "ttl=1h" }}{{ .Data.Cert }}{{ .Data.CA }}{{ len .Data.CAChain }}{{ .Data.Key | len }}{{ end }}`,
			"-----BEGIN CERTIFICATE-----\nMIIcert\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nMIIca\n-----END CERTIFICATE-----\n169"},
	} {
		tmpl, err := ParseTemplate("test.tmpl", c.text, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.text, err)
		}
		var w buffer
		if err := tmpl.render(&w, secrets); err != nil {
			t.Fatalf("%s: %v", c.text, err)
		}
		if string(w.b) != c.want {
			t.Errorf("%s:\ngot  %q\nwant %q", c.text, w.b, c.want)
		}
	}
	// The child token is a secret: errors that would print it do not.
	tmpl, err := ParseTemplate("test.tmpl", `{{ with secret "auth/token/create" "policies=app" }}{{ range .Auth.ClientToken }}{{ end }}{{ end }}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	var w buffer
	if err := tmpl.render(&w, secrets); err == nil || strings.Contains(err.Error(), "Zq-child") {
		t.Fatalf("err = %v, want an error without the token", err)
	}
}

// consul-template's other functions, with its outputs (the corpus test in
// package main compares them with consul-template itself against Vault).
func TestTemplateMoreFunctions(t *testing.T) {
	dir := t.TempDir()
	f := dir + "/ca.pem"
	if err := os.WriteFile(f, []byte("CA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(k string) string {
		if k == "APP_ENV" {
			return "prod"
		}
		return ""
	}
	for _, c := range []struct{ text, want string }{
		{`{{ with secret "secret/data/myapp/config" }}{{ .Data.data | toYAML }}{{ end }}`, "password: hunter2<>\nport: 5432\nusername: app"},
		{`{{ with parseYAML "a:\n  b: [1, x]\n" }}{{ index .a.b 1 }}{{ end }}`, "x"},
		{`{{ with secret "secret/data/myapp/config" }}{{ .Data.data | toTOML }}{{ end }}`, "password = \"hunter2<>\"\nport = 5432\nusername = \"app\""},
		{`{{ with secret "secret/data/myapp/config" }}{{ .Data.data | toUnescapedJSON }}{{ end }}`, `{"password":"hunter2<>","port":5432,"username":"app"}`},
		{`{{ scratch.Set "a" 1 }}{{ scratch.SetX "a" 2 }}{{ scratch.Get "a" }}{{ scratch.MapSet "m" "z" 1 }}{{ scratch.MapSet "m" "y" 2 }}{{ scratch.MapValues "m" }}{{ scratch.Key "b" }}`, "1[2 1]false"},
		{`{{ add 1 2 }} {{ 10 | subtract 3 }} {{ multiply 2 2.5 }} {{ 7 | divide 2 }} {{ 7 | modulo 4 }} {{ minimum 3 2 }} {{ maximum 3 2.5 }}`, "3 7 5 3 3 2 3"},
		{`{{ if in (split "," "a,b") "b" }}y{{ end }}{{ if "abc" | contains "b" }}y{{ end }}{{ $l := sprig_list "a" "b" }}{{ containsAll (sprig_list "a") $l }}{{ containsAny (sprig_list "z") $l }}{{ containsNone (sprig_list "z") $l }}{{ containsNotAll (sprig_list "a" "z") $l }}`, "yytruefalsetruetrue"},
		{`{{ with explodeMap (sprig_dict "a/b" "1" "a/c" "2") }}{{ .a.b }}{{ .a.c }}{{ end }}`, "12"},
		{`{{ with mergeMap (sprig_dict "a" "1") (sprig_dict "a" "2" "b" "3") }}{{ .a }}{{ .b }}{{ end }}{{ with mergeMapWithOverride (sprig_dict "a" "1") (sprig_dict "a" "2") }}{{ .a }}{{ end }}`, "132"},
		{`{{ range loop 3 }}{{ . }}{{ end }}{{ range loop 5 7 }}{{ . }}{{ end }}`, "01256"},
		{`{{ "abc" | md5sum }} {{ hmacSHA256Hex "m" "k" }}`, "900150983cd24fb0d6963f7d28e17f72 " + hmacHex("m", "k")},
		{`{{ parseFloat "1.5" }} {{ parseUint "7" }} {{ "hello world" | toTitle }}`, "1.5 7 Hello World"},
		{`{{ with splitToMap "," ":" "a:1,b:2,c" }}{{ .a }}{{ .b }}{{ len . }}{{ end }}`, "122"},
		{`{{ mustEnv "APP_ENV" }}`, "prod"},
		{`{{ define "x" }}[{{ . }}]{{ end }}{{ executeTemplate "x" "v" }}{{ executeTemplate "x" }}`, "[v][<no value>]"},
		{`{{ file "` + f + `" }}{{ file "" }}`, "CA\n"},
		{`{{ "a-b" | sprig_snakecase }} {{ sprig_upper "x" }} {{ sprig_semver "1.2.3" | toJSON | len }}`, "a_b X 7"},
	} {
		got, err := execTemplate(t, c.text, env)
		if err != nil {
			t.Errorf("%s: %v", c.text, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s:\ngot  %q\nwant %q", c.text, got, c.want)
		}
	}
}

func hmacHex(m, k string) string {
	h := hmac.New(sha256.New, []byte(k))
	h.Write([]byte(m))
	return hex.EncodeToString(h.Sum(nil))
}

// `secrets` is a LIST: its own Ref ("list:" ID) and the keys, sorted.
func TestTemplateSecretsList(t *testing.T) {
	text := `{{ range secrets "secret/metadata/workers/" }}{{ . }};{{ end }}{{ secrets "secret/metadata/empty" | len }}`
	tmpl, err := ParseTemplate("test.tmpl", text, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Ref{{Path: "secret/metadata/workers", List: true}, {Path: "secret/metadata/empty", List: true}}
	if got := tmpl.Refs(); !reflect.DeepEqual(got, want) || got[0].ID() != "list:secret/metadata/workers" {
		t.Fatalf("refs = %#v", got)
	}
	secrets := map[string]Secret{
		"list:secret/metadata/workers": {Raw: NewValues(map[string]any{"keys": []any{"b", "a/", "c"}})},
		"list:secret/metadata/empty":   {Raw: NewValues(map[string]any{"keys": []any{}})},
	}
	var w buffer
	if err := tmpl.render(&w, secrets); err != nil {
		t.Fatal(err)
	}
	if string(w.b) != "a/;b;c;0" {
		t.Fatalf("got %q", w.b)
	}
	if _, err := ParseTemplate("test.tmpl", `{{ secrets "a" "b" }}`, nil); err == nil {
		t.Fatal("secrets with two arguments parsed")
	}
}

// Computed paths are found by executing the template, as consul-template
// does, when they come from literals, variables and env; one computed from
// a secret's value is found by Calls once that secret is there, and a
// render without it says why it is missing.
func TestTemplateComputedPaths(t *testing.T) {
	env := func(k string) string {
		if k == "APP_ENV" {
			return "prod"
		}
		return ""
	}
	text := `{{ with secret (printf "secret/data/%s/config" (env "APP_ENV")) }}{{ .Data.data.k }}{{ end }}
{{ $p := "database/creds/readonly" }}{{ with secret $p }}{{ .Data.username }}{{ end }}
{{ range split "," "a,b" }}{{ with secret (printf "kv/%s" .) }}{{ .Data.v }}{{ end }}{{ end }}
{{ $c := "common_name=x" }}{{ with pkiCert "pki/issue/web" $c }}{{ end }}{{ with secret "pki/issue/web" (printf "ttl=%s" "1h") "common_name=y" }}{{ end }}
{{ range secrets (printf "secret/metadata/%s" (env "APP_ENV")) }}{{ . }}{{ end }}
{{ with secret "kv/a" }}{{ with secret (printf "kv/%s" .Data.v) }}{{ end }}{{ end }}`
	tmpl, err := ParseTemplate("test.tmpl", text, env)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range tmpl.Refs() {
		ids = append(ids, r.ID())
	}
	want := []string{"kv/a", "secret/data/prod/config", "database/creds/readonly", "kv/b", "pki/issue/web?common_name=x", "pki/issue/web?common_name=y&ttl=1h", "list:secret/metadata/prod"}
	if !slices.Equal(ids, want) {
		t.Fatalf("refs %q\nwant %q", ids, want)
	}
	secrets := map[string]Secret{
		"secret/data/prod/config":            {Raw: NewValues(map[string]any{"data": map[string]any{"k": "K"}})},
		"database/creds/readonly":            dbSecret(),
		"kv/a":                               {Raw: NewValues(map[string]any{"v": "A"})},
		"kv/b":                               {Raw: NewValues(map[string]any{"v": "B"})},
		"pki/issue/web?common_name=x":        pkiSecret(),
		"pki/issue/web?common_name=y&ttl=1h": pkiSecret(),
		"list:secret/metadata/prod":          {Raw: NewValues(map[string]any{"keys": []any{"w"}})},
	}
	if got, _ := tmpl.Calls(secrets); len(got) != 1 || got[0].ID() != "kv/A" {
		t.Fatalf("Calls = %v, want kv/A missing", got)
	}
	var w buffer
	err = tmpl.render(&w, secrets)
	if err == nil || !strings.Contains(err.Error(), `secret "kv/A" was not fetched: its path is computed from what Vault returned`) {
		t.Fatalf("err = %v, want kv/A named as computed from a secret", err)
	}
	secrets["kv/A"] = Secret{Raw: NewValues(map[string]any{})}
	if got, _ := tmpl.Calls(secrets); len(got) != 0 {
		t.Fatalf("Calls with kv/A = %v, want nothing missing", got)
	}
	// Calls names what the template reads beyond its Refs: kv/A, and
	// kv/Z once kv/a's value points there (kv/A is then unused).
	if missing, uses := tmpl.Calls(secrets); len(missing) != 0 || !slices.Equal(uses, []string{"kv/A"}) {
		t.Fatalf("Calls = %v, %q; want nothing missing, kv/A used", missing, uses)
	}
	secrets["kv/a"] = Secret{Raw: NewValues(map[string]any{"v": "Z"})}
	if missing, uses := tmpl.Calls(secrets); len(missing) != 1 || missing[0].ID() != "kv/Z" || !slices.Equal(uses, []string{"kv/Z"}) {
		t.Fatalf("Calls after kv/a changed = %v, %q; want kv/Z missing and used", missing, uses)
	}
	secrets["kv/a"] = Secret{Raw: NewValues(map[string]any{"v": "A"})}
	// Without the secret-fed line everything renders.
	tmpl, err = ParseTemplate("test.tmpl", text[:strings.LastIndex(text, "\n")], env)
	if err != nil {
		t.Fatal(err)
	}
	w = buffer{}
	if err := tmpl.render(&w, secrets); err != nil {
		t.Fatal(err)
	}
	if want := "K\nv-token-readonly-3Xz\nAB\n\nw"; string(w.b) != want {
		t.Fatalf("got %q, want %q", w.b, want)
	}
	// A computed path that is not one.
	if _, err := ParseTemplate("test.tmpl", `{{ secret (env "UNSET") }}`, env); err == nil || !strings.Contains(err.Error(), "path is empty") {
		t.Fatalf("empty computed path: err = %v", err)
	}
}

// A template's paths follow --secret's rule (ValidatePath): a "." or ".."
// segment, which vault/api would resolve so that Vault serves another path
// than written, an empty segment or a control character is an error naming
// the template and the call, literal or computed.
func TestTemplateBadPaths(t *testing.T) {
	env := func(k string) string { return map[string]string{"P": "kv/../sys/mounts"}[k] }
	for _, tc := range []struct{ text, want string }{
		{`{{ with secret "secret/../sys/mounts" }}{{ end }}`, `test.tmpl:1:8: ` + "`secret`" + ` path "secret/../sys/mounts": ".." segment`},
		{`{{ with secret "kv/./app" }}{{ end }}`, `"." segment`},
		{`{{ with secret "kv//app" }}{{ end }}`, `empty segment`},
		{`{{ with pkiCert "pki/issue/../../sys/policy/x" "common_name=a" }}{{ end }}`, "`pkiCert` path"},
		{`{{ range secrets "kv/.." }}{{ end }}`, "`secrets` path"},
		{"{{ with secret \"kv/a\x1b[2Jb\" }}{{ end }}", `control character '\x1b'`},
		{`{{ with secret (env "P") }}{{ end }}`, `a computed ` + "`secret`" + ` call: ` + "`secret`" + ` path "kv/../sys/mounts": ".." segment`},
	} {
		_, err := ParseTemplate("test.tmpl", tc.text, env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.text, err, tc.want)
		}
	}
	// "%2e%2e" is not a dot segment: it is sent as written, "%252e%252e".
	if _, err := ParseTemplate("test.tmpl", `{{ with secret "kv/%2e%2e/app" }}{{ end }}`, env); err != nil {
		t.Errorf("percent in a path: %v", err)
	}
}

// A relative `file` path is read against the directory the template was
// parsed in: leash parses before it leaves its start directory (for /),
// and renders again at every rotation after.
func TestFileRelativeToParseDir(t *testing.T) {
	start := t.TempDir()
	if err := os.WriteFile(filepath.Join(start, "ca.pem"), []byte("CA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(start)
	tmpl, err := ParseTemplate("t", `{{ file "ca.pem" }}{{ file "./ca.pem" }}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir("/")
	var w buffer
	if err := tmpl.render(&w, nil); err != nil || string(w.b) != "CA\nCA\n" {
		t.Fatalf("rendered %q, %v; want the file in the start directory", w.b, err)
	}
	tmpl, err = ParseTemplate("t", `{{ file "nope.pem" }}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tmpl.render(&w, nil); err == nil || !strings.Contains(err.Error(), "file nope.pem: no such file") {
		t.Errorf("a missing relative file: %v, want it named as written", err)
	}
}
