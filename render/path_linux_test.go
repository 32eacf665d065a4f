package render

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An Output.Path file is written at exactly that path with the mode asked,
// replaced atomically (a reader's open file keeps the old bytes), and
// removed by Close; a directory on disk is refused unless AllowDisk.
func TestOutputPath(t *testing.T) {
	dir := shmParent(t)
	p := filepath.Join(dir, "db-creds")
	outs := []Output{{Name: "pw", Kind: Field, Secret: "database/creds/app", Field: "password", Path: p, Mode: 0o440}}
	r, err := New(Options{Mode: Memfd, UID: -1, GID: -1}, outs)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Update(appSecret("first"), true); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(p)
	if err != nil || fi.Mode() != 0o440 {
		t.Fatalf("stat %s: %v, %v; want mode 0440", p, fi, err)
	}
	old, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := r.Update(appSecret("second"), true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "second" {
		t.Fatalf("after rotation %s holds %q", p, b)
	}
	buf := make([]byte, 16)
	if n, _ := old.Read(buf); string(buf[:n]) != "first" {
		t.Fatalf("an open reader saw %q, want the old bytes whole", buf[:n])
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("dir holds %v, want the file alone (no temporary left)", ents)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("after Close: %v, want the file removed", err)
	}

	disk := t.TempDir() // the test machine's /tmp is on disk
	onDisk := []Output{{Name: "pw", Kind: Field, Secret: "database/creds/app", Field: "password", Path: filepath.Join(disk, "pw")}}
	if _, err := New(Options{Mode: Memfd, UID: -1, GID: -1}, onDisk); err == nil || !strings.Contains(err.Error(), "not on tmpfs or ramfs") {
		if isInMemory(disk) {
			t.Skip("the temporary directory is on tmpfs here")
		}
		t.Fatalf("disk path: err = %v, want a refusal", err)
	}
	r2, err := New(Options{Mode: Memfd, UID: -1, GID: -1, AllowDisk: true}, onDisk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Update(appSecret("x"), true); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(onDisk[0].Path); err != nil || fi.Mode() != DefaultPathMode {
		t.Fatalf("default mode: %v, %v", fi, err)
	}
	r2.Close()

	for _, bad := range []Output{
		{Name: "a", Kind: Field, Secret: "s", Field: "f", Path: "relative/x"},
		{Name: "a", Kind: Field, Secret: "s", Field: "f", Path: dir + "/../x"},
		{Name: "a", Kind: Field, Secret: "s", Field: "f", Path: dir + "/x", Mode: 0o4755},
		{Name: "a", Kind: Field, Secret: "s", Field: "f", Path: dir + "/missing/x"},
		{Name: "a", Kind: Field, Secret: "s", Field: "f", Mode: 0o400},
	} {
		if _, err := New(Options{Mode: Memfd, UID: -1, GID: -1}, []Output{bad}); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}

func isInMemory(dir string) bool {
	e, err := openExact(Output{Name: "x", Path: filepath.Join(dir, "x")}, false)
	if err == nil {
		e.dir.Close()
	}
	return err == nil
}
