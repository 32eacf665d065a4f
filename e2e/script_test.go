package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestScripts runs the CLI behaviour pinned in testdata/script/*.txtar
// (age's style): argument parsing, exit codes and messages, with no Vault.
// Besides testscript's own commands the scripts have
//
//	exec exits N CMD ARGS...   run CMD; succeed if it exits N
//
// since testscript's ! exec only says that a command failed.
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", filepath.Dir(leashBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
			// No Vault credentials from the machine running the tests.
			env.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
			env.Setenv("HOME", env.WorkDir)
			return nil
		},
	})
}

// scriptCommands are programs the scripts run: the test binary under
// another name (testscript.Main installs them in the scripts' PATH).
var scriptCommands = map[string]func(){"exits": exitsMain}

// exitsMain runs os.Args[2:] with the script's stdin, stdout and stderr,
// and exits 0 if its exit code is os.Args[1], 1 otherwise.
func exitsMain() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: exits CODE COMMAND [ARG...]")
		os.Exit(2)
	}
	want, err := strconv.Atoi(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "exits:", err)
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	var ee *exec.ExitError
	got := 0
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		fmt.Fprintln(os.Stderr, "exits:", err)
		os.Exit(2)
	}
	if got != want {
		fmt.Fprintf(os.Stderr, "exits: %s exited %d, want %d\n", os.Args[2], got, want)
		os.Exit(1)
	}
	os.Exit(0)
}
