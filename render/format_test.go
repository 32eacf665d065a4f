package render

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	var w buffer
	if err := appendJSON(&w, v); err != nil {
		t.Fatal(err)
	}
	return string(w.b)
}

func TestJSONSortedExact(t *testing.T) {
	m := map[string]any{
		"username": "v-app-x",
		"password": "p<&>\"\\\n\x00\u2028é",
		"port":     json.Number("5432"),
		"tls":      true,
		"none":     nil,
		"list":     []any{"a", json.Number("1.5"), map[string]any{"z": "1", "a": "2"}},
	}
	got := mustJSON(t, m)
	want := `{"list":["a",1.5,{"a":"2","z":"1"}],"none":null,"password":"p<&>\"\\\n\u0000\u2028é","port":5432,"tls":true,"username":"v-app-x"}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// encoding/json with HTML escaping off is the reference for our encoder.
func checkJSONAgainstStdlib(t *testing.T, s string) {
	var ref bytes.Buffer
	enc := json.NewEncoder(&ref)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{s: s}); err != nil {
		t.Fatal(err)
	}
	if got, want := mustJSON(t, map[string]any{s: s}), strings.TrimSuffix(ref.String(), "\n"); got != want {
		t.Fatalf("%q: got %s want %s", s, got, want)
	}
}

func TestJSONStringMatchesStdlib(t *testing.T) {
	for _, s := range []string{"", "plain", "\x00\x01\x1f\x7f", "\b\f\n\r\t", "\xff\xfe", "a\u2028b\u2029c", "<script>&", "日本語", "\xe2\x80"} {
		checkJSONAgainstStdlib(t, s)
	}
}

func FuzzJSONString(f *testing.F) {
	f.Add("p\x00ss\"word\n")
	f.Add("\xff\u2028")
	f.Fuzz(func(t *testing.T, s string) { checkJSONAgainstStdlib(t, s) })
}

func TestFieldExactBytes(t *testing.T) {
	cases := []struct {
		name string
		v    any
		want string
	}{
		{"string with NUL, no newline", "s3cr\x00t", "s3cr\x00t"},
		{"trailing newline kept", "pem\n", "pem\n"},
		{"number", json.Number("3600"), "3600"},
		{"bool", false, "false"},
		{"null", nil, ""},
		{"object", map[string]any{"b": "1", "a": "2"}, `{"a":"2","b":"1"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var w buffer
			if err := appendField(&w, c.v); err != nil {
				t.Fatal(err)
			}
			if string(w.b) != c.want {
				t.Fatalf("got %q want %q", w.b, c.want)
			}
		})
	}
}

func renderDotenv(t *testing.T, m map[string]any) string {
	t.Helper()
	var w buffer
	if err := appendDotenv(&w, m); err != nil {
		t.Fatal(err)
	}
	return string(w.b)
}

func TestDotenvExact(t *testing.T) {
	got := renderDotenv(t, map[string]any{
		"username":  "v-app-x",
		"password":  "it's $HOME `x` \"q\" \\ \n\x00\xff",
		"api-key":   "plain value",
		"db.port":   json.Number("5432"),
		"empty":     "",
		"unicode":   "pässwörd",
		"multiline": "-----BEGIN-----\nabc\n-----END-----\n",
	})
	want := `api_key='plain value'
db_port='5432'
empty=''
multiline="-----BEGIN-----\nabc\n-----END-----\n"
password="it's \$HOME \` + "`" + `x\` + "`" + ` \"q\" \\ \n\x00\xff"
unicode='pässwörd'
username='v-app-x'
`
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestDotenvBadKeys(t *testing.T) {
	for _, m := range []map[string]any{
		{"1abc": "x"},
		{"a b": "x"},
		{"a=b": "x"},
		{"a.b": "x", "a-b": "y"},
	} {
		var w buffer
		if err := appendDotenv(&w, m); err == nil {
			t.Errorf("%v: no error", m)
		} else if strings.Contains(err.Error(), "x") && !strings.Contains(err.Error(), "\"") {
			t.Errorf("error may hold a value: %v", err)
		}
	}
}

func checkDotenvRoundTrip(t *testing.T, v string) {
	var w buffer
	if err := appendDotenv(&w, map[string]any{"K": v, "Z_2": v + "'"}); err != nil {
		t.Fatal(err)
	}
	got, err := parseDotenv(w.b)
	if err != nil {
		t.Fatalf("parse %q: %v", w.b, err)
	}
	if got["K"] != v || got["Z_2"] != v+"'" || len(got) != 2 {
		t.Fatalf("value %q: rendered %q parsed %q", v, w.b, got)
	}
}

func TestDotenvRoundTripAllBytes(t *testing.T) {
	var all []byte
	for i := 0; i < 256; i++ {
		all = append(all, byte(i))
	}
	checkDotenvRoundTrip(t, string(all))
	for i := 0; i < 256; i++ {
		checkDotenvRoundTrip(t, string([]byte{byte(i)}))
	}
}

func FuzzDotenvRoundTrip(f *testing.F) {
	f.Add("")
	f.Add("it's\n$x\x00\xff\\\"")
	f.Fuzz(func(t *testing.T, v string) { checkDotenvRoundTrip(t, v) })
}

func TestValidateName(t *testing.T) {
	good := []string{"db", "db.json", "pg_pass-1", "A.B_C-d", "x"}
	bad := []string{"", ".", "..", "a..b", "a/b", "/x", "a b", "ä", "a\x00", "a=b", "$x", strings.Repeat("a", 201)}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range bad {
		if err := ValidateName(n); err == nil {
			t.Errorf("%q: accepted", n)
		}
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"db.json": "DB_JSON_FILE", "pg-pass": "PG_PASS_FILE", "Api_Key": "API_KEY_FILE",
	} {
		if got := EnvName(in); got != want {
			t.Errorf("%s: got %s want %s", in, got, want)
		}
	}
}
