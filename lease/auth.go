package lease

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// CredentialVars returns the names of the environment variables that hold
// a Vault token (VAULT_TOKEN, OpenBao's BAO_TOKEN). Main keeps them from
// the child and from templates' env whether or not leash read them.
func CredentialVars() []string { return []string{"VAULT_TOKEN", "BAO_TOKEN"} }

// Missing returns the AuthConfig fields, by their Go names ("Role",
// "RoleIDFile", "SecretIDFile", "JWTFile"), that a's method needs and
// lacks, in that order; nil when none. New refuses such a config; main
// names its flags from the list. An unknown method lacks nothing here
// (New names it). cert auth's certificate comes from the environment
// (VAULT_CLIENT_CERT), which New checks.
func (a AuthConfig) Missing() []string {
	var need []string
	switch a.Method {
	case "approle":
		need = []string{"RoleIDFile", "SecretIDFile"}
	case "kubernetes", "gcp", "azure":
		need = []string{"Role"}
	case "jwt":
		need = []string{"Role", "JWTFile"}
	}
	have := map[string]string{"Role": a.Role, "RoleIDFile": a.RoleIDFile, "SecretIDFile": a.SecretIDFile, "JWTFile": a.JWTFile}
	var out []string
	for _, f := range need {
		if have[f] == "" {
			out = append(out, f)
		}
	}
	return out
}

// authFieldDesc is how New's error names a field Missing reports.
var authFieldDesc = map[string]string{
	"Role": "a role", "RoleIDFile": "a role_id file", "SecretIDFile": "a secret_id file", "JWTFile": "a JWT file",
}

// auth logs in with the configured method and reads the token the user
// gave: it turns files, cloud identities and Vault's answers into tokens,
// and holds the little state that needs (the secret_id of a removed file,
// the ec2 nonce). Its methods are safe for concurrent use.
type auth struct {
	cfg   AuthConfig
	env   environ
	vault *vault
	log   hclog.Logger
	clock *clock

	mu sync.Mutex // guards keptSecretID and serialises secret_id reads
	// keptSecretID is the secret_id read from a file RemoveSecretIDFile
	// deleted.
	keptSecretID secretString
	ec2Nonce     ec2Nonce // aws ec2 logins' client nonce (auth_aws_ec2.go)
}

// loginData is the body of a login with the configured method (not the
// token method, which logs in by looking the user's token up). Files are
// read again at every login: projected tokens and secret_ids rotate on
// disk.
func (au *auth) loginData(ctx context.Context) (map[string]any, error) {
	switch au.cfg.Method {
	case "approle":
		roleID, err := readTrimmed(au.cfg.RoleIDFile)
		if err != nil {
			return nil, &Error{Op: "login", Path: au.cfg.loginPath(), Err: err}
		}
		secretID, err := au.approleSecretID(ctx)
		if err != nil {
			return nil, err
		}
		return map[string]any{"role_id": roleID, "secret_id": string(secretID)}, nil
	case "kubernetes", "jwt":
		file := au.cfg.JWTFile
		if file == "" {
			file = DefaultServiceAccountTokenFile
		}
		// Re-read at every login: projected service-account and workload
		// identity tokens rotate on disk.
		jwt, err := readTrimmed(file)
		if err != nil {
			return nil, &Error{Op: "login", Path: au.cfg.loginPath(), Err: err}
		}
		return map[string]any{"role": au.cfg.Role, "jwt": jwt}, nil
	case "cert":
		body := map[string]any{}
		if au.cfg.Role != "" {
			body["name"] = au.cfg.Role
		}
		return body, nil
	case "aws":
		if au.cfg.AWSType == "ec2" {
			return au.awsEC2LoginData(ctx)
		}
		return au.awsLoginData(ctx)
	case "gcp":
		return au.gcpLoginData(ctx)
	case "azure":
		return au.azureLoginData(ctx)
	}
	return nil, fmt.Errorf("unknown auth method %q", au.cfg.Method) // validate rejects it
}

// canLogin reports whether leash can obtain a new token by itself.
func (a AuthConfig) canLogin() bool {
	switch a.Method {
	case "approle", "kubernetes", "jwt", "cert", "aws", "gcp", "azure":
		return true
	}
	return false
}

// canRefresh reports whether leash can get a replacement when its token
// fails (revoked, or Vault lost its storage): by logging in, or by re-reading
// --token-file, which a Vault Agent sink or an operator may have rewritten.
// Unlike canLogin it does not schedule re-reads before expiry.
func (a AuthConfig) canRefresh() bool {
	return a.canLogin() || (a.isTokenMethod() && a.TokenFile != "")
}

func (a AuthConfig) isTokenMethod() bool {
	return a.Method == "" || a.Method == "token"
}

// mount is the auth mount path: Mount, else the method's name.
func (a AuthConfig) mount() string {
	if a.Mount != "" {
		return strings.Trim(a.Mount, "/")
	}
	if a.Method == "" {
		return "token"
	}
	return a.Method
}

// loginPath is what a login requests (the token method looks itself up);
// errors and events name it.
func (a AuthConfig) loginPath() string {
	if a.isTokenMethod() {
		return "auth/token/lookup-self"
	}
	return "auth/" + a.mount() + "/login"
}

func readTrimmed(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
