package render

import (
	"fmt"
	"time"
)

const redacted = "[redacted]"

// Values holds one secret's fields (a JSON-like tree of map[string]any,
// []any, string, json.Number, bool and nil). It cannot be printed: String,
// GoString, Format and MarshalJSON all produce "[redacted]", so passing it to
// fmt, encoding/json or an hclog logger (text or JSON) leaks nothing.
type Values struct {
	m map[string]any
}

// NewValues wraps m without copying it; the caller must not mutate m
// afterwards (lease's Data.Map already returns a private deep copy).
func NewValues(m map[string]any) Values { return Values{m: m} }

// Len reports the number of top-level fields.
func (v Values) Len() int { return len(v.m) }

// String returns "[redacted]".
func (Values) String() string { return redacted }

// GoString returns "[redacted]".
func (Values) GoString() string { return redacted }

// Format writes "[redacted]" for every verb, including %x and %q.
func (Values) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON returns the JSON string "[redacted]".
func (Values) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "[redacted]" (for encoders that prefer TextMarshaler).
func (Values) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Secret is one fetched credential as render sees it: plain values built by
// package main from a lease.Secret. Secrets passed to Update are keyed by
// lease Spec.ID, which for template `secret` calls is [Ref.ID].
type Secret struct {
	// Data holds the fields: JSON, Field and Dotenv outputs render these
	// (the inner data for KV v2).
	Data Values
	// Raw is the response's data exactly as Vault returned it; templates
	// see it as .Data, so KV v2 templates use .Data.data like Vault Agent.
	Raw Values
	// LeaseDuration is shown to templates as .LeaseDuration in whole
	// seconds, as consul-template does.
	LeaseDuration time.Duration
	// Renewable is shown to templates as .Renewable.
	Renewable bool
	// Version is the KV v2 version, else 0.
	Version int
	// Response is the rest of Vault's answer as lease.Secret.Response has
	// it (request_id, lease_id, lease_duration, renewable, warnings, auth,
	// wrap_info); templates see it as consul-template's .RequestID,
	// .LeaseID, .LeaseDuration, .Renewable, .Warnings, .Auth and .WrapInfo.
	// Without it those come from LeaseDuration and Renewable, the rest empty.
	Response Values
}

// zero overwrites b. Go cannot zero strings or copies the runtime made, so
// this only shortens the life of buffers render itself owns.
func zero(b []byte) {
	clear(b)
}

// buffer is an io.Writer that zeroes its old backing array whenever it
// grows, so rendering leaves no stray copies of secret bytes behind.
type buffer struct {
	b []byte
}

func (w *buffer) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > cap(w.b) {
		n := make([]byte, len(w.b), 2*cap(w.b)+len(p)+64)
		copy(n, w.b)
		zero(w.b[:cap(w.b)])
		w.b = n
	}
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *buffer) WriteString(s string) (int, error) {
	if len(w.b)+len(s) > cap(w.b) {
		n := make([]byte, len(w.b), 2*cap(w.b)+len(s)+64)
		copy(n, w.b)
		zero(w.b[:cap(w.b)])
		w.b = n
	}
	w.b = append(w.b, s...)
	return len(s), nil
}

func (w *buffer) WriteByte(c byte) error {
	_, err := w.Write([]byte{c})
	return err
}

// wipe zeroes and drops the contents.
func (w *buffer) wipe() {
	zero(w.b[:cap(w.b)])
	w.b = nil
}
