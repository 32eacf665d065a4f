package main

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// harden protects leash's own memory, which holds the Vault token and the
// secrets it renders: no core dumps, no ptrace or /proc/PID/mem reads by
// other processes of the same user. The child is not affected: the kernel
// resets the dumpable flag on execve.
//
// RLIMIT_CORE is deliberately left alone: a non-dumpable process never
// dumps core, and the limit would be inherited by the child across execve.
func harden() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	return nil
}

// lockMemory keeps leash's pages, current and future, out of swap (--mlock).
func lockMemory() error {
	err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE)
	if errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EPERM) {
		var lim unix.Rlimit
		_ = unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim)
		return fmt.Errorf("--mlock: locking leash's memory failed (%v): RLIMIT_MEMLOCK is %d bytes; raise it (ulimit -l, LimitMEMLOCK= in systemd, --ulimit memlock= in Docker) or grant CAP_IPC_LOCK", err, lim.Cur)
	}
	if err != nil {
		return fmt.Errorf("--mlock: mlockall: %w", err)
	}
	return nil
}
