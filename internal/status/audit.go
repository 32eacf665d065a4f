package status

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
)

// Record is one line of the audit trail. It names leases by their
// fingerprint (a short SHA-256 of the lease id) and never holds secret data,
// tokens or raw lease ids. The field order is the line's byte order: the
// chain hashes those bytes, so keep it.
//
// Run, Seq and Prev make the trail a hash chain: Prev is the link of the
// record before it in the same run, or of the run id for the run's first
// record (audit_start).
type Record struct {
	Run     string    `json:"run"`
	Seq     uint64    `json:"seq"`
	Prev    string    `json:"prev"`
	Time    time.Time `json:"time"`
	Event   string    `json:"event"` // a lease.EventKind or one of the Event constants
	Name    string    `json:"name,omitempty"`
	Outputs []string  `json:"outputs,omitempty"` // the outputs the user named that the secret feeds
	Path    string    `json:"path,omitempty"`
	Lease   string    `json:"lease,omitempty"`
	TTL     float64   `json:"ttl_seconds,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	Op      string    `json:"op,omitempty"` // failed: the operation (renew, rotate, refresh, login, renew token, retire, revoke)
	Outcome string    `json:"outcome"`      // OutcomeOK or OutcomeError
	Error   string    `json:"error,omitempty"`
	// Chain, Version and PID are set in audit_start only.
	Chain   string `json:"chain,omitempty"`
	Version string `json:"version,omitempty"`
	PID     int    `json:"pid,omitempty"`
}

// The audit trail's own events, beside the lease event kinds: the first
// and last record of a run, the child's lifecycle and forced hand-overs.
// They are the trail's vocabulary: keep them stable.
const (
	EventStart        = "audit_start"
	EventEnd          = "audit_end"
	EventChildStart   = "child_start"
	EventChildExit    = "child_exit"
	EventChildReload  = "child_reload"
	EventChildRestart = "child_restart"
	EventRotateNow    = "rotate_now" // leash rotate
	EventDrill        = "drill"      // leash rotate --drill, --drill-every
	// EventControlRefused: the control socket turned a request down (a
	// peer that is neither leash's user nor root, or a malformed request);
	// its error says why. Nothing was rotated.
	EventControlRefused = "control_refused"
	// EventStaleDirRemoved: a private directory of a leash that was
	// killed (--delivery dir) was removed at start-up; path names it.
	EventStaleDirRemoved = "stale_dir_removed"
)

// Record outcomes.
const (
	OutcomeOK    = "ok"
	OutcomeError = "error"
)

// Link kinds, as audit_start names them.
const (
	ChainSHA256 = "sha256"
	ChainHMAC   = "hmac-sha256"
)

// chain computes the links of one run's hash chain: SHA-256 of the
// previous record's exact bytes (the line without its newline), or
// HMAC-SHA256 with the key of --audit-key-file, so that a reader without
// the key cannot recompute a consistent chain after an edit.
type chain struct {
	h hash.Hash
}

func newChain(key []byte) chain {
	if key != nil {
		return chain{h: hmac.New(sha256.New, key)}
	}
	return chain{h: sha256.New()}
}

func (c chain) link(b []byte) string {
	c.h.Reset()
	c.h.Write(b)
	return hex.EncodeToString(c.h.Sum(nil))
}

func chainName(key []byte) string {
	if key != nil {
		return ChainHMAC
	}
	return ChainSHA256
}

// sink is where audit records go: the file, the system log.
type sink interface {
	name() string // the sink label of MetricAuditDropped
	// write takes one record and its encoding (without a newline); an
	// error means the record did not reach the sink.
	write(rec *Record, line []byte) error
	close() error
}

// fileSink appends records to --audit-file.
type fileSink struct{ f *os.File }

func (s fileSink) name() string { return "file" }

func (s fileSink) write(_ *Record, line []byte) error {
	if _, err := s.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("writing the audit file failed: %w", err)
	}
	return nil
}

func (s fileSink) close() error { return s.f.Close() }

// audit chains records and hands them to its sinks.
type audit struct {
	log    hclog.Logger
	onDrop func(sink string) // counts a record a sink did not take

	mu     sync.Mutex // guards the fields below and serialises writes
	sinks  []sink     // nil once closed
	chain  chain
	run    string // this run's random id
	seq    uint64 // of the last record written
	prev   string // link of the last record written
	failed []bool // by sink: its last write failed (logged once until it succeeds)
}

func newAudit(cfg Config, sinks []sink, onDrop func(sink string)) (*audit, error) {
	a := &audit{log: cfg.Logger, onDrop: onDrop, sinks: sinks, failed: make([]bool, len(sinks))}
	if a.log == nil {
		a.log = hclog.NewNullLogger()
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("audit run id: %w", err)
	}
	a.run = hex.EncodeToString(id[:])
	a.chain = newChain(cfg.AuditKey)
	a.prev = a.chain.link([]byte(a.run))
	a.write(Record{Time: time.Now(), Event: EventStart, Outcome: OutcomeOK,
		Chain: chainName(cfg.AuditKey), Version: cfg.Version, PID: os.Getpid()})
	return a, nil
}

// note records one of leash's own events with its outcome.
func (r *Recorder) note(event string, err error) {
	rec := Record{Time: time.Now(), Event: event, Outcome: OutcomeOK}
	if err != nil {
		rec.Outcome, rec.Error = OutcomeError, err.Error()
	}
	r.record(rec)
}

func (r *Recorder) record(rec Record) {
	if r.audit != nil {
		r.audit.write(rec)
	}
}

// write chains rec to the run and hands it to every sink. A failed write
// leaves a gap that `leash audit verify` reports: the chain continues from
// the record as it should have been written, never pretends it was not.
func (a *audit) write(rec Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sinks == nil {
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
	// The stderr copy lets an operator rebuild a tail cut off the file. It
	// is an info line, so not logged at --log-level warn or above.
	a.log.Info("record", "record", string(b))
	for i, s := range a.sinks {
		err := s.write(&rec, b)
		if err != nil {
			a.onDrop(s.name())
			if !a.failed[i] {
				a.log.Error("an audit record was not written", "error", err)
			}
		}
		a.failed[i] = err != nil
	}
}

// close ends the run with its audit_end record and closes the sinks.
func (a *audit) close() error {
	a.write(Record{Time: time.Now(), Event: EventEnd, Outcome: OutcomeOK})
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for _, s := range a.sinks {
		errs = append(errs, s.close())
	}
	a.sinks = nil
	return errors.Join(errs...)
}

// OpenAuditFile opens (creates, 0600) the audit file for appending. It
// refuses a symlink, anything but a regular file, and a file that others
// can read: the trail proves what happened, so it must not be something
// another user planted or can rewrite. It takes an exclusive lock for as
// long as leash runs: two leashes interleaving their records would make
// runs unverifiable one by one. "" opens nothing.
func OpenAuditFile(path string) (*os.File, error) {
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
		return nil, fmt.Errorf("%s %s: not a regular file (%s); give the path of a regular file", flag, path, fileKind(statFileMode(uint32(st.Mode))))
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

// MinAuditKey is the shortest --audit-key-file accepted: a key shorter
// than HMAC-SHA256's 32-byte output weakens it (RFC 2104, section 3).
const MinAuditKey = 32

// ReadAuditKey reads --audit-key-file once. The key is the file's bytes
// without a trailing newline. The file must be private to leash's uid:
// whoever can read the key can forge the chain. "" reads nothing.
func ReadAuditKey(path string) ([]byte, error) {
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
	if len(key) < MinAuditKey {
		return nil, fmt.Errorf("--audit-key-file %s: %d bytes, want at least %d (e.g. openssl rand -hex 32 > %s)", path, len(key), MinAuditKey, path)
	}
	return key, nil
}
