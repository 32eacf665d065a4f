package main

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
)

// TestNotifySocket: with NOTIFY_SOCKET set, leash reports READY=1 once the
// child runs with its credentials, pings the watchdog every half
// WATCHDOG_USEC when it is addressed to leash, and reports STOPPING=1 once
// the child has exited; the child inherits none of the variables. The
// receiving end is a datagram socket of the test's: systemd, the real
// service manager, does not run in this sandbox. Both address forms
// systemd uses are tried.
func TestNotifySocket(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 1)
	const secret = "notify-secret-Xr8"
	srv.Write(t, kv+"/app", map[string]any{"k": secret})
	for _, tt := range []struct {
		name, addr  string
		watchdogPID string // "" : leash's
		pings       bool
	}{
		{"path", filepath.Join(t.TempDir(), "notify"), "", true},
		{"abstract, watchdog for another process", "@leash-test-notify-" + strconv.FormatInt(time.Now().UnixNano(), 36), "1", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: tt.addr, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			// next returns the next notification; the deadline is a bound,
			// not a synchronisation: the datagram is the event.
			next := func() string {
				t.Helper()
				l.SetReadDeadline(time.Now().Add(30 * time.Second))
				buf := make([]byte, 4096)
				n, err := l.Read(buf)
				if err != nil {
					t.Fatalf("no notification: %v", err)
				}
				got := string(buf[:n])
				if strings.Contains(got, secret) {
					t.Fatalf("the secret is in a notification: %q", got)
				}
				return got
			}
			has := func(msg, line string) bool { return strings.Contains("\n"+msg+"\n", "\n"+line+"\n") }
			cmd := leashCmd(t, "-s", "k="+kv+"/app#k", "--", "sh", "-c",
				`echo "child ${NOTIFY_SOCKET:-unset} ${WATCHDOG_USEC:-unset} ${WATCHDOG_PID:-unset} $(cat "$K_FILE")"; read x; exit 0`)
			cmd.Env = append(cmd.Env, vaultEnv(srv.Addr, srv.RootToken)...)
			cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+tt.addr, "WATCHDOG_USEC=100000")
			if tt.watchdogPID != "" {
				cmd.Env = append(cmd.Env, "WATCHDOG_PID="+tt.watchdogPID)
			}
			stdin, lines, stderr := startPiped(t, cmd)
			if msg := next(); !has(msg, "READY=1") {
				t.Fatalf("first notification %q, want READY=1", msg)
			}
			lines.expect("child unset unset unset " + secret)
			if tt.pings {
				for range 2 {
					if msg := next(); !has(msg, "WATCHDOG=1") {
						t.Fatalf("notification %q, want WATCHDOG=1", msg)
					}
				}
			}
			stdin.Close() // the child exits 0
			for {
				msg := next()
				if has(msg, "STOPPING=1") {
					break
				}
				if !tt.pings || !has(msg, "WATCHDOG=1") {
					t.Fatalf("notification %q, want STOPPING=1", msg)
				}
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("leash: %v; stderr:\n%s", err, stderr.String())
			}
		})
	}
}
