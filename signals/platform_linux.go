package signals

import (
	"fmt"

	"golang.org/x/sys/unix"
)

const (
	platform  = "Linux"
	hasRT     = true  // real-time signals RTMin..RTMax exist
	maxSignal = RTMax // the highest signal number
)

// SetSubreaper makes leash a child subreaper (PR_SET_CHILD_SUBREAPER): orphaned
// descendants are re-parented to leash instead of PID 1, so a Reaper can reap
// them and group teardown can reach them. PID 1 does not need it.
func SetSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set child subreaper: %w", err)
	}
	return nil
}
