package signals

import (
	"context"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"
)

// Reaper reaps exited orphans when leash is PID 1 or a child subreaper, so
// zombies never pile up in a container.
//
// A plain wait4(-1) loop would race the supervisor's own Wait and steal the main
// child's exit status (the ramr/go-reaper bug class). Reaper instead peeks with
// waitid(WNOWAIT), which leaves the zombie in place, asks Skip about the pid and
// only then reaps exactly that pid. Every other child of leash counts as an
// orphan: a process leash starts besides the supervised child must be covered
// by Skip too, or its status is lost.
type Reaper struct {
	// Skip reports whether pid is waited for by someone else (the supervised
	// child); the reaper never reaps such a pid. It must also answer correctly
	// for a child that is being started right now, so it has to serialise with
	// the fork: supervisor.Supervisor.IsChild does. nil reaps every zombie.
	Skip func(pid int) bool

	// Reaped, if set, is called after each reaped orphan (for logs and tests).
	Reaped func(pid int, status unix.WaitStatus)
}

// Retry bounds for a zombie that Skip claims: its owner reaps it within
// moments, and only then can waitid show the zombies queued behind it.
const (
	minRetry = 10 * time.Millisecond
	maxRetry = time.Second
)

// Run reaps orphans on every SIGCHLD until ctx is done, then returns nil. It
// catches SIGCHLD for the life of the call.
func (r *Reaper) Run(ctx context.Context) error {
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, unix.SIGCHLD)
	defer signal.Stop(chld)

	retry := time.NewTimer(0)
	retry.Stop()
	defer retry.Stop()
	backoff := minRetry
	for {
		if r.reap() {
			// A claimed zombie hides the rest; look again soon.
			retry.Reset(backoff)
			backoff = min(2*backoff, maxRetry)
		} else {
			backoff = minRetry
		}
		select {
		case <-ctx.Done():
			return nil
		case <-chld:
		case <-retry.C:
		}
	}
}
