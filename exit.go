package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/leash-dev/leash/internal/status"
	"github.com/leash-dev/leash/lease"
	"github.com/leash-dev/leash/supervisor"
)

// exitCode maps run's result to the process exit status and reports any
// error that is leash's own (a child's failure is the child's to report).
func exitCode(err error, log hclog.Logger) int {
	if err == nil {
		return 0
	}
	var exitErr *supervisor.ExitError
	if errors.As(err, &exitErr) {
		return childStatus(exitErr)
	}
	var er exitRequest
	if errors.As(err, &er) {
		return int(er) // already reported
	}
	code, hint := classify(err)
	log.Error(err.Error())
	if hint != "" {
		fmt.Fprintln(os.Stderr, "leash: "+hint)
	}
	return code
}

// childStatus mirrors the child: its exit code, or 128+N for signal N.
func childStatus(e *supervisor.ExitError) int {
	if e.Signal != 0 {
		return signalStatus(e.Signal)
	}
	return e.Code
}

// signalStatus is the exit status of a process killed by sig, the
// convention of shells, tini and dumb-init: for a child that died of it,
// and for leash stopped by it before the child started. It is the one
// place leash maps a signal to a status (consul-template and Vault Agent
// report 255 instead).
func signalStatus(sig syscall.Signal) int { return 128 + int(sig) }

// unavailableError is a service a command needs that does not answer (a
// running leash's status server): exit 69 (EX_UNAVAILABLE).
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// classify maps leash's own errors to sysexits-style codes and a hint.
func classify(err error) (int, string) {
	var (
		ue    *usageError
		ce    *configError
		se    *supervisor.StartError
		sig   *signalledError
		ab    *status.BrokenError
		re    *rotateError
		errno syscall.Errno
		le    *lease.Error
	)
	switch {
	case errors.As(err, &ue):
		return exitUsage, "run 'leash --help' for usage"
	case errors.As(err, &ce):
		return exitConfig, ""
	case errors.As(err, new(*unavailableError)):
		return exitUnavailable, ""
	case errors.As(err, &ab):
		return exitAuditBroken, ""
	case errors.As(err, &re):
		return exitRotateFailed, ""
	case errors.As(err, &se):
		return se.ExitCode(), ""
	case errors.As(err, &sig):
		if s, ok := sig.sig.(syscall.Signal); ok {
			return signalStatus(s), ""
		}
		return exitSoftware, ""
	case errors.Is(err, lease.ErrLeaseLost):
		return exitTempFail, "the child was stopped because a credential expired and no replacement could be obtained"
	case errors.Is(err, lease.ErrPermissionDenied):
		// First: a rejected login is both denied and, as Vault answers it
		// with 400, rejected.
		switch {
		case errors.Is(err, lease.ErrWrapPathMismatch):
			return exitNoPerm, "the secret_id file's wrapping token was not created at the expected path (--secret-id-wrap-path) and was not unwrapped: get a new secret_id, and find out who replaced this one"
		case errors.As(err, &le) && le.Op == "login":
			return exitNoPerm, "check the auth method's role and the credentials leash logs in with (--auth, --auth-mount, --auth-role)"
		}
		return exitNoPerm, "check the Vault policy attached to leash's token"
	case errors.Is(err, lease.ErrTooLarge):
		// A secret too large to be one, or not Vault answering.
		return exitConfig, "check the secret at that path, and what answers at VAULT_ADDR"
	case errors.Is(err, lease.ErrNotFound), errors.Is(err, lease.ErrUnsupported):
		// A path or parameters Vault does not accept: the configuration is wrong.
		return exitConfig, "check the secret's path and parameters"
	case errors.As(err, new(*lease.RedirectError)):
		return exitConfig, "point VAULT_ADDR at the Vault node that answers, or list the redirect's host in --vault-redirect-allow if you trust it"
	case errors.Is(err, lease.ErrTLS):
		// A CA, server name or certificate to fix, not an outage to wait out.
		return exitConfig, "check VAULT_CACERT (or VAULT_CAPATH), VAULT_TLS_SERVER_NAME and the host name in VAULT_ADDR against Vault's certificate"
	case errors.Is(err, lease.ErrNoIdentity):
		return exitUnavailable, "leash could not obtain its cloud identity: check the credential source or metadata server named above (instance profile, task role, IRSA, service account)"
	case errors.Is(err, lease.ErrUnreachable), errors.Is(err, context.DeadlineExceeded):
		return exitUnavailable, "check VAULT_ADDR and that Vault is reachable (see --startup-timeout)"
	case errors.As(err, &errno) && errno == syscall.EPERM:
		return exitNoPerm, ""
	case errors.As(err, &le) && le.Op == "login" && errors.As(err, new(*fs.PathError)):
		return exitConfig, "a file leash logs in with (--role-id-file, --secret-id-file, --jwt-file, --token-file) cannot be read"
	}
	return exitSoftware, ""
}
