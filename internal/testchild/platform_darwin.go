package testchild

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// waitAll is wait4's flag for any kind of child: macOS has no __WALL.
const waitAll = 0

// blockSignals blocks sigs in the calling thread (XNU's sigprocmask system
// call sets the calling thread's mask). Compiled, never run: no Mac here.
func blockSignals(sigs []syscall.Signal) error {
	const sigBlock = 1 // SIG_BLOCK, <sys/signal.h>
	var set uint32
	for _, s := range sigs {
		set |= 1 << (uint(s) - 1)
	}
	if _, _, errno := unix.Syscall(unix.SYS_SIGPROCMASK, sigBlock, uintptr(unsafe.Pointer(&set)), 0); errno != 0 {
		return errno
	}
	return nil
}
