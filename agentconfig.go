package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/hashicorp/hcl/hcl/ast"
	"github.com/hashicorp/hcl/hcl/parser"
	"github.com/hashicorp/hcl/hcl/token"
	"github.com/leash-dev/leash/render"
)

// A Vault Agent config (issue 19) is translated into leash's native
// settings: the same flag keys a native config file sets, so that
// --agent-config, -c with an agent file and the output of `leash convert`
// all reach Options through one resolver and behave the same. The
// translation is a pure function of the file; what depends on flags (sinks
// without --ignore-sinks) is checked in settings, where the file is read
// again for its line numbers.

// agentConfig is a translated Vault Agent config.
type agentConfig struct {
	file  string
	notes []string     // one per stanza: where it was and what changed
	attrs []nativeAttr // native keys, in the order they are written
	// sinks are the positions of the auto_auth sink stanzas, refused
	// unless --ignore-sinks.
	sinks []string
	// notices are logged at start-up: what the app must do differently.
	notices []string
	// paths are the template destinations, by output name, with the
	// position of their stanza, for the tmpfs check's error.
	paths map[string]string
}

// nativeAttr is one native config key. val is a string, a bool or a list.
type nativeAttr struct {
	key  string
	val  any // string, bool, []listElem
	from string
}

// listElem is one element of a list key, with the stanza it came from.
type listElem struct{ val, from string }

// agentStanzas are the top-level blocks that make a file a Vault Agent
// config for -c; a native config has no blocks at all.
var agentStanzas = []string{"vault", "auto_auth", "template", "env_template", "exec", "template_config",
	"cache", "listener", "api_proxy", "telemetry"}

// vaultKeys maps the keys of Vault Agent's vault {} stanza (and of --vault)
// to the variables leash reads Vault's connection settings from.
var vaultKeys = map[string]string{
	"address": "ADDR", "ca_cert": "CACERT", "ca_path": "CAPATH", "client_cert": "CLIENT_CERT",
	"client_key": "CLIENT_KEY", "tls_server_name": "TLS_SERVER_NAME", "tls_skip_verify": "SKIP_VERIFY",
	"namespace": "NAMESPACE",
}

// vaultAgentKillTimeout is how long Vault Agent's process supervisor lets
// a child stop before SIGKILL (fixed in Vault 1.21, command/agent/exec).
const vaultAgentKillTimeout = 30 * time.Second

// isAgentConfig reports whether src looks like a Vault Agent config: a
// top-level block named like one of its stanzas.
func isAgentConfig(src []byte) bool {
	src = bytes.TrimPrefix(src, []byte("\uFEFF"))
	if _, ok := jsonStart(src); ok {
		var top map[string]json.RawMessage
		if json.Unmarshal(src, &top) != nil {
			return false
		}
		for k, v := range top {
			if v = bytes.TrimSpace(v); len(v) > 0 && (v[0] == '{' || v[0] == '[') && slices.Contains(agentStanzas, k) {
				return true
			}
		}
		return false
	}
	file, err := parser.ParseDontErrorOnDuplicateKeys(src)
	if err != nil {
		return false
	}
	list, ok := file.Node.(*ast.ObjectList)
	if !ok {
		return false
	}
	for _, item := range list.Items {
		if len(item.Keys) == 0 {
			continue
		}
		k, _ := keyName(item.Keys[0].Token)
		_, obj := item.Val.(*ast.ObjectType)
		if (obj || len(item.Keys) > 1) && slices.Contains(agentStanzas, k) {
			return true
		}
	}
	return false
}

// jsonStart returns the offset of src's first byte when it is the '{'
// a JSON config starts with (Vault Agent reads JSON too).
func jsonStart(src []byte) (int, bool) {
	i := len(src) - len(bytes.TrimLeft(src, " \t\r\n"))
	return i, i < len(src) && src[i] == '{'
}

// agentParser walks one file.
type agentParser struct {
	c     *agentConfig
	names map[string]bool // output names taken
	// vault settings, with the stanza that set each
	vault     map[string]string
	vaultFrom map[string]string
	hasExec   bool
	templates int
}

func (p *agentParser) pos(n ast.Node) string { return posString(p.c.file, n.Pos()) }

func (p *agentParser) errf(n ast.Node, format string, args ...any) error {
	return configErrorf("%s: %s", p.pos(n), fmt.Sprintf(format, args...))
}

func (p *agentParser) set(key string, val any, from string) {
	for i, a := range p.c.attrs {
		if a.key == key {
			p.c.attrs[i] = nativeAttr{key, val, from}
			return
		}
	}
	p.c.attrs = append(p.c.attrs, nativeAttr{key, val, from})
}

func (p *agentParser) add(key, val, from string) {
	for i, a := range p.c.attrs {
		if a.key == key {
			p.c.attrs[i].val = append(a.val.([]listElem), listElem{val, from})
			return
		}
	}
	p.c.attrs = append(p.c.attrs, nativeAttr{key, []listElem{{val, from}}, ""})
}

func (p *agentParser) note(from, format string, args ...any) {
	p.c.notes = append(p.c.notes, from+": "+fmt.Sprintf(format, args...))
}

// parseAgentConfig translates a Vault Agent config. Errors are config
// errors naming the file, line and column.
func parseAgentConfig(name string, src []byte) (*agentConfig, error) {
	src = bytes.TrimPrefix(src, []byte("\uFEFF"))
	if i, ok := jsonStart(src); ok {
		// HCL 1's JSON parser keeps no positions, and errors here name
		// lines, so JSON is refused rather than translated blindly.
		pos := token.Pos{Line: bytes.Count(src[:i], []byte("\n")) + 1, Column: i - bytes.LastIndexByte(src[:i], '\n')}
		return nil, configErrorf("%s: a Vault Agent config in JSON: leash reads the HCL form only; write it as HCL, with the same keys (\"vault\": {\"address\": ...} is vault { address = ... }, a list of template objects is one template { } stanza each)", posString(name, pos))
	}
	file, err := parser.Parse(src)
	if err != nil {
		var pe *parser.PosError
		if errors.As(err, &pe) {
			return nil, configErrorf("%s: %v", posString(name, pe.Pos), pe.Err)
		}
		return nil, configErrorf("%s: %v", name, err)
	}
	list, ok := file.Node.(*ast.ObjectList)
	if !ok {
		return nil, configErrorf("%s: not a Vault Agent config", name)
	}
	p := &agentParser{c: &agentConfig{file: name, paths: map[string]string{}}, names: map[string]bool{},
		vault: map[string]string{}, vaultFrom: map[string]string{}}
	seen := map[string]string{}
	for _, item := range list.Items {
		key, err := keyName(item.Keys[0].Token)
		if err != nil {
			return nil, p.errf(item, "%v", err)
		}
		switch key {
		case "vault", "auto_auth", "exec", "template_config":
			if prev, dup := seen[key]; dup {
				return nil, p.errf(item, "a second %s stanza (the first is at %s); Vault Agent allows one", key, prev)
			}
			seen[key] = p.pos(item)
		}
		switch key {
		case "vault":
			err = p.vaultStanza(item)
		case "auto_auth":
			err = p.autoAuth(item)
		case "template":
			err = p.template(item, "")
		case "env_template":
			err = p.envTemplate(item)
		case "exec":
			err = p.exec(item)
		case "template_config":
			err = p.templateConfig(item)
		case "cache", "listener", "api_proxy":
			err = p.errf(item, "%s stanza: leash has no proxy, cache or listener; the app gets its secrets from leash directly (run a Vault Proxy for the app's own Vault requests)", key)
		case "telemetry":
			err = p.errf(item, "telemetry stanza: leash has no telemetry settings; its metrics are on --status-addr /metrics")
		case "exit_after_auth":
			// false, Vault Agent's default, is what leash does; examples
			// often spell it out.
			var b bool
			if b, err = p.boolean(item, key); err == nil {
				if b {
					err = p.errf(item, "exit_after_auth = true: leash runs the app and stays with it; it does not render once and exit (run the app under leash instead of an init step)")
				} else {
					p.note("exit_after_auth ("+p.pos(item)+")", "false is what leash does: it stays until the app exits")
				}
			}
		default:
			err = p.errf(item, "%s: not something leash can take over from a Vault Agent config (it understands vault, auto_auth, template, env_template, exec and template_config)", key)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(p.vault) > 0 {
		var elems []listElem
		for _, k := range slices.Sorted(maps.Keys(p.vault)) {
			elems = append(elems, listElem{k + "=" + p.vault[k], p.vaultFrom[k]})
		}
		p.c.attrs = append([]nativeAttr{{key: "vault", val: elems}}, p.c.attrs...)
	}
	if !p.hasExec && p.templates > 0 {
		p.set("on_rotate", "none", "template (no exec)")
		p.note("template (no exec)", `on_rotate = "none": as with Vault Agent, a new credential rewrites the files and the app is not told (old leases are revoked at once after the rewrite); set on_rotate = "signal" or "restart" to tell it`)
	}
	return p.c, nil
}

// body returns a stanza's attributes; a stanza must be a block.
func (p *agentParser) body(item *ast.ObjectItem, what string) (*ast.ObjectList, error) {
	obj, ok := item.Val.(*ast.ObjectType)
	if !ok {
		return nil, p.errf(item, "%s must be a block { ... }", what)
	}
	return obj.List, nil
}

// attrs iterates a block's attributes by name.
func (p *agentParser) each(list *ast.ObjectList, fn func(key string, item *ast.ObjectItem) error) error {
	for _, item := range list.Items {
		key, err := keyName(item.Keys[0].Token)
		if err != nil {
			return p.errf(item, "%v", err)
		}
		if err := fn(key, item); err != nil {
			return err
		}
	}
	return nil
}

func (p *agentParser) str(item *ast.ObjectItem, key string) (string, error) {
	lit, ok := item.Val.(*ast.LiteralType)
	if !ok {
		return "", p.errf(item, "%s: want a string", key)
	}
	v, err := literalValue(lit.Token)
	if err != nil {
		return "", p.errf(item, "%s: %v", key, err)
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return fmt.Sprint(v), nil
}

func (p *agentParser) boolean(item *ast.ObjectItem, key string) (bool, error) {
	s, err := p.str(item, key)
	if err != nil {
		return false, err
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, p.errf(item, "%s: want true or false, not %q", key, s)
	}
	return b, nil
}

// duration reads "5m" or a number of seconds, as Vault's ParseDurationSecond.
func (p *agentParser) duration(item *ast.ObjectItem, key string) (time.Duration, error) {
	s, err := p.str(item, key)
	if err != nil {
		return 0, err
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, p.errf(item, "%s: want a duration (30s, 5m) or seconds, not %q", key, s)
	}
	return d, nil
}

// strList reads a list of strings, or a string split at commas (Vault
// Agent's mapstructure hook does the same).
func (p *agentParser) strList(item *ast.ObjectItem, key string) ([]string, error) {
	if l, ok := item.Val.(*ast.ListType); ok {
		out := make([]string, 0, len(l.List))
		for _, e := range l.List {
			lit, ok := e.(*ast.LiteralType)
			if !ok {
				return nil, p.errf(item, "%s: want a list of strings", key)
			}
			v, err := literalValue(lit.Token)
			if err != nil {
				return nil, p.errf(item, "%s: %v", key, err)
			}
			out = append(out, fmt.Sprint(v))
		}
		return out, nil
	}
	s, err := p.str(item, key)
	if err != nil {
		return nil, err
	}
	return strings.Split(s, ","), nil
}

func (p *agentParser) setVault(key, val, from string, item *ast.ObjectItem) error {
	if key == "namespace" {
		val = strings.Trim(val, "/") // as Vault canonicalises it
	}
	if prev, ok := p.vault[key]; ok && prev != val {
		return p.errf(item, "%s %q differs from %q set by %s; leash uses one value for the login and every read", key, val, prev, p.vaultFrom[key])
	}
	p.vault[key], p.vaultFrom[key] = val, from
	return nil
}

func (p *agentParser) vaultStanza(item *ast.ObjectItem) error {
	from := "vault (" + p.pos(item) + ")"
	list, err := p.body(item, "vault")
	if err != nil {
		return err
	}
	var set []string
	err = p.each(list, func(key string, it *ast.ObjectItem) error {
		if key == "retry" {
			p.note(from, "retry {} dropped: leash retries with its own backoff (1-10 s, until --startup-timeout at start, until the credential expires later)")
			return nil
		}
		if _, ok := vaultKeys[key]; !ok {
			return p.errf(it, "vault: unknown key %q (leash takes %s)", key, strings.Join(slices.Sorted(maps.Keys(vaultKeys)), ", "))
		}
		v, err := p.str(it, key)
		if err != nil {
			return err
		}
		if key == "tls_skip_verify" {
			b, err := p.boolean(it, key)
			if err != nil {
				return err
			}
			v = strconv.FormatBool(b)
		}
		set = append(set, key)
		return p.setVault(key, v, from, it)
	})
	if err != nil {
		return err
	}
	p.note(from, "vault = [...] with %s; as in Vault Agent, a VAULT_* variable set in the environment wins", strings.Join(set, ", "))
	return nil
}

func (p *agentParser) autoAuth(item *ast.ObjectItem) error {
	list, err := p.body(item, "auto_auth")
	if err != nil {
		return err
	}
	methods := 0
	return p.each(list, func(key string, it *ast.ObjectItem) error {
		switch key {
		case "method":
			methods++
			if methods > 1 {
				return p.errf(it, "a second auto_auth method; Vault Agent and leash use one")
			}
			return p.method(it)
		case "sink":
			p.c.sinks = append(p.c.sinks, p.pos(it))
			p.note("auto_auth sink ("+p.pos(it)+")", "dropped: leash keeps its token in memory only and writes it nowhere")
			return nil
		case "enable_reauth_on_new_credentials":
			p.note("auto_auth ("+p.pos(it)+")", "enable_reauth_on_new_credentials dropped: leash reads the credential files again at every login")
			return nil
		}
		return p.errf(it, "auto_auth: unknown key %q", key)
	})
}

// methodTypes are the auto_auth methods leash takes over.
var methodTypes = []string{"approle", "kubernetes", "jwt", "cert", "token_file"}

func (p *agentParser) method(item *ast.ObjectItem) error {
	list, err := p.body(item, "method")
	if err != nil {
		return err
	}
	typ := ""
	if len(item.Keys) > 1 {
		typ, _ = keyName(item.Keys[1].Token)
	}
	if t := list.Filter("type"); len(t.Items) > 0 {
		if typ, err = p.str(t.Items[0], "type"); err != nil {
			return err
		}
	}
	typ = strings.ToLower(typ)
	from := fmt.Sprintf("auto_auth method %q (%s)", typ, p.pos(item))
	if !slices.Contains(methodTypes, typ) {
		return p.errf(item, "auto_auth method %q: leash takes over %s (for aws, gcp and azure use leash's own --auth flags)", typ, strings.Join(methodTypes, ", "))
	}
	auth := typ
	if typ == "token_file" {
		auth = "token"
	}
	p.set("auth", auth, from)
	var changes []string
	var config *ast.ObjectItem
	err = p.each(list, func(key string, it *ast.ObjectItem) error {
		switch key {
		case "type":
		case "config":
			config = it
		case "mount_path":
			v, err := p.str(it, key)
			if err != nil {
				return err
			}
			mount := strings.Trim(strings.TrimPrefix(strings.Trim(v, "/"), "auth/"), "/")
			if mount != typ {
				p.set("auth_mount", mount, from)
			}
		case "namespace":
			v, err := p.str(it, key)
			if err != nil {
				return err
			}
			changes = append(changes, "namespace is leash's one namespace, for the login and every read")
			return p.setVault("namespace", v, from, it)
		case "wrap_ttl":
			changes = append(changes, "wrap_ttl dropped (it wraps the token a sink writes; leash writes none)")
		case "min_backoff", "max_backoff", "exit_on_err":
			changes = append(changes, key+" dropped (leash retries 1-10 s apart, and gives up at start after --startup-timeout)")
		default:
			return p.errf(it, "auto_auth method: unknown key %q", key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if config == nil && typ != "cert" {
		return p.errf(item, "auto_auth method %q: no config {} block", typ)
	}
	if config != nil {
		c, err := p.body(config, "method config")
		if err != nil {
			return err
		}
		if err := p.methodConfig(typ, c, from, &changes); err != nil {
			return err
		}
	}
	if typ == "approle" {
		c, _ := p.body(config, "method config")
		if len(c.Filter("remove_secret_id_file_after_reading").Items) == 0 {
			p.set("remove_secret_id_file", true, from)
			changes = append(changes, "the secret_id file is removed after reading, Vault Agent's default")
		}
	}
	what := "auth = " + strconv.Quote(auth)
	if len(changes) > 0 {
		what += "; " + strings.Join(changes, "; ")
	}
	p.note(from, "%s", what)
	return nil
}

func (p *agentParser) methodConfig(typ string, c *ast.ObjectList, from string, changes *[]string) error {
	strKey := func(key, native string) func(*ast.ObjectItem) error {
		return func(it *ast.ObjectItem) error {
			v, err := p.str(it, key)
			if err != nil {
				return err
			}
			p.set(native, v, from)
			return nil
		}
	}
	dropped := func(why string) func(*ast.ObjectItem) error {
		return func(it *ast.ObjectItem) error {
			k, _ := keyName(it.Keys[0].Token)
			*changes = append(*changes, k+" dropped: "+why)
			return nil
		}
	}
	vaultKey := func(key string) func(*ast.ObjectItem) error {
		return func(it *ast.ObjectItem) error {
			v, err := p.str(it, key)
			if err != nil {
				return err
			}
			return p.setVault(key, v, from, it)
		}
	}
	keys := map[string]func(*ast.ObjectItem) error{}
	switch typ {
	case "approle":
		keys["role_id_file_path"] = strKey("role_id_file_path", "role_id_file")
		keys["secret_id_file_path"] = strKey("secret_id_file_path", "secret_id_file")
		keys["remove_secret_id_file_after_reading"] = func(it *ast.ObjectItem) error {
			b, err := p.boolean(it, "remove_secret_id_file_after_reading")
			if err != nil {
				return err
			}
			p.set("remove_secret_id_file", b, from)
			return nil
		}
		keys["secret_id_response_wrapping_path"] = func(it *ast.ObjectItem) error {
			v, err := p.str(it, "secret_id_response_wrapping_path")
			if err != nil {
				return err
			}
			// "" would turn the check off; Vault Agent refuses it too.
			if v == "" {
				return p.errf(it, "secret_id_response_wrapping_path: empty")
			}
			if strings.HasPrefix(v, "/") || strings.HasSuffix(v, "/") {
				return p.errf(it, "secret_id_response_wrapping_path %q: Vault's creation_path never starts or ends with \"/\", so Vault Agent would refuse every wrapping token; write %q", v, strings.Trim(v, "/"))
			}
			p.set("secret_id_wrap_path", v, from)
			return nil
		}
	case "kubernetes":
		keys["role"] = strKey("role", "auth_role")
		keys["token_path"] = strKey("token_path", "jwt_file")
	case "jwt":
		keys["role"] = strKey("role", "auth_role")
		keys["path"] = strKey("path", "jwt_file")
		keys["remove_jwt_after_reading"] = dropped("leash never removes the JWT file; it reads it again at every login")
		keys["remove_jwt_follows_symlinks"] = dropped("leash never removes the JWT file")
		keys["jwt_read_period"] = dropped("leash reads the JWT at every login")
	case "cert":
		keys["name"] = strKey("name", "auth_role")
		keys["ca_cert"] = vaultKey("ca_cert")
		keys["client_cert"] = vaultKey("client_cert")
		keys["client_key"] = vaultKey("client_key")
		keys["reload"] = dropped("leash reads the client certificate again at every TLS handshake")
	case "token_file":
		keys["token_file_path"] = strKey("token_file_path", "token_file")
	}
	err := p.each(c, func(key string, it *ast.ObjectItem) error {
		fn, ok := keys[key]
		if !ok {
			return p.errf(it, "auto_auth method %q config: unknown key %q (leash takes %s)", typ, key, strings.Join(slices.Sorted(maps.Keys(keys)), ", "))
		}
		return fn(it)
	})
	if err != nil {
		return err
	}
	if typ == "jwt" && len(c.Filter("remove_jwt_after_reading").Items) == 0 {
		*changes = append(*changes, "the JWT file is not removed (Vault Agent removes it by default); leash reads it again at every login")
	}
	return nil
}

// outputName derives an output name from a template destination: its base
// name with disallowed bytes as '_', unique.
func (p *agentParser) outputName(dest string) string {
	base := filepath.Base(dest)
	b := []byte(base)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	name := strings.ReplaceAll(string(b), "..", "_")
	if render.ValidateName(name) != nil {
		name = "template"
	}
	for n, try := 2, name; ; n++ {
		if !p.names[try] {
			p.names[try] = true
			return try
		}
		try = fmt.Sprintf("%s-%d", name, n)
	}
}

// template translates a template stanza; env is the variable of an
// env_template stanza, "" for a template.
func (p *agentParser) template(item *ast.ObjectItem, env string) error {
	kind := "template"
	if env != "" {
		kind = fmt.Sprintf("env_template %q", env)
	}
	from := kind + " (" + p.pos(item) + ")"
	list, err := p.body(item, kind)
	if err != nil {
		return err
	}
	var (
		contents, source, dest *ast.ObjectItem
		text, file, destPath   string
		left, right            string
		perms                  os.FileMode
		allowMissing           bool
		changes                []string
	)
	err = p.each(list, func(key string, it *ast.ObjectItem) error {
		var err error
		switch key {
		case "contents":
			contents = it
			text, err = p.str(it, key)
		case "source":
			source = it
			file, err = p.str(it, key)
		case "destination":
			if env != "" {
				return p.errf(it, "%s: destination is not allowed (Vault Agent refuses it too)", kind)
			}
			dest = it
			if destPath, err = p.str(it, key); err == nil && (!filepath.IsAbs(destPath) || filepath.Clean(destPath) != destPath) {
				// Vault Agent takes it against its working directory;
				// convert's output must not depend on where it runs.
				return p.errf(it, "%s: destination %q: leash needs an absolute path, without . or .. (Vault Agent reads a relative one against its working directory)", kind, destPath)
			}
		case "error_on_missing_key":
			var b bool
			if b, err = p.boolean(it, key); err == nil {
				allowMissing = !b
			}
		case "left_delimiter":
			left, err = p.str(it, key)
		case "right_delimiter":
			right, err = p.str(it, key)
		case "perms":
			if env != "" {
				return p.errf(it, "%s: perms is not allowed (Vault Agent refuses it too)", kind)
			}
			var s string
			if s, err = p.str(it, key); err == nil {
				var m uint64
				m, err = strconv.ParseUint(s, 8, 32)
				if err != nil || m > 0o777 {
					return p.errf(it, "perms: want an octal mode such as 0400, not %q", s)
				}
				perms = os.FileMode(m)
			}
		case "command", "exec", "command_timeout":
			return p.errf(it, "%s: %s: leash runs no command when a template renders; it restarts or signals its one child instead (exec {} or the command after --, with on_rotate)", kind, key)
		case "create_dest_dirs":
			changes = append(changes, "create_dest_dirs dropped: leash creates no directories; the destination's directory must exist")
		case "wait":
			changes = append(changes, "wait dropped: leash renders when a secret changes, once")
		case "error_fatal":
			changes = append(changes, "error_fatal dropped: a template that fails at start stops leash (exit 78); later, the old bytes stay until a render succeeds")
		case "backup":
			var b bool
			if b, err = p.boolean(it, key); err == nil && b {
				return p.errf(it, "%s: backup would keep a copy of the secret on disk; leash does not", kind)
			}
			changes = append(changes, "backup = false dropped: leash keeps no copy")
		default:
			return p.errf(it, "%s: %q is not supported by leash (it takes contents, source, destination, perms, error_on_missing_key, left_delimiter, right_delimiter)", kind, key)
		}
		return err
	})
	if err != nil {
		return err
	}
	switch {
	case contents != nil && source != nil:
		return p.errf(source, "%s: contents and source cannot both be set", kind)
	case contents == nil && source == nil:
		return p.errf(item, "%s: needs contents or source", kind)
	case env == "" && dest == nil:
		return p.errf(item, "%s: needs a destination", kind)
	}
	var name string
	if env != "" {
		if err := render.ValidateName(env); err != nil || p.names[env] {
			return p.errf(item, "env_template %q: not usable as an output name", env)
		}
		p.names[env] = true
		name = env
	} else {
		name = p.outputName(destPath)
		p.templates++
	}
	if (left != "") != (right != "") {
		if left == "" {
			left = "{{"
		} else {
			right = "}}"
		}
	}
	if source != nil {
		p.add("template", name+"="+file, from)
		changes = append([]string{fmt.Sprintf("output %q from the template file %s", name, file)}, changes...)
	} else {
		// Checked here so that an error names this file and line.
		if _, err := render.ParseTemplateOptions(name, text, render.TemplateOptions{LeftDelim: left, RightDelim: right, MissingKeyNoValue: allowMissing}); err != nil {
			return p.errf(contents, "%s contents: %v", kind, err)
		}
		p.add("template_text", name+"="+text, from)
		changes = append([]string{fmt.Sprintf("output %q from the template text", name)}, changes...)
	}
	if left != "" {
		p.add("template_delims", name+"="+left+" "+right, from)
		changes = append(changes, "delimiters "+left+" "+right)
	}
	if allowMissing {
		p.add("allow_missing_key", name, from)
		changes = append(changes, "a missing key renders <no value>, as asked by error_on_missing_key = false")
	} else if len(list.Filter("error_on_missing_key").Items) == 0 {
		changes = append(changes, "a missing key is an error (Vault Agent's default renders <no value>; set error_on_missing_key = false for that)")
	}
	if env != "" {
		notice := fmt.Sprintf("env_template %s: the app must read the file $%s instead of $%s (leash never puts secrets in the environment)", env, render.EnvName(name), env)
		p.c.notices = append(p.c.notices, notice) // convert writes it apart, in one line
	} else {
		p.add("output_path", name+"="+destPath, from)
		p.c.paths[name] = p.pos(dest)
		mode := render.DefaultPathMode
		if perms != 0 {
			mode = perms
			p.add("output_mode", fmt.Sprintf("%s=%04o", name, uint32(perms)), from)
		}
		msg := fmt.Sprintf("written at %s (its directory must be on tmpfs or ramfs, e.g. an emptyDir with medium Memory, unless allow_disk = true), mode %04o", destPath, uint32(mode))
		if perms == 0 {
			msg += " (Vault Agent's default is 0644)"
		}
		msg += ", and removed when leash exits; the app also finds it at $" + render.EnvName(name)
		changes = append(changes, msg)
	}
	p.note(from, "%s", strings.Join(changes, "; "))
	return nil
}

func (p *agentParser) envTemplate(item *ast.ObjectItem) error {
	if len(item.Keys) != 2 {
		return p.errf(item, `env_template needs one variable name: env_template "NAME" { ... }`)
	}
	env, err := keyName(item.Keys[1].Token)
	if err != nil {
		return p.errf(item, "%v", err)
	}
	return p.template(item, env)
}

func (p *agentParser) exec(item *ast.ObjectItem) error {
	from := "exec (" + p.pos(item) + ")"
	list, err := p.body(item, "exec")
	if err != nil {
		return err
	}
	p.hasExec = true
	var changes []string
	rotate := "restart"
	err = p.each(list, func(key string, it *ast.ObjectItem) error {
		switch key {
		case "command":
			argv, err := p.strList(it, key)
			if err != nil {
				return err
			}
			if len(argv) == 0 || argv[0] == "" {
				return p.errf(it, "exec: command is empty")
			}
			for _, a := range argv {
				p.add("exec", a, from)
			}
			changes = append(changes, "exec = [...]: the command after -- wins over it")
		case "restart_on_secret_changes":
			v, err := p.str(it, key)
			if err != nil {
				return err
			}
			switch v {
			case "always":
			case "never":
				rotate = "none"
				changes = append(changes, "restart_on_secret_changes = never: a new credential rewrites the files silently and the old lease is revoked at once, so the app must read them again when it needs them (Vault Agent's child keeps its old environment until the lease expires)")
			default:
				return p.errf(it, "exec: restart_on_secret_changes %q: want always or never", v)
			}
		case "restart_stop_signal":
			v, err := p.str(it, key)
			if err != nil {
				return err
			}
			p.set("stop_signal", v, from)
		case "env":
			return p.envList(it, from)
		case "child_process_stdout", "child_process_stderr":
			return p.errf(it, "exec: %s: leash passes the child's output through to its own; redirect it there", key)
		default:
			return p.errf(it, "exec: unknown key %q", key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	p.set("on_rotate", rotate, from)
	p.set("kill_timeout", vaultAgentKillTimeout.String(), from)
	changes = append(changes, fmt.Sprintf("on_rotate = %q; kill_timeout = %q, Vault Agent's fixed kill timeout", rotate, vaultAgentKillTimeout))
	p.note(from, "%s", strings.Join(changes, "; "))
	return nil
}

// envList reads exec's env, a map or a list of "K=V", as set_env.
func (p *agentParser) envList(it *ast.ObjectItem, from string) error {
	if obj, ok := it.Val.(*ast.ObjectType); ok {
		return p.each(obj.List, func(k string, kv *ast.ObjectItem) error {
			v, err := p.str(kv, k)
			if err != nil {
				return err
			}
			p.add("set_env", k+"="+v, from)
			return nil
		})
	}
	l, err := p.strList(it, "env")
	if err != nil {
		return err
	}
	for _, kv := range l {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return p.errf(it, "exec: env %q: want NAME=VALUE", kv)
		}
		p.add("set_env", kv, from)
	}
	return nil
}

func (p *agentParser) templateConfig(item *ast.ObjectItem) error {
	from := "template_config (" + p.pos(item) + ")"
	list, err := p.body(item, "template_config")
	if err != nil {
		return err
	}
	var changes []string
	err = p.each(list, func(key string, it *ast.ObjectItem) error {
		switch key {
		case "static_secret_render_interval":
			d, err := p.duration(it, key)
			if err != nil {
				return err
			}
			p.set("static_refresh", d.String(), from)
			changes = append(changes, "static_refresh = "+strconv.Quote(d.String()))
		case "lease_renewal_threshold":
			s, err := p.str(it, key)
			if err != nil {
				return err
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || f <= 0 || f >= 1 {
				return p.errf(it, "lease_renewal_threshold: want a fraction between 0 and 1, not %q", s)
			}
			pct := strconv.FormatFloat((1-f)*100, 'f', -1, 64) + "%"
			p.set("rotate_before", pct, from)
			changes = append(changes, fmt.Sprintf("rotate_before = %q: leash hands over a new credential when %s of the lease is left", pct, pct))
		case "exit_on_retry_failure":
			b, err := p.boolean(it, key)
			if err != nil {
				return err
			}
			if b {
				changes = append(changes, "exit_on_retry_failure = true is what leash does: it exits when it cannot get the secrets at start (--startup-timeout, exit 69) or a credential expires with no replacement (exit 75)")
			} else {
				changes = append(changes, "exit_on_retry_failure = false has no leash equivalent: leash still gives up at start after --startup-timeout and stops the app when a credential expires with no replacement")
			}
		case "max_connections_per_host":
			changes = append(changes, "max_connections_per_host dropped: leash's requests share one connection pool")
		default:
			return p.errf(it, "template_config: unknown key %q", key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	p.note(from, "%s", strings.Join(changes, "; "))
	return nil
}

// writeNative writes c as a native leash config: a header with one comment
// per stanza, then every key with the stanza it comes from.
func (c *agentConfig) writeNative(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# leash config converted from the Vault Agent config %s (leash convert).\n", c.file)
	b.WriteString("# Run it with: leash -c FILE -- app\n#\n# What changed, stanza by stanza:\n")
	for _, n := range c.notes {
		writeComment(&b, "- "+n, "  ")
	}
	// What the app must do differently, one line each, unwrapped, as the
	// start-up log says it: easy to find, and to grep for.
	if len(c.notices) > 0 {
		b.WriteString("#\n# The app must change:\n")
		for _, n := range c.notices {
			b.WriteString("# - " + n + "\n")
		}
	}
	prev := ""
	for _, a := range c.attrs {
		if _, list := a.val.([]listElem); list || a.from != prev {
			b.WriteString("\n")
		}
		switch v := a.val.(type) {
		case []listElem:
			fmt.Fprintf(&b, "%s = [\n", a.key)
			for i, e := range v {
				if i == 0 || e.from != v[i-1].from {
					fmt.Fprintf(&b, "  # %s\n", e.from)
				}
				fmt.Fprintf(&b, "  %s,\n", hclString(e.val))
			}
			b.WriteString("]\n")
			prev = ""
			continue
		}
		if a.from != prev {
			fmt.Fprintf(&b, "# %s\n", a.from)
		}
		prev = a.from
		switch v := a.val.(type) {
		case bool:
			fmt.Fprintf(&b, "%s = %t\n", a.key, v)
		case string:
			fmt.Fprintf(&b, "%s = %s\n", a.key, hclString(v))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeComment writes text as "# " lines of at most about 100 columns,
// the continuation lines indented by indent.
func writeComment(b *strings.Builder, text, indent string) {
	line := "#"
	for i, w := range strings.Fields(text) {
		if i > 0 && len(line)+1+len(w) > 100 {
			b.WriteString(line + "\n")
			line = "# " + indent[:len(indent)-1]
		}
		line += " " + w
	}
	b.WriteString(line + "\n")
}

// hclString writes s as an HCL 1 string: a heredoc when it ends in a
// newline (templates usually do), which keeps it readable and byte for
// byte, else a quoted string.
func hclString(s string) string {
	if strings.HasSuffix(s, "\n") && !strings.Contains(s, "\r") {
		marker := "EOT"
		for i := 2; slices.Contains(strings.Split(s, "\n"), marker); i++ {
			marker = "EOT" + strconv.Itoa(i)
		}
		return "<<" + marker + "\n" + s + marker + "\n"
	}
	return strconv.Quote(s)
}

// native returns the resolver for c: its native text, parsed as a native
// config. Parsing what convert prints, rather than handing the values over
// directly, is what makes --agent-config and the converted file the same.
// Every value is checked to have survived the trip.
func (c *agentConfig) native() (*hclConfig, error) {
	var b bytes.Buffer
	if err := c.writeNative(&b); err != nil {
		return nil, err
	}
	hc, err := parseHCLConfig(c.file+" (converted)", b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("internal error: the converted config does not parse: %w", err)
	}
	if len(hc.attrs) != len(c.attrs) {
		return nil, fmt.Errorf("internal error: the converted config has %d keys, want %d", len(hc.attrs), len(c.attrs))
	}
	for i, a := range c.attrs {
		got, err := hclValue(hc.attrs[i].val, true)
		if err != nil || hc.attrs[i].name != a.key || !sameValue(got, a.val) {
			return nil, configErrorf("%s: %s cannot be written as a leash config value exactly; put it in a file", c.file, a.key)
		}
		// A bad value is reported at its stanza in c.file, not at a line
		// of the converted text, which the user never sees.
		hc.attrs[i].from = a.from
		if elems, ok := a.val.([]listElem); ok && a.from == "" && len(elems) > 0 {
			hc.attrs[i].from = elems[0].from
		}
	}
	return hc, nil
}

func sameValue(got, want any) bool {
	switch w := want.(type) {
	case []listElem:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if g[i] != w[i].val {
				return false
			}
		}
		return true
	}
	return got == want
}

// loadAgentConfig reads and translates an agent config file.
func loadAgentConfig(path string) (*agentConfig, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, configErrorf("read Vault Agent config: %w", err)
	}
	return parseAgentConfig(path, src)
}

// agentConfigFlag is --agent-config: like kong.ConfigFlag, it adds the
// file's settings as a resolver, below flags and LEASH_* variables.
type agentConfigFlag string

// BeforeResolve adds the translated file as a resolver.
func (f agentConfigFlag) BeforeResolve(ctx *kong.Context, trace *kong.Path) error {
	path := string(ctx.FlagValue(trace.Flag).(agentConfigFlag))
	c, err := loadAgentConfig(path)
	if err != nil {
		return err
	}
	hc, err := c.native()
	if err != nil {
		return err
	}
	ctx.AddResolver(hc)
	return nil
}

// agentFile returns the Vault Agent config the options come from, if any:
// --agent-config, or a -c file that is one.
func (o *Options) agentFile() (string, error) {
	if o.AgentConfig != "" {
		if o.Config != "" {
			return "", &usageError{errors.New("--config and --agent-config: give one config file")}
		}
		return string(o.AgentConfig), nil
	}
	if o.Config != "" {
		if src, err := os.ReadFile(string(o.Config)); err == nil && isAgentConfig(src) {
			return string(o.Config), nil
		}
	}
	return "", nil
}

// checkAgent applies what the agent config asks that depends on the flags:
// sinks are refused without --ignore-sinks, and template destinations are
// checked here, so that the error names the stanza's line. It returns the
// lines to log at start-up.
func (o *Options) checkAgent(p *plan) ([]string, error) {
	path, err := o.agentFile()
	if path == "" || err != nil {
		return nil, err
	}
	c, err := loadAgentConfig(path)
	if err != nil {
		return nil, err
	}
	if len(c.sinks) > 0 && !o.IgnoreSinks {
		return nil, configErrorf("%s: auto_auth sink: leash keeps its Vault token in memory only and writes it to no file; remove the sink, or pass --ignore-sinks to drop it", c.sinks[0])
	}
	for _, out := range p.outputs {
		if where, ok := c.paths[out.Name]; ok && out.Path != "" && !o.AllowDisk {
			if err := render.CheckPath(out.Path); err != nil {
				return nil, configErrorf("%s: template destination: %v", where, err)
			}
		}
	}
	return c.notices, nil
}

// vaultEnv returns the environment lease reads Vault's settings from:
// leash's own, plus a VAULT_* variable for every --vault setting whose
// VAULT_* and BAO_* variables are both unset (the environment wins, as in
// Vault Agent). nil when there are no --vault settings.
func (o *Options) vaultEnv() ([]string, error) {
	if len(o.Vault) == 0 {
		return nil, nil
	}
	env := os.Environ()
	seen := map[string]bool{}
	for _, kv := range o.Vault {
		k, v, ok := strings.Cut(kv, "=")
		name, known := vaultKeys[k]
		switch {
		case !ok || !known:
			return nil, configErrorf("--vault %q: want KEY=VALUE with KEY one of %s", kv, strings.Join(slices.Sorted(maps.Keys(vaultKeys)), ", "))
		case seen[k]:
			return nil, configErrorf("--vault %q: %s is given twice", kv, k)
		}
		seen[k] = true
		if os.Getenv("VAULT_"+name) == "" && os.Getenv("BAO_"+name) == "" {
			env = append(env, "VAULT_"+name+"="+v)
		}
	}
	return env, nil
}

// ConvertCmd is `leash convert FILE`.
type ConvertCmd struct {
	File string `arg:"" name:"file" type:"existingfile" help:"The Vault Agent config file."`
}

// run prints the native config. It is the text --agent-config parses, so
// it loads and behaves the same; sinks become comments (run refuses them
// without --ignore-sinks), and destinations are checked when leash runs,
// on the machine that runs it.
func (c *ConvertCmd) run(w io.Writer) error {
	ac, err := loadAgentConfig(c.File)
	if err != nil {
		return err
	}
	if _, err := ac.native(); err != nil {
		return err
	}
	return ac.writeNative(w)
}
