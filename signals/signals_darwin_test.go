package signals_test

import (
	"errors"
	"syscall"
	"testing"

	"github.com/leash-dev/leash/signals"
)

// macOS has signals 1-31 only and no child subreaper (compiled in CI with
// GOOS=darwin; there is no Mac to run it on).
func TestDarwinSignals(t *testing.T) {
	for _, in := range []string{"RTMIN", "RTMIN+3", "RTMAX", "32", "34", "64"} {
		if sig, err := signals.Parse(in); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", in, sig)
		}
	}
	for _, sig := range signals.ForwardableSignals() {
		if s := sig.(syscall.Signal); s < 1 || s > 31 {
			t.Errorf("ForwardableSignals() has %d", s)
		}
	}
	// 31 - KILL STOP CHLD URG PROF PIPE.
	if n := len(signals.ForwardableSignals()); n != 25 {
		t.Errorf("len(ForwardableSignals()) = %d, want 25", n)
	}
	if err := signals.SetSubreaper(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SetSubreaper() = %v, want ErrUnsupported", err)
	}
}
