package status

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// NotifyVars are the service manager's variables for systemd's Type=notify
// protocol (sd_notify(3), sd_watchdog_enabled(3)). They are addressed to
// leash: the child must not inherit them, so that it cannot report a
// readiness, a stop or a watchdog ping that is leash's to report.
var NotifyVars = []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}

// Notifier sends state changes to the service manager; the zero value (no
// socket) sends nothing.
type Notifier struct {
	// Addr is NOTIFY_SOCKET: a socket path or an @abstract name.
	Addr string
}

// NewNotifier addresses the service manager of $NOTIFY_SOCKET, if any.
func NewNotifier() Notifier { return Notifier{Addr: os.Getenv("NOTIFY_SOCKET")} }

// WatchdogInterval is how often to send WATCHDOG=1: half of WATCHDOG_USEC,
// as sd_watchdog_enabled(3) advises, or 0 when the service manager asked
// for no watchdog, or asked it of another process.
func (n Notifier) WatchdogInterval() time.Duration {
	usec, err := strconv.ParseUint(os.Getenv("WATCHDOG_USEC"), 10, 53)
	if n.Addr == "" || err != nil || usec == 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// Notify sends one datagram of newline-separated KEY=VALUE assignments
// ("READY=1\nSTATUS=..."). systemd's vsock addresses are not supported. A
// full socket queue fails it after a second rather than blocking: the
// watchdog pings come from the loop that forwards signals.
func (n Notifier) Notify(state string) error {
	if n.Addr == "" {
		return nil
	}
	if !strings.HasPrefix(n.Addr, "/") && !strings.HasPrefix(n.Addr, "@") {
		return errors.New("NOTIFY_SOCKET " + n.Addr + ": only a socket path or an @abstract name is supported")
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.Addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	_, err = c.Write([]byte(state))
	return err
}
