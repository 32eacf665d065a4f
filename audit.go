package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
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
//
// Run, Seq and Prev make the trail a hash chain (see auditChain): Prev is
// the link of the record before it in the same run, or of the run id for
// the run's first record (audit_start).
type auditRecord struct {
	Run     string    `json:"run"`
	Seq     uint64    `json:"seq"`
	Prev    string    `json:"prev"`
	Time    time.Time `json:"time"`
	Event   string    `json:"event"`
	Name    string    `json:"name,omitempty"`
	Outputs []string  `json:"outputs,omitempty"` // the outputs the user named that the secret feeds
	Path    string    `json:"path,omitempty"`
	Lease   string    `json:"lease,omitempty"`
	TTL     float64   `json:"ttl_seconds,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	Outcome string    `json:"outcome"`
	Error   string    `json:"error,omitempty"`
	// Chain, Version and PID are set in audit_start only.
	Chain   string `json:"chain,omitempty"`
	Version string `json:"version,omitempty"`
	PID     int    `json:"pid,omitempty"`
}

// The audit trail's own events: the first and the last record of a run.
const (
	auditStart = "audit_start"
	auditEnd   = "audit_end"
)

// Link kinds, as audit_start names them.
const (
	chainSHA256 = "sha256"
	chainHMAC   = "hmac-sha256"
)

// auditChain computes the links of one run's hash chain: SHA-256 of the
// previous record's exact bytes (the line without its newline), or
// HMAC-SHA256 with the key of --audit-key-file, so that a reader without
// the key cannot recompute a consistent chain after an edit.
type auditChain struct {
	h hash.Hash
}

func newAuditChain(key []byte) auditChain {
	if key != nil {
		return auditChain{h: hmac.New(sha256.New, key)}
	}
	return auditChain{h: sha256.New()}
}

func (c auditChain) link(b []byte) string {
	c.h.Reset()
	c.h.Write(b)
	return hex.EncodeToString(c.h.Sum(nil))
}

func chainName(key []byte) string {
	if key != nil {
		return chainHMAC
	}
	return chainSHA256
}

// auditor records every lease and child event as a chained JSON record:
// appended to --audit-file and logged on stderr. Without --audit-file it
// records nothing (the lease manager logs its own events either way).
type auditor struct {
	log    hclog.Logger
	status *status

	mu    sync.Mutex // guards the fields below and serialises writes
	f     *os.File   // nil: auditing is off
	chain auditChain
	run   string // this run's random id
	seq   uint64 // of the last record written
	prev  string // link of the last record written
}

// newAuditor starts a run's chain on f with its audit_start record. f nil
// makes an auditor that only feeds st. key nil makes plain SHA-256 links.
func newAuditor(log hclog.Logger, st *status, f *os.File, key []byte) (*auditor, error) {
	a := &auditor{log: log, status: st, f: f}
	if f == nil {
		return a, nil
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("audit run id: %w", err)
	}
	a.run = hex.EncodeToString(id[:])
	a.chain = newAuditChain(key)
	a.prev = a.chain.link([]byte(a.run))
	a.write(auditRecord{Time: time.Now(), Event: auditStart, Outcome: "ok",
		Chain: chainName(key), Version: version, PID: os.Getpid()})
	return a, nil
}

// openAudit opens (creates, 0600) the audit file for appending. It refuses
// a symlink, anything but a regular file, and a file that others can read:
// the trail proves what happened, so it must not be something another user
// planted or can rewrite. It takes an exclusive lock for as long as leash
// runs: two leashes interleaving their records would make runs
// unverifiable one by one.
func openAudit(path string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	f, err := openPrivate("--audit-file", path, syscall.O_WRONLY|syscall.O_APPEND|syscall.O_CREAT)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("--audit-file %s: another leash is writing to it; give each leash its own file", path)
		}
		return nil, fmt.Errorf("--audit-file %s: lock: %w", path, err)
	}
	return f, nil
}

// openPrivate opens path, named by flag in errors, with flags (O_CREAT
// creates it 0600), and refuses a symlink, anything but a regular file, a
// file others can read or write, and one of another uid. The open is
// non-blocking, so a FIFO or a device at the path is refused at once: a
// blocking open of a FIFO waits for a reader, in a system call that no
// signal ends.
func openPrivate(flag, path string, flags int) (*os.File, error) {
	fd, err := syscall.Open(path, flags|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && !fi.Mode().IsRegular() {
			// ENXIO (a FIFO without a reader), ELOOP (a symlink): say what
			// is there instead.
			return nil, fmt.Errorf("%s %s: not a regular file (%s); give the path of a regular file", flag, path, fileKind(fi.Mode()))
		}
		return nil, fmt.Errorf("%s %s: %w", flag, path, &os.PathError{Op: "open", Path: path, Err: err})
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("%s %s: %w", flag, path, &os.PathError{Op: "fstat", Path: path, Err: err})
	}
	mode := os.FileMode(st.Mode & 0o777)
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		syscall.Close(fd)
		return nil, fmt.Errorf("%s %s: not a regular file (%s); give the path of a regular file", flag, path, fileKind(statFileMode(st.Mode)))
	case mode&0o077 != 0:
		syscall.Close(fd)
		return nil, fmt.Errorf("%s %s: mode %04o lets other users read or write it; chmod 600", flag, path, mode)
	case int(st.Uid) != os.Geteuid():
		syscall.Close(fd)
		return nil, fmt.Errorf("%s %s: owned by uid %d, not by leash's uid %d", flag, path, st.Uid, os.Geteuid())
	}
	// I/O on a regular file never returns EAGAIN, but clear the flag so
	// the descriptor is the plain blocking one os.File expects.
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
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

// minAuditKey is the shortest --audit-key-file accepted: a key shorter
// than HMAC-SHA256's 32-byte output weakens it (RFC 2104, section 3).
const minAuditKey = 32

// readAuditKey reads --audit-key-file once. The key is the file's bytes
// without a trailing newline. The file must be private to leash's uid:
// whoever can read the key can forge the chain.
func readAuditKey(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	f, err := openPrivate("--audit-key-file", path, syscall.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	key, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("--audit-key-file %s: %w", path, err)
	}
	for len(key) > 0 && (key[len(key)-1] == '\n' || key[len(key)-1] == '\r') {
		key = key[:len(key)-1]
	}
	if len(key) < minAuditKey {
		return nil, fmt.Errorf("--audit-key-file %s: %d bytes, want at least %d (e.g. openssl rand -hex 32 > %s)", path, len(key), minAuditKey, path)
	}
	return key, nil
}

// leaseEvent is the lease manager's event hook.
func (a *auditor) leaseEvent(e lease.Event) {
	if a.status != nil {
		a.status.event(e)
	}
	if e.Kind == lease.EventUnchanged {
		return // a re-read that found nothing new: status only
	}
	rec := auditRecord{Time: e.Time, Event: string(e.Kind), Name: e.ID, Outputs: e.Outputs, Path: e.Path, Lease: e.Fingerprint,
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
	a.note("child_"+event, err)
}

// note records one of leash's own events (a child event, rotate_now,
// drill) with its outcome.
func (a *auditor) note(event string, err error) {
	rec := auditRecord{Time: time.Now(), Event: event, Outcome: "ok"}
	if err != nil {
		rec.Outcome, rec.Error = "error", err.Error()
	}
	a.write(rec)
}

// write chains rec to the run, appends it and logs it. A failed write
// leaves a gap that `leash audit verify` reports: the chain continues from
// the record as it should have been written, never pretends it was not.
func (a *auditor) write(rec auditRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return
	}
	a.seq++
	rec.Run, rec.Seq, rec.Prev = a.run, a.seq, a.prev
	b, err := json.Marshal(rec)
	if err != nil {
		a.log.Error("encoding an audit record failed", "error", err)
		return
	}
	a.prev = a.chain.link(b)
	// The stderr copy lets an operator rebuild a tail cut off the file.
	a.log.Info("record", "record", string(b))
	if _, err := a.f.Write(append(b, '\n')); err != nil {
		a.log.Error("writing the audit file failed", "error", err)
	}
}

// close ends the run with its audit_end record and closes the file.
func (a *auditor) close() error {
	a.write(auditRecord{Time: time.Now(), Event: auditEnd, Outcome: "ok"})
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}
