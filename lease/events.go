package lease

import "time"

// EventKind names what happened to a lease or to leash's token. The names
// are the audit trail's vocabulary: keep them stable.
type EventKind string

// Event kinds.
const (
	EventLogin   EventKind = "login"   // leash logged in (or again)
	EventIssued  EventKind = "issued"  // a new credential (at start, at rotation, a changed static secret)
	EventRenewed EventKind = "renewed" // a lease was extended
	EventRotated EventKind = "rotated" // a new credential replaced one before it expired
	EventChanged EventKind = "changed" // a static secret's content changed
	// EventUnchanged: a secret without a lease was read again and had not
	// changed (a KV refresh, a static role Vault has not rotated yet). It
	// moves the next read; main keeps it out of the audit trail, where
	// each refresh would be noise.
	EventUnchanged EventKind = "unchanged"
	EventRetired   EventKind = "retired" // an old lease was revoked after the hand-over
	// EventDropped: templates no longer ask for the secret (a path
	// computed from a value that changed); it is no longer renewed or
	// re-read, and its lease is retired once the child has switched.
	EventDropped EventKind = "dropped"
	EventRevoked EventKind = "revoked" // a held lease was revoked at shutdown (leash's own token, and a lease revoked with it, are only logged)
	EventFailed  EventKind = "failed"  // a Vault operation failed (it is retried)
	EventLost    EventKind = "lost"    // a credential expired with no replacement
	// EventKept: past its hand-over point a lease's renewal got no answer
	// from Vault, so leash keeps the lease and renews again rather than
	// fetch a new credential, which Vault could not issue either
	// (vault#10918). Next is the next renewal.
	EventKept EventKind = "kept"
)

// Event is one lease event, for the audit trail, health and metrics. It
// never holds secret data, a token or a raw lease id.
type Event struct {
	Time        time.Time
	Kind        EventKind
	ID, Path    string        // the Spec; ID is "" for token events
	Outputs     []string      // the Spec's Outputs: the names the user chose
	Fingerprint string        // the lease's fingerprint ("" without a lease)
	TTL         time.Duration // lease duration after the event
	ExpiresAt   time.Time     // when the credential stops working (zero: never)
	Next        time.Time     // next renewal, hand-over or re-read (zero: none planned)
	Rotation    time.Time     // static role: when Vault rotates its credential next (else zero)
	Op          string        // failed: the operation (renew, rotate, refresh, login, renew token, retire, revoke)
	Err         string        // failed: the error text, which names paths, never secrets
}
