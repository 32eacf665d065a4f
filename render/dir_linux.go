package render

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// defaultDir is Dir mode's parent when Options.Dir is empty.
func defaultDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return d
	}
	return "/dev/shm"
}

// checkMemoryFS refuses a directory (subject, open as fd) that is not on
// tmpfs or ramfs unless allowDisk; refusal ends the error. For an allowed
// directory on disk it returns the warning leash logs once at start-up.
func checkMemoryFS(subject string, fd int, allowDisk bool, refusal string) (disk string, _ error) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return "", fmt.Errorf("statfs %s: %w", subject, err)
	}
	if inMemory(&sfs) {
		return "", nil
	}
	if !allowDisk {
		return "", fmt.Errorf("%s is not on tmpfs or ramfs (filesystem type %#x): %s", subject, uint32(sfs.Type), refusal)
	}
	return "they are encrypted at rest only if that file system is (dm-crypt, LUKS)", nil
}

// inMemory reports whether a file system is tmpfs or ramfs. Statfs_t.Type
// is int32 on 32-bit platforms and int64 elsewhere, and the magic numbers
// are untyped constants that do not all fit an int32 (RAMFS_MAGIC is
// 0x858458f6): the kernel's f_type is 32 bits wide, so compare as uint32.
func inMemory(sfs *unix.Statfs_t) bool {
	t := uint32(sfs.Type)
	return t == uint32(unix.TMPFS_MAGIC) || t == uint32(unix.RAMFS_MAGIC)
}
