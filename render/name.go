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
