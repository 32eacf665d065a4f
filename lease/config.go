package lease

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Spec is one secret to fetch and keep alive.
type Spec struct {
	ID     string            // unique key; snapshot entries are keyed by it
	Path   string            // as written: "database/creds/app", "secret/app" (KV CLI form), "pki/issue/web"
	Params map[string]string // non-nil: a write (PUT) with these parameters (pki issue, sts, token create)
	// List makes it a LIST of Path (a template's `secrets`): the secret's
	// data is {"keys": [...]}, no lease, re-read like KV. A KV v2 path gets
	// metadata/ as consul-template inserts it; nothing there is no keys.
	List bool
	// Outputs names what the user calls the secret: the outputs it feeds
	// (-s db=..., templates), for log lines and events. nil: none given.
	Outputs []string
}

// AuthConfig selects how leash obtains its Vault token.
type AuthConfig struct {
	Method string // token (default) | approle | kubernetes | jwt | cert | aws | gcp | azure
	// Mount is the auth mount path; "" means the method name.
	Mount string
	// Role is the role for approle (unused), kubernetes and jwt logins, and
	// the certificate role (the "name" to match) for cert logins. cert
	// logins present VAULT_CLIENT_CERT and VAULT_CLIENT_KEY, re-read at
	// every TLS handshake. For aws, "" lets Vault take the IAM principal's
	// name. For gcp it is required: the identity token's audience is
	// vault/ROLE. Required for azure.
	Role string
	// TokenFile (token): read the token from here instead of
	// VAULT_TOKEN/BAO_TOKEN; neither set means ~/.vault-token like the CLI.
	TokenFile string
	// RoleIDFile and SecretIDFile (approle). A SecretIDFile holding a
	// response-wrapping token is unwrapped.
	RoleIDFile, SecretIDFile string
	// SecretIDWrapPath (approle), when set, is the path the wrapping token
	// in SecretIDFile must have been created at (Vault Agent's
	// secret_id_response_wrapping_path), such as
	// "auth/approle/role/app/secret-id". The file must then hold a wrapping
	// token, never a plain secret_id; before unwrapping it leash looks it up
	// and refuses it, with ErrPermissionDenied, unless its creation_path is
	// exactly this, as Vault Agent compares: a token wrapped elsewhere (an
	// intercepted secret_id re-wrapped by sys/wrapping/wrap) is not used.
	// "": a wrapping token is unwrapped wherever it was created.
	SecretIDWrapPath string
	// RemoveSecretIDFile (approle) deletes SecretIDFile once it has been
	// read and keeps the secret_id in memory for later logins, until a new
	// file appears (Vault Agent's remove_secret_id_file_after_reading,
	// true there by default). false: the file is left and re-read.
	RemoveSecretIDFile bool
	// JWTFile (kubernetes, jwt) is re-read at every login: projected tokens
	// rotate. "" for kubernetes means the service-account token path.
	JWTFile string
	// AWSRegion (aws) is the STS region the GetCallerIdentity request is
	// signed for and addressed to (sts.REGION.amazonaws.com); it must match
	// Vault's sts_endpoint and sts_region. "" means us-east-1 at the global
	// endpoint sts.amazonaws.com, Vault's default. The credentials come from
	// the AWS SDK's default chain, which reads AWS_* from the process
	// environment, not from Config.Env.
	AWSRegion string
	// AWSType (aws) is Vault's aws login type: "iam" ("" means iam), a
	// signed sts:GetCallerIdentity; or "ec2", the instance identity
	// document (PKCS#7) from IMDSv2 with a client nonce made once per
	// Manager and kept in memory, which Vault requires again at every
	// re-login of the instance. AWSRegion and AWSServerID are iam's only.
	AWSType string
	// AWSServerID (aws), when set, is sent signed as the
	// X-Vault-AWS-IAM-Server-ID header (Vault's iam_server_id_header_value).
	AWSServerID string
	// GCPServiceAccount (gcp) is, for gce, the service account of the
	// instance whose identity token leash logs in with ("" means the
	// default one); for iam, the account the JWT is signed as. The
	// metadata server is GCE_METADATA_HOST from the process environment, as
	// for Google's libraries, else 169.254.169.254.
	GCPServiceAccount string
	// GCPType (gcp) is Vault's gcp login type: "gce" ("" means gce), the
	// instance identity token from the metadata server; or "iam", a JWT
	// for vault/ROLE that the IAM Credentials API signs as
	// GCPServiceAccount ("" means the service account of the Application
	// Default Credentials), called with an access token from those
	// credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's
	// application_default_credentials.json, else the metadata server).
	GCPType string
	// GCPIAMCredentialsURL (gcp iam) is the IAM Credentials API's base URL;
	// "" means https://iamcredentials.googleapis.com (a Private Service
	// Connect endpoint is another).
	GCPIAMCredentialsURL string
	// Azure (azure): AzureIMDS is the Instance Metadata Service ("" means
	// http://169.254.169.254); AzureResource the token's audience, Vault's
	// "resource" ("" means https://management.azure.com/); AzureClientID a
	// user-assigned identity ("" means the system-assigned one). The
	// subscription, resource group and VM or scale-set name come from IMDS
	// unless all are given.
	AzureIMDS, AzureResource, AzureClientID                             string
	AzureSubscriptionID, AzureResourceGroup, AzureVMName, AzureVMSSName string
}

// Config configures a Manager. Zero values mean the documented defaults.
type Config struct {
	Env            []string // where VAULT_*/BAO_* come from; nil means os.Environ()
	Auth           AuthConfig
	Specs          []Spec
	RotateBefore   time.Duration // 0: a third of the lease (at least a few seconds)
	RotateFraction float64       // alternative to RotateBefore ("25%" -> 0.25)
	// SwitchTime is how long the child needs after a hand-over before the
	// old credential may go: the reload grace, or a restart's splay, stop
	// and start. Hand-overs come at least that long, plus a second, before
	// the old credential counts as lost, but at most three quarters of the
	// lease into it. 0: the child needs no time (--on-rotate none).
	SwitchTime time.Duration
	// SwitchSource says where SwitchTime comes from, in the user's words
	// ("--reload-grace 5s"), for the start-up warning about leases too
	// short for it. "": "the switch time".
	SwitchSource   string
	StaticRefresh  time.Duration // 0: 5m
	StartupTimeout time.Duration // 0: 30s
	RevokeTimeout  time.Duration // 0: 10s; bounds Close, and the clean-up of a failed Start
	NoRevoke       bool
	// RedirectAllow lists the hosts ("host", any port, or "host:port") a
	// Vault redirect may lead to besides Vault's own address (same scheme,
	// host and port). nil: no other host. A redirect from https to http is
	// never followed.
	RedirectAllow []string
	Logger        hclog.Logger // nil: no logging
	// OnEvent, when set, receives every lease event (audit trail, health,
	// metrics). It is called synchronously from the manager's goroutines
	// and must not block or call back into the Manager.
	OnEvent func(Event)
	// OnRequest, when set, receives the duration of every HTTP request
	// leash sends to Vault (logins, lookups, reads, renewals, revocations,
	// each retry), whether it succeeded or not. Like OnEvent it is called
	// synchronously and must not block.
	OnRequest func(time.Duration)
	// MaxResponse bounds the bytes leash reads of any one Vault answer,
	// errors included; a longer one fails with ErrTooLarge. 0:
	// DefaultMaxResponse.
	MaxResponse int64
}

// DefaultMaxResponse is twice Vault's default max_request_size (32 MiB):
// above any secret a Vault with default settings can store, and far
// below what an endless answer would make leash allocate (about seven
// times the body: vault/api buffers it twice and decodes it into maps).
const DefaultMaxResponse = 64 << 20

// DefaultServiceAccountTokenFile is where Kubernetes mounts the pod's token.
const DefaultServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

const (
	defaultStaticRefresh  = 5 * time.Minute
	defaultStartupTimeout = 30 * time.Second
	defaultRevokeTimeout  = 10 * time.Second
	// retireTimeout bounds the revocation of superseded leases after a
	// hand-over; the child no longer uses them, so a failure only logs.
	retireTimeout = 10 * time.Second
)

// environ is the environment leash reads VAULT_* and BAO_* from.
type environ map[string]string

func newEnviron(env []string) environ {
	if env == nil {
		env = os.Environ()
	}
	e := make(environ, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			e[k] = v
		}
	}
	return e
}

// get returns VAULT_name, else BAO_name (OpenBao), and which was used.
func (e environ) get(name string) (string, string) {
	if v := e["VAULT_"+name]; v != "" {
		return v, "VAULT_" + name
	}
	if v := e["BAO_"+name]; v != "" {
		return v, "BAO_" + name
	}
	return "", ""
}

func (e environ) val(name string) string { v, _ := e.get(name); return v }

// validate checks the config, whose environment is env, without talking
// to Vault.
func (c *Config) validate(env environ) error {
	switch c.Auth.Method {
	case "", "token", "approle", "kubernetes", "jwt", "aws", "gcp", "azure":
	case "cert":
		if env.val("CLIENT_CERT") == "" || env.val("CLIENT_KEY") == "" {
			return errors.New("cert auth needs a client certificate: set VAULT_CLIENT_CERT and VAULT_CLIENT_KEY")
		}
	default:
		return fmt.Errorf("unknown auth method %q (token, approle, kubernetes, jwt, cert, aws, gcp, azure)", c.Auth.Method)
	}
	if err := c.Auth.validateCloud(); err != nil {
		return err
	}
	if err := c.Auth.validateWrapPath(); err != nil {
		return err
	}
	if miss := c.Auth.Missing(); len(miss) > 0 {
		descs := make([]string, len(miss))
		for i, f := range miss {
			descs[i] = authFieldDesc[f]
		}
		return fmt.Errorf("%s auth needs %s", c.Auth.Method, strings.Join(descs, " and "))
	}
	seen := map[string]bool{}
	for _, s := range c.Specs {
		if s.ID == "" || s.Path == "" {
			return fmt.Errorf("secret %q: id and path are required", s.ID)
		}
		if seen[s.ID] {
			return fmt.Errorf("secret %q: duplicate id", s.ID)
		}
		seen[s.ID] = true
	}
	if _, err := parseRedirectAllow(c.RedirectAllow); err != nil {
		return err
	}
	if c.SwitchTime < 0 {
		return fmt.Errorf("switch time %s: must not be negative", c.SwitchTime)
	}
	if c.RotateFraction < 0 || c.RotateFraction >= 1 {
		return fmt.Errorf("rotate fraction %v: want 0 <= f < 1", c.RotateFraction)
	}
	return nil
}

// homeTokenFile is the vault CLI's token helper file.
func homeTokenFile(env environ) string {
	home := env["HOME"]
	if home == "" {
		return ""
	}
	return filepath.Join(home, ".vault-token")
}
