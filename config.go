package main

import (
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
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
type hclConfig struct {
	filename string
	attrs    map[string]*hcl.Attribute
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
	return parseHCLConfig(name, src)
}

func parseHCLConfig(name string, src []byte) (*hclConfig, error) {
	file, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, &configError{diagError(diags)}
	}
	body := file.Body.(*hclsyntax.Body)
	if len(body.Blocks) > 0 {
		b := body.Blocks[0]
		return nil, configErrorf("%s: blocks are not supported (found %q); write keys as attributes, e.g. secret = [\"db=database/creds/app\"]", b.TypeRange.String(), b.Type)
	}
	attrs, diags := body.JustAttributes()
	if diags.HasErrors() {
		return nil, &configError{diagError(diags)}
	}
	return &hclConfig{filename: name, attrs: attrs}, nil
}

// diagError turns HCL diagnostics into one error that names file:line.
func diagError(diags hcl.Diagnostics) error {
	var msgs []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		if d.Subject != nil {
			msg = d.Subject.String() + ": " + msg
		}
		msgs = append(msgs, msg)
	}
	return errors.New(strings.Join(msgs, "; "))
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
	for key, a := range c.attrs {
		if key == "config" {
			return configErrorf("%s: config files cannot include other config files", a.NameRange.String())
		}
		if !known[key] {
			return configErrorf("%s: unknown key %q (keys are the long flag names with _ for -; see leash run --help)", a.NameRange.String(), key)
		}
	}
	return nil
}

// Resolve returns the file's value for flag, or nil when the file does not
// set it or its environment variable is set (the environment wins).
func (c *hclConfig) Resolve(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
	a, ok := c.attrs[flagKey(flag.Name)]
	if !ok {
		return nil, nil
	}
	for _, env := range flag.Envs {
		if _, set := os.LookupEnv(env); set {
			return nil, nil
		}
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return nil, &configError{diagError(diags)}
	}
	out, err := ctyToGo(v)
	if err != nil {
		return nil, configErrorf("%s: %s: %v", a.Range.String(), a.Name, err)
	}
	return out, nil
}

// ctyToGo converts the value shapes flags accept: strings, numbers, bools
// and lists of those.
func ctyToGo(v cty.Value) (any, error) {
	if v.IsNull() || !v.IsKnown() {
		return nil, errors.New("value must be set")
	}
	t := v.Type()
	switch {
	case t == cty.String:
		return v.AsString(), nil
	case t == cty.Bool:
		return v.True(), nil
	case t == cty.Number:
		bf := v.AsBigFloat()
		if bf.IsInt() {
			i, _ := bf.Int(new(big.Int))
			return i.String(), nil
		}
		return bf.Text('g', -1), nil
	case t.IsListType() || t.IsTupleType() || t.IsSetType():
		var out []any
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			e, err := ctyToGo(ev)
			if err != nil {
				return nil, err
			}
			if _, nested := e.([]any); nested {
				return nil, errors.New("nested lists are not allowed")
			}
			out = append(out, e)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported value type %s (use a string, number, bool or list)", t.FriendlyName())
}
