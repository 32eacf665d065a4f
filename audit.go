package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/leash-dev/leash/lease"
)

// auditRecord is one line of the audit trail. It names leases by their
// fingerprint (a short SHA-256 of the lease id) and never holds secret data,
// tokens or raw lease ids.
type auditRecord struct {
	Time    time.Time `json:"time"`
	Event   string    `json:"event"`
	Name    string    `json:"name,omitempty"`
	Path    string    `json:"path,omitempty"`
	Lease   string    `json:"lease,omitempty"`
	TTL     float64   `json:"ttl_seconds,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	Outcome string    `json:"outcome"`
	Error   string    `json:"error,omitempty"`
}

// auditor records every lease and child event: always as a structured log
// line, and as a JSON line in --audit-file when set.
type auditor struct {
	log    hclog.Logger
	mu     sync.Mutex // serialises writes to f
	f      *os.File   // nil without --audit-file
	status *status
}

// openAudit opens (creates, 0600) the audit file for appending. It refuses
// a symlink and a file that others can read: the trail proves what happened,
// so it must not be something another user planted or can rewrite.
func openAudit(path string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--audit-file %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("--audit-file %s: %w", path, err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		f.Close()
		return nil, fmt.Errorf("--audit-file %s: not a regular file", path)
	case fi.Mode().Perm()&0o077 != 0:
		f.Close()
		return nil, fmt.Errorf("--audit-file %s: mode %04o lets other users read or write it; chmod 600", path, fi.Mode().Perm())
	case st != nil && int(st.Uid) != os.Geteuid():
		f.Close()
		return nil, fmt.Errorf("--audit-file %s: owned by uid %d, not by leash's uid %d", path, st.Uid, os.Geteuid())
	}
	return f, nil
}

// leaseEvent is the lease manager's event hook.
func (a *auditor) leaseEvent(e lease.Event) {
	if a.status != nil {
		a.status.event(e)
	}
	rec := auditRecord{Time: e.Time, Event: string(e.Kind), Name: e.ID, Path: e.Path, Lease: e.Fingerprint,
		TTL: e.TTL.Seconds(), Expires: e.ExpiresAt, Outcome: "ok"}
	if e.Err != "" {
		rec.Outcome, rec.Error = "error", e.Err
	}
	a.write(rec)
}

// childEvent records a child lifecycle event (start, reload, restart,
// exit) with its outcome in the audit file. The log lines for these come
// from the supervisor and the run loop.
func (a *auditor) childEvent(event string, err error) {
	rec := auditRecord{Time: time.Now(), Event: "child_" + event, Outcome: "ok"}
	if err != nil {
		rec.Outcome, rec.Error = "error", err.Error()
	}
	a.write(rec)
}

func (a *auditor) write(rec auditRecord) {
	if a.f == nil {
		return
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.f.Write(append(b, '\n')); err != nil {
		a.log.Error("writing the audit file failed", "error", err)
	}
}

func (a *auditor) close() error {
	if a.f == nil {
		return nil
	}
	return a.f.Close()
}
