package render

import "testing"

// A value that must never leave the memfd: it contains a NUL and no
// trailing newline.
const rawSecret = "pw-\x00-8f3K" + leakMarker

func memfdOutputs(t *testing.T) []Output {
	t.Helper()
	tmpl, err := ParseTemplate("conf", "user={{ with secret \"database/creds/app\" }}{{ .Data.username }}{{ end }}\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	return []Output{
		{Name: "pw", Kind: Field, Secret: "database/creds/app", Field: "password"},
		{Name: "db.json", Kind: JSON, Secret: "database/creds/app"},
		{Name: "app-env", Kind: Dotenv, Secret: "database/creds/app"},
		{Name: "conf", Kind: TemplateKind, Template: tmpl},
	}
}

func appSecret(password string) map[string]Secret {
	m := map[string]any{"username": "v-app-1", "password": password}
	return map[string]Secret{"database/creds/app": {Data: NewValues(m), Raw: NewValues(m)}}
}
