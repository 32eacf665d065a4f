package status

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// syslogServer is a system log of the test's: a Unix datagram socket it
// listens on (journald and rsyslog do not run in this sandbox).
type syslogServer struct {
	path string
	conn *net.UnixConn
}

func listenSyslog(t *testing.T, path string) *syslogServer {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &syslogServer{path: path, conn: c}
}

// next returns the next message, failing the test after a generous wait.
func (s *syslogServer) next(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	_ = s.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := s.conn.Read(buf)
	if err != nil {
		t.Fatalf("syslog read: %v", err)
	}
	return string(buf[:n])
}

var syslogMessage = regexp.MustCompile(`^<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\S+) leash (\d+) audit - (\{.*\})$`)

// Every audit record reaches the system log as an RFC 5424 message whose
// MSG is the record's exact line in the file: the messages verify as a
// chain of their own. An error outcome is a warning.
func TestSyslogSink(t *testing.T) {
	dir := t.TempDir()
	srv := listenSyslog(t, filepath.Join(dir, "log"))
	sl, err := DialSyslog(srv.path)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.jsonl")
	f, err := OpenAuditFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{AuditFile: f, Syslog: sl})
	if err != nil {
		t.Fatal(err)
	}
	r.LeaseEvent(LeaseEvent{Time: time.Now(), Kind: KindIssued, ID: "db", Fingerprint: "fp"})
	r.ChildStarted(errors.New("exec: no such file"))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(file), "\n"), "\n")
	var msgs []string
	for i, line := range lines {
		m := syslogMessage.FindStringSubmatch(srv.next(t))
		if m == nil {
			t.Fatalf("message %d is not RFC 5424 with leash's fields", i)
		}
		pri := "86" // authpriv.info
		if strings.Contains(line, `"outcome":"error"`) {
			pri = "84" // authpriv.warning
		}
		if m[1] != pri || m[4] != strconv.Itoa(os.Getpid()) {
			t.Errorf("message %d: PRI %s, PROCID %s; want %s, %d", i, m[1], m[4], pri, os.Getpid())
		}
		if m[5] != line {
			t.Errorf("message %d carries\n%s\nthe file has\n%s", i, m[5], line)
		}
		msgs = append(msgs, m[5])
	}
	if len(lines) != 4 {
		t.Errorf("%d records, want 4 (audit_start, issued, child_start, audit_end)", len(lines))
	}
	if _, _, err := Verify(strings.NewReader(strings.Join(msgs, "\n")), nil, ""); err != nil {
		t.Errorf("the system log's copy does not verify: %v", err)
	}
}

// A system log that takes nothing (its queue is full) never holds leash
// up: records beyond the bounded queue are dropped and counted, and Close
// gives up on the rest within its drain deadline.
func TestSyslogNeverBlocks(t *testing.T) {
	srv := listenSyslog(t, filepath.Join(t.TempDir(), "log")) // never read
	sl, err := dialSyslog(srv.path, 8)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Syslog: sl})
	if err != nil {
		t.Fatal(err)
	}
	// More than the kernel queues for an unread datagram socket
	// (net.unix.max_dgram_qlen, 512 by default) and leash's queue.
	const n = 3000
	start := time.Now()
	for range n {
		r.Reloaded(nil)
	}
	// Were each record written in turn, the ones past the kernel's queue
	// would take a second each (the write deadline).
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("%d records took %s", n, d)
	}
	var b bytes.Buffer
	r.WriteMetrics(&b)
	m := regexp.MustCompile(regexp.QuoteMeta(MetricAuditDropped+`{sink="syslog"} `) + `(\d+)`).FindStringSubmatch(b.String())
	if m == nil {
		t.Fatalf("no dropped-records count:\n%s", b.String())
	}
	if dropped, _ := strconv.Atoi(m[1]); dropped < n-600 {
		t.Errorf("%d records dropped of %d", dropped, n)
	}
	start = time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Close took %s", d)
	}
}

// A system log that goes away and comes back (journald restarted) gets
// the records written after it is back: the sink dials again.
func TestSyslogRedials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	srv := listenSyslog(t, path)
	sl, err := DialSyslog(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Syslog: sl})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if m := srv.next(t); !strings.Contains(m, `"event":"audit_start"`) {
		t.Fatalf("first message %q", m)
	}
	srv.conn.Close()
	os.Remove(path)
	srv = listenSyslog(t, path)
	for {
		r.Drill(nil) // until one reaches the new socket
		if m := srv.next(t); strings.Contains(m, `"event":"drill"`) {
			break
		}
	}
}

func TestSyslogAddr(t *testing.T) {
	for _, addr := range []string{"localhost:514", "tcp://localhost:514", "udp://nohost", "relative/log"} {
		if s, err := DialSyslog(addr); err == nil {
			s.Close()
			t.Errorf("DialSyslog(%q) accepted it", addr)
		} else if !strings.Contains(err.Error(), "--audit-syslog-addr") {
			t.Errorf("DialSyslog(%q) = %v, want the flag named", addr, err)
		}
	}
	if _, err := DialSyslog(filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "is a system log") {
		t.Errorf("no socket: %v", err)
	}
	// UDP: the listener receives the messages.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	sl, err := DialSyslog("udp://" + pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Syslog: sl})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	_ = pc.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil || !syslogMessage.Match(buf[:n]) {
		t.Errorf("udp: %q, %v", buf[:n], err)
	}
	r.Close()
}
