package render

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"dario.cat/mergo"
	"github.com/BurntSushi/toml"
	"github.com/Masterminds/sprig/v3"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"gopkg.in/yaml.v2"
)

// The functions below are consul-template v0.41.1's (template/funcs.go),
// with its argument order and output, built on the same libraries so the
// bytes match: yaml.v2, BurntSushi/toml, mergo, sprig. Unlike
// consul-template's, their errors never quote a value: it may be a secret.

// sprigFuncs is consul-template's sprig_* set: Masterminds/sprig's
// hermetic text functions (no clock, randomness, environment or network),
// each under a sprig_ prefix.
var sprigFuncs = func() template.FuncMap {
	m := template.FuncMap{}
	for k, v := range sprig.HermeticTxtFuncMap() {
		m["sprig_"+k] = v
	}
	return m
}()

// refusedFuncs are consul-template functions leash does not have, with why;
// a template calling one is refused when it is parsed.
var refusedFuncs = map[string]string{
	"writeToFile":  "it writes to disk, and leash never puts secrets on disk; render the file as an output instead",
	"plugin":       "it runs a program from inside the template; run it as (or from) the child instead",
	"timestamp":    "it would change the output, and so hand over new credentials, at every render",
	"explode":      "it takes Consul KV pairs (ls, tree), which leash does not read; explodeMap takes a map",
	"sockaddr":     "leash does not link go-sockaddr's template functions",
	"spew_dump":    "it prints to leash's standard output, which belongs to the child",
	"spew_printf":  "it prints to leash's standard output, which belongs to the child",
	"spew_sdump":   "it dumps Go values for debugging; use toJSONPretty",
	"spew_sprintf": "it dumps Go values for debugging; use printf",
}

// consulFuncs are consul-template's Consul and Nomad lookups.
var consulFuncs = []string{
	"datacenters", "exportedServices", "key", "keyExists", "keyOrDefault", "ls", "safeLs",
	"node", "nodes", "partitions", "peerings", "service", "connect", "services", "tree",
	"safeTree", "caRoots", "caLeaf", "byKey", "byPort", "byTag", "byMeta",
	"nomadServices", "nomadService", "nomadVarList", "nomadVarListSafe", "nomadVar", "nomadVarExists",
}

func init() {
	for _, f := range consulFuncs {
		refusedFuncs[f] = "it reads Consul or Nomad; leash reads Vault only"
	}
}

func refused(...any) (string, error) { return "", errors.New("not supported") }

// moreFuncs adds consul-template's remaining functions to m.
func moreFuncs(m template.FuncMap, env func(string) string) {
	for k, v := range sprigFuncs {
		m[k] = v
	}
	for k := range refusedFuncs {
		m[k] = refused
	}
	more := template.FuncMap{
		"mustEnv": func(name string) (string, error) {
			if v := env(name); v != "" {
				return v, nil
			}
			return "", fmt.Errorf("required environment variable %s is empty", name)
		},
		"toYAML":                toYAML,
		"parseYAML":             parseYAML,
		"toTOML":                toTOML,
		"toUnescapedJSON":       toUnescapedJSON,
		"toUnescapedJSONPretty": toUnescapedJSONPretty,
		"toTitle":               func(s string) string { return cases.Title(language.Und, cases.NoLower).String(s) },
		"parseFloat":            parseFloat,
		"parseUint":             parseUint,
		"md5sum":                func(s string) string { return fmt.Sprintf("%x", md5.Sum([]byte(s))) },
		"hmacSHA256Hex": func(message, key string) string {
			h := hmac.New(sha256.New, []byte(key))
			h.Write([]byte(message))
			return hex.EncodeToString(h.Sum(nil))
		},
		"splitToMap":     splitToMap,
		"in":             in,
		"containsAll":    containsSome(true, true),
		"containsAny":    containsSome(false, false),
		"containsNone":   containsSome(true, false),
		"containsNotAll": containsSome(false, true),
		"explodeMap":     explodeMap,
		"mergeMap":       func(dst, src map[string]any) (map[string]any, error) { return mergeMap("mergeMap", dst, src) },
		"mergeMapWithOverride": func(dst, src map[string]any) (map[string]any, error) {
			return mergeMap("mergeMapWithOverride", dst, src, mergo.WithOverride)
		},
		"loop":     loop,
		"add":      arith("add"),
		"subtract": arith("subtract"),
		"multiply": arith("multiply"),
		"divide":   arith("divide"),
		"modulo":   arith("modulo"),
		"minimum":  minMax("minimum"),
		"maximum":  minMax("maximum"),
		// Replaced per render (template.go); these give the checker their types.
		"scratch":         func() *Scratch { return &Scratch{} },
		"executeTemplate": func(string, ...any) (string, error) { return "", errors.New("executeTemplate: outside a render") },
		"file":            func(string) (string, error) { return "", errors.New("file: outside a render") },
	}
	for k, v := range more {
		m[k] = v
	}
}

var yamlLine = regexp.MustCompile(`line [0-9]+`)

func toYAML(v any) (string, error) {
	b, err := yamlMarshal(v)
	if err != nil {
		return "", fmt.Errorf("toYAML: %T cannot be encoded", v)
	}
	return string(bytes.TrimSpace(b)), nil
}

// yamlMarshal is yaml.Marshal, whose panics on values it cannot encode
// (and whose messages may hold them) become an error.
func yamlMarshal(v any) (b []byte, err error) {
	defer func() {
		if recover() != nil {
			b, err = nil, errors.New("cannot encode")
		}
	}()
	return yaml.Marshal(v)
}

// parseYAML decodes s as consul-template does (yaml.v2: nested maps are
// map[any]any); an empty s is an empty map. The error names a line only.
func parseYAML(s string) (v any, err error) {
	if s == "" {
		return map[string]any{}, nil
	}
	defer func() {
		if recover() != nil {
			v, err = nil, errors.New("parseYAML: invalid YAML")
		}
	}()
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		if l := yamlLine.FindString(err.Error()); l != "" {
			return nil, fmt.Errorf("parseYAML: invalid YAML at %s", l)
		}
		return nil, errors.New("parseYAML: invalid YAML")
	}
	return v, nil
}

func toTOML(v any) (s string, err error) {
	defer func() {
		if recover() != nil {
			s, err = "", fmt.Errorf("toTOML: %T cannot be encoded", v)
		}
	}()
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(v); err != nil {
		return "", fmt.Errorf("toTOML: %T cannot be encoded", v)
	}
	return string(bytes.TrimSpace(b.Bytes())), nil
}

func toUnescapedJSON(v any) (string, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return "", fmt.Errorf("toUnescapedJSON: %T cannot be encoded", v)
	}
	return strings.TrimRight(b.String(), "\r\n"), nil
}

func toUnescapedJSONPretty(v any) (string, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	e.SetIndent("", "  ")
	if err := e.Encode(v); err != nil {
		return "", fmt.Errorf("toUnescapedJSONPretty: %T cannot be encoded", v)
	}
	return strings.TrimRight(b.String(), "\r\n"), nil
}

// parseFloat: an empty s is 0.
func parseFloat(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, errors.New("parseFloat: not a number in range")
	}
	return f, nil
}

// parseUint: base 10, an empty s is 0.
func parseUint(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errors.New("parseUint: not a base-10 unsigned integer in range")
	}
	return n, nil
}

// splitToMap is `splitToMap SEP1 SEP2 S`: "a:1,b:2" with "," ":" is
// {a: 1, b: 2}; a part without SEP2 is skipped.
func splitToMap(sep1, sep2, s string) map[string]string {
	s = strings.TrimSpace(s)
	m := map[string]string{}
	if s == "" {
		return m
	}
	for _, part := range strings.Split(s, sep1) {
		if k, v, ok := strings.Cut(part, sep2); ok {
			m[k] = v
		}
	}
	return m
}

// in is `in LIST V`: whether the list holds V (integers, floats and
// strings compared by kind, strings also by type, as consul-template), or
// the string LIST contains the string V.
func in(l, v any) (bool, error) {
	lv, vv := reflect.ValueOf(l), reflect.ValueOf(v)
	switch lv.Kind() {
	case reflect.Array, reflect.Slice:
		for i := range lv.Len() {
			e := lv.Index(i)
			if e.Kind() == reflect.Interface {
				e = e.Elem()
			}
			switch e.Kind() {
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				switch vv.Kind() {
				case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
					if vv.Int() == e.Int() {
						return true, nil
					}
				}
			case reflect.Float32, reflect.Float64:
				switch vv.Kind() {
				case reflect.Float32, reflect.Float64:
					if vv.Float() == e.Float() {
						return true, nil
					}
				}
			case reflect.String:
				if vv.IsValid() && vv.Type() == e.Type() && vv.String() == e.String() {
					return true, nil
				}
			}
		}
	case reflect.String:
		if vv.IsValid() && vv.Type() == lv.Type() && strings.Contains(lv.String(), vv.String()) {
			return true, nil
		}
	}
	return false, nil
}

// containsSome makes containsAll, containsAny, containsNone and
// containsNotAll (`containsAll VALUES LIST`), as consul-template does.
func containsSome(retTrue, invert bool) func([]any, any) (bool, error) {
	return func(v []any, l any) (bool, error) {
		for _, e := range v {
			if ok, _ := in(l, e); ok != invert {
				return !retTrue, nil
			}
		}
		return retTrue, nil
	}
}

// mergeMap merges a copy of dst with src (consul-template merges into
// dst, the secret's own map, so a second use would see the merge).
func mergeMap(fn string, dst, src map[string]any, opts ...func(*mergo.Config)) (map[string]any, error) {
	out := copyMap(dst)
	if out == nil {
		out = map[string]any{}
	}
	if err := mergo.Map(&out, src, opts...); err != nil {
		return nil, fmt.Errorf("%s: the maps cannot be merged", fn)
	}
	return out, nil
}

func copyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyAny(v)
	}
	return out
}

func copyAny(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return copyMap(x)
	case []any:
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = copyAny(e)
		}
		return c
	}
	return v
}

// explodeMap turns {"a/b": 1} into {"a": {"b": 1}}.
func explodeMap(in map[string]any) (map[string]any, error) {
	out := map[string]any{}
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := explodeKey(out, k, in[k]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func explodeKey(m map[string]any, k string, v any) error {
	top, rest, nested := strings.Cut(k, "/")
	if !nested {
		if k != "" {
			m[k] = v
		}
		return nil
	}
	if _, ok := m[top]; !ok {
		m[top] = map[string]any{}
	}
	sub, ok := m[top].(map[string]any)
	if !ok {
		return errors.New("explodeMap: a key is both a value and a folder of other keys")
	}
	return explodeKey(sub, rest, v)
}

// maxLoop bounds loop: consul-template streams the numbers from a
// goroutine; leash makes a list, which a typo must not make huge.
const maxLoop = 1 << 20

// loop is `loop N` (0 to N-1) or `loop START STOP`.
func loop(args ...any) ([]int64, error) {
	var start, stop int64
	var err error
	switch len(args) {
	case 1:
		stop, err = loopInt(args[0])
	case 2:
		if start, err = loopInt(args[0]); err == nil {
			stop, err = loopInt(args[1])
		}
	default:
		return nil, fmt.Errorf("loop: wrong number of arguments, expected 1 or 2, but got %d", len(args))
	}
	if err != nil {
		return nil, err
	}
	if stop-start > maxLoop {
		return nil, fmt.Errorf("loop: more than %d iterations", maxLoop)
	}
	out := []int64{}
	for i := start; i < stop; i++ {
		out = append(out, i)
	}
	return out, nil
}

func loopInt(v any) (int64, error) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(rv.Uint()), nil
	case reflect.String:
		n, err := parseInt(rv.String())
		if err != nil {
			return 0, errors.New("loop: not a base-10 integer")
		}
		return n, nil
	}
	return 0, fmt.Errorf("loop: bad argument type: %T", v)
}

// number is an integer (signed or not) or a float, as consul-template's
// math functions take them. Vault's numbers (json.Number) are taken too,
// which consul-template refuses.
type number struct {
	kind byte // 'i', 'u', 'f'
	i    int64
	u    uint64
	f    float64
}

func toNumber(fn string, v any) (number, error) {
	if n, ok := v.(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			return number{kind: 'i', i: i}, nil
		}
		if f, err := n.Float64(); err == nil {
			return number{kind: 'f', f: f}, nil
		}
		return number{}, fmt.Errorf("%s: not a number", fn)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return number{kind: 'i', i: rv.Int()}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return number{kind: 'u', u: rv.Uint()}, nil
	case reflect.Float32, reflect.Float64:
		return number{kind: 'f', f: rv.Float()}, nil
	}
	return number{}, fmt.Errorf("%s: unknown type %T", fn, v)
}

func (n number) float() float64 {
	switch n.kind {
	case 'i':
		return float64(n.i)
	case 'u':
		return float64(n.u)
	}
	return n.f
}

func (n number) int() int64 {
	if n.kind == 'u' {
		return int64(n.u)
	}
	return n.i
}

func (n number) value() any {
	switch n.kind {
	case 'i':
		return n.i
	case 'u':
		return n.u
	}
	return n.f
}

// arith is `add B A` (A + B), `subtract B A` (A - B), `multiply`, `divide`
// (A / B), `modulo` (A % B, integers only): A is the piped value. Two
// unsigned give an unsigned, a float a float, else a signed integer.
func arith(fn string) func(b, a any) (any, error) {
	return func(b, a any) (any, error) {
		x, err := toNumber(fn, a)
		if err != nil {
			return nil, err
		}
		y, err := toNumber(fn, b)
		if err != nil {
			return nil, err
		}
		switch {
		case x.kind == 'f' || y.kind == 'f':
			if fn == "modulo" {
				return nil, fmt.Errorf("modulo: unknown type %s", "float64")
			}
			xf, yf := x.float(), y.float()
			switch fn {
			case "add":
				return xf + yf, nil
			case "subtract":
				return xf - yf, nil
			case "multiply":
				return xf * yf, nil
			}
			return xf / yf, nil
		case x.kind == 'u' && y.kind == 'u':
			if (fn == "divide" || fn == "modulo") && y.u == 0 {
				return nil, fmt.Errorf("%s: division by zero", fn)
			}
			switch fn {
			case "add":
				return x.u + y.u, nil
			case "subtract":
				return x.u - y.u, nil
			case "multiply":
				return x.u * y.u, nil
			case "divide":
				return x.u / y.u, nil
			}
			return x.u % y.u, nil
		}
		xi, yi := x.int(), y.int()
		if (fn == "divide" || fn == "modulo") && yi == 0 {
			return nil, fmt.Errorf("%s: division by zero", fn)
		}
		switch fn {
		case "add":
			return xi + yi, nil
		case "subtract":
			return xi - yi, nil
		case "multiply":
			return xi * yi, nil
		case "divide":
			return xi / yi, nil
		}
		return xi % yi, nil
	}
}

// minMax is `minimum B A` and `maximum B A`: the smaller (larger) of the
// two, in its own type; a tie gives B.
func minMax(fn string) func(b, a any) (any, error) {
	return func(b, a any) (any, error) {
		x, err := toNumber(fn, a)
		if err != nil {
			return nil, err
		}
		y, err := toNumber(fn, b)
		if err != nil {
			return nil, err
		}
		var c int // x against y
		switch {
		case x.kind == 'f' || y.kind == 'f':
			c = cmpOrdered(x.float(), y.float())
		case x.kind == 'u' && y.kind == 'u':
			c = cmpOrdered(x.u, y.u)
		default:
			c = cmpOrdered(x.int(), y.int())
		}
		if (fn == "minimum" && c < 0) || (fn == "maximum" && c > 0) {
			return x.value(), nil
		}
		return y.value(), nil
	}
}

func cmpOrdered[T int64 | uint64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Scratch is consul-template's scratch: a key-value store that lives for
// one render of one template.
type Scratch struct {
	values map[string]any
}

// Key reports whether k is set.
func (s *Scratch) Key(k string) bool {
	_, ok := s.values[k]
	return ok
}

// Get returns k's value, or nil.
func (s *Scratch) Get(k string) any { return s.values[k] }

// Set sets k to v.
func (s *Scratch) Set(k string, v any) string {
	s.init()
	s.values[k] = v
	return ""
}

// SetX sets k to v unless k is set.
func (s *Scratch) SetX(k string, v any) string {
	s.init()
	if _, ok := s.values[k]; !ok {
		s.values[k] = v
	}
	return ""
}

// MapSet sets key mk of the map named k to v.
func (s *Scratch) MapSet(k, mk string, v any) (string, error) { return s.mapSet(k, mk, v, true) }

// MapSetX sets key mk of the map named k to v unless mk is set.
func (s *Scratch) MapSetX(k, mk string, v any) (string, error) { return s.mapSet(k, mk, v, false) }

func (s *Scratch) mapSet(k, mk string, v any, overwrite bool) (string, error) {
	s.init()
	if _, ok := s.values[k]; !ok {
		s.values[k] = map[string]any{}
	}
	m, ok := s.values[k].(map[string]any)
	if !ok {
		return "", fmt.Errorf("%q is not a map", k)
	}
	if _, ok := m[mk]; overwrite || !ok {
		m[mk] = v
	}
	return "", nil
}

// MapValues returns the values of the map named k, sorted by key.
func (s *Scratch) MapValues(k string) ([]any, error) {
	m, ok := s.values[k].(map[string]any)
	if !ok {
		return nil, nil
	}
	keys := make([]string, 0, len(m))
	for mk := range m {
		keys = append(keys, mk)
	}
	sort.Strings(keys)
	out := make([]any, len(keys))
	for i, mk := range keys {
		out[i] = m[mk]
	}
	return out, nil
}

func (s *Scratch) init() {
	if s.values == nil {
		s.values = map[string]any{}
	}
}
