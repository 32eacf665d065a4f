package render

import (
	"errors"
	"fmt"
	"strings"
)

// maxNameLen keeps "leash:"+NAME within memfd_create's 249-byte name limit
// and NAME well within NAME_MAX.
const maxNameLen = 200

// ValidateName reports whether name can name an output: one or more
// letters, digits, '.', '_' or '-', at most 200 bytes, not "." and not
// containing "..". Names become file names, memfd names and environment
// variable names, so nothing else is allowed.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("output name is empty")
	case len(name) > maxNameLen:
		return fmt.Errorf("output name %.20q...: longer than %d bytes", name, maxNameLen)
	case name == ".":
		return fmt.Errorf("output name %q is not a file name", name)
	case strings.Contains(name, ".."):
		return fmt.Errorf("output name %q: must not contain %q", name, "..")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("output name %q: character %q not allowed (use letters, digits, '.', '_', '-')", name, c)
		}
	}
	return nil
}

// EnvName returns the pointer variable for an output: NAME upper-cased with
// '.' and '-' turned into '_', plus "_FILE" ("db.json" -> "DB_JSON_FILE").
func EnvName(name string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return strings.ToUpper(r.Replace(name)) + "_FILE"
}

// ValidatePath reports whether path (without leading or trailing '/') can
// be sent to Vault as written: no "." or ".." segment, which vault/api
// resolves (path.Join) so that Vault serves another path than the one
// written, reviewed and shown in the status and audit trail
// ("secret/../sys/mounts" reads sys/mounts); no empty segment; no control
// character. A '%' is sent literally, never decoded.
func ValidatePath(path string) error {
	if path == "" {
		return errors.New("path is empty")
	}
	for _, seg := range strings.Split(path, "/") {
		switch seg {
		case "":
			return fmt.Errorf("path %q: empty segment (\"//\")", path)
		case ".", "..":
			return fmt.Errorf("path %q: %q segment (Vault would be asked for another path than written)", path, seg)
		}
	}
	for _, r := range path {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("path %q: control character %q", path, r)
		}
	}
	return nil
}

// Check validates outputs as New does, without preparing their delivery:
// each name (ValidateName), the fields its kind needs, and that no two
// outputs share a name, a pointer variable (EnvName: "a.b" and "a-b" both
// make A_B_FILE) or a Path; such a pair is a *ConflictError. It is the one
// check of outputs: main calls it to name the flags at fault before
// anything runs (leash validate too), New to guard its own input.
func Check(outputs []Output) error {
	names := map[string]int{}
	envs := map[string]int{}
	paths := map[string]int{}
	for i, o := range outputs {
		if err := ValidateName(o.Name); err != nil {
			return err
		}
		if j, ok := names[o.Name]; ok {
			return &ConflictError{I: j, J: i, msg: fmt.Sprintf("output %q is defined twice", o.Name)}
		}
		names[o.Name] = i
		e := EnvName(o.Name)
		if j, ok := envs[e]; ok {
			return &ConflictError{I: j, J: i, msg: fmt.Sprintf("outputs %q and %q both use variable %s", outputs[j].Name, o.Name, e)}
		}
		envs[e] = i
		switch o.Kind {
		case JSON, Dotenv:
			if o.Secret == "" {
				return fmt.Errorf("output %q: no secret", o.Name)
			}
		case Field:
			if o.Secret == "" || o.Field == "" {
				return fmt.Errorf("output %q: field output needs a secret and a field", o.Name)
			}
		case TemplateKind:
			if o.Template == nil {
				return fmt.Errorf("output %q: no template", o.Name)
			}
		default:
			return fmt.Errorf("output %q: unknown kind %d", o.Name, o.Kind)
		}
		if o.Path != "" {
			if j, ok := paths[o.Path]; ok {
				return &ConflictError{I: j, J: i, Path: true, msg: fmt.Sprintf("outputs %q and %q are both written at %s", outputs[j].Name, o.Name, o.Path)}
			}
			paths[o.Path] = i
		} else if o.Mode != 0 {
			return fmt.Errorf("output %q: a mode needs a path", o.Name)
		}
	}
	return nil
}

// ConflictError reports two outputs that cannot both be delivered: the
// same name, pointer variable or Path. I and J (I < J) index the outputs
// given to Check or New, so that the caller can name where each came from.
type ConflictError struct {
	I, J int
	Path bool // the two share an Output.Path (else a name or a variable)
	msg  string
}

func (e *ConflictError) Error() string { return e.msg }
