package main

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// notifyVars are the service manager's variables for systemd's Type=notify
// protocol (sd_notify(3), sd_watchdog_enabled(3)). They are addressed to
// leash: the child does not inherit them, so it cannot report a readiness,
// a stop or a watchdog ping that is leash's to report.
var notifyVars = []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}

// notifier sends state changes to the service manager; the zero value (no
// socket) sends nothing.
type notifier struct{ addr string }

func newNotifier() notifier { return notifier{addr: os.Getenv("NOTIFY_SOCKET")} }

// watchdogInterval is how often to send WATCHDOG=1: half of WATCHDOG_USEC,
// as sd_watchdog_enabled(3) advises, or 0 when the service manager asked
// for no watchdog, or asked it of another process.
func (n notifier) watchdogInterval() time.Duration {
	usec, err := strconv.ParseUint(os.Getenv("WATCHDOG_USEC"), 10, 53)
	if n.addr == "" || err != nil || usec == 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// notify sends one datagram of newline-separated KEY=VALUE assignments.
// A path or an abstract name ("@...") works; systemd's vsock addresses
// are not supported.
func (n notifier) notify(state string) error {
	if n.addr == "" {
		return nil
	}
	if !strings.HasPrefix(n.addr, "/") && !strings.HasPrefix(n.addr, "@") {
		return errors.New("NOTIFY_SOCKET " + n.addr + ": only a socket path or an @abstract name is supported")
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	// supervise's loop sends the watchdog pings: a full socket queue must
	// not hold up signal forwarding.
	if err := c.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	_, err = c.Write([]byte(state))
	return err
}
