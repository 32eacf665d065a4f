package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/leash-dev/leash/lease"
	"github.com/leash-dev/leash/signals"
	"github.com/leash-dev/leash/supervisor"
)

// settings are the checked, typed form of Options.
type settings struct {
	plan         *plan
	stopSignal   syscall.Signal
	reloadSignal syscall.Signal
	rotateDur    time.Duration
	rotateFrac   float64
	cred         *syscall.Credential
	notices      []string // from a Vault Agent config, logged at start-up
	vaultEnv     []string // lease.Config.Env with --vault settings; nil: leash's environment
}

func (o *Options) settings(env func(string) string) (*settings, error) {
	p, err := o.buildPlan(env)
	if err != nil {
		return nil, err
	}
	s := &settings{plan: p}
	if s.notices, err = o.checkAgent(p); err != nil {
		return nil, err
	}
	if s.vaultEnv, err = o.vaultEnv(); err != nil {
		return nil, err
	}
	if s.stopSignal, err = signals.Parse(o.StopSignal); err != nil {
		return nil, &usageError{fmt.Errorf("--stop-signal: %w", err)}
	}
	if s.reloadSignal, err = signals.Parse(o.ReloadSignal); err != nil {
		return nil, &usageError{fmt.Errorf("--reload-signal: %w", err)}
	}
	d, f, err := parseRotateBefore(o.RotateBefore)
	if err != nil {
		return nil, &usageError{fmt.Errorf("--rotate-before %w", err)}
	}
	s.rotateDur, s.rotateFrac = time.Duration(d), f
	if s.cred, err = lookupUser(o.User); err != nil {
		return nil, &usageError{fmt.Errorf("--user %w", err)}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--kill-timeout", o.KillTimeout}, {"--splay", o.Splay}, {"--stop-delay", o.StopDelay}, {"--static-refresh", o.StaticRefresh}, {"--startup-timeout", o.StartupTimeout}, {"--reload-grace", o.ReloadGrace}, {"--revoke-timeout", o.RevokeTimeout}, {"--drill-every", o.DrillEvery}} {
		if err := nonNegative(d.v); err != nil {
			return nil, &usageError{fmt.Errorf("%s %w", d.name, err)}
		}
	}
	if o.RevokeTimeout == 0 && !o.NoRevoke {
		return nil, o.flagError(errors.New("--revoke-timeout 0s: must be positive (--no-revoke leaves leases and token in place)"), "revoke-timeout")
	}
	if o.AuditKeyFile != "" && o.AuditFile == "" && !o.auditSyslog() {
		return nil, o.flagError(errors.New("--audit-key-file needs --audit-file or --audit-syslog"), "audit-key-file")
	}
	if o.Delivery != "dir" && o.Dir != "" {
		return nil, o.flagError(errors.New("--dir needs --delivery dir"), "dir", "delivery")
	}
	if err := o.checkAuth(); err != nil {
		return nil, err
	}
	for _, h := range o.VaultRedirectAllow {
		// lease.New checks the rest; a URL is the likely slip.
		if h == "" || strings.ContainsAny(h, "/?#@") {
			return nil, configErrorf("--vault-redirect-allow %q: want HOST or HOST:PORT, without a scheme or path", h)
		}
	}
	return s, nil
}

// valueChecks are the checks settings makes of a single flag's value, by
// flag name, for checkFileValue to make of a config file's values. Each
// takes the flag's decoded value.
var valueChecks = map[string]func(any) error{
	"stop-signal":     checkSignal,
	"reload-signal":   checkSignal,
	"rotate-before":   func(v any) error { _, _, err := parseRotateBefore(v.(string)); return err },
	"user":            func(v any) error { _, err := lookupUser(v.(string)); return err },
	"kill-timeout":    checkNonNegative,
	"splay":           checkNonNegative,
	"stop-delay":      checkNonNegative,
	"static-refresh":  checkNonNegative,
	"startup-timeout": checkNonNegative,
	"reload-grace":    checkNonNegative,
	"revoke-timeout":  checkNonNegative,
	"drill-every":     checkNonNegative,
}

func checkSignal(v any) error { _, err := signals.Parse(v.(string)); return err }

func checkNonNegative(v any) error { return nonNegative(v.(time.Duration)) }

func nonNegative(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%s: must not be negative", d)
	}
	return nil
}

// flagError is err, a problem with how flags combine, as a config error
// naming the config file when one of flags has its value from the file
// (exit 78), else as a usage error (exit 64).
func (o *Options) flagError(err error, flags ...string) error {
	for _, f := range flags {
		if o.fromFile[f] {
			file := string(o.Config)
			if file == "" {
				file = string(o.AgentConfig)
			}
			return configErrorf("%s: %w", file, err)
		}
	}
	return &usageError{err}
}

// auditSyslog reports whether the audit records go to the system log.
func (o *Options) auditSyslog() bool { return o.AuditSyslog || o.AuditSyslogAddr != "" }

// checkAuth names the flags an auth method lacks; lease.AuthConfig.Missing
// decides what a method needs.
func (o *Options) checkAuth() error {
	if p := o.SecretIDWrapPath; p != "" {
		// lease.New checks the same; here the error names the flag.
		// A bad value on the command line is a usage error (64), in a
		// config file a config error (78), as for every flag.
		if o.Auth != "approle" {
			return o.flagError(fmt.Errorf("--secret-id-wrap-path is for --auth approle, not %s", o.Auth), "secret-id-wrap-path", "auth")
		}
		if strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
			return o.flagError(fmt.Errorf("--secret-id-wrap-path %q: Vault's creation_path never starts or ends with \"/\"; write %q", p, strings.Trim(p, "/")), "secret-id-wrap-path")
		}
	}
	miss := o.authConfig().Missing()
	if len(miss) == 0 {
		return nil
	}
	flags := make([]string, len(miss))
	for i, f := range miss {
		flags[i] = authFlags[f]
	}
	return configErrorf("--auth %s needs %s", o.Auth, strings.Join(flags, " and "))
}

// authFlags are the flags setting the lease.AuthConfig fields Missing names.
var authFlags = map[string]string{
	"Role": "--auth-role", "RoleIDFile": "--role-id-file", "SecretIDFile": "--secret-id-file", "JWTFile": "--jwt-file",
}

func (o *Options) authConfig() lease.AuthConfig {
	return lease.AuthConfig{
		Method:             o.Auth,
		Mount:              o.AuthMount,
		Role:               o.AuthRole,
		TokenFile:          o.TokenFile,
		RoleIDFile:         o.RoleIDFile,
		SecretIDFile:       o.SecretIDFile,
		SecretIDWrapPath:   o.SecretIDWrapPath,
		RemoveSecretIDFile: o.RemoveSecretIDFile,
		JWTFile:            o.JWTFile,
		AWSType:            o.AWSType,
		AWSRegion:          o.AWSRegion,
		AWSServerID:        o.AWSServerID,
		GCPServiceAccount:  o.GCPServiceAccount,
		GCPType:            o.GCPType, GCPIAMCredentialsURL: o.GCPIAMCredentialsURL,
		AzureIMDS: o.AzureIMDS, AzureResource: o.AzureResource, AzureClientID: o.AzureClientID,
		AzureSubscriptionID: o.AzureSubscriptionID, AzureResourceGroup: o.AzureResourceGroup,
		AzureVMName: o.AzureVMName, AzureVMSSName: o.AzureVMSSName,
	}
}

// restartStart is what a restart's child is allowed for starting: exec
// takes milliseconds, the child's own start-up is unknown to leash.
const restartStart = time.Second

// switchTime is how long the child needs after a hand-over before its old
// credential may go, and where that comes from in the flags' words: the
// reload grace, or a restart's splay, stop and start (issue 16).
func (o *Options) switchTime() (time.Duration, string) {
	switch o.OnRotate {
	case "signal":
		return o.ReloadGrace, "--reload-grace " + o.ReloadGrace.String()
	case "restart":
		kill := o.KillTimeout
		if kill == 0 {
			kill = supervisor.DefaultKillTimeout
		}
		return o.Splay + kill + restartStart, fmt.Sprintf("--splay %s + --kill-timeout %s + %s to start", o.Splay, kill, restartStart)
	}
	return 0, ""
}

func (o *Options) leaseConfig(s *settings, log hclog.Logger) lease.Config {
	switchTime, switchSource := o.switchTime()
	return lease.Config{
		Env:            s.vaultEnv,
		Auth:           o.authConfig(),
		Specs:          s.plan.specs,
		RotateBefore:   s.rotateDur,
		RotateFraction: s.rotateFrac,
		SwitchTime:     switchTime,
		SwitchSource:   switchSource,
		StaticRefresh:  o.StaticRefresh,
		StartupTimeout: o.StartupTimeout,
		RevokeTimeout:  o.RevokeTimeout,
		NoRevoke:       o.NoRevoke,
		RedirectAllow:  o.VaultRedirectAllow,
		Logger:         log.Named("lease"),
	}
}
