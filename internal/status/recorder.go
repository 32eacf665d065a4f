// Package status is leash's record of what happened and what holds now:
// the lease table, health, Prometheus metrics, the hash-chained audit
// trail (a file and the system log are its sinks), the status server that
// serves them read-only, and systemd's notify protocol.
//
// It sits beside the flow, not in it: package main feeds a Recorder with
// lease events (converted from lease.Event, as no package imports a
// sibling) and with what the run loop did to the child; nothing here
// decides anything. No value the Recorder holds or writes is secret:
// leases are named by fingerprint, errors by their text, which names paths.
package status

import (
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// The lease event kinds the Recorder tells apart: the values of
// lease.EventKind (main's tests keep the two in step).
const (
	KindIssued    = "issued"
	KindRenewed   = "renewed"
	KindRotated   = "rotated"
	KindChanged   = "changed"
	KindUnchanged = "unchanged" // a re-read that found nothing new: state only, not audited
	KindFailed    = "failed"
	KindLost      = "lost"
	KindDropped   = "dropped" // no template asks for it any more
)

// LeaseEvent is one lease manager event, field for field lease.Event's.
type LeaseEvent struct {
	Time        time.Time
	Kind        string        // a lease.EventKind
	ID, Path    string        // the secret; ID is "" for token events
	Outputs     []string      // the output names the user chose that it feeds
	Fingerprint string        // "" without a lease
	TTL         time.Duration // lease duration after the event
	ExpiresAt   time.Time     // zero: never
	Next        time.Time     // next renewal, hand-over or re-read
	Rotation    time.Time     // static role: Vault's next rotation
	Op          string        // failed: the operation
	Err         string        // failed: the error text (never secret)
}

// Lease is one row of the lease table (/v1/leases): state only, never
// secret data.
type Lease struct {
	Name    string   `json:"name"`
	Outputs []string `json:"outputs"` // the outputs the user named (-s NAME=..., -t NAME=...)
	Path    string   `json:"path"`
	// Kind is "lease" (renewed or replaced before it expires), "static"
	// (a static role: Vault rotates it at NextRotation) or "secret" (no
	// lease: a KV secret, a certificate without one; read again at
	// NextRead).
	Kind         string    `json:"kind"`
	Fingerprint  string    `json:"fingerprint,omitempty"`
	Issued       time.Time `json:"issued"`
	Expires      time.Time `json:"expires,omitzero"`
	NextRenewal  time.Time `json:"next_renewal,omitzero"`  // a lease's next renewal or hand-over
	NextRead     time.Time `json:"next_read,omitzero"`     // no lease: when leash reads it again
	NextRotation time.Time `json:"next_rotation,omitzero"` // static role: when Vault rotates it
	TTL          float64   `json:"ttl_seconds"`
	Renewals     int       `json:"renewals"`
	Failures     int       `json:"failures"`
	failing      bool      // failed since the last success
}

// Config configures a Recorder. The zero value records state and metrics
// and audits nothing.
type Config struct {
	// Logger gets each audit record at info level (the stderr copy that
	// lets an operator rebuild a tail cut off the file; a level above info
	// turns it off) and sink failures; nil: none.
	Logger hclog.Logger
	// AuditFile receives every audit record, one JSON line each
	// (OpenAuditFile); nil: no file. The Recorder closes it.
	AuditFile *os.File
	// Syslog receives every audit record too (DialSyslog); nil: none. The
	// Recorder closes it.
	Syslog *Syslog
	// AuditKey makes each link of the chain an HMAC-SHA256 under it
	// (ReadAuditKey); nil: plain SHA-256.
	AuditKey []byte
	// Version is named in each run's audit_start record.
	Version string
}

// Recorder is leash's live state, fed by lease events and the run loop.
// Its methods are safe for concurrent use and never block on I/O other
// than the audit file's append.
type Recorder struct {
	mu         sync.Mutex
	leases     map[string]*Lease // by secret name (Spec.ID)
	delivered  bool              // every secret rendered for the child
	running    bool              // the child runs
	rotateFail bool              // the last rotation could not be applied
	counters   map[string]float64
	latency    histogram
	now        func() time.Time

	audit *audit // nil: no audit sink
}

// New makes a Recorder and, when cfg names an audit sink, starts the
// run's hash chain with its audit_start record. On error it has closed
// cfg's sinks.
func New(cfg Config) (*Recorder, error) {
	r := &Recorder{leases: map[string]*Lease{}, counters: map[string]float64{}, latency: newHistogram(), now: time.Now}
	var sinks []sink
	if cfg.AuditFile != nil {
		sinks = append(sinks, fileSink{cfg.AuditFile})
	}
	if cfg.Syslog != nil {
		log := cfg.Logger
		if log == nil {
			log = hclog.NewNullLogger()
		}
		cfg.Syslog.start(log, func() { r.count(series(MetricAuditDropped, "sink", "syslog")) })
		sinks = append(sinks, cfg.Syslog)
	}
	if len(sinks) == 0 {
		return r, nil
	}
	a, err := newAudit(cfg, sinks, func(sink string) { r.count(series(MetricAuditDropped, "sink", sink)) })
	if err != nil {
		for _, s := range sinks {
			s.close()
		}
		return nil, err
	}
	r.audit = a
	return r, nil
}

// Close ends the run's chain with its audit_end record and closes the
// sinks.
func (r *Recorder) Close() error {
	if r.audit == nil {
		return nil
	}
	return r.audit.close()
}

// unhealthyAfter: consecutive failures that make a lease "about to be lost"
// even while its expiry is still far.
const unhealthyAfter = 3

// LeaseEvent applies a lease event to the table and the metrics, and
// audits it (a re-read that found nothing new is not audited).
func (r *Recorder) LeaseEvent(e LeaseEvent) {
	r.apply(e)
	if e.Kind == KindUnchanged {
		return
	}
	rec := Record{Time: e.Time, Event: e.Kind, Name: e.ID, Outputs: e.Outputs, Path: e.Path, Lease: e.Fingerprint,
		TTL: e.TTL.Seconds(), Expires: e.ExpiresAt, Op: e.Op, Outcome: OutcomeOK}
	if e.Err != "" {
		rec.Outcome, rec.Error = OutcomeError, e.Err
	}
	r.record(rec)
}

func (r *Recorder) apply(e LeaseEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.ID == "" {
		if e.Kind == KindFailed {
			r.counters[series(MetricFailures, "name", "", "outputs", "", "op", e.Op)]++
		}
		return
	}
	if e.Kind == KindDropped {
		delete(r.leases, e.ID)
		return
	}
	l := r.leases[e.ID]
	if l == nil {
		l = &Lease{Name: e.ID, Outputs: e.Outputs, Path: e.Path}
		r.leases[e.ID] = l
	}
	outputs := outputsLabel(e.Outputs)
	switch e.Kind {
	case KindIssued, KindRotated, KindChanged:
		*l = Lease{Name: e.ID, Outputs: e.Outputs, Path: e.Path, Kind: "lease", Fingerprint: e.Fingerprint, Issued: e.Time,
			Expires: e.ExpiresAt, NextRenewal: e.Next, TTL: e.TTL.Seconds()}
		if e.Fingerprint == "" {
			l.Kind, l.NextRenewal, l.NextRead, l.NextRotation = "secret", time.Time{}, e.Next, e.Rotation
			if !e.Rotation.IsZero() {
				l.Kind = "static"
			}
		}
		if e.Kind == KindRotated {
			r.counters[series(MetricRotations, "name", e.ID, "outputs", outputs)]++
		}
	case KindRenewed:
		l.Renewals++
		l.Expires, l.NextRenewal, l.TTL, l.failing = e.ExpiresAt, e.Next, e.TTL.Seconds(), false
		r.counters[series(MetricRenewals, "name", e.ID, "outputs", outputs)]++
	case KindUnchanged:
		l.NextRead, l.failing = e.Next, false
		if !e.Rotation.IsZero() {
			l.NextRotation = e.Rotation
		}
	case KindFailed:
		l.Failures++
		l.failing = true
		r.counters[series(MetricFailures, "name", e.ID, "outputs", outputs, "op", e.Op)]++
	case KindLost:
		l.failing = true
		l.Expires = e.ExpiresAt
	}
}

// Request records the duration of one HTTP request to Vault
// (lease.Config.OnRequest).
func (r *Recorder) Request(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latency.observe(d.Seconds())
}

// Delivered records that every secret has been rendered for the child.
func (r *Recorder) Delivered() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delivered = true
}

// ChildStarted audits the child's start; without err the child runs.
func (r *Recorder) ChildStarted(err error) {
	r.note(EventChildStart, err)
	if err == nil {
		r.setRunning(true)
	}
}

// ChildExited audits the child's exit with leash's result for it (the
// child's failure, or the loss that made leash stop it).
func (r *Recorder) ChildExited(err error) {
	r.setRunning(false)
	r.note(EventChildExit, err)
}

func (r *Recorder) setRunning(running bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running = running
}

// Reloaded audits and counts a reload signal sent to the child after a
// rotation.
func (r *Recorder) Reloaded(err error) {
	r.count(MetricChildReloads)
	r.note(EventChildReload, err)
}

// Restarted audits a restart of the child after a rotation, and counts it
// if it succeeded.
func (r *Recorder) Restarted(err error) {
	if err == nil {
		r.count(MetricChildRestarts)
	}
	r.note(EventChildRestart, err)
}

// RotationFailed records whether the last rotation could not be applied
// (rendering or the restart failed); while it could not, leash is
// unhealthy.
func (r *Recorder) RotationFailed(failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rotateFail = failed
}

// RotateNow audits a hand-over that `leash rotate` asked for, with its
// outcome.
func (r *Recorder) RotateNow(err error) { r.note(EventRotateNow, err) }

// Drill audits a rotation drill (`leash rotate --drill`, --drill-every)
// with its outcome.
func (r *Recorder) Drill(err error) { r.note(EventDrill, err) }

// ControlRefused audits a control request turned down, with why.
func (r *Recorder) ControlRefused(why error) { r.note(EventControlRefused, why) }

// StaleDirRemoved audits the removal of a killed leash's private
// directory at start-up.
func (r *Recorder) StaleDirRemoved(path string) {
	r.record(Record{Time: time.Now(), Event: EventStaleDirRemoved, Path: path, Outcome: OutcomeOK})
}

func (r *Recorder) count(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counters[key]++
}

// Health says whether leash and its child are ready, and why not.
func (r *Recorder) Health() (ok bool, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !r.delivered:
		return false, "starting: secrets not delivered yet"
	case !r.running:
		return false, "the child is not running"
	case r.rotateFail:
		return false, "the last rotation could not be applied"
	}
	now := r.now()
	for _, l := range r.sortedLocked() {
		if !l.failing {
			continue
		}
		left := l.Expires.Sub(now)
		if l.Failures >= unhealthyAfter || (!l.Expires.IsZero() && left < time.Duration(l.TTL*float64(time.Second))/3) {
			return false, fmt.Sprintf("lease %s (%s) is failing and expires in %s", l.Name, l.Fingerprint, left.Round(time.Second))
		}
	}
	return true, "ok"
}

// WatchHealth samples Health every interval until the returned func is
// called, which reports whether it was healthy at every sample and, if
// not, the first reason (a drill's verdict).
func (r *Recorder) WatchHealth(every time.Duration) (stop func() (bool, string)) {
	type result struct {
		ok  bool
		why string
	}
	done, res := make(chan struct{}), make(chan result, 1)
	go func() {
		v := result{ok: true}
		check := func() {
			if ok, why := r.Health(); !ok && v.ok {
				v = result{false, why}
			}
		}
		t := time.NewTicker(every)
		defer t.Stop()
		check()
		for {
			select {
			case <-done:
				check()
				res <- v
				return
			case <-t.C:
				check()
			}
		}
	}()
	return func() (bool, string) {
		close(done)
		v := <-res
		return v.ok, v.why
	}
}

func (r *Recorder) sortedLocked() []Lease {
	out := make([]Lease, 0, len(r.leases))
	for _, l := range r.leases {
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Leases returns the lease table, sorted by name.
func (r *Recorder) Leases() []Lease {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sortedLocked()
}
