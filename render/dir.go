package render

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// privateDir is Dir-mode delivery: a fresh directory leash-PID-RANDOM.
// Every operation goes through the directory's descriptor (openat,
// renameat, unlinkat), so once it is open no path component can be swapped
// under leash. The descriptor holds an exclusive flock for the directory's
// lifetime: that lock, not the PID in the name, tells a later leash whether
// the directory is stale (PIDs are reused and differ across PID
// namespaces; a flock is released exactly when its holder dies).
type privateDir struct {
	parent *os.File // the parent, opened O_DIRECTORY|O_NOFOLLOW
	dir    *os.File // the private directory, flocked
	name   string
	path   string
	owner  int // uid expected on files we wrote
	log    hclog.Logger
	// removed names the stale directories cleanStale removed (for the
	// caller's audit trail, which is not open yet when New runs).
	removed []string
}

var staleName = regexp.MustCompile(`^leash-[0-9]+-[0-9a-f]+$`)

func openPrivateDir(opts Options, log hclog.Logger) (*privateDir, error) {
	parentPath := opts.Dir
	if parentPath == "" {
		parentPath = defaultDir()
	}
	parentPath, err := filepath.Abs(parentPath)
	if err != nil {
		return nil, fmt.Errorf("delivery dir %s: %w", parentPath, err)
	}
	parent, disk, err := openParent(parentPath, opts.AllowDisk, opts.UID, opts.GID)
	if err != nil {
		return nil, err
	}
	d := &privateDir{parent: parent, owner: os.Geteuid(), log: log}
	if opts.UID != -1 {
		d.owner = opts.UID
	}
	d.cleanStale()
	if err := d.create(parentPath, opts.UID, opts.GID); err != nil {
		parent.Close()
		return nil, err
	}
	if disk != "" {
		log.Warn("secrets are delivered as files on disk; "+disk, "path", d.path)
	}
	return d, nil
}

// openParent opens the parent directory and refuses one that is a symlink,
// that fails [checkPath], that is (unless allowDisk) not in memory (see
// [checkMemoryFS]), or that the child's user (uid:gid, -1 for leash's own)
// could not enter. disk is checkMemoryFS's warning for a parent on disk.
func openParent(path string, allowDisk bool, uid, gid int) (_ *os.File, disk string, _ error) {
	f, err := openParentDir(path, uid, gid)
	if err != nil {
		return nil, "", err
	}
	disk, err = checkMemoryFS("delivery dir "+path, int(f.Fd()), allowDisk, "secrets would reach disk; use a tmpfs or allow disk explicitly")
	if err != nil {
		f.Close()
		return nil, "", err
	}
	return f, disk, nil
}

func openParentDir(path string, uid, gid int) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil, fmt.Errorf("delivery dir %s is a symlink; give the real path", path)
	}
	euid := os.Geteuid()
	if err := checkPath(path, euid); err != nil {
		return nil, err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open delivery dir %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat delivery dir %s: %w", path, err)
	}
	// Again on the descriptor leash keeps, in case the path walk and the
	// open saw different directories.
	if err := unsafeEntry(path, path, &st, euid); err != nil {
		f.Close()
		return nil, err
	}
	if uid != -1 && uid != 0 && !canEnter(&st, uid, gid) {
		f.Close()
		return nil, fmt.Errorf("delivery dir %s (mode %o, owner %d:%d): the child's user %d cannot enter it; use a directory it can traverse", path, st.Mode&0o7777, st.Uid, st.Gid, uid)
	}
	return f, nil
}

// maxSymlinks is Linux's bound on symlinks followed in one path lookup.
const maxSymlinks = 40

// checkPath walks path from / the way the kernel resolves it and checks
// every directory the lookup passes through (/, each ancestor and path
// itself) and every symlink it follows with [unsafeEntry]. Whoever can
// replace any of them can swap the directory the child reads its secrets
// from by path ($NAME_FILE, CREDENTIALS_DIRECTORY) for one of their own.
// Only directories are checked through a path here, and each is reached
// through directories already found safe, so no other user can change
// what the walk sees while it runs.
func checkPath(path string, euid int) error {
	todo := strings.Split(path, "/")
	cur := "/"
	links := 0
	var st unix.Stat_t
	if err := unix.Lstat(cur, &st); err != nil {
		return fmt.Errorf("delivery dir %s: lstat /: %w", path, err)
	}
	if err := unsafeEntry(path, cur, &st, euid); err != nil {
		return err
	}
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur holds no symlinks: .. is physical
			continue
		}
		next := filepath.Join(cur, c)
		if err := unix.Lstat(next, &st); err != nil {
			return fmt.Errorf("delivery dir %s: lstat %s: %w", path, next, err)
		}
		if err := unsafeEntry(path, next, &st, euid); err != nil {
			return err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			if links++; links > maxSymlinks {
				return fmt.Errorf("delivery dir %s: %w", path, unix.ELOOP)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return fmt.Errorf("delivery dir %s: %w", path, err)
			}
			if strings.HasPrefix(target, "/") {
				cur = "/"
			}
			todo = append(strings.Split(target, "/"), todo...)
		case unix.S_IFDIR:
			cur = next
		default:
			return fmt.Errorf("delivery dir %s: %s: %w", path, next, unix.ENOTDIR)
		}
	}
	return nil
}

// unsafeEntry refuses a directory or symlink on the way to the delivery
// dir path that a user other than root and leash's own (euid) could
// replace, rename or fill: one owned by another user, or a directory
// writable by its group or by others without the sticky bit. With the
// sticky bit (/tmp, /dev/shm) others may add entries but not rename or
// remove the ones they do not own, and the next entry on the way is itself
// checked to be root's or leash's. This is OpenSSH's rule for
// authorized_keys paths (StrictModes) plus systemd's sticky-bit exception.
// Supplementary groups are not consulted: a group-writable directory is
// refused even if only root or leash's user are in the group.
func unsafeEntry(path, entry string, st *unix.Stat_t, euid int) error {
	subject := "delivery dir " + path
	if entry != path {
		subject = fmt.Sprintf("delivery dir %s: its ancestor %s", path, entry)
	}
	if int(st.Uid) != euid && st.Uid != 0 {
		return fmt.Errorf("%s is owned by uid %d, not by leash's user (%d) or root: that user could replace it; use a directory owned by root or uid %d", subject, st.Uid, euid, euid)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Mode&unix.S_ISVTX != 0 {
		return nil
	}
	var who, fix string
	switch st.Mode & 0o022 {
	case 0:
		return nil
	case 0o020:
		who, fix = fmt.Sprintf("group-writable (group %d)", st.Gid), "g-w"
	case 0o002:
		who, fix = "world-writable", "o-w"
	default:
		who, fix = fmt.Sprintf("group-writable (group %d) and world-writable", st.Gid), "go-w"
	}
	return fmt.Errorf("%s (mode %04o) is %s without the sticky bit: another user could replace the directory the child reads its secrets from; run chmod %s %s, or choose another delivery dir", subject, st.Mode&0o7777, who, fix, entry)
}

// canEnter reports whether uid:gid has search (x) permission on a
// directory. Supplementary groups are ignored, so this may refuse a parent
// the child could in fact enter through one; the error says why.
func canEnter(st *unix.Stat_t, uid, gid int) bool {
	switch {
	case int(st.Uid) == uid:
		return st.Mode&0o100 != 0
	case gid != -1 && int(st.Gid) == gid:
		return st.Mode&0o010 != 0
	}
	return st.Mode&0o001 != 0
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (d *privateDir) create(parentPath string, uid, gid int) error {
	pfd := int(d.parent.Fd())
	d.name = "leash-" + strconv.Itoa(os.Getpid()) + "-" + randomHex(8)
	d.path = filepath.Join(parentPath, d.name)
	if err := unix.Mkdirat(pfd, d.name, 0o700); err != nil {
		return fmt.Errorf("create private dir %s: %w", d.path, err)
	}
	fd, err := unix.Openat(pfd, d.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Unlinkat(pfd, d.name, unix.AT_REMOVEDIR)
		return fmt.Errorf("open private dir %s: %w", d.path, err)
	}
	d.dir = os.NewFile(uintptr(fd), d.path)
	fail := func(op string, err error) error {
		d.dir.Close()
		unix.Unlinkat(pfd, d.name, unix.AT_REMOVEDIR)
		return fmt.Errorf("%s private dir %s: %w", op, d.path, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail("lock", err)
	}
	// The umask may have narrowed the mode; chown lets a non-root child
	// (--user) enter its own directory.
	if err := unix.Fchmod(fd, 0o700); err != nil {
		return fail("chmod", err)
	}
	if uid != -1 || gid != -1 {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return fail("chown", err)
		}
	}
	return nil
}

// write replaces file name with b atomically: a fresh temporary file
// (O_CREAT|O_EXCL|O_NOFOLLOW, so neither a symlink nor a pre-created file is
// followed or reused) is filled, set to 0400 uid:gid and renamed over name.
// rename(2) replaces a symlink or file at name without following it and
// fails on a directory.
func (d *privateDir) write(name string, b []byte, uid, gid int) error {
	dfd := int(d.dir.Fd())
	tmp := ".tmp-" + name + "-" + randomHex(8)
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o400)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	err = func() error {
		if _, err := f.Write(b); err != nil {
			return err
		}
		if err := f.Chmod(0o400); err != nil {
			return err
		}
		if uid != -1 || gid != -1 {
			if err := f.Chown(uid, gid); err != nil {
				return err
			}
		}
		return f.Close()
	}()
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, name)
	}
	if err != nil {
		f.Close()
		unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("write %s/%s: %w", d.path, name, err)
	}
	return nil
}

// remove empties and deletes every file, then the directory.
func (d *privateDir) remove() error {
	err := emptyDir(d.dir, d.owner)
	if rerr := unix.Unlinkat(int(d.parent.Fd()), d.name, unix.AT_REMOVEDIR); rerr != nil && err == nil {
		err = fmt.Errorf("remove private dir %s: %w", d.path, rerr)
	}
	d.dir.Close()
	d.parent.Close()
	return err
}

// emptyDir wipes (see [wipe]) and unlinks every entry of dir.
func emptyDir(dir *os.File, owner int) error {
	dfd := int(dir.Fd())
	rfd, err := unix.Openat(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	rd := os.NewFile(uintptr(rfd), dir.Name())
	names, err := rd.Readdirnames(-1)
	rd.Close()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		wipe(dfd, n, owner)
		if err := unix.Unlinkat(dfd, n, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove %s/%s: %w", dir.Name(), n, err))
		}
	}
	return errors.Join(errs...)
}

// wipe overwrites file name in directory dfd with zeros, flushes them to
// the device and truncates the file. On tmpfs truncating alone would do; on
// a disk (macOS, --allow-disk) an unlinked file's bytes stay in free blocks
// until reused, so they are zeroed first. This is best effort: a
// copy-on-write file system or a snapshot (APFS, btrfs, Time Machine's local
// snapshots) may keep the old blocks, which only disk encryption protects.
// Only a regular file with one link owned by owner is touched, so a hard
// link planted in the directory cannot make leash wipe a file elsewhere.
// The files are 0400: when leash cannot open one for writing (it is not
// root), it makes it 0600 first, through a descriptor it checked.
func wipe(dfd int, name string, owner int) {
	const flags = unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	rfd, err := unix.Openat(dfd, name, unix.O_RDONLY|flags, 0)
	if err != nil {
		return
	}
	defer unix.Close(rfd)
	var st unix.Stat_t
	if unix.Fstat(rfd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 || int(st.Uid) != owner {
		return
	}
	fd, err := unix.Openat(dfd, name, unix.O_WRONLY|flags, 0)
	if errors.Is(err, unix.EACCES) && unix.Fchmod(rfd, 0o600) == nil {
		fd, err = unix.Openat(dfd, name, unix.O_WRONLY|flags, 0)
	}
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var wst unix.Stat_t
	if unix.Fstat(fd, &wst) != nil || wst.Dev != st.Dev || wst.Ino != st.Ino {
		return // replaced between the two opens
	}
	zeroFile(fd, st.Size)
	unix.Ftruncate(fd, 0)
}

// zeroFile overwrites the first size bytes of fd with zeros and waits until
// they reach the device.
func zeroFile(fd int, size int64) error {
	zeros := make([]byte, min(size, 64<<10))
	for off := int64(0); off < size; {
		n, err := unix.Pwrite(fd, zeros[:min(int64(len(zeros)), size-off)], off)
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		off += int64(n)
	}
	return unix.Fsync(fd)
}

// cleanStale removes leash-* directories in the parent whose flock is free:
// their leash process is gone (killed before it could clean up).
func (d *privateDir) cleanStale() {
	pfd := int(d.parent.Fd())
	rfd, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	rd := os.NewFile(uintptr(rfd), d.parent.Name())
	names, err := rd.Readdirnames(-1)
	rd.Close()
	if err != nil {
		d.log.Warn("list delivery dir", "path", d.parent.Name(), "error", err)
		return
	}
	for _, n := range names {
		if !staleName.MatchString(n) {
			continue
		}
		fd, err := unix.Openat(pfd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		sub := os.NewFile(uintptr(fd), filepath.Join(d.parent.Name(), n))
		if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
			sub.Close() // held: a live leash owns it
			continue
		}
		var st unix.Stat_t
		owner := os.Geteuid()
		if unix.Fstat(fd, &st) == nil {
			owner = int(st.Uid) // files carry the directory's owner (the child's user)
		}
		err = emptyDir(sub, owner)
		if err == nil {
			err = unix.Unlinkat(pfd, n, unix.AT_REMOVEDIR)
		}
		sub.Close()
		if err != nil {
			d.log.Warn("remove stale private dir", "path", sub.Name(), "error", err)
		} else {
			d.log.Info("removed stale private dir", "path", sub.Name())
			d.removed = append(d.removed, sub.Name())
		}
	}
}
