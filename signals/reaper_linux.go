package signals

import (
	"encoding/binary"
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// reap reaps every zombie it may and reports whether it stopped at one that
// Skip claims.
func (r *Reaper) reap() (claimed bool) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT|unix.WALL, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil { // ECHILD: no children at all
			return false
		}
		pid := siginfoPid(&info)
		if pid == 0 { // children exist, none has exited
			return false
		}
		if r.Skip != nil && r.Skip(pid) {
			return true
		}
		var ws unix.WaitStatus
		for {
			_, err = unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		if err == nil && r.Reaped != nil {
			r.Reaped(pid, ws)
		}
	}
}

// siginfoPid returns si_pid. x/sys/unix leaves siginfo's union opaque; it
// starts after signo, errno and code, aligned to the pointer size.
func siginfoPid(info *unix.Siginfo) int {
	off := 12
	if unsafe.Sizeof(uintptr(0)) == 8 {
		off = 16
	}
	b := (*[unsafe.Sizeof(unix.Siginfo{})]byte)(unsafe.Pointer(info))
	return int(int32(binary.NativeEndian.Uint32(b[off:])))
}
