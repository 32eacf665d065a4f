package testchild

import (
	"fmt"
	"os"
	"slices"
	"syscall"

	"github.com/leash-dev/leash/signals"
)

// SIGHUPIgnoredMessage is what RequireSIGHUP prints before it exits.
const SIGHUPIgnoredMessage = "tests run with SIGHUP ignored (nohup?): leash passes ignored dispositions on by design; run without nohup"

// RequireSIGHUP ends the test binary with exit status 2 and a one-line
// explanation when it was started with SIGHUP ignored, as under nohup.
// leash leaves a signal it was started with ignored ignored, for itself and
// the child, and does not forward it (README, "Signals and process
// groups"), so every test that sends SIGHUP through leash or expects a
// child to die of one would fail, one by one, like a bug. It reads the
// disposition the way leash does (signals.InheritedIgnored).
//
// Call it from TestMain after the helper modes have had their turn (a
// helper may run with SIGHUP ignored on purpose, as mode sigconf's) and
// before m.Run.
func RequireSIGHUP() {
	if slices.Contains(signals.InheritedIgnored(), os.Signal(syscall.SIGHUP)) {
		fmt.Fprintln(os.Stderr, SIGHUPIgnoredMessage)
		os.Exit(2)
	}
}
