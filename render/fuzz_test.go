package render

import (
	"strings"
	"testing"
)

// FuzzTemplateRender parses and renders arbitrary template text against
// fixed secrets: it must never panic, and an error must never carry a
// secret the template text did not itself contain.
func FuzzTemplateRender(f *testing.F) {
	f.Add(`{{ with secret "database/creds/readonly" }}{{ .Data.password }}{{ end }}`)
	f.Add(`{{ with pkiCert "pki/issue/web" "common_name=web.example.com" "ttl=1h" }}{{ .Key | parseJSON }}{{ end }}`)
	f.Add(`{{ with secret "database/creds/readonly" }}{{ regexReplaceAll .Data.password "" "x" }}{{ parseInt .Data.username }}{{ end }}`)
	f.Fuzz(func(t *testing.T, text string) {
		// Unbounded loops (range over a huge integer) are not what this
		// target is about.
		if strings.Contains(text, "range") || len(text) > 4096 {
			t.Skip()
		}
		tmpl, err := ParseTemplate("fuzz", text, func(string) string { return "" })
		if err != nil {
			return
		}
		for _, r := range tmpl.Refs() {
			if r.ID() == "" {
				t.Fatal("empty ref ID")
			}
		}
		var w buffer
		err = tmpl.render(&w, testSecrets())
		if err == nil {
			return
		}
		for _, s := range []string{"A1a-8Qk", "hunter2", "MIIkey"} {
			if strings.Contains(err.Error(), s) && !strings.Contains(text, s) {
				t.Fatalf("secret %q in error: %v", s, err)
			}
		}
	})
}
