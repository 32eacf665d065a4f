package status

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The audit line's bytes are what the chain hashes: the field order and
// names of Record must not change, or older trails stop matching the
// records leash writes today (leash audit verify stays byte-compatible).
func TestRecordBytes(t *testing.T) {
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	b, err := json.Marshal(Record{Run: "r", Seq: 2, Prev: "p", Time: at, Event: "issued", Name: "db", Outputs: []string{"db.json"},
		Path: "database/creds/app", Lease: "fp", TTL: 60, Expires: at.Add(time.Minute), Outcome: OutcomeOK})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"run":"r","seq":2,"prev":"p","time":"2026-12-03T12:00:00Z","event":"issued","name":"db","outputs":["db.json"],"path":"database/creds/app","lease":"fp","ttl_seconds":60,"expires":"2026-12-03T12:01:00Z","outcome":"ok"}`
	if string(b) != want {
		t.Errorf("record\n%s\nwant\n%s", b, want)
	}
	// op (failed records only) came later, between expires and outcome:
	// records without one keep their bytes.
	b, err = json.Marshal(Record{Run: "r", Seq: 3, Prev: "p", Time: at, Event: "failed", Name: "db", Lease: "fp", Op: "renew", Outcome: OutcomeError, Error: "e"})
	if err != nil {
		t.Fatal(err)
	}
	const wantFailed = `{"run":"r","seq":3,"prev":"p","time":"2026-12-03T12:00:00Z","event":"failed","name":"db","lease":"fp","op":"renew","outcome":"error","error":"e"}`
	if string(b) != wantFailed {
		t.Errorf("record\n%s\nwant\n%s", b, wantFailed)
	}
}

// What the Recorder writes to its audit file verifies, keyed and not; a
// re-read that found nothing new is not in it.
func TestRecorderAuditVerifies(t *testing.T) {
	for _, key := range [][]byte{nil, bytes.Repeat([]byte("k"), MinAuditKey)} {
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		f, err := OpenAuditFile(path)
		if err != nil {
			t.Fatal(err)
		}
		r, err := New(Config{AuditFile: f, AuditKey: key, Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		r.LeaseEvent(LeaseEvent{Time: now, Kind: KindIssued, ID: "db", Fingerprint: "fp", TTL: time.Minute, ExpiresAt: now.Add(time.Minute)})
		r.LeaseEvent(LeaseEvent{Time: now, Kind: KindUnchanged, ID: "kv"})
		r.LeaseEvent(LeaseEvent{Time: now, Kind: KindFailed, ID: "db", Fingerprint: "fp", Op: "renew", Err: "connection refused"})
		r.StaleDirRemoved("/dev/shm/leash-1")
		r.ChildStarted(nil)
		r.ControlRefused(errors.New("uid 65534 is neither leash's uid 0 nor root"))
		r.Reloaded(errors.New("no such process"))
		r.ChildExited(nil)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var events []string
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			var rec Record
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatal(err)
			}
			ev := rec.Event + ":" + rec.Outcome
			if rec.Op != "" || rec.Path != "" {
				ev += ":" + rec.Op + rec.Path
			}
			events = append(events, ev)
		}
		want := "audit_start:ok issued:ok failed:error:renew stale_dir_removed:ok:/dev/shm/leash-1 child_start:ok control_refused:error child_reload:error child_exit:ok audit_end:ok"
		if got := strings.Join(events, " "); got != want {
			t.Errorf("events %s, want %s", got, want)
		}
		runs, _, err := Verify(bytes.NewReader(raw), key, "")
		if err != nil || len(runs) != 1 || runs[0].Records != 9 || !runs[0].Ended {
			t.Errorf("Verify = %+v, %v", runs, err)
		}
	}
}

// Health: starting until delivered, down without a child or after a failed
// rotation, and down when a failing lease is about to be lost.
func TestRecorderHealth(t *testing.T) {
	r, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	want := func(ok bool, why string) {
		t.Helper()
		if gotOK, gotWhy := r.Health(); gotOK != ok || !strings.Contains(gotWhy, why) {
			t.Errorf("Health = %t %q, want %t %q", gotOK, gotWhy, ok, why)
		}
	}
	want(false, "starting")
	r.Delivered()
	want(false, "child is not running")
	r.ChildStarted(nil)
	want(true, "ok")
	r.RotationFailed(true)
	want(false, "rotation")
	r.RotationFailed(false)
	r.LeaseEvent(LeaseEvent{Time: now, Kind: KindIssued, ID: "db", Fingerprint: "fp", TTL: 90 * time.Second, ExpiresAt: now.Add(90 * time.Second)})
	r.LeaseEvent(LeaseEvent{Time: now, Kind: KindFailed, ID: "db", Op: "renew"})
	want(true, "ok") // one failure, 90s of 90s left
	now = now.Add(70 * time.Second)
	want(false, "lease db (fp) is failing and expires in 20s")
	r.LeaseEvent(LeaseEvent{Time: now, Kind: KindRenewed, ID: "db", TTL: 90 * time.Second, ExpiresAt: now.Add(90 * time.Second)})
	want(true, "ok")
	r.ChildExited(nil)
	want(false, "child is not running")
}

func TestRecorderMetrics(t *testing.T) {
	r, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Unix(1800000000, 0)
	r.LeaseEvent(LeaseEvent{Kind: KindIssued, ID: "db", Path: "database/creds/app", Outputs: []string{"a", "b"}, Fingerprint: "fp", ExpiresAt: exp})
	r.LeaseEvent(LeaseEvent{Kind: KindRenewed, ID: "db", Outputs: []string{"a", "b"}, ExpiresAt: exp})
	r.LeaseEvent(LeaseEvent{Kind: KindFailed, Op: "login"})
	r.Restarted(nil)
	r.Restarted(errors.New("failed"))
	r.Request(3 * time.Millisecond)
	var b strings.Builder
	r.WriteMetrics(&b)
	for _, line := range []string{
		MetricLeaseExpiry + `{name="db",outputs="a,b",path="database/creds/app"} 1.8e+09`,
		MetricRenewals + `{name="db",outputs="a,b"} 1`,
		MetricFailures + `{name="",outputs="",op="login"} 1`,
		MetricChildRestarts + ` 1`,
		"# TYPE " + MetricChildReloads + " counter",
		MetricVaultRequestDuration + `_bucket{le="0.005"} 1`,
		MetricVaultRequestDuration + `_count 1`,
	} {
		if !strings.Contains(b.String(), line+"\n") {
			t.Errorf("metrics lack %q:\n%s", line, b.String())
		}
	}
}
