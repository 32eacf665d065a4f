package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// What differs on Linux: memfd delivery is the default, and nothing needs
// saying at start-up.
const (
	defaultDelivery = "memfd"
	platformNotice  = ""
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

// socketPeerUID returns the uid of the process at the other end of the
// Unix socket fd (SO_PEERCRED).
func socketPeerUID(fd int) (int, error) {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return -1, err
	}
	return int(cred.Uid), nil
}
