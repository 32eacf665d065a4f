//go:build bench

package bench

import (
	"os"
	"testing"

	"github.com/leash-dev/leash/internal/testchild"
)

// TestMain refuses to measure with SIGHUP ignored: the signal and reload
// measurements send SIGHUP through leash, which leaves an inherited
// SIG_IGN alone.
func TestMain(m *testing.M) {
	testchild.RequireSIGHUP()
	os.Exit(m.Run())
}
