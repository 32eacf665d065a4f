package e2e

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The few syscalls the tests need that differ between Linux and macOS
// (platform_darwin_test.go).

// onDiskFS reports whether path is on neither tmpfs nor ramfs.
func onDiskFS(path string) bool {
	var st unix.Statfs_t
	// Statfs_t.Type is int32 on 32-bit platforms, where RAMFS_MAGIC overflows it.
	return unix.Statfs(path, &st) == nil && uint32(st.Type) != uint32(unix.TMPFS_MAGIC) && uint32(st.Type) != uint32(unix.RAMFS_MAGIC)
}

// pidGone waits until pid has exited, using a pidfd (an event, not a poll).
func pidGone(t testing.TB, pid int, limit time.Duration) bool {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return errors.Is(err, unix.ESRCH)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(limit.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n == 1
	}
}
