package main

import (
	"slices"
	"testing"

	"github.com/leash-dev/leash/render"
)

// leash rotate NAME of a template also rotates the secrets it asked for
// once others were fetched (discoverSecrets), not only its parsed ones.
func TestRotateNamesDiscoveredSecrets(t *testing.T) {
	tmpl, err := render.ParseTemplate("t", `{{ with secret "kv/a" }}{{ with secret .Data.next }}{{ end }}{{ end }}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	rt := &rotation{
		outputs:    []render.Output{{Name: "t", Kind: render.TemplateKind, Template: tmpl}},
		discovered: map[string][]string{"t": {"kv/b"}},
	}
	if got := rt.specIDs([]string{"t"}); !slices.Equal(got, []string{"kv/a", "kv/b"}) {
		t.Fatalf("specIDs = %q", got)
	}
}
