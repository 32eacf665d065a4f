package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// appendJSON encodes v with sorted keys and no HTML escaping. It is written
// by hand so every byte lands in a buffer render can zero (encoding/json
// keeps pooled copies); it matches encoding/json with SetEscapeHTML(false).
func appendJSON(w *buffer, v any) error {
	switch x := v.(type) {
	case nil:
		w.WriteString("null")
	case string:
		appendJSONString(w, x)
	case json.Number:
		if x == "" {
			w.WriteString("0")
		} else {
			w.WriteString(string(x))
		}
	case bool:
		w.WriteString(strconv.FormatBool(x))
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return errors.New("unsupported number (NaN or infinity)")
		}
		b, _ := json.Marshal(x)
		w.Write(b)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				w.WriteByte(',')
			}
			appendJSONString(w, k)
			w.WriteByte(':')
			if err := appendJSON(w, x[k]); err != nil {
				return err
			}
		}
		w.WriteByte('}')
	case []any:
		w.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				w.WriteByte(',')
			}
			if err := appendJSON(w, e); err != nil {
				return err
			}
		}
		w.WriteByte(']')
	default:
		// Other shapes (ints from hand-built data, typed slices) are rare:
		// encoding/json is exact for them.
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Errorf("unsupported value of type %T", x)
		}
		w.Write(b)
		zero(b)
	}
	return nil
}

const hexDigits = "0123456789abcdef"

func appendJSONString(w *buffer, s string) {
	w.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			w.WriteString(s[start:i])
			switch c {
			case '"', '\\':
				w.Write([]byte{'\\', c})
			case '\b':
				w.WriteString(`\b`)
			case '\f':
				w.WriteString(`\f`)
			case '\n':
				w.WriteString(`\n`)
			case '\r':
				w.WriteString(`\r`)
			case '\t':
				w.WriteString(`\t`)
			default:
				w.Write([]byte{'\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf]})
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			w.WriteString(s[start:i])
			w.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 break JavaScript; encoding/json escapes them.
		if r == '\u2028' || r == '\u2029' {
			w.WriteString(s[start:i])
			w.WriteString(`\u202`)
			w.WriteByte(hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	w.WriteString(s[start:])
	w.WriteByte('"')
}

// appendField writes one field's value as raw bytes: strings exactly,
// numbers and booleans as their JSON text, null as nothing, objects and
// arrays as JSON.
func appendField(w *buffer, v any) error {
	switch x := v.(type) {
	case nil:
	case string:
		w.WriteString(x)
	case json.Number:
		w.WriteString(string(x))
	default:
		return appendJSON(w, x)
	}
	return nil
}

// dotenvKey turns a field name into a variable name: '.' and '-' become
// '_'; anything else outside [A-Za-z0-9_], or a leading digit, is an error.
func dotenvKey(k string) (string, error) {
	if k == "" {
		return "", errors.New("empty field name")
	}
	b := []byte(k)
	for i, c := range b {
		switch {
		case c == '.' || c == '-':
			b[i] = '_'
		case c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return "", fmt.Errorf("field name %q is not a valid variable name", k)
		}
	}
	return string(b), nil
}

// appendDotenv writes KEY=value lines in key order. A value made only of
// printable characters without a single quote is single-quoted (literal in
// sh and every dotenv dialect); any other value is double-quoted with
// backslash escapes \\ \" \$ \` \n \r \t and \xHH for other control or
// invalid UTF-8 bytes, so any byte sequence round-trips through
// parseDotenv.
func appendDotenv(w *buffer, m map[string]any) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	seen := make(map[string]string, len(keys))
	var val buffer
	defer val.wipe()
	for _, k := range keys {
		name, err := dotenvKey(k)
		if err != nil {
			return err
		}
		if prev, dup := seen[name]; dup {
			return fmt.Errorf("fields %q and %q both become variable %s", prev, k, name)
		}
		seen[name] = k
		val.wipe()
		if err := appendField(&val, m[k]); err != nil {
			return fmt.Errorf("field %q: %w", k, err)
		}
		w.WriteString(name)
		w.WriteByte('=')
		appendDotenvValue(w, val.b)
		w.WriteByte('\n')
	}
	return nil
}

func singleQuotable(v []byte) bool {
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRune(v[i:])
		if r == utf8.RuneError && size <= 1 || r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 ||
			r == '\'' || r == '\u2028' || r == '\u2029' {
			return false
		}
		i += size
	}
	return true
}

func appendDotenvValue(w *buffer, v []byte) {
	if singleQuotable(v) {
		w.WriteByte('\'')
		w.Write(v)
		w.WriteByte('\'')
		return
	}
	w.WriteByte('"')
	for i := 0; i < len(v); {
		c := v[i]
		switch c {
		case '\\', '"', '$', '`':
			w.Write([]byte{'\\', c})
			i++
			continue
		case '\n':
			w.WriteString(`\n`)
			i++
			continue
		case '\r':
			w.WriteString(`\r`)
			i++
			continue
		case '\t':
			w.WriteString(`\t`)
			i++
			continue
		}
		r, size := utf8.DecodeRune(v[i:])
		if r == utf8.RuneError && size <= 1 || r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			for _, b := range v[i : i+max(size, 1)] {
				w.Write([]byte{'\\', 'x', hexDigits[b>>4], hexDigits[b&0xf]})
			}
			i += max(size, 1)
			continue
		}
		w.Write(v[i : i+size])
		i += size
	}
	w.WriteByte('"')
}

// parseDotenv reads what appendDotenv writes (and plain unquoted values).
// It is the reference for the format's round-trip guarantee.
func parseDotenv(b []byte) (map[string]string, error) {
	out := map[string]string{}
	s := string(b)
	line := 1
	for len(s) > 0 {
		if s[0] == '\n' {
			s = s[1:]
			line++
			continue
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("line %d: want KEY=value", line)
		}
		key := s[:eq]
		if strings.ContainsAny(key, "\n \t") {
			return nil, fmt.Errorf("line %d: bad key", line)
		}
		s = s[eq+1:]
		var val strings.Builder
		switch {
		case strings.HasPrefix(s, "'"):
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated single quote", line)
			}
			val.WriteString(s[1 : 1+end])
			line += strings.Count(s[1:1+end], "\n")
			s = s[end+2:]
		case strings.HasPrefix(s, `"`):
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] != '\\' {
					if s[i] == '\n' {
						line++
					}
					val.WriteByte(s[i])
					continue
				}
				i++
				if i >= len(s) {
					break
				}
				switch s[i] {
				case 'n':
					val.WriteByte('\n')
				case 'r':
					val.WriteByte('\r')
				case 't':
					val.WriteByte('\t')
				case 'x':
					if i+2 >= len(s) {
						return nil, fmt.Errorf("line %d: short \\x escape", line)
					}
					n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
					if err != nil {
						return nil, fmt.Errorf("line %d: bad \\x escape", line)
					}
					val.WriteByte(byte(n))
					i += 2
				default:
					val.WriteByte(s[i])
				}
			}
			if i >= len(s) {
				return nil, fmt.Errorf("line %d: unterminated double quote", line)
			}
			s = s[i+1:]
		default:
			end := strings.IndexByte(s, '\n')
			if end < 0 {
				end = len(s)
			}
			val.WriteString(s[:end])
			s = s[end:]
		}
		if len(s) > 0 && s[0] != '\n' {
			return nil, fmt.Errorf("line %d: text after value", line)
		}
		out[key] = val.String()
	}
	return out, nil
}
