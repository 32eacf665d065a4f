package signals

import (
	"errors"
	"fmt"
)

const (
	platform  = "macOS"
	hasRT     = false // macOS has no real-time signals
	maxSignal = 31    // NSIG - 1
)

// SetSubreaper is not available on macOS: it has no child subreapers, so
// orphans of the child are re-parented to launchd, which reaps them. The
// error wraps [errors.ErrUnsupported].
func SetSubreaper() error {
	return fmt.Errorf("child subreaper: not available on macOS: %w", errors.ErrUnsupported)
}

// reap does nothing on macOS. leash is never PID 1 there and cannot be a
// subreaper, so its only child is the supervised one, whose status belongs
// to the supervisor; and macOS has no waitid(WNOWAIT) that works to peek
// at a zombie without reaping it (golang.org/issue/19314).
func (r *Reaper) reap() (claimed bool) {
	return false
}
