package lease

import (
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"
)

// reporter hands the Manager's events to Config.OnEvent and the log. The
// Manager and its parts (tokens, keeper, revoker) share one.
type reporter struct {
	onEvent func(Event) // Config.OnEvent; nil: none
	log     hclog.Logger
	clock   *clock
	ledger  *ledger // whether a snapshot is out: tells a login from a new one
}

// report delivers e to Config.OnEvent, stamped with the manager's clock,
// and logs it: one call, one line, derived from the event (the message
// from its kind, the keys from its fields in a fixed order), so the audit
// trail and the log cannot tell different stories. extra adds key/value
// pairs the event does not carry (version, attempt, backoff). EventLost is
// not logged: Run's caller says why leash stops.
func (r *reporter) report(e Event, extra ...any) {
	e.Time = r.clock.now()
	if r.onEvent != nil {
		r.onEvent(e)
	}
	r.logEvent(e, e.level(nil), extra)
}

// reportFailure reports an EventFailed for err (already classified): a
// permanent failure to keep a credential alive is an error, the rest
// (transient failures, token and clean-up operations) warnings.
func (r *reporter) reportFailure(e Event, err error, extra ...any) {
	e.Kind, e.Err = EventFailed, err.Error()
	e.Time = r.clock.now()
	if r.onEvent != nil {
		r.onEvent(e)
	}
	r.logEvent(e, e.level(err), extra)
}

// level is the log level of e, failed with err (nil unless EventFailed);
// Off: not logged.
func (e Event) level(err error) hclog.Level {
	switch e.Kind {
	case EventLost:
		return hclog.Off
	case EventUnchanged:
		if !e.Rotation.IsZero() {
			return hclog.Off // notRotated says why a static role is read again
		}
		return hclog.Trace
	case EventKept:
		return hclog.Debug // the failed renewal before it is the warning
	case EventFailed:
		permanent := errors.Is(err, ErrPermissionDenied) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnsupported)
		if permanent && e.ID != "" && e.Op != "retire" && e.Op != "revoke" {
			return hclog.Error
		}
		return hclog.Warn
	}
	return hclog.Info
}

func (r *reporter) logEvent(e Event, level hclog.Level, extra []any) {
	if level == hclog.Off || !logs(r.log, level) {
		return
	}
	r.log.Log(level, e.message(r.ledger.published()), e.logArgs(extra)...)
}

// logs reports whether l writes lines of level, so that a quiet logger
// costs no argument lists.
func logs(l hclog.Logger, level hclog.Level) bool {
	switch level {
	case hclog.Trace:
		return l.IsTrace()
	case hclog.Debug:
		return l.IsDebug()
	case hclog.Info:
		return l.IsInfo()
	case hclog.Warn:
		return l.IsWarn()
	}
	return l.IsError()
}

// message is the log message of e; afterStart tells a login from a new
// one. The messages are stable: people and tests search logs for them.
func (e Event) message(afterStart bool) string {
	switch e.Kind {
	case EventLogin:
		if afterStart {
			return "logged in again"
		}
		return "logged in"
	case EventIssued:
		switch {
		case !e.Rotation.IsZero():
			return "static credential read"
		case e.Fingerprint == "":
			return "secret read" // KV, or a certificate without a lease
		}
		return "lease issued"
	case EventChanged:
		if !e.Rotation.IsZero() {
			return "static credential rotated"
		}
		return "secret changed"
	case EventUnchanged:
		return "secret unchanged"
	case EventDropped:
		return "secret no longer used; its lease is revoked once the child has switched"
	case EventKept:
		return "vault did not answer; renewing again before trying a new credential"
	case EventRenewed, EventRotated, EventRetired, EventRevoked, EventLost:
		return "lease " + string(e.Kind)
	case EventFailed:
		if e.Op == "retire" {
			return "retire failed; the lease expires on its own"
		}
		return e.Op + " failed"
	}
	return string(e.Kind)
}

// logArgs are e's fields in the log's key vocabulary, in a fixed order,
// then extra; empty fields are left out.
func (e Event) logArgs(extra []any) []any {
	args := make([]any, 0, 18+len(extra))
	if e.ID != "" {
		args = append(args, "name", e.ID, "outputs", e.Outputs)
	}
	args = append(args, "path", e.Path)
	if e.Fingerprint != "" {
		args = append(args, "lease", e.Fingerprint)
	}
	if e.TTL > 0 {
		args = append(args, "ttl", e.TTL.String())
	}
	if !e.ExpiresAt.IsZero() {
		args = append(args, "expires", fmtTime(e.ExpiresAt))
	}
	if !e.Next.IsZero() {
		key := "next"
		if e.ID != "" && e.Fingerprint == "" {
			key = "next_read" // without a lease there is only reading again
		}
		args = append(args, key, fmtTime(e.Next))
	}
	if !e.Rotation.IsZero() {
		args = append(args, "next_rotation", fmtTime(e.Rotation))
	}
	if e.Err != "" {
		args = append(args, "error", e.Err)
	}
	return append(args, extra...)
}

// event is an event about e's current credential, and keys its log
// lines' leading keys (name, outputs, path) followed by kv.
func (e *entry) event(k EventKind) Event {
	ev := Event{Kind: k, ID: e.spec.ID, Outputs: e.spec.Outputs, Path: e.spec.Path}
	if e.cur != nil {
		ev.Fingerprint = e.cur.Fingerprint
	}
	return ev
}

func (e *entry) keys(kv ...any) []any {
	return append([]any{"name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path}, kv...)
}

// event is an event about the held lease h.
func (h *held) event(k EventKind) Event {
	return Event{Kind: k, ID: h.id, Outputs: h.outputs, Path: h.path, Fingerprint: h.fp}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
