package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/hashicorp/go-hclog"
)

// CLI is leash's command line. Every flag of run is also a config-file key
// (the long name with _ for -).
type CLI struct {
	Globals

	Run      RunCmd      `cmd:"" default:"withargs" help:"Run a command with leased secrets (the default command)."`
	Validate ValidateCmd `cmd:"" help:"Check flags, config file and templates without starting anything."`
	Status   StatusCmd   `cmd:"" help:"Print the lease table of a running leash (see --status-addr)."`
	Rotate   RotateCmd   `cmd:"" help:"Ask a running leash to hand over new credentials now (see --control-socket)."`
	Audit    AuditCmd    `cmd:"" help:"Work with an --audit-file."`
	Convert  ConvertCmd  `cmd:"" help:"Print the native leash config equivalent to a Vault Agent config, with what changed."`
	Version  VersionCmd  `cmd:"" help:"Print the version."`
}

// Globals are the flags every command takes.
type Globals struct {
	LogLevel  string `name:"log-level" enum:"trace,debug,info,warn,error" default:"info" env:"LEASH_LOG_LEVEL" help:"Log level: trace, debug, info, warn, error. Logs go to stderr only; stdout belongs to the child."`
	LogFormat string `name:"log-format" enum:"text,json" default:"text" env:"LEASH_LOG_FORMAT" help:"Log format: text or json."`
}

// runCLI is CLI with its default command alone. Kong builds its model by
// reflection at every start, and run and validate each carry all of
// Options: run's model alone costs half the time (1.1-1.3 ms less in a
// new process, measured on a slow 2-core machine) and half the garbage.
// parseCLI tries it first and parses again with CLI for anything else
// (FuzzParseCLIFast checks that both give the same result).
type runCLI struct {
	Globals
	Run RunCmd `cmd:"" default:"withargs"`
}

// commandNames are CLI's commands. runCLI would take any of them for the
// child's name, so parseCLI leaves them to CLI.
var commandNames = []string{"run", "validate", "status", "rotate", "audit", "convert", "version"}

// Options are the settings shared by run and validate.
type Options struct {
	Config      kong.ConfigFlag `short:"c" name:"config" type:"existingfile" env:"LEASH_CONFIG" placeholder:"FILE" help:"HCL config file with the same keys as the flags (flags win); a Vault Agent config is recognised and taken as --agent-config."`
	AgentConfig agentConfigFlag `name:"agent-config" type:"existingfile" env:"LEASH_AGENT_CONFIG" placeholder:"FILE" help:"Vault Agent config file to run as leash would run its conversion (see leash convert; flags win)."`
	IgnoreSinks bool            `name:"ignore-sinks" help:"With a Vault Agent config: drop its auto_auth sink stanzas instead of refusing them (leash keeps its token in memory only)."`
	Vault       []string        `name:"vault" sep:"none" placeholder:"KEY=VALUE" help:"Vault connection setting, as in Vault Agent's vault {}: address, ca_cert, ca_path, client_cert, client_key, tls_server_name, tls_skip_verify, namespace. Its VAULT_* variable, when set, wins. Repeatable."`

	Auth                 string `name:"auth" enum:"token,approle,kubernetes,jwt,cert,aws,gcp,azure" default:"token" env:"LEASH_AUTH" help:"Auth method: token, approle, kubernetes, jwt, cert (TLS client certificate from VAULT_CLIENT_CERT and VAULT_CLIENT_KEY), aws (IAM identity from the AWS credential chain), gcp (see --gcp-type), azure (the VM's managed identity from IMDS)."`
	AuthMount            string `name:"auth-mount" env:"LEASH_AUTH_MOUNT" help:"Mount path of the auth method (default: the method's name)."`
	AuthRole             string `name:"auth-role" env:"LEASH_AUTH_ROLE" help:"Role for kubernetes and jwt logins; for cert, optionally the certificate role to match; for aws, the Vault role (default: the IAM principal's name); for gcp and azure, the Vault role (required); ignored for approle."`
	TokenFile            string `name:"token-file" env:"LEASH_TOKEN_FILE" placeholder:"FILE" help:"File holding a Vault token (token auth; else VAULT_TOKEN, else ~/.vault-token)."`
	RoleIDFile           string `name:"role-id-file" env:"LEASH_ROLE_ID_FILE" placeholder:"FILE" help:"File holding the AppRole role_id."`
	SecretIDFile         string `name:"secret-id-file" env:"LEASH_SECRET_ID_FILE" placeholder:"FILE" help:"File holding the AppRole secret_id (a response-wrapping token is unwrapped)."`
	SecretIDWrapPath     string `name:"secret-id-wrap-path" env:"LEASH_SECRET_ID_WRAP_PATH" placeholder:"PATH" help:"The --secret-id-file must hold a wrapping token created at PATH (e.g. auth/approle/role/app/secret-id), checked before unwrapping; any other is refused (Vault Agent's secret_id_response_wrapping_path)."`
	RemoveSecretIDFile   bool   `name:"remove-secret-id-file" help:"Delete the --secret-id-file once read; the secret_id stays in memory for later logins (Vault Agent's remove_secret_id_file_after_reading)."`
	JWTFile              string `name:"jwt-file" env:"LEASH_JWT_FILE" placeholder:"FILE" help:"JWT file for kubernetes (default: the service-account token) and jwt auth; re-read at every login."`
	AWSType              string `name:"aws-type" enum:"iam,ec2" default:"iam" env:"LEASH_AWS_TYPE" help:"aws auth: iam (a signed sts:GetCallerIdentity from the AWS credential chain) or ec2 (the instance identity document from IMDSv2)."`
	AWSRegion            string `name:"aws-region" env:"LEASH_AWS_REGION" placeholder:"REGION" help:"aws auth: STS region to sign for, matching Vault's sts_endpoint and sts_region (default: us-east-1 at the global sts.amazonaws.com)."`
	AWSServerID          string `name:"aws-iam-server-id" env:"LEASH_AWS_IAM_SERVER_ID" placeholder:"VALUE" help:"aws auth: X-Vault-AWS-IAM-Server-ID header value, when Vault's iam_server_id_header_value is set."`
	GCPType              string `name:"gcp-type" enum:"gce,iam" default:"gce" env:"LEASH_GCP_TYPE" help:"gcp auth: gce (the VM's identity token from the metadata server) or iam (a JWT signed by the IAM Credentials API with Application Default Credentials)."`
	GCPServiceAccount    string `name:"gcp-service-account" env:"LEASH_GCP_SERVICE_ACCOUNT" placeholder:"EMAIL" help:"gcp auth: for gce, the instance's service account whose identity token leash presents (default: the default one); for iam, the service account the JWT is signed as (default: the Application Default Credentials' own)."`
	GCPIAMCredentialsURL string `name:"gcp-iam-credentials-url" env:"LEASH_GCP_IAM_CREDENTIALS_URL" placeholder:"URL" help:"gcp auth, iam: the IAM Credentials API (default: https://iamcredentials.googleapis.com)."`
	AzureResource        string `name:"azure-resource" env:"LEASH_AZURE_RESOURCE" placeholder:"URI" help:"azure auth: audience of the managed-identity token, Vault's resource (default: https://management.azure.com/)."`
	AzureClientID        string `name:"azure-client-id" env:"LEASH_AZURE_CLIENT_ID" placeholder:"ID" help:"azure auth: client id of a user-assigned managed identity (default: the system-assigned one)."`
	AzureSubscriptionID  string `name:"azure-subscription-id" env:"LEASH_AZURE_SUBSCRIPTION_ID" placeholder:"ID" help:"azure auth: subscription id (default: from IMDS)."`
	AzureResourceGroup   string `name:"azure-resource-group" env:"LEASH_AZURE_RESOURCE_GROUP" placeholder:"NAME" help:"azure auth: resource group (default: from IMDS)."`
	AzureVMName          string `name:"azure-vm-name" env:"LEASH_AZURE_VM_NAME" placeholder:"NAME" help:"azure auth: VM name (default: from IMDS)."`
	AzureVMSSName        string `name:"azure-vmss-name" env:"LEASH_AZURE_VMSS_NAME" placeholder:"NAME" help:"azure auth: scale-set name, instead of the VM name (default: from IMDS)."`
	AzureIMDS            string `name:"azure-imds-url" env:"LEASH_AZURE_IMDS_URL" placeholder:"URL" help:"azure auth: the Instance Metadata Service (default: http://169.254.169.254)."`

	Secrets   []string `name:"secret" short:"s" sep:"none" env:"LEASH_SECRET" placeholder:"NAME=PATH" help:"Output NAME from Vault PATH as JSON; NAME=PATH#FIELD for one raw field; NAME=PATH?k=v&k2=v2 to write with parameters; a NAME ending in .env renders a dotenv file. Repeatable."`
	Templates []string `name:"template" short:"t" sep:"none" placeholder:"NAME=FILE" help:"Render the Go template FILE (Vault Agent/consul-template syntax) to output NAME. Repeatable."`
	Env       []string `name:"env" sep:"none" placeholder:"VAR=NAME" help:"Also point VAR at output NAME's path (e.g. PGPASSFILE=pgpass). Repeatable."`
	// Vault Agent's template stanzas carry over through these (issue 19).
	TemplateTexts  []string `name:"template-text" sep:"none" placeholder:"NAME=TEXT" help:"Render the Go template TEXT (inline; a heredoc in a config file) to output NAME. Repeatable."`
	TemplateDelims []string `name:"template-delims" sep:"none" placeholder:"NAME=LEFT RIGHT" help:"Template NAME's action delimiters instead of {{ and }} (Vault Agent's left_delimiter and right_delimiter). Repeatable."`
	OutputPaths    []string `name:"output-path" sep:"none" placeholder:"NAME=PATH" help:"Also write output NAME at exactly PATH, atomically (removed on exit); PATH's directory must be on tmpfs or ramfs unless --allow-disk. Repeatable."`
	OutputModes    []string `name:"output-mode" sep:"none" placeholder:"NAME=MODE" help:"File mode of output NAME's --output-path, octal (default 0400). Repeatable."`
	SetEnv         []string `name:"set-env" sep:"none" placeholder:"VAR=VALUE" help:"Set VAR to a plain, non-secret VALUE in the child's environment. Repeatable."`
	Exec           []string `name:"exec" sep:"none" placeholder:"ARG" help:"The command and its arguments when none follows -- (in a config file: exec = [\"/app/server\", \"-p\", \"80\"]). Repeatable."`
	// Per template, so a Vault Agent config's error_on_missing_key = false
	// carries over stanza by stanza.
	AllowMissingKey []string `name:"allow-missing-key" sep:"none" placeholder:"NAME" help:"Template output NAME renders a missing map key as <no value>, as consul-template does and Vault Agent with error_on_missing_key = false, instead of failing (exit 78). Repeatable."`

	Delivery  string `name:"delivery" enum:"memfd,dir" default:"${delivery_default}" env:"LEASH_DELIVERY" help:"memfd: inherited read-only file descriptors 3, 4, ...; dir: a private tmpfs directory (macOS: dir only, on disk)."`
	Dir       string `name:"dir" env:"LEASH_DIR" placeholder:"DIR" help:"Parent of the private directory in dir mode (default: $XDG_RUNTIME_DIR, else /dev/shm; macOS: $TMPDIR)."`
	AllowDisk bool   `name:"allow-disk" help:"Allow --dir on a disk file system (secrets then reach the disk)."`

	OnRotate        string        `name:"on-rotate" enum:"restart,signal,none" default:"restart" env:"LEASH_ON_ROTATE" help:"What to do when a credential changes: restart the child, signal it to reload, or none."`
	ReloadSignal    string        `name:"reload-signal" default:"HUP" env:"LEASH_RELOAD_SIGNAL" help:"Signal that tells the child to re-read its secrets (--on-rotate signal)."`
	ReloadGrace     time.Duration `name:"reload-grace" default:"5s" help:"After a reload signal, how long the old credential stays valid before it is revoked."`
	StopSignal      string        `name:"stop-signal" default:"TERM" env:"LEASH_STOP_SIGNAL" help:"Signal that asks the child to stop."`
	KillTimeout     time.Duration `name:"kill-timeout" default:"10s" env:"LEASH_KILL_TIMEOUT" help:"How long a stopping child may take before SIGKILL."`
	Splay           time.Duration `name:"splay" default:"0s" help:"Random delay up to DUR before a rotation restart (spreads a fleet's restarts)."`
	StopDelay       time.Duration `name:"stop-delay" default:"0s" help:"Wait DUR before forwarding the stop signal (load-balancer deregistration)."`
	RotateBefore    string        `name:"rotate-before" placeholder:"DUR|PCT" env:"LEASH_ROTATE_BEFORE" help:"Hand over a new credential this long before expiry (e.g. 30s or 25%; default a third of the lease)."`
	StaticRefresh   time.Duration `name:"static-refresh" default:"5m" help:"How often secrets without a lease (KV) are re-read."`
	StartupTimeout  time.Duration `name:"startup-timeout" default:"30s" env:"LEASH_STARTUP_TIMEOUT" help:"Give up (exit 69) if the secrets cannot be fetched within DUR."`
	NoRevoke        bool          `name:"no-revoke" env:"LEASH_NO_REVOKE" help:"Do not revoke leases and leash's token on exit."`
	RevokeTimeout   time.Duration `name:"revoke-timeout" default:"10s" env:"LEASH_REVOKE_TIMEOUT" help:"How long revoking leases and leash's token on exit may take; what is left expires on its own."`
	SignalChildOnly bool          `name:"signal-child-only" help:"Send signals only to the child, not to its process group."`
	User            string        `name:"user" env:"LEASH_USER" placeholder:"USER[:GROUP]" help:"Run the child as USER (name or id), with its groups or GROUP."`
	Mlock           bool          `name:"mlock" env:"LEASH_MLOCK" help:"Lock leash's memory so secrets are never swapped out (needs RLIMIT_MEMLOCK or CAP_IPC_LOCK)."`
	AuditFile       string        `name:"audit-file" env:"LEASH_AUDIT_FILE" placeholder:"FILE" help:"Append audit events (JSON lines, mode 0600, no secrets, hash-chained) to FILE."`
	AuditKeyFile    string        `name:"audit-key-file" env:"LEASH_AUDIT_KEY_FILE" placeholder:"FILE" help:"Chain the audit records with HMAC-SHA256 under the key in FILE (mode 0600, at least 32 bytes; read once at start)."`
	AuditSyslog     bool          `name:"audit-syslog" env:"LEASH_AUDIT_SYSLOG" help:"Send the audit records to the system log too (RFC 5424, authpriv; /dev/log unless --audit-syslog-addr)."`
	AuditSyslogAddr string        `name:"audit-syslog-addr" env:"LEASH_AUDIT_SYSLOG_ADDR" placeholder:"ADDR" help:"The system log for the audit records: a Unix datagram socket path or udp://HOST:PORT (implies --audit-syslog)."`
	ControlSocket   string        `name:"control-socket" env:"LEASH_CONTROL_SOCKET" placeholder:"PATH" help:"Accept leash rotate on a Unix socket at PATH, in a 0700 directory of leash's user (created if missing); only leash's uid and root may use it. Off by default."`
	DrillEvery      time.Duration `name:"drill-every" default:"0s" help:"Run a rotation drill about every DUR (jittered by 25%): hand over, revoke the old credential at once, check the child survives. 0: never."`
	StatusAddr      string        `name:"status-addr" env:"LEASH_STATUS_ADDR" placeholder:"ADDR" help:"Serve /healthz, /v1/leases and /metrics on a Unix socket path or loopback host:port."`

	VaultRedirectAllow []string `name:"vault-redirect-allow" env:"LEASH_VAULT_REDIRECT_ALLOW" placeholder:"HOST[:PORT]" help:"Also follow Vault redirects to HOST (any port) or HOST:PORT; by default only to VAULT_ADDR's own scheme, host and port. Never from https to http. Repeatable or comma-separated."`

	// fromFile are the flags whose values came from the config file (a
	// kong resolver), by name; parseArgs sets it. settings reports a bad
	// combination of them as a config error.
	fromFile map[string]bool `kong:"-"`
}

// RunCmd is `leash run`, also the default command.
type RunCmd struct {
	Options
	Command []string `arg:"" optional:"" name:"command" passthrough:"all" help:"The command to run and its arguments, after --."`
}

// ValidateCmd is `leash validate`.
type ValidateCmd struct {
	Options
	Online bool `name:"online" help:"Also log in and check that every path is readable."`
}

// StatusCmd is `leash status`.
type StatusCmd struct {
	StatusAddr string `name:"status-addr" env:"LEASH_STATUS_ADDR" required:"" placeholder:"ADDR" help:"Address of a running leash's status server."`
	Check      bool   `name:"check" help:"Print /healthz and exit 0 when healthy, 1 when not (a Kubernetes exec probe)."`
}

// VersionCmd is `leash version`.
type VersionCmd struct{}

const helpText = `leash runs a command with leased Vault secrets delivered through memory only.

Examples:

  Container ENTRYPOINT prefix (Kubernetes auth, memfd delivery):
    ENTRYPOINT ["leash", "-c", "/etc/leash.hcl", "--", "/app/server"]

  Legacy binary on a VM (systemd unit, AppRole, reload on SIGHUP):
    ExecStart=/usr/local/bin/leash --auth approle \
      --role-id-file /etc/app/role-id --secret-id-file /etc/app/secret-id \
      -s db=database/creds/app --on-rotate signal -- /usr/local/bin/app

  Local development in one command (uses VAULT_ADDR and ~/.vault-token):
    leash -s db=database/creds/dev -- go run ./cmd/app

The child finds each output NAME at $NAME_FILE (/dev/fd/N or a file).
Exit codes: the child's own; 128+N if it died of signal N; 64 usage; 69 Vault
unreachable; 70 internal error; 75 credential lost; 77 permission denied;
78 config error; 126 not executable; 127 not found.`

// usageError is a command-line problem: exit 64 (EX_USAGE).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// parseCLI parses args. It returns the kong context for dispatch.
func parseCLI(args []string) (*CLI, *kong.Context, error) {
	return parseArgs(args, true, os.Stdout, os.Stderr)
}

// parseArgs parses args with CLI, or first with runCLI when fast is set.
// Help goes to out, kong's own messages to errw.
func parseArgs(args []string, fast bool, out, errw io.Writer) (*CLI, *kong.Context, error) {
	// Everything after the first "--" is the child's argv, never parsed.
	// Kong alone would keep that "--" for an explicit `run` but drop it for
	// the default command, so split here.
	var child []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, child = args[:i], slices.Clone(args[i+1:])
	}
	var (
		cli  *CLI
		kctx *kong.Context
		err  error
	)
	if fast && (len(args) == 0 || args[0] == "run" || !slices.Contains(commandNames, args[0])) {
		cli, kctx = parseRun(args) // not for `leash status`, a probe run often
	}
	if cli == nil {
		cli = new(CLI)
		kctx, err = parseModel(cli, args, out, errw)
		if err != nil {
			return nil, nil, err
		}
	}
	fromFile := map[string]bool{}
	for _, p := range kctx.Path {
		if p.Resolved && p.Flag != nil {
			fromFile[p.Flag.Name] = true
		}
	}
	cli.Run.fromFile, cli.Validate.fromFile = fromFile, fromFile
	if child != nil {
		if !strings.HasPrefix(kctx.Command(), "run") {
			return nil, nil, &usageError{fmt.Errorf("%s takes no command after --", strings.Fields(kctx.Command())[0])}
		}
		if len(cli.Run.Command) > 0 {
			// `leash app -- x`: the child's own "--" argument.
			cli.Run.Command = append(cli.Run.Command, "--")
		}
		cli.Run.Command = append(cli.Run.Command, child...)
	}
	return cli, kctx, nil
}

// parseRun parses args with runCLI. It returns nil unless args are a
// successful run that CLI would parse the same way: no error (kong's
// messages and suggestions depend on the whole model), no --help, and no
// command name where runCLI sees the child's.
func parseRun(args []string) (*CLI, *kong.Context) {
	var r runCLI
	kctx, err := parseModel(&r, args, io.Discard, io.Discard)
	if err != nil || len(r.Run.Command) > 0 && slices.Contains(commandNames, r.Run.Command[0]) {
		return nil, nil
	}
	return &CLI{Globals: r.Globals, Run: r.Run}, kctx
}

// parseModel parses args into model (CLI or runCLI), writing help to out
// and kong's own messages to errw.
func parseModel(model any, args []string, out, errw io.Writer) (*kong.Context, error) {
	exit := -1
	parser, err := kong.New(model,
		kong.Name("leash"),
		kong.Description(helpText),
		kong.Configuration(loadHCLConfig),
		kong.Writers(out, errw),
		kong.Exit(func(code int) { exit = code }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Vars{"delivery_default": defaultDelivery}, // dir on macOS
	)
	if err != nil {
		return nil, err
	}
	kctx, err := parser.Parse(args)
	if exit >= 0 {
		// --help: kong printed it and asked to exit.
		return nil, exitRequest(exit)
	}
	if err != nil {
		var ce *configError
		if errors.As(err, &ce) {
			// Without kong's "--flag=PLACEHOLDER: " in front: a config
			// error names the file, the line and the key itself.
			return nil, ce
		}
		return nil, &usageError{err}
	}
	return kctx, nil
}

// exitRequest ends the process with a code, without a message (--help).
type exitRequest int

func (e exitRequest) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func reportParseError(err error) int {
	var er exitRequest
	if errors.As(err, &er) {
		return int(er)
	}
	fmt.Fprintf(os.Stderr, "leash: %v\n", err)
	var ce *configError
	if errors.As(err, &ce) {
		return exitConfig
	}
	fmt.Fprintln(os.Stderr, "leash: run 'leash --help' for usage")
	return exitUsage
}

// Exit codes, from sysexits.h where one fits. The child's own status is
// passed through unchanged; 128+N means it died of signal N.
const (
	exitAuditBroken   = 1   // leash audit verify: the trail does not verify
	exitRotateFailed  = 1   // leash rotate: refused, failed, or the drill failed
	exitUsage         = 64  // EX_USAGE: a bad flag or argument
	exitUnavailable   = 69  // EX_UNAVAILABLE: Vault unreachable or secrets not obtained in time
	exitSoftware      = 70  // EX_SOFTWARE: an internal error
	exitTempFail      = 75  // EX_TEMPFAIL: a credential expired at runtime with no replacement
	exitNoPerm        = 77  // EX_NOPERM: Vault denied permission
	exitConfig        = 78  // EX_CONFIG: a config, template or output problem
	exitNotExecutable = 126 // the command was found but cannot be executed
	exitNotFound      = 127 // the command was not found
)

// newLogger builds the root logger on w (stderr).
func newLogger(level, format string, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:            "leash",
		Level:           hclog.LevelFromString(level),
		Output:          w,
		JSONFormat:      format == "json",
		IncludeLocation: false,
		TimeFormat:      time.RFC3339Nano,
	})
}

// dispatch runs the selected command.
func dispatch(ctx context.Context, cli *CLI, kctx *kong.Context, log hclog.Logger) error {
	switch cmd := kctx.Command(); {
	case strings.HasPrefix(cmd, "run"):
		return cli.Run.run(ctx, log)
	case strings.HasPrefix(cmd, "validate"):
		return cli.Validate.run(ctx, log)
	case strings.HasPrefix(cmd, "status"):
		return cli.Status.run(ctx, os.Stdout)
	case strings.HasPrefix(cmd, "rotate"):
		return cli.Rotate.run(ctx, os.Stdout)
	case strings.HasPrefix(cmd, "audit verify"):
		return cli.Audit.Verify.run(os.Stdout)
	case strings.HasPrefix(cmd, "convert"):
		return cli.Convert.run(os.Stdout)
	case strings.HasPrefix(cmd, "version"):
		printVersion(os.Stdout)
		return nil
	}
	return &usageError{fmt.Errorf("unknown command %q", kctx.Command())}
}
