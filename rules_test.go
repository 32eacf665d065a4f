package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestImportRules checks docs/architecture.md's package rules on the
// packages the leash binary is built from (go list -deps of the main
// package; tests, examples and internal test helpers are exempt): only
// lease imports Vault's client, only supervisor imports os/exec, and
// lease, render, supervisor and signals import no sibling.
func TestImportRules(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	const mod = "github.com/leash-dev/leash"
	out, err := exec.Command(goBin, "list", "-deps", "-f", `{{if not .Standard}}{{.ImportPath}} {{join .Imports " "}}{{end}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var shipped []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || (f[0] != mod && !strings.HasPrefix(f[0], mod+"/")) {
			continue
		}
		pkg, imports := f[0], f[1:]
		shipped = append(shipped, pkg)
		for _, imp := range imports {
			switch {
			case strings.HasPrefix(imp, "github.com/hashicorp/vault/") && pkg != mod+"/lease":
				t.Errorf("%s imports %s: only lease may talk to Vault", pkg, imp)
			case imp == "os/exec" && pkg != mod+"/supervisor":
				t.Errorf("%s imports os/exec: only supervisor may start processes", pkg)
			case strings.HasPrefix(imp, mod+"/") && pkg != mod:
				t.Errorf("%s imports its sibling %s: only main connects packages", pkg, imp)
			}
		}
	}
	// The rules mean nothing if the list is not the one they are about.
	for _, want := range []string{mod, mod + "/lease", mod + "/render", mod + "/signals", mod + "/supervisor"} {
		if !slices.Contains(shipped, want) {
			t.Errorf("go list -deps of leash lacks %s; got %v", want, shipped)
		}
	}
}
