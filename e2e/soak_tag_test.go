//go:build soak

package e2e

import (
	"os"
	"testing"
	"time"
)

// TestSoak runs the soak (see soak in soak_test.go) for
// $LEASH_SOAK_DURATION (default 1h) and reports the fd, thread and RSS
// slopes:
//
//	go test -tags soak -run TestSoak -timeout 2h -v ./e2e/
func TestSoak(t *testing.T) {
	d := time.Hour
	if v := os.Getenv("LEASH_SOAK_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	reports := soak(t, d)
	checkSoak(t, reports)
	for _, r := range reports {
		// Flat: less than one descriptor or thread gained per hour, and
		// RSS growing by less than 8 MiB per hour, over the steady state.
		if r.fdSlope > 1 || r.thrSlope > 1 || r.rssSlope > 8<<10 {
			t.Errorf("%s: not flat: %s", r.name, r)
		}
	}
}
