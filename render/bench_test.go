package render

import (
	"fmt"
	"testing"
)

func BenchmarkTemplateRender(b *testing.B) {
	tmpl, err := ParseTemplate("b", `{{ with secret "secret/data/myapp/config" }}{{ .Data.data | toJSON }}
{{ range $k, $v := .Data.data }}{{ $k }}={{ $v }}
{{ end }}{{ end }}`, nil)
	if err != nil {
		b.Fatal(err)
	}
	secrets := testSecrets()
	for b.Loop() {
		var w buffer
		if err := tmpl.render(&w, secrets); err != nil {
			b.Fatal(err)
		}
		w.wipe()
	}
}

// One reload rotation of four outputs into memfds: render, compare, write.
func BenchmarkUpdateInPlace(b *testing.B) {
	tmpl, _ := ParseTemplate("conf", "user={{ with secret \"database/creds/app\" }}{{ .Data.username }}{{ end }}\n", nil)
	r, err := New(Options{UID: -1, GID: -1}, []Output{
		{Name: "pw", Kind: Field, Secret: "database/creds/app", Field: "password"},
		{Name: "db.json", Secret: "database/creds/app"},
		{Name: "app-env", Kind: Dotenv, Secret: "database/creds/app"},
		{Name: "conf", Kind: TemplateKind, Template: tmpl},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	i := 0
	for b.Loop() {
		i++
		if _, err := r.Update(appSecret(fmt.Sprintf("pw-%d", i)), true); err != nil {
			b.Fatal(err)
		}
	}
}

// A restart rotation: new sealed memfds plus Release of the old ones.
func BenchmarkUpdateRestart(b *testing.B) {
	r, err := New(Options{UID: -1, GID: -1}, []Output{{Name: "pw", Kind: Field, Secret: "database/creds/app", Field: "password"}})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	i := 0
	for b.Loop() {
		i++
		if _, err := r.Update(appSecret(fmt.Sprintf("pw-%d", i)), false); err != nil {
			b.Fatal(err)
		}
		r.Release()
	}
}
