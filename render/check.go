package render

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
)

// checkTree refuses, at parse time, what executing the tree would always
// refuse whatever the secrets hold, so that `leash validate` (which only
// parses) catches it: a field the secret or pkiCert object does not have
// ({{ .LeaseId }}, {{ .data.x }}), a field of the empty top-level dot
// (unless missing keys print <no value>), and a function given the wrong
// number of arguments. Types are followed through with, variables, pipes
// and parenthesised calls as far as the functions' Go types tell them;
// anything else (map values, range elements, the dot of a defined
// template) is unknown and not checked, since only the data decides.
func checkTree(tree *parse.Tree, funcs template.FuncMap, topDot bool, noValue bool) error {
	c := &checker{tree: tree, funcs: funcs, noValue: noValue}
	top := ctype{}
	if topDot {
		top.nilDot = true
	}
	return c.list(tree.Root, scope{dot: top, vars: []cvar{{"$", top}}})
}

// ctype is what the checker knows of a value: a Go type, nothing (t nil),
// or the top-level dot, which is nil.
type ctype struct {
	t      reflect.Type
	nilDot bool
}

type cvar struct {
	name string
	t    ctype
}

type scope struct {
	dot  ctype
	vars []cvar
}

func (s scope) with(dot ctype, decl []*parse.VariableNode, t ctype) scope {
	n := scope{dot: dot, vars: slices.Clone(s.vars)}
	return n.declare(decl, t)
}

func (s scope) declare(decl []*parse.VariableNode, t ctype) scope {
	for i, d := range decl {
		vt := t
		if len(decl) > 1 || i > 0 {
			vt = ctype{} // range's key and element
		}
		s.vars = append(s.vars, cvar{d.Ident[0], vt})
	}
	return s
}

func (s scope) lookup(name string) ctype {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			return s.vars[i].t
		}
	}
	return ctype{}
}

type checker struct {
	tree    *parse.Tree
	funcs   template.FuncMap
	noValue bool
}

func (c *checker) errorf(n parse.Node, format string, args ...any) error {
	return fmt.Errorf("template: %s: %s", location(c.tree, n), fmt.Sprintf(format, args...))
}

func (c *checker) list(l *parse.ListNode, s scope) error {
	if l == nil {
		return nil
	}
	s.vars = slices.Clone(s.vars)
	for _, n := range l.Nodes {
		switch x := n.(type) {
		case *parse.ActionNode:
			t, err := c.pipe(x.Pipe, s)
			if err != nil {
				return err
			}
			if x.Pipe.IsAssign {
				// $x = ...: the variable may hold anything from here on.
				for _, d := range x.Pipe.Decl {
					s.vars = append(s.vars, cvar{d.Ident[0], ctype{}})
				}
			} else {
				s = s.declare(x.Pipe.Decl, t)
			}
		case *parse.IfNode:
			if err := c.branch(&x.BranchNode, s, false); err != nil {
				return err
			}
		case *parse.WithNode:
			if err := c.branch(&x.BranchNode, s, true); err != nil {
				return err
			}
		case *parse.RangeNode:
			if _, err := c.pipe(x.Pipe, s); err != nil {
				return err
			}
			if err := c.list(x.List, s.with(ctype{}, x.Pipe.Decl, ctype{})); err != nil {
				return err
			}
			if err := c.list(x.ElseList, s); err != nil {
				return err
			}
		case *parse.TemplateNode:
			if x.Pipe != nil {
				if _, err := c.pipe(x.Pipe, s); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// branch checks an if or with; with sets the dot of its first list.
func (c *checker) branch(b *parse.BranchNode, s scope, with bool) error {
	t, err := c.pipe(b.Pipe, s)
	if err != nil {
		return err
	}
	dot := s.dot
	if with {
		dot = t
	}
	if b.Pipe.IsAssign {
		t = ctype{}
	}
	if err := c.list(b.List, s.with(dot, b.Pipe.Decl, t)); err != nil {
		return err
	}
	return c.list(b.ElseList, s.with(s.dot, b.Pipe.Decl, t))
}

func (c *checker) pipe(p *parse.PipeNode, s scope) (ctype, error) {
	var t ctype
	if p == nil {
		return t, nil
	}
	for i, cmd := range p.Cmds {
		var err error
		if t, err = c.command(cmd, s, i > 0); err != nil {
			return ctype{}, err
		}
	}
	return t, nil
}

func (c *checker) command(cmd *parse.CommandNode, s scope, piped bool) (ctype, error) {
	for _, a := range cmd.Args[1:] {
		if _, err := c.arg(a, s); err != nil {
			return ctype{}, err
		}
	}
	if id, ok := cmd.Args[0].(*parse.IdentifierNode); ok {
		if why, ok := refusedFuncs[id.Ident]; ok {
			return ctype{}, c.errorf(cmd, "leash does not support %s: %s", id.Ident, why)
		}
		fn, ok := c.funcs[id.Ident]
		if !ok {
			return ctype{}, nil // a builtin: and, index, printf, ...
		}
		ft := reflect.TypeOf(fn)
		n := len(cmd.Args) - 1
		if piped {
			n++
		}
		if ft.IsVariadic() && n < ft.NumIn()-1 {
			return ctype{}, c.errorf(cmd, "wrong number of args for %s: want at least %d got %d", id.Ident, ft.NumIn()-1, n)
		}
		if !ft.IsVariadic() && n != ft.NumIn() {
			return ctype{}, c.errorf(cmd, "wrong number of args for %s: want %d got %d", id.Ident, ft.NumIn(), n)
		}
		return known(ft.Out(0)), nil
	}
	return c.arg(cmd.Args[0], s)
}

// known is t, or nothing for an interface: only the data says what is in it.
func known(t reflect.Type) ctype {
	if t.Kind() == reflect.Interface {
		return ctype{}
	}
	return ctype{t: t}
}

func (c *checker) arg(n parse.Node, s scope) (ctype, error) {
	switch x := n.(type) {
	case *parse.DotNode:
		return s.dot, nil
	case *parse.IdentifierNode: // a function called without arguments
		return c.command(&parse.CommandNode{NodeType: parse.NodeCommand, Pos: x.Pos, Args: []parse.Node{x}}, s, false)
	case *parse.FieldNode:
		return c.fields(x, s.dot, x.Ident)
	case *parse.VariableNode:
		return c.fields(x, s.lookup(x.Ident[0]), x.Ident[1:])
	case *parse.ChainNode:
		t, err := c.arg(x.Node, s)
		if err != nil {
			return ctype{}, err
		}
		return c.fields(x, t, x.Field)
	case *parse.PipeNode:
		return c.pipe(x, s)
	}
	return ctype{}, nil
}

// objectNames are how errors name the values templates get.
var objectNames = map[reflect.Type]string{
	reflect.TypeFor[tmplSecret]():         "the secret object",
	reflect.TypeFor[tmplSecretAuth]():     "the secret's .Auth",
	reflect.TypeFor[tmplSecretWrapInfo](): "the secret's .WrapInfo",
	reflect.TypeFor[tmplPKI]():            "the pkiCert object",
}

// fields follows a chain of field names from t.
func (c *checker) fields(n parse.Node, t ctype, names []string) (ctype, error) {
	for _, f := range names {
		if t.nilDot {
			if c.noValue {
				continue // nil data prints <no value>, and so on down
			}
			return ctype{}, c.errorf(n, "%s: the dot is empty here (outside {{ with secret ... }} there is no data), so .%s has no value; a missing key fails unless the output allows it (--allow-missing-key)", n, f)
		}
		if t.t == nil {
			return ctype{}, nil
		}
		typ := t.t
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if m, ok := reflect.PointerTo(typ).MethodByName(f); ok {
			if m.Type.NumIn() != 1 || m.Type.NumOut() == 0 {
				return ctype{}, nil
			}
			t = known(m.Type.Out(0))
			continue
		}
		switch typ.Kind() {
		case reflect.Struct:
			sf, ok := typ.FieldByName(f)
			if !ok || !sf.IsExported() {
				return ctype{}, c.errorf(n, "%s: %s has no field %s (it has %s)", n, objectName(typ), f, strings.Join(fieldNames(typ), ", "))
			}
			t = known(sf.Type)
		case reflect.Map:
			if typ.Key().Kind() != reflect.String {
				return ctype{}, nil
			}
			t = known(typ.Elem()) // whether the key is there, only the data says
		case reflect.Interface:
			return ctype{}, nil
		default:
			return ctype{}, c.errorf(n, "%s: can't evaluate field %s in type %s", n, f, typ)
		}
	}
	return t, nil
}

func objectName(t reflect.Type) string {
	if n, ok := objectNames[t]; ok {
		return n
	}
	return t.String()
}

// fieldNames lists what a template can name on t: exported fields and
// methods without arguments.
func fieldNames(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() {
			out = append(out, "."+f.Name)
		}
	}
	pt := reflect.PointerTo(t)
	for i := range pt.NumMethod() {
		if m := pt.Method(i); m.Type.NumIn() == 1 {
			out = append(out, "."+m.Name)
		}
	}
	return out
}
