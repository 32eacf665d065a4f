package status

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DefaultSyslogAddr is the local system log's socket (journald, rsyslog).
const DefaultSyslogAddr = "/dev/log"

// Syslog is the audit trail's system-log sink (--audit-syslog): every
// record, the same JSON bytes as in the file, becomes one RFC 5424 message
// (facility authpriv, severity info, or warning for an outcome of error;
// APP-NAME leash, MSGID audit), so that the records reach journald or a
// SIEM forwarder without a file. It never blocks leash: records wait in a
// bounded queue for a goroutine of its own, which writes each with a
// deadline; a record that finds the queue full, or that the system log
// does not take, is dropped and counted (MetricAuditDropped{sink="syslog"}).
// The file, when there is one, stays the complete copy.
type Syslog struct {
	network, addr string
	host          string
	queue         chan []byte

	mu      sync.Mutex // guards the fields below
	conn    net.Conn   // nil: to be dialled again
	started bool
	onDrop  func()
	log     hclog.Logger

	drainBy   atomic.Int64 // Unix nanoseconds: Close's deadline; 0 until Close
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

const (
	syslogQueue = 1024
	syslogWrite = time.Second     // per message
	syslogDrain = 2 * time.Second // Close: for what is still queued
	syslogFlag  = "--audit-syslog-addr"
)

// DialSyslog connects to the system log at addr: a Unix datagram socket's
// path ("" is DefaultSyslogAddr) or udp://HOST:PORT. It fails when nothing
// listens there, so that a missing system log is found at start.
func DialSyslog(addr string) (*Syslog, error) {
	return dialSyslog(addr, syslogQueue)
}

func dialSyslog(addr string, queue int) (*Syslog, error) {
	if addr == "" {
		addr = DefaultSyslogAddr
	}
	s := &Syslog{queue: make(chan []byte, queue), done: make(chan struct{}), log: hclog.NewNullLogger(), onDrop: func() {}}
	switch {
	case strings.HasPrefix(addr, "/"):
		s.network, s.addr = "unixgram", addr
	case strings.HasPrefix(addr, "udp://"):
		s.network, s.addr = "udp", strings.TrimPrefix(addr, "udp://")
		if _, _, err := net.SplitHostPort(s.addr); err != nil {
			return nil, fmt.Errorf("%s %s: %w", syslogFlag, addr, err)
		}
	default:
		return nil, fmt.Errorf("%s %q: want the path of a Unix datagram socket (like %s) or udp://HOST:PORT", syslogFlag, addr, DefaultSyslogAddr)
	}
	s.host = "-"
	if h, err := os.Hostname(); err == nil && h != "" {
		s.host = h
	}
	c, err := net.DialTimeout(s.network, s.addr, syslogWrite)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w (is a system log such as journald or rsyslog listening there?)", syslogFlag, addr, err)
	}
	s.conn = c
	return s, nil
}

var errQueueFull = errors.New("the system log's queue is full; record dropped")

// start runs the sender; onDrop counts a record it drops.
func (s *Syslog) start(log hclog.Logger, onDrop func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log, s.onDrop, s.started = log, onDrop, true
	go s.send()
}

func (s *Syslog) name() string { return "syslog" }

// write queues one record's message, or drops it when the queue is full.
func (s *Syslog) write(rec *Record, line []byte) error {
	sev := 6 // info
	if rec.Outcome == OutcomeError {
		sev = 4 // warning
	}
	const authpriv = 10
	msg := fmt.Appendf(nil, "<%d>1 %s %s leash %d audit - %s",
		authpriv*8+sev, rec.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), s.host, os.Getpid(), line)
	select {
	case s.queue <- msg:
		return nil
	default:
		return errQueueFull
	}
}

func (s *Syslog) send() {
	defer close(s.done)
	failing := false
	for msg := range s.queue {
		err := s.deliver(msg)
		if err != nil {
			s.onDrop()
			if !failing {
				s.log.Error("the system log did not take an audit record; dropping records until it does", "error", err)
			}
		} else if failing {
			s.log.Info("the system log takes audit records again")
		}
		failing = err != nil
	}
}

// deliver writes msg, dialling again once if the socket has gone (a
// restarted journald makes a new one).
func (s *Syslog) deliver(msg []byte) error {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		deadline := time.Now().Add(syslogWrite)
		if by := s.drainBy.Load(); by != 0 {
			if time.Now().UnixNano() >= by {
				return errors.New("leash is stopping and the system log is slow")
			}
			deadline = time.Unix(0, min(by, deadline.UnixNano()))
		}
		s.mu.Lock()
		c := s.conn
		s.mu.Unlock()
		if c == nil {
			if c, err = net.DialTimeout(s.network, s.addr, time.Until(deadline)); err != nil {
				continue
			}
			s.mu.Lock()
			s.conn = c
			s.mu.Unlock()
		}
		_ = c.SetWriteDeadline(deadline)
		if _, err = c.Write(msg); err == nil {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return err // full, not gone: dialling again would not help
		}
		c.Close()
		s.mu.Lock()
		s.conn = nil
		s.mu.Unlock()
	}
	return err
}

// close sends what is queued, for at most a couple of seconds, then closes
// the socket. It returns once the sender has exited.
func (s *Syslog) close() error {
	s.closeOnce.Do(func() {
		s.drainBy.Store(time.Now().Add(syslogDrain).UnixNano())
		close(s.queue)
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		if started {
			<-s.done
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.conn != nil {
			s.closeErr = s.conn.Close()
		}
	})
	return s.closeErr
}

// Close closes a Syslog that no Recorder took.
func (s *Syslog) Close() error { return s.close() }
