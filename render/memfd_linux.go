package render

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// memfdAvailable reports why Memfd mode cannot be used here: never on Linux.
func memfdAvailable() error { return nil }

// memfd is one output's memory file: rw is leash's read-write descriptor
// (memfd_create always returns O_RDWR); ro is a read-only open of the same
// inode, the one the child inherits.
type memfd struct {
	rw, ro *os.File
	sealed bool
	mlock  bool   // keep the pages mapped and locked in memory
	mapped []byte // the locked read-only mapping; nil when not locked or empty
}

// newMemfd creates memfd "leash:NAME" holding b, mode 0400, owned by
// uid:gid (-1 keeps leash's). With seal, writes and growth are sealed
// (F_SEAL_WRITE|F_SEAL_GROW) so no one, root included, can change the bytes;
// shrinking stays possible so close can empty it. Both descriptors are
// close-on-exec in leash; exec.Cmd.ExtraFiles clears that in the child.
func newMemfd(name string, b []byte, uid, gid int, seal, mlock bool) (*memfd, error) {
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
	m := &memfd{rw: os.NewFile(uintptr(fd), "leash:"+name), sealed: seal, mlock: mlock}
	if err := m.fill(b, uid, gid); err != nil {
		m.unlock()
		m.rw.Close()
		if m.ro != nil {
			m.ro.Close()
		}
		return nil, err
	}
	return m, nil
}

// lock maps the memfd's n bytes read-only and locks them, so the secret's
// shmem pages are never written to swap (--mlock). mlockall alone does not
// cover them: leash writes memfds with write(2) and never maps them.
func (m *memfd) lock(n int) error {
	m.unlock()
	if !m.mlock || n == 0 {
		return nil
	}
	b, err := unix.Mmap(int(m.rw.Fd()), 0, n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map memfd: %w", err)
	}
	if err := unix.Mlock(b); err != nil {
		unix.Munmap(b)
		return fmt.Errorf("lock memfd pages (raise RLIMIT_MEMLOCK or grant CAP_IPC_LOCK): %w", err)
	}
	m.mapped = b
	return nil
}

func (m *memfd) unlock() {
	if m.mapped != nil {
		unix.Munmap(m.mapped) // also unlocks
		m.mapped = nil
	}
}

func (m *memfd) fill(b []byte, uid, gid int) error {
	if _, err := m.rw.WriteAt(b, 0); err != nil {
		return fmt.Errorf("write memfd: %w", err)
	}
	// Re-opening through /proc gives a new, read-only open file
	// description; done before chmod/chown so it works for any owner.
	ro, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(m.rw.Fd())), os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("open memfd read-only: %w", err)
	}
	m.ro = ro
	if err := m.rw.Chmod(0o400); err != nil {
		return fmt.Errorf("chmod memfd: %w", err)
	}
	if uid != -1 || gid != -1 {
		if err := m.rw.Chown(uid, gid); err != nil {
			return fmt.Errorf("chown memfd to %d:%d: %w", uid, gid, err)
		}
	}
	if m.sealed {
		if _, err := unix.FcntlInt(m.rw.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW); err != nil {
			return fmt.Errorf("seal memfd: %w", err)
		}
	}
	return m.lock(len(b))
}

// rewrite replaces the content of an unsealed memfd in place: write the
// new bytes from offset 0, then cut the file to their length. When it
// returns, a reader that opens /dev/fd/N (or preads from 0) sees exactly b;
// a reader racing with it may see a mix (measured in TestInPlaceTornReads).
func (m *memfd) rewrite(b []byte) error {
	if _, err := m.rw.WriteAt(b, 0); err != nil {
		return fmt.Errorf("rewrite memfd: %w", err)
	}
	if err := m.rw.Truncate(int64(len(b))); err != nil {
		return fmt.Errorf("truncate memfd: %w", err)
	}
	return m.lock(len(b))
}

// close empties the memfd, so processes still holding an inherited copy
// read nothing, and closes leash's descriptors.
func (m *memfd) close() error {
	m.unlock()
	terr := m.rw.Truncate(0)
	cerr := errors.Join(m.rw.Close(), m.ro.Close())
	if terr != nil {
		return fmt.Errorf("truncate memfd: %w", terr)
	}
	return cerr
}
