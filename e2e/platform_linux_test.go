package e2e

import (
	"errors"
	"os"
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

// memDir returns an empty directory on a file system of its own in
// memory, as a Kubernetes emptyDir with medium Memory is: a tmpfs mounted
// for the test when it runs as root (and may mount), else a directory
// under /dev/shm when that is a tmpfs. Otherwise the test is skipped.
func memDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=4m,mode=0700")
		if err == nil {
			// Registered after TempDir's removal, so it runs before it.
			t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
			return dir
		}
		t.Logf("mount a tmpfs: %v; trying /dev/shm", err)
	}
	if onDiskFS("/dev/shm") {
		t.Skip("not root (or may not mount), and /dev/shm is not a tmpfs: no memory file system to write to")
	}
	dir, err := os.MkdirTemp("/dev/shm", "leash-test-")
	if err != nil {
		t.Skipf("no directory under /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
