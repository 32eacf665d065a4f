package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/leash-dev/leash/lease"
	"github.com/leash-dev/leash/render"
)

// plan is what the flags and config ask for, checked and resolved, before
// anything is started.
type plan struct {
	specs    []lease.Spec    // unique Vault reads/writes, by canonical ID
	outputs  []render.Output // in flag order: -s first, then -t
	pointers []pointer       // --env VAR=NAME
	setEnv   []string        // --set-env VAR=VALUE, plain values for the child
}

type pointer struct{ Var, Output string }

// parseSecretFlag parses NAME=PATH[?k=v&k2=v2][#FIELD].
func parseSecretFlag(s string) (render.Output, render.Ref, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || rest == "" {
		return render.Output{}, render.Ref{}, fmt.Errorf("--secret %q: want NAME=PATH, NAME=PATH#FIELD or NAME=PATH?k=v", s)
	}
	if err := render.ValidateName(name); err != nil {
		return render.Output{}, render.Ref{}, fmt.Errorf("--secret %q: %w", s, err)
	}
	rest, field, hasField := strings.Cut(rest, "#")
	if hasField && field == "" {
		return render.Output{}, render.Ref{}, fmt.Errorf("--secret %q: empty FIELD after #", s)
	}
	path, query, hasQuery := strings.Cut(rest, "?")
	path = strings.Trim(path, "/")
	if err := render.ValidatePath(path); err != nil {
		return render.Output{}, render.Ref{}, fmt.Errorf("--secret %q: bad Vault path: %w", s, err)
	}
	if strings.ContainsAny(path, " ") {
		// A space is Vault's to take, but here more likely a slip.
		return render.Output{}, render.Ref{}, fmt.Errorf("--secret %q: bad Vault path %q: a space", s, path)
	}
	ref := render.Ref{Path: path}
	if hasQuery {
		values, err := url.ParseQuery(query)
		if err != nil {
			return render.Output{}, render.Ref{}, fmt.Errorf("--secret %q: parameters: %w", s, err)
		}
		ref.Params = make(map[string]string, len(values))
		for k, v := range values {
			if k == "" {
				return render.Output{}, render.Ref{}, fmt.Errorf("--secret %q: empty parameter name", s)
			}
			if len(v) > 1 {
				return render.Output{}, render.Ref{}, fmt.Errorf("--secret %q: parameter %q given %d times (use a comma-separated value)", s, k, len(v))
			}
			ref.Params[k] = v[0]
		}
	}
	out := render.Output{Name: name, Kind: render.JSON, Secret: ref.ID()}
	switch {
	case hasField:
		out.Kind, out.Field = render.Field, field
	case strings.HasSuffix(name, ".env"):
		out.Kind = render.Dotenv
	}
	return out, ref, nil
}

// buildPlan checks every output, template and pointer. Errors are config
// errors naming the flag or file.
func (o *Options) buildPlan(env func(string) string) (*plan, error) {
	p := &plan{}
	refs := map[string]render.Ref{}
	fed := map[string][]string{} // Ref.ID -> the outputs it feeds, in flag order
	names := map[string]string{} // output -> the flag that defined it first
	var from []string            // by output: the flag that defined it
	addOutput := func(out render.Output, flag string) error {
		if _, dup := names[out.Name]; !dup {
			names[out.Name] = flag
		}
		p.outputs = append(p.outputs, out)
		from = append(from, flag)
		return nil
	}
	for _, s := range o.Secrets {
		out, ref, err := parseSecretFlag(s)
		if err != nil {
			return nil, &configError{err}
		}
		refs[ref.ID()] = ref
		fed[ref.ID()] = append(fed[ref.ID()], out.Name)
		if err := addOutput(out, "--secret "+s); err != nil {
			return nil, err
		}
	}
	noValue := map[string]bool{}
	for _, n := range o.AllowMissingKey {
		noValue[n] = true
	}
	delims, err := parseNamed("--template-delims", o.TemplateDelims)
	if err != nil {
		return nil, err
	}
	addTemplate := func(name, tname, text, from string) error {
		opts := render.TemplateOptions{Env: env, MissingKeyNoValue: noValue[name]}
		if d, ok := delims[name]; ok {
			l, r, ok := strings.Cut(d, " ")
			if !ok || l == "" || r == "" || strings.Contains(r, " ") {
				return configErrorf("--template-delims %s=%s: want NAME=LEFT RIGHT, e.g. %s=[[ ]]", name, d, name)
			}
			opts.LeftDelim, opts.RightDelim = l, r
		}
		tmpl, err := render.ParseTemplateOptions(tname, text, opts)
		if err != nil {
			return &configError{err}
		}
		for _, ref := range tmpl.Refs() {
			refs[ref.ID()] = ref
			if ids := fed[ref.ID()]; len(ids) == 0 || ids[len(ids)-1] != name {
				fed[ref.ID()] = append(ids, name) // once, however often it reads it
			}
		}
		return addOutput(render.Output{Name: name, Kind: render.TemplateKind, Template: tmpl}, from)
	}
	for _, t := range o.Templates {
		name, file, ok := strings.Cut(t, "=")
		if !ok || name == "" || file == "" {
			return nil, configErrorf("--template %q: want NAME=FILE", t)
		}
		if err := render.ValidateName(name); err != nil {
			return nil, configErrorf("--template %q: %w", t, err)
		}
		text, err := os.ReadFile(file)
		if err != nil {
			return nil, configErrorf("--template %q: %w", t, err)
		}
		if err := addTemplate(name, file, string(text), "--template "+t); err != nil {
			return nil, err
		}
	}
	for _, t := range o.TemplateTexts {
		name, text, ok := strings.Cut(t, "=")
		if !ok || name == "" {
			return nil, configErrorf("--template-text %.40q: want NAME=TEXT", t)
		}
		if err := render.ValidateName(name); err != nil {
			return nil, configErrorf("--template-text %s=...: %w", name, err)
		}
		if err := addTemplate(name, name, text, "--template-text "+name+"=..."); err != nil {
			return nil, err
		}
	}
	for name := range delims {
		if from, ok := names[name]; !ok || !strings.HasPrefix(from, "--template") {
			return nil, configErrorf("--template-delims %s=...: no template output named %q", name, name)
		}
	}
	if err := o.outputFiles(p, names); err != nil {
		return nil, err
	}
	if err := checkOutputs(p.outputs, from); err != nil {
		return nil, err
	}
	for _, kv := range o.SetEnv {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(k, "\x00") {
			return nil, configErrorf("--set-env %q: want VAR=VALUE", kv)
		}
		p.setEnv = append(p.setEnv, kv)
	}
	for _, n := range o.AllowMissingKey {
		from, ok := names[n]
		switch {
		case !ok:
			return nil, configErrorf("--allow-missing-key %q: no output named %q (define it with --template)", n, n)
		case !strings.HasPrefix(from, "--template"):
			return nil, configErrorf("--allow-missing-key %q: output %q is not a template (it is %s)", n, n, from)
		}
	}
	seen := map[string]string{} // variable -> the --env that set it
	for _, e := range o.Env {
		v, name, ok := strings.Cut(e, "=")
		if !ok || v == "" || name == "" || strings.ContainsAny(v, "=\x00") {
			return nil, configErrorf("--env %q: want VAR=NAME", e)
		}
		// The child sees one value per variable: a second pointer would
		// silently win over the first.
		if prev, ok := seen[v]; ok {
			return nil, configErrorf("--env %q: %s is already set by --env %q", e, v, prev)
		}
		seen[v] = e
		if v == "CREDENTIALS_DIRECTORY" {
			return nil, configErrorf("--env %q: CREDENTIALS_DIRECTORY is leash's own pointer to the private directory (--delivery dir)", e)
		}
		if _, ok := names[name]; !ok {
			return nil, configErrorf("--env %q: no output named %q (define it with --secret or --template)", e, name)
		}
		for out := range names {
			if render.EnvName(out) == v {
				return nil, configErrorf("--env %q: %s is already the pointer leash sets for output %q", e, v, out)
			}
		}
		p.pointers = append(p.pointers, pointer{Var: v, Output: name})
	}
	ids := make([]string, 0, len(refs))
	for id := range refs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		p.specs = append(p.specs, lease.Spec{ID: id, Path: refs[id].Path, Params: refs[id].Params, List: refs[id].List, Outputs: fed[id]})
	}
	return p, nil
}

// checkOutputs has render check the outputs (render.Check: the one owner
// of what outputs may be) and names the flags of a conflicting pair.
func checkOutputs(outputs []render.Output, from []string) error {
	err := render.Check(outputs)
	var ce *render.ConflictError
	if !errors.As(err, &ce) {
		if err != nil {
			return &configError{err}
		}
		return nil
	}
	a, b := outputs[ce.I], outputs[ce.J]
	if ce.Path {
		return configErrorf("--output-path %s=%s and --output-path %s=%s: %w", a.Name, a.Path, b.Name, b.Path, err)
	}
	return configErrorf("%s and %s: %w", from[ce.I], from[ce.J], err)
}

// parseRotateBefore reads "30s" or "25%". It returns a duration or a
// fraction; both zero means the default.
func parseRotateBefore(s string) (dur int64, frac float64, err error) {
	if s == "" {
		return 0, 0, nil
	}
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(pct, 64)
		if err != nil || f <= 0 || f >= 100 {
			return 0, 0, fmt.Errorf("%q: a percentage must be between 0 and 100, exclusive", s)
		}
		return 0, f / 100, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, 0, fmt.Errorf("%q: want a positive duration (30s) or a percentage (25%%)", s)
	}
	return int64(d), 0, nil
}

// lookupUser resolves USER[:GROUP] (names or ids) the way gosu does: the
// user's primary group and supplementary groups unless GROUP is given.
func lookupUser(spec string) (*syscall.Credential, error) {
	if spec == "" {
		return nil, nil
	}
	uname, gname, hasGroup := strings.Cut(spec, ":")
	cred := &syscall.Credential{}
	u, err := user.Lookup(uname)
	if err != nil {
		if _, numErr := strconv.ParseUint(uname, 10, 32); numErr != nil {
			return nil, fmt.Errorf("%q: %w", spec, err)
		}
		u, err = user.LookupId(uname)
		if err != nil {
			// A numeric uid with no passwd entry is valid (containers).
			id, _ := strconv.ParseUint(uname, 10, 32)
			cred.Uid, cred.Gid = uint32(id), uint32(id)
			u = nil
		}
	}
	if u != nil {
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred.Uid, cred.Gid = uint32(uid), uint32(gid)
		if !hasGroup {
			if gids, err := u.GroupIds(); err == nil {
				for _, g := range gids {
					if n, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(n) != cred.Gid {
						cred.Groups = append(cred.Groups, uint32(n))
					}
				}
			}
		}
	}
	if hasGroup {
		if gname == "" {
			return nil, fmt.Errorf("%q: empty GROUP after ':'", spec)
		}
		if n, err := strconv.ParseUint(gname, 10, 32); err == nil {
			cred.Gid = uint32(n)
		} else {
			g, err := user.LookupGroup(gname)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", spec, err)
			}
			n, _ := strconv.ParseUint(g.Gid, 10, 32)
			cred.Gid = uint32(n)
		}
		cred.Groups = []uint32{}
	}
	if cred.Groups == nil {
		cred.Groups = []uint32{}
	}
	return cred, nil
}

// parseNamed reads NAME=VALUE flags into a map; a NAME given twice is an
// error.
func parseNamed(flag string, list []string) (map[string]string, error) {
	m := make(map[string]string, len(list))
	for _, kv := range list {
		name, v, ok := strings.Cut(kv, "=")
		if !ok || name == "" || v == "" {
			return nil, configErrorf("%s %q: want NAME=VALUE", flag, kv)
		}
		if _, dup := m[name]; dup {
			return nil, configErrorf("%s %q: %s is given twice", flag, kv, name)
		}
		m[name] = v
	}
	return m, nil
}

// outputFiles applies --output-path and --output-mode to the plan's
// outputs; names maps the defined outputs to the flag that made them.
func (o *Options) outputFiles(p *plan, names map[string]string) error {
	paths, err := parseNamed("--output-path", o.OutputPaths)
	if err != nil {
		return err
	}
	modes, err := parseNamed("--output-mode", o.OutputModes)
	if err != nil {
		return err
	}
	for name := range paths {
		if _, ok := names[name]; !ok {
			return configErrorf("--output-path %s=...: no output named %q", name, name)
		}
	}
	for name, m := range modes {
		if _, ok := paths[name]; !ok {
			return configErrorf("--output-mode %s=%s: output %q has no --output-path", name, m, name)
		}
	}
	for i, out := range p.outputs {
		path, ok := paths[out.Name]
		if !ok {
			continue
		}
		if !filepath.IsAbs(path) || filepath.Clean(path) != path {
			return configErrorf("--output-path %s=%s: want an absolute, clean path", out.Name, path)
		}
		out.Path = path
		if m, ok := modes[out.Name]; ok {
			n, err := strconv.ParseUint(m, 8, 32)
			if err != nil || n > 0o777 || n == 0 {
				return configErrorf("--output-mode %s=%s: want an octal mode from 0001 to 0777, e.g. 0440", out.Name, m)
			}
			out.Mode = os.FileMode(n)
		}
		p.outputs[i] = out
	}
	return nil
}
