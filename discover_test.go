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

// A secret a template computes that another output names statically is
// not the template's to drop: when the template's pointer moves away from
// it, settle must keep it for the other output.
func TestDiscoverKeepsStaticSecrets(t *testing.T) {
	tmpl, err := render.ParseTemplate("t", `{{ with secret "kv/ptr" }}{{ with secret .Data.next }}{{ end }}{{ end }}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	outputs := []render.Output{
		{Name: "t", Kind: render.TemplateKind, Template: tmpl},
		{Name: "a", Secret: "kv/a"}, // -s a=kv/a
	}
	at := func(next string) func() map[string]render.Secret {
		return func() map[string]render.Secret {
			return map[string]render.Secret{
				"kv/ptr": {Raw: render.NewValues(map[string]any{"next": next})},
				"kv/a":   {Raw: render.NewValues(map[string]any{})},
				"kv/b":   {Raw: render.NewValues(map[string]any{})},
			}
		}
	}
	d := discoverWith(at("kv/b"), outputs)
	if len(d.add) != 0 || !slices.Equal(d.uses["t"], []string{"kv/b"}) {
		t.Fatalf("pointing at kv/b: add %v, uses %v", d.add, d.uses)
	}
	found := d.uses
	d = discoverWith(at("kv/a"), outputs)
	if len(d.uses["t"]) != 0 {
		t.Errorf("pointing at kv/a (another output's): uses %v, want none", d.uses)
	}
	if got := d.unused(found); !slices.Equal(got, []string{"kv/b"}) {
		t.Errorf("unused = %q, want kv/b only", got)
	}
	// Moving away from kv/a must not drop it: before, the template
	// claimed it, and unused named it.
	if got := discoverWith(at("kv/b"), outputs).unused(d.uses); len(got) != 0 {
		t.Errorf("unused after moving back from kv/a = %q, want none", got)
	}
}
