package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/hashicorp/hcl/hcl/ast"
	"github.com/hashicorp/hcl/hcl/parser"
	"github.com/hashicorp/hcl/hcl/scanner"
	hclstrconv "github.com/hashicorp/hcl/hcl/strconv"
	"github.com/hashicorp/hcl/hcl/token"
)

// configError is a problem in the config file or in what flags ask for
// (a template that does not parse, an output name that is not allowed). It
// maps to exit code 78 (EX_CONFIG).
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

func configErrorf(format string, args ...any) error {
	return &configError{fmt.Errorf(format, args...)}
}

// hclConfig is a kong.Resolver backed by an HCL file whose top-level
// attributes are the long flag names with "-" written as "_":
//
//	auth      = "approle"
//	secret    = ["db=database/creds/app"]
//	on_rotate = "signal"
//
// Precedence: a flag on the command line wins, then its LEASH_* environment
// variable, then the file, then the default.
//
// The file is parsed with HCL 1 (github.com/hashicorp/hcl), which vault/api
// already links: flat attributes need no expression language, and HCL 2
// with go-cty added 1.8 MB to the binary, 2.4 MB to its RSS and 3 ms to
// every start (issue 9).
type hclConfig struct {
	filename string
	attrs    []hclAttr // in file order, names unique
}

// hclAttr is one top-level attribute: its name, where it is, its value.
type hclAttr struct {
	name string
	pos  token.Pos
	val  ast.Node
	// from, when set, is where the attribute came from, for messages
	// instead of pos: the Vault Agent stanza a converted key was made
	// from ("exec (agent.hcl:5:1)"), a place in a file the user has.
	from string
}

// place names where a is, for messages.
func (c *hclConfig) place(a hclAttr) string {
	if a.from != "" {
		return a.from
	}
	return posString(c.filename, a.pos)
}

// loadHCLConfig is the kong.ConfigurationLoader for --config.
func loadHCLConfig(r io.Reader) (kong.Resolver, error) {
	name := "config"
	if f, ok := r.(*os.File); ok {
		name = f.Name()
	}
	src, err := io.ReadAll(r)
	if err != nil {
		return nil, configErrorf("read config %s: %w", name, err)
	}
	if isAgentConfig(src) {
		// A Vault Agent config given to -c is run as --agent-config would.
		ac, err := parseAgentConfig(name, src)
		if err != nil {
			return nil, err
		}
		return ac.native()
	}
	return parseHCLConfig(name, src)
}

func parseHCLConfig(name string, src []byte) (*hclConfig, error) {
	src = bytes.TrimPrefix(src, []byte("\uFEFF")) // editors on Windows write a BOM
	// Duplicates are reported below, by name and with both lines.
	file, err := parser.ParseDontErrorOnDuplicateKeys(src)
	if err != nil {
		var pe *parser.PosError
		if errors.As(err, &pe) {
			msg := pe.Err.Error()
			if strings.HasPrefix(msg, "Unknown token: ") {
				// "Unknown token: 1:8 IDENT upper": the place is named already.
				f := strings.Fields(msg)
				msg = fmt.Sprintf("unexpected %s (values are strings, numbers, bools or lists of those; no functions or variables)", f[len(f)-1])
			}
			return nil, configErrorf("%s: %s", posString(name, pe.Pos), msg)
		}
		return nil, configErrorf("%s: %v", name, err)
	}
	if p, ok := danglingAssign(src); ok {
		// HCL 1 drops a last "key =" without a value silently.
		return nil, configErrorf("%s: missing value after =", posString(name, p))
	}
	list, ok := file.Node.(*ast.ObjectList)
	if !ok {
		return nil, configErrorf("%s: not a list of attributes", name)
	}
	c := &hclConfig{filename: name}
	seen := map[string]int{} // name -> line
	for _, item := range list.Items {
		if len(item.Keys) == 0 {
			continue
		}
		k := item.Keys[0]
		key, err := keyName(k.Token)
		if err != nil {
			return nil, configErrorf("%s: %v", posString(name, k.Pos()), err)
		}
		_, object := item.Val.(*ast.ObjectType)
		if len(item.Keys) > 1 || object {
			return nil, configErrorf("%s: blocks and objects are not supported (found %q); write keys as attributes, e.g. secret = [\"db=database/creds/app\"]", posString(name, k.Pos()), key)
		}
		if line, dup := seen[key]; dup {
			return nil, configErrorf("%s: %q is set twice (first at line %d)", posString(name, k.Pos()), key, line)
		}
		seen[key] = k.Pos().Line
		c.attrs = append(c.attrs, hclAttr{name: key, pos: k.Pos(), val: item.Val})
	}
	return c, nil
}

// danglingAssign reports an "=" that is the last token of the file.
func danglingAssign(src []byte) (token.Pos, bool) {
	sc := scanner.New(src)
	sc.Error = func(token.Pos, string) {} // the parser has reported these
	var last token.Token
	for t := sc.Scan(); t.Type != token.EOF && t.Type != token.ILLEGAL; t = sc.Scan() {
		if t.Type != token.COMMENT {
			last = t
		}
	}
	return last.Pos, last.Type == token.ASSIGN
}

// posString is file:line:column, the way compilers and editors name a place.
func posString(file string, p token.Pos) string {
	if !p.IsValid() {
		return file
	}
	return fmt.Sprintf("%s:%d:%d", file, p.Line, p.Column)
}

// keyName is an attribute name as written, quoted or not.
func keyName(t token.Token) (string, error) {
	if t.Type == token.STRING {
		return hclstrconv.Unquote(t.Text)
	}
	return t.Text, nil
}

func flagKey(name string) string { return strings.ReplaceAll(name, "-", "_") }

// Validate rejects keys that are not flags of the selected command, naming
// the file and line.
func (c *hclConfig) Validate(app *kong.Application) error {
	known := map[string]bool{}
	var visit func(n *kong.Node)
	visit = func(n *kong.Node) {
		for _, f := range n.Flags {
			known[flagKey(f.Name)] = true
		}
		for _, ch := range n.Children {
			visit(ch)
		}
	}
	visit(app.Node)
	for _, a := range c.attrs {
		if a.name == "config" || a.name == "agent_config" {
			return configErrorf("%s: config files cannot include other config files", c.place(a))
		}
		if !known[a.name] {
			return configErrorf("%s: unknown key %q (keys are the long flag names with _ for -; see leash run --help)", c.place(a), a.name)
		}
	}
	return nil
}

// Resolve returns the file's value for flag, or nil when the file does not
// set it or its environment variable is set (the environment wins).
func (c *hclConfig) Resolve(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
	i := slices.IndexFunc(c.attrs, func(a hclAttr) bool { return a.name == flagKey(flag.Name) })
	if i < 0 {
		return nil, nil
	}
	a := c.attrs[i]
	for _, env := range flag.Envs {
		if _, set := os.LookupEnv(env); set {
			return nil, nil
		}
	}
	out, err := hclValue(a.val, true)
	if err == nil {
		err = checkFileValue(flag, out)
	}
	if err != nil {
		return nil, configErrorf("%s: %s: %v", c.place(a), a.name, err)
	}
	return out, nil
}

// checkFileValue decodes v as kong will and applies the checks settings
// makes of the flag's value, so that a bad value in the file is reported
// here, where its file and line are known (exit 78), rather than by kong
// or settings as if it were a bad flag on the command line (exit 64).
func checkFileValue(flag *kong.Flag, v any) error {
	target := reflect.New(flag.Target.Type()).Elem()
	scan := kong.Scan().PushTyped(v, kong.FlagValueToken)
	if err := flag.Mapper.Decode(&kong.DecodeContext{Value: flag.Value, Scan: scan}, target); err != nil {
		if l, ok := v.([]any); ok && target.Kind() == reflect.Slice {
			// kong's own message for this is JSON's ("cannot unmarshal").
			for _, e := range l {
				if _, ok := e.(string); !ok {
					return fmt.Errorf("want a list of strings, got %v", e)
				}
			}
		}
		return err
	}
	if enum := flag.EnumSlice(); flag.Enum != "" && target.Kind() == reflect.String && !slices.Contains(enum, target.String()) {
		quoted := make([]string, len(enum))
		for i, e := range enum {
			quoted[i] = strconv.Quote(e)
		}
		return fmt.Errorf("must be one of %s, not %q", strings.Join(quoted, ", "), target.String())
	}
	if check := valueChecks[flag.Name]; check != nil {
		return check(target.Interface())
	}
	return nil
}

// hclValue converts the value shapes flags accept: strings, numbers (as
// written, for kong to parse), bools and lists of those.
func hclValue(n ast.Node, top bool) (any, error) {
	switch v := n.(type) {
	case *ast.LiteralType:
		return literalValue(v.Token)
	case *ast.ListType:
		if !top {
			return nil, errors.New("nested lists are not allowed")
		}
		out := make([]any, 0, len(v.List))
		for _, e := range v.List {
			ev, err := hclValue(e, false)
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
		}
		return out, nil
	case *ast.ObjectType:
		return nil, errors.New("objects are not supported (use a string, number, bool or list)")
	}
	return nil, fmt.Errorf("unsupported value %T (use a string, number, bool or list)", n)
}

func literalValue(t token.Token) (v any, err error) {
	switch t.Type {
	case token.STRING:
		return hclstrconv.Unquote(t.Text)
	case token.NUMBER, token.FLOAT:
		return t.Text, nil
	case token.BOOL:
		return t.Text == "true", nil
	case token.HEREDOC:
		// The parser checked the heredoc's shape; Value only cuts it. Its
		// panics are turned into an error all the same: a config file must
		// never crash leash.
		defer func() {
			if recover() != nil {
				v, err = nil, errors.New("malformed heredoc")
			}
		}()
		return t.Value(), nil
	}
	return nil, fmt.Errorf("unsupported value %s (use a string, number, bool or list)", t.Text)
}
