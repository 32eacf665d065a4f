package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// token is a Vault token leash uses: the user's, or one it logged in for.
type token struct {
	value     secretString
	own       bool          // leash logged in: revoke it at Close; never revoke a user's token
	renewable bool          // Vault said it can be renewed
	ttl       time.Duration // as issued; renewals ask for this much
	issued    time.Time
	expires   time.Time // zero: never expires (root, or unknown)
	hard      bool      // expires can no longer move: not renewable, renewal capped, or replaced
	r         float64   // jitter drawn at login
	next      time.Time // next renew or re-login; zero: nothing to do
	failures  int
	leases    int // held leases it owns
}

// canLogin reports whether leash can obtain a new token by itself.
func (m *Manager) canLogin() bool {
	switch m.cfg.Auth.Method {
	case "approle", "kubernetes", "jwt", "cert", "aws", "gcp", "azure":
		return true
	}
	return false
}

// canRefresh reports whether leash can get a replacement when its token
// fails (revoked, or Vault lost its storage): by logging in, or by re-reading
// --token-file, which a Vault Agent sink or an operator may have rewritten.
// Unlike canLogin it does not schedule re-reads before expiry.
func (m *Manager) canRefresh() bool {
	return m.canLogin() || (m.isTokenMethod() && m.cfg.Auth.TokenFile != "")
}

func (m *Manager) isTokenMethod() bool {
	return m.cfg.Auth.Method == "" || m.cfg.Auth.Method == "token"
}

func (m *Manager) authMount() string {
	if m.cfg.Auth.Mount != "" {
		return strings.Trim(m.cfg.Auth.Mount, "/")
	}
	if m.cfg.Auth.Method == "" {
		return "token"
	}
	return m.cfg.Auth.Method
}

func (m *Manager) loginPath() string {
	if m.cfg.Auth.Method == "" || m.cfg.Auth.Method == "token" {
		return "auth/token/lookup-self"
	}
	return "auth/" + m.authMount() + "/login"
}

// login obtains a token with the configured method. For the token method it
// looks the user's token up to learn its ttl.
func (m *Manager) login(ctx context.Context) (*token, error) {
	now := m.now()
	var body map[string]any
	switch m.cfg.Auth.Method {
	case "", "token":
		return m.userToken(ctx)
	case "approle":
		roleID, err := readTrimmed(m.cfg.Auth.RoleIDFile)
		if err != nil {
			return nil, &Error{Op: "login", Path: m.loginPath(), Err: err}
		}
		secretID, err := m.approleSecretID(ctx)
		if err != nil {
			return nil, err
		}
		body = map[string]any{"role_id": roleID, "secret_id": string(secretID)}
	case "kubernetes", "jwt":
		file := m.cfg.Auth.JWTFile
		if file == "" {
			file = DefaultServiceAccountTokenFile
		}
		// Re-read at every login: projected service-account and workload
		// identity tokens rotate on disk.
		jwt, err := readTrimmed(file)
		if err != nil {
			return nil, &Error{Op: "login", Path: m.loginPath(), Err: err}
		}
		body = map[string]any{"role": m.cfg.Auth.Role, "jwt": jwt}
	case "cert":
		body = map[string]any{}
		if m.cfg.Auth.Role != "" {
			body["name"] = m.cfg.Auth.Role
		}
	case "aws":
		var err error
		if body, err = m.awsLoginData(ctx); err != nil {
			return nil, err
		}
	case "gcp":
		var err error
		if body, err = m.gcpLoginData(ctx); err != nil {
			return nil, err
		}
	case "azure":
		var err error
		if body, err = m.azureLoginData(ctx); err != nil {
			return nil, err
		}
	}
	sec, err := m.loginClient.Logical().WriteWithContext(ctx, m.loginPath(), body)
	if err != nil {
		if cerr, transient := classify(err); !transient && errors.Is(cerr, ErrUnsupported) {
			// Auth methods answer 400 for a wrong secret_id or a rejected JWT.
			return nil, &Error{Op: "login", Path: m.loginPath(), Err: fmt.Errorf("%w: %w", ErrPermissionDenied, cerr)}
		}
		return nil, err
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, &Error{Op: "login", Path: m.loginPath(), Err: errors.New("vault returned no token")}
	}
	t := &token{
		value: secretString(sec.Auth.ClientToken), own: true,
		renewable: sec.Auth.Renewable, ttl: time.Duration(sec.Auth.LeaseDuration) * time.Second,
		issued: now, r: m.rand(),
	}
	if t.ttl > 0 {
		t.expires = now.Add(t.ttl)
	}
	t.hard = !t.renewable
	return t, nil
}

// userToken reads the token the user gave (a file, VAULT_TOKEN/BAO_TOKEN, or
// ~/.vault-token) and looks it up.
func (m *Manager) userToken(ctx context.Context) (*token, error) {
	v, err := m.readUserToken()
	if err != nil {
		return nil, err
	}
	t := &token{value: v}
	if err := m.lookupToken(ctx, t); err != nil {
		return nil, err
	}
	return t, nil
}

// readUserToken returns the token the user gave, without contacting Vault.
func (m *Manager) readUserToken() (secretString, error) {
	var v string
	switch {
	case m.cfg.Auth.TokenFile != "":
		s, err := readTrimmed(m.cfg.Auth.TokenFile)
		if err != nil {
			return "", &Error{Op: "login", Path: "token", Err: err}
		}
		v = s
	case m.env.val("TOKEN") != "":
		v = m.env.val("TOKEN")
	default:
		f := homeTokenFile(m.env)
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
func (m *Manager) lookupToken(ctx context.Context, t *token) error {
	now := m.now()
	c, err := m.clientWith(string(t.value))
	if err != nil {
		return err
	}
	sec, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return err
	}
	t.issued, t.r = now, m.rand()
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

// approleSecretID reads the secret_id file. Secret IDs are UUIDs; anything
// else is taken as a response-wrapping token and unwrapped once (a wrapping
// token is single-use, so the result is kept for later logins).
func (m *Manager) approleSecretID(ctx context.Context) (secretString, error) {
	raw, err := readTrimmed(m.cfg.Auth.SecretIDFile)
	if err != nil {
		return "", &Error{Op: "login", Path: m.loginPath(), Err: err}
	}
	if uuidRE.MatchString(raw) {
		return secretString(raw), nil
	}
	m.authMu.Lock()
	defer m.authMu.Unlock()
	if m.wrapToken == secretString(raw) && m.unwrapped != "" {
		return m.unwrapped, nil
	}
	c, err := m.clientWith("") // Unwrap then authenticates with the wrapping token itself
	if err != nil {
		return "", err
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
	m.wrapToken, m.unwrapped = secretString(raw), secretString(sid)
	return m.unwrapped, nil
}

func readTrimmed(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// renewToken renews the current token, asking for its original ttl.
func (m *Manager) renewToken(ctx context.Context, t *token) error {
	// Vault's cert method checks the connection's certificate again when
	// its token is renewed: that connection must present the certificate
	// on disk now, as a login does, not one a pooled connection was set up
	// with and which may have expired since.
	c, err := withToken(m.loginClient, string(t.value))
	if err != nil {
		return err
	}
	inc := int(t.ttl / time.Second)
	sec, err := c.Auth().Token().RenewSelfWithContext(ctx, inc)
	if err != nil {
		return err
	}
	now := m.now()
	if sec == nil || sec.Auth == nil {
		return errors.New("token renewal returned no auth")
	}
	ld := time.Duration(sec.Auth.LeaseDuration) * time.Second
	t.expires = now.Add(ld)
	t.renewable = sec.Auth.Renewable
	if ld < t.ttl || !t.renewable {
		t.hard = true // max TTL reached: only a new login extends leash's life
	}
	return nil
}

// revokeToken revokes a token leash logged in with (never a user's).
func (m *Manager) revokeToken(ctx context.Context, t *token) error {
	if !t.own {
		return nil
	}
	c, err := m.clientWith(string(t.value))
	if err != nil {
		return err
	}
	return c.Auth().Token().RevokeSelfWithContext(ctx, "")
}

// capabilities returns the token's capabilities on path (best effort, for
// error messages and Check).
func (m *Manager) capabilities(ctx context.Context, path string) ([]string, error) {
	return m.client.Sys().CapabilitiesSelfWithContext(ctx, path)
}

// clientWith returns a client carrying exactly tok ("" for none). A plain
// Clone is not enough: api.NewClient picks up the process's VAULT_TOKEN.
func (m *Manager) clientWith(tok string) (*api.Client, error) {
	return withToken(m.anon, tok)
}

// withToken is clientWith on another base client.
func withToken(base *api.Client, tok string) (*api.Client, error) {
	c, err := base.Clone()
	if err != nil {
		return nil, err
	}
	if tok == "" {
		c.ClearToken()
	} else {
		c.SetToken(tok)
	}
	return c, nil
}
