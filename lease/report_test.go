package lease

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// report derives the log line from the event: the message from its kind,
// the keys from its fields, at the level its failure calls for; OnEvent
// gets the same event, stamped with the manager's clock.
func TestReportDerivesTheLogLine(t *testing.T) {
	var got []Event
	buf := newLogBuf()
	m, err := New(Config{Env: []string{}, OnEvent: func(e Event) { got = append(got, e) },
		Logger: hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Trace})})
	if err != nil {
		t.Fatal(err)
	}
	m.now = func() time.Time { return t0 }
	exp := t0.Add(time.Hour)
	db := Event{ID: "db", Outputs: []string{"db.json"}, Path: "database/creds/app", Fingerprint: "ab12"}
	with := func(e Event, f func(*Event)) Event { f(&e); return e }
	tests := []struct {
		e     Event
		err   error
		extra []any
		want  string // "" for no line
	}{
		{with(db, func(e *Event) { e.Kind, e.TTL, e.ExpiresAt = EventIssued, time.Hour, exp }), nil, []any{"version", 0},
			"[INFO]  lease issued: name=db outputs=[\"db.json\"] path=database/creds/app lease=ab12 ttl=1h0m0s expires=2026-01-01T01:00:00Z version=0"},
		{Event{Kind: EventIssued, ID: "kv", Path: "secret/app", Next: exp}, nil, nil, "[INFO]  secret read: name=kv outputs=[] path=secret/app next_read=2026-01-01T01:00:00Z"},
		{Event{Kind: EventChanged, ID: "st", Path: "database/static-creds/r", Rotation: exp}, nil, nil,
			"[INFO]  static credential rotated: name=st outputs=[] path=database/static-creds/r next_rotation=2026-01-01T01:00:00Z"},
		{Event{Kind: EventUnchanged, ID: "kv", Path: "secret/app"}, nil, nil, "[TRACE] secret unchanged: name=kv"},
		{Event{Kind: EventUnchanged, ID: "st", Path: "database/static-creds/r", Rotation: exp}, nil, nil, ""},
		{with(db, func(e *Event) { e.Kind = EventRenewed }), nil, nil, "[INFO]  lease renewed: name=db"},
		{with(db, func(e *Event) { e.Op = "renew" }), fmt.Errorf("x: %w", ErrPermissionDenied), []any{"attempt", 1},
			"[ERROR] renew failed: name=db outputs=[\"db.json\"] path=database/creds/app lease=ab12 error=\"x: permission denied\" attempt=1"},
		{with(db, func(e *Event) { e.Op = "renew" }), errors.New("reset"), nil, "[WARN]  renew failed: name=db"},
		{with(db, func(e *Event) { e.Op = "retire" }), ErrPermissionDenied, nil, "[WARN]  retire failed; the lease expires on its own: name=db"},
		{Event{Op: "login", Path: "auth/approle/login"}, ErrPermissionDenied, nil, "[WARN]  login failed: path=auth/approle/login error=\"permission denied\""},
		{Event{Kind: EventLogin, Path: "auth/approle/login", TTL: time.Hour}, nil, nil, "[INFO]  logged in: path=auth/approle/login ttl=1h0m0s"},
		{with(db, func(e *Event) { e.Kind = EventLost }), nil, nil, ""},
		{with(db, func(e *Event) { e.Kind, e.Next = EventKept, exp }), nil, []any{"backoff", "2s"},
			"[DEBUG] vault did not answer; renewing again before trying a new credential: name=db outputs=[\"db.json\"] path=database/creds/app lease=ab12 next=2026-01-01T01:00:00Z backoff=2s"},
	}
	for _, tt := range tests {
		before := buf.String()
		if tt.err != nil {
			m.reportFailure(tt.e, tt.err, tt.extra...)
		} else {
			m.report(tt.e, tt.extra...)
		}
		line := strings.TrimPrefix(buf.String(), before)
		if tt.want == "" {
			if line != "" {
				t.Errorf("%s: logged %q, want nothing", tt.e.Kind, line)
			}
			continue
		}
		if !strings.Contains(line, tt.want) {
			t.Errorf("logged %q, want %q", line, tt.want)
		}
	}
	if len(got) != len(tests) {
		t.Fatalf("OnEvent got %d events, want %d", len(got), len(tests))
	}
	if e := got[6]; e.Kind != EventFailed || e.Err != "x: permission denied" || !e.Time.Equal(t0) {
		t.Errorf("failure event = %+v", e)
	}
}
