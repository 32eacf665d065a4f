package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// login obtains a token with the configured method. For the token method it
// looks the user's token up to learn its ttl.
func (au *auth) login(ctx context.Context) (*token, error) {
	now := au.clock.now()
	if au.cfg.isTokenMethod() {
		return au.userToken(ctx)
	}
	body, err := au.loginData(ctx)
	if err != nil {
		return nil, err
	}
	sec, err := au.vault.login.Logical().WriteWithContext(ctx, au.cfg.loginPath(), body)
	if err != nil {
		if cerr, transient := classify(err); !transient && errors.Is(cerr, ErrUnsupported) {
			// Auth methods answer 400 for a wrong secret_id or a rejected JWT.
			return nil, &Error{Op: "login", Path: au.cfg.loginPath(), Err: fmt.Errorf("%w: %w", ErrPermissionDenied, cerr)}
		}
		return nil, err
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, &Error{Op: "login", Path: au.cfg.loginPath(), Err: errors.New("vault returned no token")}
	}
	t := &token{
		value: secretString(sec.Auth.ClientToken), own: true,
		renewable: sec.Auth.Renewable, ttl: time.Duration(sec.Auth.LeaseDuration) * time.Second,
		issued: now, r: au.clock.rand(),
	}
	if t.ttl > 0 {
		t.expires = now.Add(t.ttl)
	}
	t.hard = !t.renewable
	return t, nil
}

// userToken reads the token the user gave (a file, VAULT_TOKEN/BAO_TOKEN, or
// ~/.vault-token) and looks it up.
func (au *auth) userToken(ctx context.Context) (*token, error) {
	v, err := au.readUserToken()
	if err != nil {
		return nil, err
	}
	t := &token{value: v}
	if err := au.lookupToken(ctx, t); err != nil {
		return nil, err
	}
	return t, nil
}

// readUserToken returns the token the user gave, without contacting Vault.
func (au *auth) readUserToken() (secretString, error) {
	var v string
	switch {
	case au.cfg.TokenFile != "":
		s, err := readTrimmed(au.cfg.TokenFile)
		if err != nil {
			return "", &Error{Op: "login", Path: "token", Err: err}
		}
		v = s
	case au.env.val("TOKEN") != "":
		v = au.env.val("TOKEN")
	default:
		f := homeTokenFile(au.env)
		if f != "" {
			v, _ = readTrimmed(f)
		}
	}
	if v == "" {
		return "", &Error{Op: "login", Path: "token", Err: fmt.Errorf("%w: no token (set VAULT_TOKEN, a token file, or ~/.vault-token)", ErrPermissionDenied)}
	}
	return secretString(v), nil
}

// lookupToken asks Vault about t's value and fills in what it says: ttl,
// expiry, renewability.
func (au *auth) lookupToken(ctx context.Context, t *token) error {
	now := au.clock.now()
	c, err := au.vault.clientWith(string(t.value))
	if err != nil {
		return err
	}
	sec, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return err
	}
	t.issued, t.r = now, au.clock.rand()
	t.renewable, t.ttl, t.expires = false, 0, time.Time{}
	if sec != nil {
		t.renewable, _ = sec.TokenIsRenewable()
		ttl, _ := sec.TokenTTL()
		if ttl > 0 {
			t.expires = now.Add(ttl)
			t.ttl = ttl
			if n, ok := sec.Data["creation_ttl"].(json.Number); ok {
				if s, err := n.Int64(); err == nil && s > 0 {
					t.ttl = time.Duration(s) * time.Second
				}
			}
		}
	}
	t.hard = !t.renewable
	return nil
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// approleSecretID returns the secret_id to log in with. With
// RemoveSecretIDFile the file is deleted once read, and what it held is
// kept for the logins after, while no new file appears.
func (au *auth) approleSecretID(ctx context.Context) (secretString, error) {
	au.mu.Lock()
	defer au.mu.Unlock()
	if !au.cfg.RemoveSecretIDFile {
		return au.readSecretID(ctx)
	}
	sid, err := au.readSecretID(ctx)
	if errors.Is(err, fs.ErrNotExist) && au.keptSecretID != "" {
		return au.keptSecretID, nil
	}
	if err != nil {
		return "", err
	}
	if err := os.Remove(au.cfg.SecretIDFile); err != nil {
		au.log.Warn("cannot remove the secret_id file after reading it", "path", au.cfg.SecretIDFile, "error", err)
	}
	au.keptSecretID = sid
	return sid, nil
}

// readSecretID reads the secret_id file. Secret IDs are UUIDs; anything
// else is taken as a response-wrapping token and unwrapped once (a wrapping
// token is single-use, so the vault type keeps the result for later
// logins). With SecretIDWrapPath the file must hold a wrapping token
// created there, as in Vault Agent: a UUID is not taken as a secret_id,
// or a plain secret_id put in the file would pass the check. The caller
// holds au.mu.
func (au *auth) readSecretID(ctx context.Context) (secretString, error) {
	raw, err := readTrimmed(au.cfg.SecretIDFile)
	if err != nil {
		return "", &Error{Op: "login", Path: au.cfg.loginPath(), Err: err}
	}
	if au.cfg.SecretIDWrapPath == "" && uuidRE.MatchString(raw) {
		return secretString(raw), nil
	}
	return au.vault.unwrapSecretID(ctx, raw, au.cfg.SecretIDWrapPath, au.cfg.SecretIDFile)
}

// unwrapSecretID unwraps the response-wrapping token raw, once: a
// wrapping token is single-use, so the secret_id is kept for later logins
// with the same file content. With wantPath, the token is looked up first
// and refused unless it was created at wantPath; file is the secret_id
// file, for the error.
func (v *vault) unwrapSecretID(ctx context.Context, raw, wantPath, file string) (secretString, error) {
	v.unwrapMu.Lock()
	defer v.unwrapMu.Unlock()
	if v.wrapToken == secretString(raw) && v.unwrapped != "" {
		return v.unwrapped, nil
	}
	c, err := v.clientWith("") // Unwrap then authenticates with the wrapping token itself
	if err != nil {
		return "", err
	}
	if wantPath != "" {
		if err := checkWrapPath(ctx, c, raw, wantPath, file); err != nil {
			return "", err
		}
	}
	sec, err := c.Logical().UnwrapWithContext(ctx, raw)
	if err != nil {
		cerr, transient := classify(err)
		if transient {
			return "", err
		}
		return "", &Error{Op: "unwrap", Path: "sys/wrapping/unwrap", Err: fmt.Errorf("secret_id file holds neither a secret_id nor a valid wrapping token: %w", cerr)}
	}
	var sid string
	if sec != nil {
		sid, _ = sec.Data["secret_id"].(string)
	}
	if sid == "" {
		return "", &Error{Op: "unwrap", Path: "sys/wrapping/unwrap", Err: errors.New("wrapped response holds no secret_id")}
	}
	v.wrapToken, v.unwrapped = secretString(raw), secretString(sid)
	return v.unwrapped, nil
}

// checkWrapPath looks the wrapping token raw up (sys/wrapping/lookup, which
// needs no other token and leaves raw usable) and refuses it unless Vault
// says it was created at want. The comparison is exact, as in Vault
// Agent: Vault's creation_path has no leading or trailing "/", and
// AuthConfig.validateWrapPath refuses a want with one. A mismatch means
// someone else unwrapped the secret_id and wrapped something in its place,
// so it is ErrPermissionDenied and names both paths and file, never raw.
func checkWrapPath(ctx context.Context, c *api.Client, raw, want, file string) error {
	sec, err := c.Logical().WriteWithContext(ctx, "sys/wrapping/lookup", map[string]any{"token": raw})
	if err != nil {
		cerr, transient := classify(err)
		if transient {
			return err
		}
		return &Error{Op: "unwrap", Path: "sys/wrapping/lookup", Err: fmt.Errorf("secret_id file %s holds no valid wrapping token (the secret_id wrap path is set, so it must): %w", file, cerr)}
	}
	var got string
	if sec != nil {
		got, _ = sec.Data["creation_path"].(string)
	}
	if got != want {
		return &Error{Op: "login", Path: "sys/wrapping/lookup", Err: fmt.Errorf("%w: the wrapping token in secret_id file %s was created at %q, not at %q (the secret_id wrap path): it may have been intercepted and replaced; refused",
			ErrWrapPathMismatch, file, got, want)}
	}
	return nil
}

// validateWrapPath checks SecretIDWrapPath without contacting Vault.
func (a AuthConfig) validateWrapPath() error {
	p := a.SecretIDWrapPath
	switch {
	case p == "":
		return nil
	case a.Method != "approle":
		return fmt.Errorf("a secret_id wrap path is for approle auth, not %s", firstNonEmpty(a.Method, "token"))
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/"):
		// Vault Agent would take it and refuse every token: Vault names
		// the creation path without them.
		return fmt.Errorf("secret_id wrap path %q: Vault's creation_path never starts or ends with \"/\"; write %q", p, strings.Trim(p, "/"))
	}
	return nil
}
