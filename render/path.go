package render

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// DefaultPathMode is the mode of an [Output.Path] file when Output.Mode is
// zero: readable by its owner only.
const DefaultPathMode os.FileMode = 0o400

// exactFile is an output also written at a path the user chose (Vault
// Agent's template destination). leash keeps its directory open, so a
// rename of the directory after the check cannot move later writes
// elsewhere.
type exactFile struct {
	path string
	dir  *os.File
	base string
	mode os.FileMode
	// written: leash put a file at path, which Close removes.
	written bool
}

// openExact checks where output o's Path goes: an absolute, clean path
// whose directory exists and is on tmpfs or ramfs unless allowDisk.
func openExact(o Output, allowDisk bool) (*exactFile, error) {
	p := o.Path
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
		return nil, fmt.Errorf("output %q: path %q must be absolute and clean", o.Name, p)
	}
	if o.Mode&^0o777 != 0 {
		return nil, fmt.Errorf("output %q: mode %#o: only permission bits (0-0777) are allowed", o.Name, uint32(o.Mode))
	}
	mode := o.Mode
	if mode == 0 {
		mode = DefaultPathMode
	}
	f, err := openPathDir(p, allowDisk)
	if err != nil {
		return nil, fmt.Errorf("output %q: %w", o.Name, err)
	}
	return &exactFile{path: p, dir: f, base: filepath.Base(p), mode: mode}, nil
}

// CheckPath reports whether an [Output.Path] at path would be accepted
// without AllowDisk: its directory exists and is on tmpfs or ramfs. Main
// uses it to name the config line of a refused path.
func CheckPath(path string) error {
	f, err := openPathDir(path, false)
	if err != nil {
		return err
	}
	return f.Close()
}

func openPathDir(path string, allowDisk bool) (*os.File, error) {
	dir := filepath.Dir(path)
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("directory of %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), dir)
	if _, err := checkMemoryFS(dir, fd, allowDisk, "the secret would reach disk; mount a tmpfs there (Kubernetes: emptyDir with medium Memory) or allow disk explicitly"); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// write replaces the file with b atomically, as privateDir.write does: a
// fresh O_EXCL|O_NOFOLLOW temporary file in the same directory, set to the
// mode and owner, renamed over the path. A reader sees the old bytes or the
// new ones, never a mix.
func (e *exactFile) write(b []byte, uid, gid int) error {
	dfd := int(e.dir.Fd())
	tmp := ".leash-" + e.base + "-" + randomHex(8)
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o400)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Join(e.dir.Name(), tmp), err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	err = func() error {
		if uid != -1 || gid != -1 {
			if err := f.Chown(uid, gid); err != nil {
				return err
			}
		}
		if _, err := f.Write(b); err != nil {
			return err
		}
		// Explicitly, since the umask applies to the create only.
		if err := f.Chmod(e.mode); err != nil {
			return err
		}
		return f.Close()
	}()
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, e.base)
	}
	if err != nil {
		f.Close()
		unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("write %s: %w", e.path, err)
	}
	e.written = true
	return nil
}

// remove truncates and deletes the file leash wrote, so the secret does not
// outlive leash on the file system; a file leash did not write is left.
func (e *exactFile) remove() error {
	defer e.dir.Close()
	if !e.written {
		return nil
	}
	dfd := int(e.dir.Fd())
	// Truncate only a regular file with one link: whatever replaced leash's
	// file is not leash's to empty.
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, e.base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("remove %s: %w", e.path, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 1 {
		if fd, err := unix.Openat(dfd, e.base, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
			unix.Ftruncate(fd, 0)
			unix.Close(fd)
		}
	}
	if err := unix.Unlinkat(dfd, e.base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s: %w", e.path, err)
	}
	return nil
}
