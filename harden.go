package main

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// lockMemory keeps leash's pages, current and future, out of swap (--mlock).
func lockMemory() error {
	err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE)
	if errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EPERM) {
		var lim unix.Rlimit
		_ = unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim)
		return fmt.Errorf("--mlock: locking leash's memory failed (%v): RLIMIT_MEMLOCK is %d bytes; raise it (ulimit -l, LimitMEMLOCK= in systemd, --ulimit memlock= in Docker) or grant CAP_IPC_LOCK", err, lim.Cur)
	}
	if errors.Is(err, unix.ENOSYS) {
		return errors.New("--mlock: not available on this system (it has no mlockall)")
	}
	if err != nil {
		return fmt.Errorf("--mlock: mlockall: %w", err)
	}
	return nil
}
