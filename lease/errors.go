package lease

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

var (
	// ErrPermissionDenied: Vault refused the token (exit 77 in main).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnreachable: Vault did not answer successfully before the startup
	// deadline (exit 69 in main).
	ErrUnreachable = errors.New("vault unreachable")
	// ErrLeaseLost: a credential expired with no replacement (exit 75 in main).
	ErrLeaseLost = errors.New("lease lost")
	// ErrNotFound: nothing at the path (a bad path or a missing KV secret).
	ErrNotFound = errors.New("no secret at path")
	// ErrUnsupported: Vault rejected the request as invalid (unsupported
	// path, bad parameters, wrong method).
	ErrUnsupported = errors.New("rejected by vault")
	// ErrNoRotation: Rotate was asked for a secret it cannot hand over (an
	// unknown name, or a static secret).
	ErrNoRotation = errors.New("nothing to rotate")
	// ErrTLS: Vault's certificate did not verify: an unknown CA, a name
	// that does not match VAULT_ADDR or VAULT_TLS_SERVER_NAME, an expired
	// certificate (exit 78 in main). Retrying does not fix it.
	ErrTLS = errors.New("vault tls verification failed")
	// ErrNoIdentity: the cloud identity leash logs in with (aws, gcp,
	// azure) could not be obtained from its credential source or metadata
	// endpoint (exit 69 in main). The error names the source.
	ErrNoIdentity = errors.New("cloud identity not available")
)

// RedirectError reports a redirect leash refused to follow: to another
// address than the one it was given and not an allowed redirect host, or
// from https to http. Nothing was sent to To. It names addresses only
// (scheme://host:port), never a path, token or body.
type RedirectError struct {
	From, To string // scheme://host:port
	Reason   string
}

// Error names both addresses and why the redirect was refused.
func (e *RedirectError) Error() string {
	return fmt.Sprintf("vault at %s redirected to %s: not followed: %s", e.From, e.To, e.Reason)
}

// Error names the operation and path that failed. Err wraps one of the
// sentinels above where it applies.
type Error struct {
	Op   string // login, read, write, renew, revoke, check
	Path string
	Err  error
}

// Error returns "op path: err".
func (e *Error) Error() string {
	if e.Path == "" {
		return e.Op + ": " + e.Err.Error()
	}
	return e.Op + " " + e.Path + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// LostError reports a credential about to expire without a replacement:
// Run returns it a small margin before the expiry (see Manager.Run). It
// matches ErrLeaseLost with errors.Is.
type LostError struct {
	ID, Path string
	Outputs  []string  // the Spec's Outputs
	Lease    string    // fingerprint
	Expired  time.Time // when the credential expires (leash's conservative estimate)
}

// Error names the secret, its outputs, its path, its lease fingerprint and
// when it expires.
func (e *LostError) Error() string {
	name := e.ID
	if len(e.Outputs) > 0 {
		name = "output " + strings.Join(e.Outputs, ", ") + " from " + e.ID
	}
	return fmt.Sprintf("lease lost: %s (%s, lease %s) expires at %s with no replacement",
		name, e.Path, e.Lease, e.Expired.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrLeaseLost) true.
func (e *LostError) Is(target error) bool { return target == ErrLeaseLost }

// noAnswer reports that a request got no HTTP answer from Vault: refused,
// reset, timed out. Vault being unreachable, any other request would fail
// the same way.
func noAnswer(err error) bool {
	var re *api.ResponseError
	if err == nil || errors.As(err, &re) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded)
}

// classify turns a Vault client error into a leash error and reports
// whether retrying may help. It never includes request bodies (tokens,
// lease ids) in the result: only Vault's error messages and status.
func classify(err error) (out error, transient bool) {
	if err == nil {
		return nil, false
	}
	if errors.Is(err, context.Canceled) {
		return err, false
	}
	var redir *RedirectError
	if errors.As(err, &redir) {
		// Before noAnswer: the *url.Error around it is a net.Error.
		return redir, false
	}
	var ce *cloudError
	if errors.As(err, &ce) {
		// Kept whole: the source it names is what the operator must fix.
		return err, ce.transient()
	}
	var re *api.ResponseError
	if !errors.As(err, &re) {
		var certErr *tls.CertificateVerificationError
		var unknownCA x509.UnknownAuthorityError
		var hostErr x509.HostnameError
		switch {
		case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr):
			// A wrong CA or server name does not fix itself: fail at once.
			return fmt.Errorf("%w: %w", ErrTLS, stripURL(err)), false
		case noAnswer(err):
			// Connection refused, resets, timeouts: the network or a restarting Vault.
			return stripURL(err), true
		default:
			// Our own sentinels and *Error, unreadable files, malformed replies.
			return err, false
		}
	}
	msg := vaultMessage(re.Errors)
	switch {
	case re.StatusCode == http.StatusForbidden:
		if msg == "" || msg == ErrPermissionDenied.Error() {
			return ErrPermissionDenied, false
		}
		return fmt.Errorf("%w (vault: %s)", ErrPermissionDenied, msg), false
	case re.StatusCode == http.StatusNotFound:
		return ErrNotFound, false
	case re.StatusCode == http.StatusTooManyRequests, re.StatusCode == http.StatusPreconditionFailed,
		re.StatusCode >= 500:
		return fmt.Errorf("vault returned %d: %s", re.StatusCode, msg), true
	case re.StatusCode == http.StatusBadRequest && leaseGone(re.Errors):
		// After a restart or on a lagging standby Vault may not know a lease
		// yet; the credential is still valid until its known expiry.
		return fmt.Errorf("vault returned 400: %s", msg), true
	default:
		return fmt.Errorf("%w: %d: %s", ErrUnsupported, re.StatusCode, msg), false
	}
}

// leaseGone recognises Vault's "lease not found" replies, which carry no
// error code to branch on.
func leaseGone(msgs []string) bool {
	for _, m := range msgs {
		m = strings.ToLower(m)
		if strings.Contains(m, "lease not found") || strings.Contains(m, "invalid lease") {
			return true
		}
	}
	return false
}

// stripURL drops the request URL from url.Error: paths are not secret but
// the message is shorter and stable without it.
func stripURL(err error) error {
	type unwrapper interface{ Unwrap() error }
	var ue interface {
		error
		Timeout() bool
	}
	if errors.As(err, &ue) {
		if u, ok := ue.(unwrapper); ok && u.Unwrap() != nil {
			return u.Unwrap()
		}
	}
	return err
}

// vaultMessage flattens Vault's error list, which nests go-multierror text
// ("2 errors occurred:\n\t* permission denied\n\t* invalid token").
func vaultMessage(errs []string) string {
	var parts []string
	for _, e := range errs {
		for _, line := range strings.Split(e, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasSuffix(line, "errors occurred:") || strings.HasSuffix(line, "error occurred:") {
				continue
			}
			parts = append(parts, strings.TrimPrefix(line, "* "))
		}
	}
	return strings.Join(parts, "; ")
}
