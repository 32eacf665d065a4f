package render

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// newMemfd creates memfd "leash:NAME" holding b, mode 0400, owned by
// uid:gid (-1 keeps leash's). With seal, writes and growth are sealed
// (F_SEAL_WRITE|F_SEAL_GROW) so no one, root included, can change the bytes;
// shrinking stays possible so closeMemfd can empty it. The descriptor is
// close-on-exec in leash; exec.Cmd.ExtraFiles clears that in the child.
func newMemfd(name string, b []byte, uid, gid int, seal bool) (*os.File, error) {
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate("leash:"+name, flags|unix.MFD_NOEXEC_SEAL)
	if errors.Is(err, unix.EINVAL) {
		// MFD_NOEXEC_SEAL needs Linux 6.3; without it the memfd merely has
		// exec bits we drop with fchmod.
		fd, err = unix.MemfdCreate("leash:"+name, flags)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "leash:"+name)
	if err := fillMemfd(f, b, uid, gid, seal); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func fillMemfd(f *os.File, b []byte, uid, gid int, seal bool) error {
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("write memfd: %w", err)
	}
	if err := f.Chmod(0o400); err != nil {
		return fmt.Errorf("chmod memfd: %w", err)
	}
	if uid != -1 || gid != -1 {
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("chown memfd to %d:%d: %w", uid, gid, err)
		}
	}
	if !seal {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		_, serr = unix.FcntlInt(fd, unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("seal memfd: %w", serr)
	}
	return nil
}

// rewriteMemfd replaces the content of an unsealed memfd in place: write
// the new bytes from offset 0, then cut the file to their length. When it
// returns, a reader that opens /dev/fd/N (or preads from 0) sees exactly b.
func rewriteMemfd(f *os.File, b []byte) error {
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("rewrite memfd: %w", err)
	}
	if err := f.Truncate(int64(len(b))); err != nil {
		return fmt.Errorf("truncate memfd: %w", err)
	}
	return nil
}

// closeMemfd empties f, so that processes still holding an inherited copy
// read nothing, and closes leash's descriptor.
func closeMemfd(f *os.File) error {
	terr := f.Truncate(0)
	cerr := f.Close()
	if terr != nil {
		return fmt.Errorf("truncate memfd: %w", terr)
	}
	return cerr
}
