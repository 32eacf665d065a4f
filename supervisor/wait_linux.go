package supervisor

import (
	"encoding/binary"
	"errors"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// siginfo codes for SIGCHLD (<asm-generic/siginfo.h>).
const (
	cldStopped = 5
)

// setParentDeathSignal has the kernel SIGKILL the child when leash dies,
// however it dies (SIGKILL, a crash).
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGKILL
}

// awaitExit returns once c has exited, leaving it unreaped, and reports
// whether it gave the child the terminal. Stops go to onStop.
func (s *Supervisor) awaitExit(c *child) (handed bool) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, c.pid, &info, unix.WEXITED|unix.WSTOPPED|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || info.Code != cldStopped {
			return handed
		}
		// Consume the stop report (WNOWAIT left it), without reaping.
		var consumed unix.Siginfo
		for errors.Is(unix.Waitid(unix.P_PID, c.pid, &consumed, unix.WSTOPPED|unix.WNOHANG, nil), unix.EINTR) {
		}
		if s.onStop(c, syscall.Signal(siginfoStatus(&info))) {
			handed = true
		}
	}
}

// reap reaps c, which awaitExit saw exit, and returns its result.
func (s *Supervisor) reap(c *child) error {
	werr := c.cmd.Wait()
	return exitResult(c.cmd.ProcessState, werr)
}

// stopSelf stops leash with SIGSTOP sent to the calling thread itself.
// kill(getpid()) lets the kernel pick any thread, and this one could run
// on before the stop reached it: it would SIGCONT the child while the
// child still had the terminal, leaving a "stopped" job in read() that
// steals the shell's input. A stop sent to the calling thread takes effect
// before tgkill returns (the thread is locked, see waitChild).
func stopSelf() {
	_ = unix.Tgkill(unix.Getpid(), unix.Gettid(), unix.SIGSTOP)
}

// siginfoStatus returns si_status of a SIGCHLD siginfo: after si_pid and
// si_uid in the union, which starts after signo, errno and code, aligned to
// the pointer size.
func siginfoStatus(info *unix.Siginfo) int32 {
	off := 12 + 8
	if unsafe.Sizeof(uintptr(0)) == 8 {
		off = 16 + 8
	}
	b := (*[unsafe.Sizeof(unix.Siginfo{})]byte)(unsafe.Pointer(info))
	return int32(binary.NativeEndian.Uint32(b[off:]))
}

// reclaimTerminal makes leash's group the terminal's foreground group again,
// so whatever runs after leash in the same session can read the terminal. A
// background group calling TIOCSPGRP gets SIGTTOU unless it blocks it; the
// calling thread is locked and exits soon, so blocking there is harmless.
func reclaimTerminal() {
	var set unix.Sigset_t
	set.Val[(unix.SIGTTOU-1)/64] |= 1 << ((uint(unix.SIGTTOU) - 1) % 64)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
		return
	}
	_ = unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, unix.Getpgrp())
}
