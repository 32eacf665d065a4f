package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestScripts runs the CLI behaviour pinned in testdata/script/*.txtar
// (age's style): argument parsing, exit codes and messages, with no Vault.
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
