package render

import (
	"os"
	"strings"
	"testing"
)

// macOS: no memfd, and Dir mode defaults to $TMPDIR, on disk (compiled in
// CI with GOOS=darwin; there is no Mac to run it on).
func TestDarwinDelivery(t *testing.T) {
	if _, err := New(Options{UID: -1, GID: -1}, memfdOutputs(t)); err == nil || !strings.Contains(err.Error(), "not available on macOS") {
		t.Fatalf("memfd mode: %v, want not available", err)
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	r, err := New(Options{Mode: Dir, UID: -1, GID: -1}, memfdOutputs(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if p, _ := r.Path("pw"); !strings.HasPrefix(p, tmp+"/leash-") {
		t.Fatalf("path %s not under $TMPDIR (%s)", p, os.TempDir())
	}
}
