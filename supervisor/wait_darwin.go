package supervisor

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setParentDeathSignal does nothing: a parent-death signal is not
// available on macOS. Every way out of leash that it controls stops the
// child's process group first (the caller waits for Run, and the group's
// remainder gets StopSignal once the child exits); a leash that is
// SIGKILLed or crashes leaves its child running there.
func setParentDeathSignal(*syscall.SysProcAttr) {}

// awaitExit returns once c has exited, and reports whether it gave the
// child the terminal. Stops go to onStop. macOS's waitid is unreliable
// (golang.org/issue/19314), so there is no WNOWAIT: awaitExit reaps the
// child with wait4 and keeps its result in c.exit for reap. The pid is
// then free before the rest of the group is signalled, and a ChildOnly
// signal racing the exit could, in the microseconds before c is marked
// dead, reach a process that reused the pid.
func (s *Supervisor) awaitExit(c *child) (handed bool) {
	for {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(c.pid, &ws, syscall.WUNTRACED, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			c.exit = fmt.Errorf("wait for child: %w", err)
			return handed
		}
		if ws.Stopped() {
			if s.onStop(c, ws.StopSignal()) {
				handed = true
			}
			continue
		}
		c.exit = waitResult(ws)
		c.cmd.Process.Release() // reaped: os must not signal or wait for the pid
		return handed
	}
}

// reap returns the result awaitExit reaped.
func (s *Supervisor) reap(c *child) error {
	return c.exit
}

// stopSelf stops leash. macOS has no tgkill, but a stop signal suspends
// the whole task (XNU's stop() calls task_suspend) before the calling
// thread returns to user space, so this thread does not run on either.
func stopSelf() {
	_ = unix.Kill(unix.Getpid(), unix.SIGSTOP)
}

// reclaimTerminal makes leash's group the terminal's foreground group again,
// so whatever runs after leash in the same session can read the terminal. A
// background group calling TIOCSPGRP gets SIGTTOU unless it blocks it; the
// calling thread is locked and exits soon, so blocking there is harmless.
// x/sys/unix has no pthread_sigmask for macOS; XNU's sigprocmask system
// call sets the calling thread's mask, as pthread_sigmask does.
func reclaimTerminal() {
	const sigBlock = 1 // SIG_BLOCK, <sys/signal.h>
	set := uint32(1) << (uint(unix.SIGTTOU) - 1)
	if _, _, errno := unix.Syscall(unix.SYS_SIGPROCMASK, sigBlock, uintptr(unsafe.Pointer(&set)), 0); errno != 0 {
		return
	}
	_ = unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, unix.Getpgrp())
}
