package signals_test

import (
	"os"
	"testing"

	"github.com/leash-dev/leash/internal/testchild"
)

// TestMain refuses to run the tests with SIGHUP ignored: Notify leaves an
// inherited SIG_IGN alone, so TestNotify would wait for a SIGHUP that never
// comes.
func TestMain(m *testing.M) {
	testchild.RequireSIGHUP()
	os.Exit(m.Run())
}
