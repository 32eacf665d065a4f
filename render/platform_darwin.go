package render

import (
	"errors"
	"os"
)

// macOS has neither memfd nor tmpfs: leash delivers in Dir mode, into a
// private directory under the per-user temporary directory, on disk.

// defaultDir is Dir mode's parent when Options.Dir is empty: $TMPDIR,
// which macOS sets to a 0700 directory of the user's under /var/folders.
func defaultDir() string {
	return os.TempDir()
}

// checkMemoryFS accepts any directory: on macOS every file system leash
// can find is a disk, so allowDisk is implied. It returns the warning
// leash logs once at start-up.
func checkMemoryFS(subject string, fd int, allowDisk bool, refusal string) (disk string, _ error) {
	return "they are encrypted at rest only if FileVault is on", nil
}

var errNoMemfd = errors.New("memfd delivery is not available on macOS (it has no memfd_create); use dir delivery")

// memfdAvailable reports why Memfd mode cannot be used: New refuses it, so
// no memfd below is ever created.
func memfdAvailable() error { return errNoMemfd }

// memfd stands in for Linux's memory file so that Renderer compiles; it
// never exists on macOS (see memfdAvailable).
type memfd struct {
	ro     *os.File
	sealed bool
}

func newMemfd(string, []byte, int, int, bool, bool) (*memfd, error) { return nil, errNoMemfd }
func (m *memfd) rewrite([]byte) error                               { return errNoMemfd }
func (m *memfd) close() error                                       { return nil }
