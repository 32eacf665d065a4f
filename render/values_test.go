package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

const leakMarker = "S3CRET-marker-7f1c"

func secretValues() Values {
	return NewValues(map[string]any{
		"password": leakMarker,
		"nested":   map[string]any{"k": leakMarker},
		"list":     []any{leakMarker},
	})
}

func TestValuesUnprintable(t *testing.T) {
	v := secretValues()
	s := Secret{Data: v, Raw: v, LeaseDuration: time.Hour}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		out = append(out, fmt.Sprintf(verb, v), fmt.Sprintf(verb, &v), fmt.Sprintf(verb, s), fmt.Sprintf(verb, &s))
	}
	out = append(out, fmt.Sprint(v, s), fmt.Sprintln([]Values{v}), fmt.Sprint(map[string]Secret{"x": s}))
	for _, x := range []any{v, &v, s, []Values{v}, map[string]Secret{"x": s}} {
		b, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	for _, o := range out {
		if strings.Contains(o, leakMarker) || strings.Contains(o, fmt.Sprintf("%x", leakMarker)) {
			t.Fatalf("secret printed: %s", o)
		}
		if !strings.Contains(o, "[redacted]") {
			t.Fatalf("no [redacted] in %s", o)
		}
	}
}

func TestValuesHclogBothFormats(t *testing.T) {
	v := secretValues()
	s := Secret{Data: v, Raw: v}
	for _, jsonFormat := range []bool{false, true} {
		var buf bytes.Buffer
		log := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: &buf, JSONFormat: jsonFormat})
		log.Trace("values", "data", v, "ptr", &v, "secret", s, "secret_ptr", &s, "list", []Values{v}, "map", map[string]Secret{"x": s})
		log.Named("render").With("data", v).Error("with", "fmt", hclog.Fmt("%v %+v %#v", v, s, &s))
		if buf.Len() == 0 {
			t.Fatal("no log output")
		}
		if strings.Contains(buf.String(), leakMarker) {
			t.Fatalf("json=%v: secret in log:\n%s", jsonFormat, buf.String())
		}
		if !strings.Contains(buf.String(), "[redacted]") {
			t.Fatalf("json=%v: no [redacted]:\n%s", jsonFormat, buf.String())
		}
	}
}
