package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestControlSocketDirectoryChecks: an existing directory must be 0700 and
// leash's own; a live socket is not taken over.
func TestControlSocketDirectoryChecks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose")
	if err := os.Mkdir(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := listenControl(filepath.Join(loose, "s")); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("listenControl in a 0755 directory: %v", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if _, _, err := listenControl(filepath.Join(link, "s")); err == nil {
		t.Error("listenControl followed a symlinked directory")
	}
	path := filepath.Join(dir, "fresh", "s")
	l, cleanup, err := listenControl(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := listenControl(path); err == nil || !strings.Contains(err.Error(), "another leash") {
		t.Errorf("second listenControl on a live socket: %v", err)
	}
	_ = l
	cleanup()
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("cleanup left the directory leash created: %v", err)
	}
}
