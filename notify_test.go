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
// child runs with its credentials and STOPPING=1 once it has exited, and
// the child does not inherit the variable. The receiving end is a datagram
// socket of the test's: systemd, the real service manager, does not run in
// this sandbox. Both address forms systemd uses are tried.
func TestNotifySocket(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 1)
	const secret = "notify-secret-Xr8"
	srv.Write(t, kv+"/app", map[string]any{"k": secret})
	for name, addr := range map[string]string{
		"path":     filepath.Join(t.TempDir(), "notify"),
		"abstract": "@leash-test-notify-" + strconv.FormatInt(time.Now().UnixNano(), 36),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			recv := func(want string) {
				t.Helper()
				// A bound, not a synchronisation: the datagram is the event.
				l.SetReadDeadline(time.Now().Add(30 * time.Second))
				buf := make([]byte, 4096)
				n, err := l.Read(buf)
				if err != nil {
					t.Fatalf("no notification, want %s: %v", want, err)
				}
				got := string(buf[:n])
				if !strings.Contains("\n"+got+"\n", "\n"+want+"\n") {
					t.Fatalf("notification %q, want %s", got, want)
				}
				if strings.Contains(got, secret) {
					t.Fatalf("the secret is in a notification: %q", got)
				}
			}
			cmd := leashCmd(t, "-s", "k="+kv+"/app#k", "--", "sh", "-c", `echo "child ${NOTIFY_SOCKET:-unset} $(cat "$K_FILE")"; read x; exit 0`)
			cmd.Env = append(cmd.Env, vaultEnv(srv.Addr, srv.RootToken)...)
			cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+addr)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			recv("READY=1")
			newLineReader(t, stdout).expect("child unset " + secret)
			stdin.Close() // the child exits 0
			recv("STOPPING=1")
			if err := cmd.Wait(); err != nil {
				t.Fatalf("leash: %v; stderr:\n%s", err, stderr.String())
			}
		})
	}
}
