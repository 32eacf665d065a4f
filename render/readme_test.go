package render

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// readmeList returns the backquoted names between <!-- NAME --> and
// <!-- /NAME --> in the README (in a table, the first column's).
func readmeList(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- "+name+" -->")
	section, _, ok2 := strings.Cut(rest, "<!-- /"+name+" -->")
	if !ok || !ok2 {
		t.Fatalf("README.md has no <!-- %s --> section", name)
	}
	var out []string
	re := regexp.MustCompile("`([A-Za-z_][A-Za-z0-9_]*)`")
	if strings.Contains(section, "\n|") {
		re = regexp.MustCompile("(?m)^\\| `([A-Za-z_][A-Za-z0-9_]*)`")
	}
	for _, m := range re.FindAllStringSubmatch(section, -1) {
		out = append(out, m[1])
	}
	return out
}

// The README's function lists are the code's: every function a template
// can call (sprig's as one entry), and every one refused at parse time.
func TestReadmeFunctionLists(t *testing.T) {
	var have, refused []string
	for k := range templateFuncs(func(string) string { return "" }) {
		switch {
		case strings.HasPrefix(k, "sprig_"):
		case refusedFuncs[k] != "":
			if !slices.Contains(consulFuncs, k) {
				refused = append(refused, k)
			}
		default:
			have = append(have, k)
		}
	}
	have = append(have, "secret", "secrets", "pkiCert", "sprig_")
	slices.Sort(have)
	slices.Sort(refused)
	readme := readmeList(t, "functions")
	if !slices.Equal(readme, have) {
		t.Errorf("README functions section:\n%s\nwant (in this order):\n%s", strings.Join(readme, " "), strings.Join(have, " "))
	}
	if r := readmeList(t, "refused-functions"); !slices.Equal(r, refused) {
		t.Errorf("README refused-functions section:\n%s\nwant (in this order):\n%s", strings.Join(r, " "), strings.Join(refused, " "))
	}
}
