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
// a symlink, anything but a regular file, and a file that others can read:
// the trail proves what happened, so it must not be something another user
// planted or can rewrite. The open is non-blocking, so a FIFO or a device at
// the path is refused at once: a blocking open of a FIFO waits for a reader,
// in a system call that no signal ends.
func openAudit(path string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_APPEND|syscall.O_CREAT|syscall.O_NOFOLLOW|
		syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && !fi.Mode().IsRegular() {
			// ENXIO (a FIFO without a reader), ELOOP (a symlink): say what
			// is there instead.
			return nil, fmt.Errorf("--audit-file %s: not a regular file (%s); give the path of a regular file", path, fileKind(fi.Mode()))
		}
		return nil, fmt.Errorf("--audit-file %s: %w", path, &os.PathError{Op: "open", Path: path, Err: err})
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("--audit-file %s: %w", path, &os.PathError{Op: "fstat", Path: path, Err: err})
	}
	mode := os.FileMode(st.Mode & 0o777)
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		syscall.Close(fd)
		return nil, fmt.Errorf("--audit-file %s: not a regular file (%s); give the path of a regular file", path, fileKind(statFileMode(st.Mode)))
	case mode&0o077 != 0:
		syscall.Close(fd)
		return nil, fmt.Errorf("--audit-file %s: mode %04o lets other users read or write it; chmod 600", path, mode)
	case int(st.Uid) != os.Geteuid():
		syscall.Close(fd)
		return nil, fmt.Errorf("--audit-file %s: owned by uid %d, not by leash's uid %d", path, st.Uid, os.Geteuid())
	}
	// Writes to a regular file never return EAGAIN, but clear the flag so
	// the descriptor is the plain blocking one os.File expects.
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("--audit-file %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// statFileMode turns a stat(2) type into the os.FileMode type bits.
func statFileMode(m uint32) os.FileMode {
	switch m & syscall.S_IFMT {
	case syscall.S_IFIFO:
		return os.ModeNamedPipe
	case syscall.S_IFCHR:
		return os.ModeDevice | os.ModeCharDevice
	case syscall.S_IFBLK:
		return os.ModeDevice
	case syscall.S_IFSOCK:
		return os.ModeSocket
	case syscall.S_IFDIR:
		return os.ModeDir
	case syscall.S_IFLNK:
		return os.ModeSymlink
	}
	return os.ModeIrregular
}

// fileKind names a non-regular file type for an error.
func fileKind(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDir != 0:
		return "a directory"
	case m&os.ModeSymlink != 0:
		return "a symlink"
	}
	return "an irregular file"
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
