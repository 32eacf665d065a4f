package testchild

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// waitAll is wait4's flag for any kind of child (also clones).
const waitAll = unix.WALL

// blockSignals blocks sigs in the calling thread.
func blockSignals(sigs []syscall.Signal) error {
	var set unix.Sigset_t
	for _, s := range sigs {
		set.Val[(s-1)/64] |= 1 << ((uint(s) - 1) % 64)
	}
	return unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil)
}
