package e2e

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The few syscalls the tests need that differ between Linux and macOS
// (platform_linux_test.go). Compiled in CI with GOOS=darwin; there is no
// Mac to run them on.

// onDiskFS reports whether path is on disk: always, on macOS.
func onDiskFS(string) bool { return true }

// memDir skips: macOS has no tmpfs for a test to write to.
func memDir(t testing.TB) string {
	t.Helper()
	t.Skip("macOS has no tmpfs or ramfs")
	return ""
}

// pidGone waits until pid has exited, with a kqueue NOTE_EXIT event.
func pidGone(t testing.TB, pid int, limit time.Duration) bool {
	t.Helper()
	kq, err := unix.Kqueue()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(kq)
	ev := []unix.Kevent_t{{Ident: uint64(pid), Filter: unix.EVFILT_PROC, Flags: unix.EV_ADD | unix.EV_ONESHOT, Fflags: unix.NOTE_EXIT}}
	if _, err := unix.Kevent(kq, ev, nil, nil); err != nil {
		return errors.Is(err, unix.ESRCH)
	}
	ts := unix.NsecToTimespec(limit.Nanoseconds())
	out := make([]unix.Kevent_t, 1)
	for {
		n, err := unix.Kevent(kq, nil, out, &ts)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n == 1
	}
}
