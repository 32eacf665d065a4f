package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

// Template is a parsed Go text/template with the consul-template / Vault
// Agent functions leash supports. It is immutable and safe for concurrent
// use.
type Template struct {
	name     string
	tmpl     *template.Template
	refs     []Ref
	computed bool // a fetch call's arguments are not all literals
	// dir is the working directory at parse time ("" if unknown): a
	// relative `file` path is read there, also after leash has left it.
	dir string
}

// Ref is one `secret` call in a template: a read of Path when Params is
// nil, else a write (PUT) of Params to Path, like consul-template's
// `secret "pki/issue/web" "common_name=x"`.
type Ref struct {
	Path   string
	Params map[string]string
	// List is a `secrets PATH` call: a LIST of Path (Params nil).
	List bool
}

// ID returns the key under which main must pass this secret to Update (and
// use as lease Spec.ID): the path for a read, "path?k=v&..." with sorted,
// query-escaped parameters for a write, "list:path" for a list.
func (r Ref) ID() string {
	if r.List {
		return "list:" + r.Path
	}
	if r.Params == nil {
		return r.Path
	}
	v := url.Values{}
	for k, p := range r.Params {
		v.Set(k, p)
	}
	return r.Path + "?" + v.Encode()
}

// pemField is a PEM string of a pki/issue answer ending in a newline, as
// consul-template's pkiCert gives it: Vault trims it, and Vault Agent
// templates concatenate the fields ({{ .Cert }}{{ .CA }}{{ .Key }}).
func pemField(v any) string {
	s, _ := v.(string)
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

// fetchFuncs are the template functions whose literal arguments name what
// leash fetches before the first render.
var fetchFuncs = []string{"secret", "pkiCert", "secrets"}

// TemplateOptions are the settings of one template.
type TemplateOptions struct {
	// Env serves the template's `env` functions; nil means os.Getenv with
	// every VAULT_* and BAO_* variable reading as empty, so leash's own
	// credentials never reach an output.
	Env func(string) string
	// MissingKeyNoValue renders a missing map key (`.Data.nope`) as
	// "<no value>", as consul-template does by default and Vault Agent
	// does with error_on_missing_key = false. The default, false, fails
	// the render instead: a misspelt key in a credential file is better
	// found at start than written out.
	MissingKeyNoValue bool
	// LeftDelim and RightDelim replace the action delimiters "{{" and
	// "}}" (Vault Agent's left_delimiter and right_delimiter, for
	// templates of files that use braces themselves); "" keeps the default.
	LeftDelim, RightDelim string
}

// ParseTemplate parses text as template name with [TemplateOptions]
// {Env: env}; see [ParseTemplateOptions].
func ParseTemplate(name, text string, env func(string) string) (*Template, error) {
	return ParseTemplateOptions(name, text, TemplateOptions{Env: env})
}

// ParseTemplateOptions parses text as template name. Every `secret` call
// must have literal string arguments so that [Template.Refs] can list what
// to fetch before the first render. Parse errors carry the line number
// ("template: NAME:3: ...").
func ParseTemplateOptions(name, text string, o TemplateOptions) (*Template, error) {
	env := o.Env
	if env == nil {
		env = func(k string) string {
			// leash's own credentials are never template input.
			if strings.HasPrefix(k, "VAULT_") || strings.HasPrefix(k, "BAO_") {
				return ""
			}
			return os.Getenv(k)
		}
	}
	funcs := templateFuncs(env)
	funcs["secret"] = func(string, ...string) (*tmplSecret, error) {
		return nil, errors.New("secret: template rendered outside Update")
	}
	funcs["pkiCert"] = func(string, ...string) (*tmplPKI, error) {
		return nil, errors.New("pkiCert: template rendered outside Update")
	}
	funcs["secrets"] = func(string) ([]string, error) {
		return nil, errors.New("secrets: template rendered outside Update")
	}
	missingKey := "missingkey=error"
	if o.MissingKeyNoValue {
		missingKey = "missingkey=zero" // consul-template's setting: a nil any prints "<no value>"
	}
	tmpl, err := template.New(name).Delims(o.LeftDelim, o.RightDelim).Option(missingKey).Funcs(funcs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse %w", err)
	}
	t := &Template{name: name, tmpl: tmpl}
	t.dir, _ = os.Getwd()
	seen := map[string]bool{}
	// Walk every template the text defines, in name order for a stable Refs.
	all := tmpl.Templates()
	sort.Slice(all, func(i, j int) bool {
		if all[i].Name() == name {
			return all[j].Name() != name
		}
		return all[j].Name() != name && all[i].Name() < all[j].Name()
	})
	for _, sub := range all {
		if sub.Tree == nil || sub.Root == nil {
			continue
		}
		if err := walkSecrets(sub.Tree, sub.Root, func(r Ref) {
			if id := r.ID(); !seen[id] {
				seen[id] = true
				t.refs = append(t.refs, r)
			}
		}, func() { t.computed = true }); err != nil {
			return nil, err
		}
		// The top-level dot is nil, as in consul-template; a defined
		// template's dot is whatever its caller passes.
		if err := checkTree(sub.Tree, funcs, sub.Name() == name, o.MissingKeyNoValue); err != nil {
			return nil, err
		}
	}
	if t.computed {
		refs, err := t.discover()
		if err != nil {
			return nil, err
		}
		for _, r := range refs {
			if id := r.ID(); !seen[id] {
				seen[id] = true
				t.refs = append(t.refs, r)
			}
		}
	}
	return t, nil
}

// Calls returns the fetch calls the template makes given secrets (keyed
// by Ref.ID) that are not among them (missing: the paths computed from a
// secret's value, which parsing could not find; main fetches them and
// asks again until nothing new is asked), and the ID of every call it
// made that parsing did not find (computed): what it reads now. A secret
// found before that is in neither is no longer asked for, since the value
// feeding its path changed. Calls of secrets it lacks get nothing back,
// as when parsing; execution errors end the pass with what was found
// (they are the render's to report). A template without computed calls
// returns nothing.
func (t *Template) Calls(secrets map[string]Secret) (missing []Ref, computed []string) {
	if !t.computed {
		return nil, nil
	}
	seen := map[string]bool{}
	var used []Values
	get := func(fn, path string, params []string) (Secret, bool) {
		r, err := parseSecretArgs(fn, path, params)
		if err != nil {
			return Secret{}, false
		}
		id := r.ID()
		s, ok := secrets[id]
		if !seen[id] {
			seen[id] = true
			if !slices.ContainsFunc(t.refs, func(k Ref) bool { return k.ID() == id }) {
				computed = append(computed, id)
			}
			if !ok {
				missing = append(missing, r)
			}
		}
		return s, ok
	}
	var w buffer
	defer w.wipe()
	_ = t.exec(&w, fetchers{
		secret: func(path string, params ...string) (*tmplSecret, error) {
			if s, ok := get("secret", path, params); ok {
				return newTmplSecret(s), nil
			}
			return nil, nil
		},
		pkiCert: func(path string, params ...string) (*tmplPKI, error) {
			if _, ok := get("pkiCert", path, params); ok {
				return &tmplPKI{}, nil // no template computes a path from a certificate
			}
			return nil, nil
		},
		secrets: func(path string) ([]string, error) {
			if s, ok := get("secrets", path, nil); ok {
				keys := stringsOf(s.Raw.m["keys"])
				sort.Strings(keys)
				return keys, nil
			}
			return []string{}, nil
		},
	}, &used)
	return missing, computed
}

// discover finds the paths of fetch calls with computed arguments
// ({{ with secret (printf "kv/data/%s/app" (env "APP_ENV")) }}) as
// consul-template does, by executing the template: each call records its
// path and gets nothing back (nil, or no keys for `secrets`), so a body
// that needs a secret's value is skipped, and an error ends the pass with
// what was found. One pass is enough: nothing read from Vault feeds it,
// so a path computed from a secret's value is not found here, and the
// render names it (see render).
func (t *Template) discover() ([]Ref, error) {
	var refs []Ref
	var bad error
	record := func(fn, path string, params []string) {
		r, err := parseSecretArgs(fn, path, params)
		if err != nil {
			if bad == nil {
				bad = fmt.Errorf("template %s: a computed `%s` call: %w", t.name, fn, err)
			}
			return
		}
		refs = append(refs, r)
	}
	var w buffer
	defer w.wipe()
	var used []Values
	_ = t.exec(&w, fetchers{
		secret: func(path string, params ...string) (*tmplSecret, error) {
			record("secret", path, params)
			return nil, nil
		},
		pkiCert: func(path string, params ...string) (*tmplPKI, error) {
			record("pkiCert", path, params)
			return nil, nil
		},
		secrets: func(path string) ([]string, error) {
			record("secrets", path, nil)
			return []string{}, nil
		},
	}, &used)
	return refs, bad
}

// Name returns the template's name.
func (t *Template) Name() string { return t.name }

// Computed reports whether a fetch call's arguments are not all literals:
// only then can [Template.Calls] find anything.
func (t *Template) Computed() bool { return t.computed }

// Refs returns every distinct `secret` and `pkiCert` call in order of first
// appearance.
// Main turns each into a lease Spec with ID Ref.ID().
func (t *Template) Refs() []Ref {
	out := make([]Ref, len(t.refs))
	for i, r := range t.refs {
		out[i] = Ref{Path: r.Path, Params: cloneParams(r.Params), List: r.List}
	}
	return out
}

func cloneParams(p map[string]string) map[string]string {
	if p == nil {
		return nil
	}
	c := make(map[string]string, len(p))
	for k, v := range p {
		c[k] = v
	}
	return c
}

// walkSecrets finds `secret`, `pkiCert` and `secrets` calls with literal
// arguments in the parse tree, and calls computed for one whose arguments
// are not all string literals (a variable, a pipeline, a piped value):
// [Template.discover] finds those.
func walkSecrets(tree *parse.Tree, n parse.Node, found func(Ref), computed func()) error {
	if n == nil || reflect.ValueOf(n).IsNil() {
		return nil
	}
	switch x := n.(type) {
	case *parse.ListNode:
		for _, c := range x.Nodes {
			if err := walkSecrets(tree, c, found, computed); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		return walkSecrets(tree, x.Pipe, found, computed)
	case *parse.IfNode:
		return walkBranch(tree, &x.BranchNode, found, computed)
	case *parse.RangeNode:
		return walkBranch(tree, &x.BranchNode, found, computed)
	case *parse.WithNode:
		return walkBranch(tree, &x.BranchNode, found, computed)
	case *parse.TemplateNode:
		return walkSecrets(tree, x.Pipe, found, computed)
	case *parse.PipeNode:
		for i, cmd := range x.Cmds {
			if len(cmd.Args) > 0 && fetchIdent(cmd.Args[0]) != "" && i > 0 {
				computed() // a piped path
				for _, a := range cmd.Args[1:] {
					if err := walkSecrets(tree, a, found, computed); err != nil {
						return err
					}
				}
				continue
			}
			if err := walkSecrets(tree, cmd, found, computed); err != nil {
				return err
			}
		}
	case *parse.CommandNode:
		for i, a := range x.Args {
			fn := fetchIdent(a)
			if fn == "" {
				if err := walkSecrets(tree, a, found, computed); err != nil {
					return err
				}
				continue
			}
			if i != 0 {
				computed() // called without arguments inside another call
				continue
			}
			r, err := secretRef(fn, x.Args[1:])
			switch {
			case err == errNonLiteral:
				computed() // the arguments are walked as the loop goes on
			case err != nil:
				return fmt.Errorf("template: %s: %w", location(tree, x), err)
			default:
				found(r)
			}
		}
	case *parse.ChainNode:
		return walkSecrets(tree, x.Node, found, computed)
	}
	return nil
}

func walkBranch(tree *parse.Tree, b *parse.BranchNode, found func(Ref), computed func()) error {
	for _, n := range []parse.Node{b.Pipe, b.List, b.ElseList} {
		if err := walkSecrets(tree, n, found, computed); err != nil {
			return err
		}
	}
	return nil
}

// fetchIdent returns the name of the fetch function n names, or "".
func fetchIdent(n parse.Node) string {
	if id, ok := n.(*parse.IdentifierNode); ok && slices.Contains(fetchFuncs, id.Ident) {
		return id.Ident
	}
	return ""
}

func location(tree *parse.Tree, n parse.Node) string {
	loc, _ := tree.ErrorContext(n)
	return loc
}

var errNonLiteral = errors.New("non-literal")

// secretRef turns the literal arguments of a call of fn (`secret` or
// `pkiCert`) into a Ref, parsing "k=v" parameters like consul-template
// (trimmed, empty skipped).
func secretRef(fn string, args []parse.Node) (Ref, error) {
	if len(args) == 0 {
		return Ref{}, fmt.Errorf("`%s` needs a path", fn)
	}
	strs := make([]string, len(args))
	for i, a := range args {
		s, ok := a.(*parse.StringNode)
		if !ok {
			return Ref{}, errNonLiteral
		}
		strs[i] = s.Text
	}
	return parseSecretArgs(fn, strs[0], strs[1:])
}

func parseSecretArgs(fn, path string, params []string) (Ref, error) {
	path = strings.Trim(strings.TrimSpace(path), "/")
	if err := ValidatePath(path); err != nil {
		return Ref{}, fmt.Errorf("`%s` %w", fn, err)
	}
	r := Ref{Path: path}
	if fn == "secrets" {
		if len(params) > 0 {
			return Ref{}, errors.New("`secrets` takes one path")
		}
		r.List = true
		return r, nil
	}
	for _, p := range params {
		if p == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return Ref{}, fmt.Errorf("`%s` parameter %q is not k=v", fn, p)
		}
		if r.Params == nil {
			r.Params = map[string]string{}
		}
		r.Params[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if fn == "pkiCert" && r.Params == nil {
		// Without parameters the path would be read, not written: a
		// certificate is issued by a write naming at least common_name.
		return Ref{}, errors.New("`pkiCert` needs parameters (\"common_name=...\")")
	}
	return r, nil
}

// fetchers serve a template's `secret`, `pkiCert` and `secrets` calls.
type fetchers struct {
	secret  func(path string, params ...string) (*tmplSecret, error)
	pkiCert func(path string, params ...string) (*tmplPKI, error)
	secrets func(path string) ([]string, error)
}

// render executes the template into w. secrets is keyed by Ref.ID().
func (t *Template) render(w *buffer, secrets map[string]Secret) error {
	var used []Values
	lookup := func(fn, path string, params []string) (Secret, error) {
		r, err := parseSecretArgs(fn, path, params)
		if err != nil {
			return Secret{}, err
		}
		s, ok := secrets[r.ID()]
		if !ok {
			if t.computed && !slices.ContainsFunc(t.refs, func(k Ref) bool { return k.ID() == r.ID() }) {
				return Secret{}, fmt.Errorf("secret %q was not fetched: its path is computed from what Vault returned, and fetching it failed or has not happened yet", r.ID())
			}
			return Secret{}, fmt.Errorf("secret %q was not fetched", r.ID())
		}
		used = append(used, s.Raw, s.Data, s.Response)
		return s, nil
	}
	err := t.exec(w, fetchers{
		// consul-template's `secrets`: the keys under PATH, sorted; a
		// folder ends in "/".
		secrets: func(path string) ([]string, error) {
			s, err := lookup("secrets", path, nil)
			if err != nil {
				return nil, err
			}
			keys := stringsOf(s.Raw.m["keys"])
			sort.Strings(keys)
			return keys, nil
		},
		secret: func(path string, params ...string) (*tmplSecret, error) {
			s, err := lookup("secret", path, params)
			if err != nil {
				return nil, err
			}
			return newTmplSecret(s), nil
		},
		pkiCert: func(path string, params ...string) (*tmplPKI, error) {
			s, err := lookup("pkiCert", path, params)
			if err != nil {
				return nil, err
			}
			p := &tmplPKI{Cert: pemField(s.Raw.m["certificate"]), Key: pemField(s.Raw.m["private_key"]), CA: pemField(s.Raw.m["issuing_ca"])}
			chain, _ := s.Raw.m["ca_chain"].([]any)
			for _, c := range chain {
				if c := pemField(c); c != "" {
					p.CAChain = append(p.CAChain, c)
				}
			}
			return p, nil
		},
	}, &used)
	if err != nil {
		return redactError(err, used)
	}
	return nil
}

// exec executes a clone of the template into w with f serving the fetch
// calls; file contents read are added to used, for redaction.
func (t *Template) exec(w *buffer, f fetchers, used *[]Values) error {
	c, err := t.tmpl.Clone()
	if err != nil {
		return fmt.Errorf("template %s: %w", t.name, err)
	}
	var scratch Scratch
	c.Funcs(template.FuncMap{
		"scratch": func() *Scratch { return &scratch },
		"executeTemplate": func(name string, data ...any) (string, error) {
			var dot any
			switch len(data) {
			case 0:
			case 1:
				dot = data[0]
			default:
				return "", fmt.Errorf("executeTemplate: wrong number of arguments, expected 1 or 2, but got %d", len(data)+1)
			}
			var b buffer
			defer b.wipe()
			if err := c.ExecuteTemplate(&b, name, dot); err != nil {
				return "", err
			}
			return string(b.b), nil
		},
		// Read at every render; an empty path reads as "", as in
		// consul-template. The contents count as secret for errors.
		"file": func(path string) (string, error) {
			if path == "" {
				return "", nil
			}
			p := path
			if t.dir != "" && !filepath.IsAbs(p) {
				p = filepath.Join(t.dir, p)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				var pe *fs.PathError
				if errors.As(err, &pe) {
					return "", fmt.Errorf("file %s: %w", path, pe.Err)
				}
				return "", fmt.Errorf("file %s: cannot read it", path)
			}
			*used = append(*used, Values{m: map[string]any{"file": string(b)}})
			return string(b), nil
		},
		"secrets": f.secrets,
		"secret":  f.secret,
		"pkiCert": f.pkiCert,
	})
	return c.Execute(w, nil)
}

// valuePrinters are text/template error phrases followed by a value
// printed with %v; what follows them is cut from the message.
var valuePrinters = []string{
	"range can't iterate over ",
	"if/with can't use ",
	"to iterate over more than one variable",
	"iterate over more than one variable",
	"non-comparable type",
	"range over send-only channel ",
}

// redactError rebuilds a template execution error so that it cannot carry
// secret bytes: phrases known to print values are cut, and any secret
// string of four bytes or more that still appears is replaced. The result
// does not wrap err, whose message may hold the value.
func redactError(err error, used []Values) error {
	msg := err.Error()
	for _, p := range valuePrinters {
		if i := strings.Index(msg, p); i >= 0 {
			msg = msg[:i] + strings.TrimSpace(p) + " " + redacted
			break
		}
	}
	var leaves []string
	for _, v := range used {
		collectStrings(v.m, &leaves)
	}
	// Also as Go and JSON quote them (time.Parse, strconv, sprig's
	// errors print %q), and longest first, so a secret containing
	// another is replaced whole.
	for _, l := range leaves {
		if q := strconv.Quote(l); q[1:len(q)-1] != l {
			leaves = append(leaves, q[1:len(q)-1])
		}
		if q := strconv.QuoteToASCII(l); q[1:len(q)-1] != l {
			leaves = append(leaves, q[1:len(q)-1])
		}
		if j, err := json.Marshal(l); err == nil && string(j[1:len(j)-1]) != l {
			leaves = append(leaves, string(j[1:len(j)-1]))
		}
	}
	slices.SortFunc(leaves, func(a, b string) int { return len(b) - len(a) })
	for _, s := range leaves {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, redacted)
		}
	}
	return &TemplateError{msg: msg}
}

func collectStrings(v any, out *[]string) {
	switch x := v.(type) {
	case string:
		*out = append(*out, x)
	case map[string]any:
		for _, e := range x {
			collectStrings(e, out)
		}
	case []any:
		for _, e := range x {
			collectStrings(e, out)
		}
	case []string:
		*out = append(*out, x...)
	case map[string]string:
		for _, e := range x {
			*out = append(*out, e)
		}
	}
}

// TemplateError is a template execution failure (a missing key, a wrong
// type, a secret that was not fetched). Its message names the template,
// line and column, and never holds secret bytes.
type TemplateError struct{ msg string }

// Error returns the redacted message.
func (e *TemplateError) Error() string { return e.msg }

// templateFuncs returns the consul-template functions leash supports, with
// consul-template's argument order (the piped value last) and output.
func templateFuncs(env func(string) string) template.FuncMap {
	m := template.FuncMap{
		"env":          env,
		"toJSON":       toJSON,
		"toJSONPretty": toJSONPretty,
		"base64Encode": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"base64Decode": func(s string) (string, error) {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return "", fmt.Errorf("base64Decode: %w", err) // CorruptInputError holds only an offset
			}
			return string(b), nil
		},
		"base64URLEncode": func(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) },
		"base64URLDecode": func(s string) (string, error) {
			b, err := base64.URLEncoding.DecodeString(s)
			if err != nil {
				return "", fmt.Errorf("base64URLDecode: %w", err)
			}
			return string(b), nil
		},
		// env cannot tell unset from empty, so an empty variable gets the
		// default (consul-template would give the empty value).
		"envOrDefault": func(name, def string) string {
			if v := env(name); v != "" {
				return v
			}
			return def
		},
		"trimSpace":  strings.TrimSpace,
		"trim":       func(cutset, s string) string { return strings.Trim(s, cutset) },
		"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"toLower":    strings.ToLower,
		"toUpper":    strings.ToUpper,
		"join":       join,
		"split":      split,
		"replaceAll": func(from, to, s string) string { return strings.ReplaceAll(s, from, to) },
		"contains":   contains,
		"indent":     indent,
		"sha256Hex": func(s string) string {
			sum := sha256.Sum256([]byte(s))
			return hex.EncodeToString(sum[:])
		},
		"parseJSON":       parseJSON,
		"parseBool":       parseBool,
		"parseInt":        parseInt,
		"regexMatch":      regexMatch,
		"regexReplaceAll": regexReplaceAll,
	}
	moreFuncs(m, env)
	return m
}

// The parse and regex functions below are consul-template's, with errors
// that never quote their input: it may be a secret, and the standard
// library's messages quote it (strconv) or show a byte of it (encoding/json,
// regexp).

// parseJSON decodes S as consul-template does (numbers become float64,
// so {{ if .n }} is false for 0); an empty S is an empty object.
func parseJSON(s string) (any, error) {
	if s == "" {
		return map[string]any{}, nil
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("parseJSON: invalid JSON at byte %d", se.Offset)
		}
		return nil, errors.New("parseJSON: invalid JSON")
	}
	return v, nil
}

// parseBool: an empty S is false.
func parseBool(s string) (bool, error) {
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, errors.New("parseBool: not a boolean")
	}
	return b, nil
}

// parseInt: base 10, an empty S is 0.
func parseInt(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errors.New("parseInt: not a base-10 integer in range")
	}
	return n, nil
}

func compileRegex(fn, expr string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%s: invalid pattern: %s", fn, se.Code)
		}
		return nil, fmt.Errorf("%s: invalid pattern", fn)
	}
	return re, nil
}

// regexMatch is `regexMatch RE S`.
func regexMatch(expr, s string) (bool, error) {
	re, err := compileRegex("regexMatch", expr)
	if err != nil {
		return false, err
	}
	return re.MatchString(s), nil
}

// regexReplaceAll is `regexReplaceAll RE REPL S`, REPL expanding $1 etc.
func regexReplaceAll(expr, repl, s string) (string, error) {
	re, err := compileRegex("regexReplaceAll", expr)
	if err != nil {
		return "", err
	}
	return re.ReplaceAllString(s, repl), nil
}

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("toJSON: %T cannot be encoded", v)
	}
	return string(bytes.TrimSpace(b)), nil
}

func toJSONPretty(v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", fmt.Errorf("toJSONPretty: %T cannot be encoded", v)
	}
	return string(bytes.TrimSpace(b)), nil
}

// join is consul-template's `join SEP LIST`; besides []string it accepts
// the []any lists Vault returns, whose elements are written like a field.
func join(sep string, list any) (string, error) {
	switch l := list.(type) {
	case []string:
		return strings.Join(l, sep), nil
	case []any:
		var w buffer
		defer w.wipe()
		for i, e := range l {
			if i > 0 {
				w.WriteString(sep)
			}
			if err := appendField(&w, e); err != nil {
				return "", fmt.Errorf("join: element %d: %w", i, err)
			}
		}
		return string(w.b), nil
	}
	return "", fmt.Errorf("join: cannot join a %T", list)
}

// split is consul-template's `split SEP S`: S is trimmed, and empty S
// gives an empty list.
func split(sep, s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return []string{}
	}
	return strings.Split(s, sep)
}

// contains is consul-template's `contains V LIST`, `in` the other way
// round, for pipes: {{ if .Data.tags | contains "prod" }}.
func contains(v, list any) (bool, error) { return in(list, v) }

// indent is consul-template's `indent N S`: N spaces before every
// non-empty line.
func indent(spaces int, s string) (string, error) {
	if spaces < 0 {
		return "", errors.New("indent value must be a positive integer")
	}
	prefix := strings.Repeat(" ", spaces)
	var b strings.Builder
	atStart := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if atStart && c != '\n' {
			b.WriteString(prefix)
		}
		b.WriteByte(c)
		atStart = c == '\n'
	}
	return b.String(), nil
}
