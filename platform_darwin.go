package main

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// What differs on macOS, for local development: there is no memfd, so dir
// delivery (under $TMPDIR, on disk) is the default, and leash says once
// at start-up what it cannot do there. render logs where the files are
// and that they are encrypted at rest only if FileVault is on.
const (
	defaultDelivery = "dir"
	platformNotice  = "macOS: no memfd, tmpfs, child subreaper, PID-1 reaping or parent-death signal; secrets go to files on disk (see README, Platforms)"
)

// harden is not available on macOS: it has no PR_SET_DUMPABLE. Core dumps
// are off unless ulimit -c and /cores allow them, and reading another
// process's memory takes task_for_pid, which macOS restricts. The error
// wraps [errors.ErrUnsupported].
func harden() error {
	return fmt.Errorf("non-dumpable process: not available on macOS: %w", errors.ErrUnsupported)
}

// socketPeerUID returns the uid of the process at the other end of the
// Unix socket fd (LOCAL_PEERCRED).
func socketPeerUID(fd int) (int, error) {
	cred, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil {
		return -1, err
	}
	return int(cred.Uid), nil
}
