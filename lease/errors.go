package lease

import (
	"errors"
	"fmt"
	"strings"
	"time"
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
	// ErrTooLarge: Vault's answer was longer than Config.MaxResponse (exit
	// 78 in main). The rest of it was not read.
	ErrTooLarge = errors.New("vault's answer is too large")
	// ErrWrapPathMismatch: the secret_id file's wrapping token was created
	// elsewhere than AuthConfig.SecretIDWrapPath (it may have been
	// intercepted and replaced). It is also an ErrPermissionDenied.
	ErrWrapPathMismatch = fmt.Errorf("%w: wrapping token created at another path", ErrPermissionDenied)
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
