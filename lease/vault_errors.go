package lease

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/vault/api"
)

// noAnswer reports that a request got no HTTP answer from Vault: refused,
// reset, timed out. Vault being unreachable, any other request would fail
// the same way.
func noAnswer(err error) bool {
	var re *api.ResponseError
	if err == nil || errors.As(err, &re) {
		return false
	}
	if errors.As(err, new(*fs.PathError)) {
		// A file leash reads (a role_id, secret_id, JWT or token file),
		// which waiting does not bring back; its syscall.Errno would pass
		// for a net.Error below.
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
	if errors.Is(err, ErrTooLarge) {
		// Also inside a *url.Error when the Content-Length said so. An
		// answer did come: asking again brings the same one.
		return stripURL(err), false
	}
	var ce *cloudError
	if errors.As(err, &ce) {
		// Kept whole: the source it names is what the operator must fix.
		return err, ce.transient()
	}
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return classifyTransport(err)
	}
	return classifyResponse(re)
}

// classifyTransport is classify for an error without an HTTP answer.
func classifyTransport(err error) (out error, transient bool) {
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

// classifyResponse is classify for Vault's error answer re.
func classifyResponse(re *api.ResponseError) (out error, transient bool) {
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
// the message is shorter and stable without it. A file error is kept
// whole: *fs.PathError has a Timeout method too, and its path (a role_id
// or secret_id file) is what the operator must fix.
func stripURL(err error) error {
	if errors.As(err, new(*fs.PathError)) {
		return err
	}
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
// ("2 errors occurred:\n\t* permission denied\n\t* invalid token"), into
// one printable line of at most maxVaultMessage bytes (see printable).
func vaultMessage(errs []string) string {
	return printable(joinVaultErrors(errs), maxVaultMessage)
}

// maxVaultMessage bounds the part of Vault's error text leash repeats:
// Vault's own messages are a line or two.
const maxVaultMessage = 1024

// printable escapes what a terminal or log viewer would act on, control
// characters (C0, DEL, C1), Unicode format characters (bidirectional
// overrides) and invalid UTF-8, as \xNN or \uNNNN, and cuts s after max
// bytes. Vault's error messages end up in leash's log, and whatever
// answers at VAULT_ADDR writes them: an ESC sequence in one would clear or
// rewrite an operator's terminal, a 64 MiB one fill the log.
func printable(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if b.Len() >= max {
			fmt.Fprintf(&b, "... (%d bytes more)", len(s)-i)
			break
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case r < 0x80 && unicode.IsControl(r):
			fmt.Fprintf(&b, "\\x%02x", r)
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func joinVaultErrors(errs []string) string {
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
