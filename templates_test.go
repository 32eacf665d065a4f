package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
		cmd := leashCmd(t, "validate", "-t", "out="+f)
		cmd.Env = append(cmd.Env, "VAULT_ADDR=http://127.0.0.1:1", "VAULT_TOKEN=hvs.validate-only")
		code, stderr := exitStatus(t, cmd)
		switch {
		case c.ok && code != 0:
			t.Errorf("%s: exit %d, want 0; stderr:\n%s", c.text, code, stderr)
		case !c.ok && code != 78:
			t.Errorf("%s: exit %d, want 78; stderr:\n%s", c.text, code, stderr)
		case !c.ok && (!strings.Contains(stderr, c.want) || !strings.Contains(stderr, f)):
			t.Errorf("%s: stderr does not name %s and %q:\n%s", c.text, f, c.want, stderr)
		}
	}
}
