package main

import (
	"errors"
	"net"
	"os"
	"strings"
)

// notifySocketVar names the service manager's notification socket
// (systemd's Type=notify protocol, sd_notify(3)). It is addressed to leash:
// the child does not inherit it, so it cannot report a readiness or a stop
// that is leash's to report.
const notifySocketVar = "NOTIFY_SOCKET"

// notifier sends state changes to the service manager; the zero value (no
// socket) sends nothing.
type notifier struct{ addr string }

func newNotifier() notifier { return notifier{addr: os.Getenv(notifySocketVar)} }

// notify sends one datagram of newline-separated KEY=VALUE assignments.
// A path or an abstract name ("@...") works; systemd's vsock addresses
// are not supported.
func (n notifier) notify(state string) error {
	if n.addr == "" {
		return nil
	}
	if !strings.HasPrefix(n.addr, "/") && !strings.HasPrefix(n.addr, "@") {
		return errors.New(notifySocketVar + " " + n.addr + ": only a socket path or an @abstract name is supported")
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// withoutVar returns env without the variable name.
func withoutVar(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != name {
			out = append(out, kv)
		}
	}
	return out
}
