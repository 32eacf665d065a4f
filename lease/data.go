package lease

import (
	"fmt"
	"io"
)

const redacted = "[redacted]"

// Data holds secret fields. It cannot be printed: String, GoString, Format,
// MarshalJSON and MarshalText all yield "[redacted]", so a Data that reaches
// a logger or an error message leaks nothing.
type Data struct{ m map[string]any }

// Map returns a deep copy of the fields for render.
func (d Data) Map() map[string]any { return deepCopy(d.m) }

// Len reports the number of top-level fields.
func (d Data) Len() int { return len(d.m) }

// String returns "[redacted]".
func (Data) String() string { return redacted }

// GoString returns "[redacted]" (for %#v).
func (Data) GoString() string { return redacted }

// Format writes "[redacted]" for every verb, so %x or %q leak nothing either.
func (Data) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// MarshalJSON returns "[redacted]" as a JSON string (hclog's JSON format).
func (Data) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "[redacted]".
func (Data) MarshalText() ([]byte, error) { return []byte(redacted), nil }

func deepCopy(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return deepCopy(v)
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = copyValue(e)
		}
		return s
	case []string:
		return append([]string(nil), v...)
	case map[string]string: // Response's auth metadata
		out := make(map[string]string, len(v))
		for k, e := range v {
			out[k] = e
		}
		return out
	default:
		return v
	}
}

// secretString is a credential leash holds (a token, a secret_id) that must
// never be printed.
type secretString string

func (secretString) String() string             { return redacted }
func (secretString) GoString() string           { return redacted }
func (secretString) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }
func (secretString) MarshalJSON() ([]byte, error) {
	return []byte(`"` + redacted + `"`), nil
}
