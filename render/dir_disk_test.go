package render

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// Dir delivery as macOS does it, on a disk file system (here with
// AllowDisk, which macOS implies): a fresh 0700 directory, 0400 files,
// one start-up warning that the secrets are on disk, and on Close every
// file zeroed, truncated and removed.
func TestDirOnDisk(t *testing.T) {
	parent := t.TempDir()
	var logs bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	r, err := New(Options{Mode: Dir, Dir: parent, AllowDisk: true, UID: -1, GID: -1, Logger: log}, memfdOutputs(t)[:1])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Update(appSecret(rawSecret), false); err != nil {
		t.Fatal(err)
	}
	p, _ := r.Path("pw")
	dir := filepath.Dir(p)
	if filepath.Dir(dir) != parent || !strings.HasPrefix(filepath.Base(dir), "leash-") {
		t.Fatalf("output %s is not in a leash- directory under %s", p, parent)
	}
	for path, want := range map[string]os.FileMode{dir: os.ModeDir | 0o700, p: 0o400} {
		if fi, err := os.Lstat(path); err != nil || fi.Mode() != want {
			t.Fatalf("%s: %v, %v; want mode %v", path, fi.Mode(), err, want)
		}
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != rawSecret {
		t.Fatalf("read %s: %v", p, err)
	}
	pf, err := os.Open(parent)
	if err != nil {
		t.Fatal(err)
	}
	disk, err := checkMemoryFS(parent, int(pf.Fd()), true, "")
	pf.Close()
	if err != nil {
		t.Fatal(err)
	}
	if disk != "" { // not a tmpfs here
		if n := strings.Count(logs.String(), "on disk"); n != 1 {
			t.Fatalf("%d warnings that the secrets are on disk, want 1:\n%s", n, logs.String())
		}
	}
	if bytes.Contains(logs.Bytes(), []byte(leakMarker)) {
		t.Fatal("the secret reached the log")
	}

	held, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("private dir left behind: %v", err)
	}
	if b, err := io.ReadAll(held); err != nil || len(b) != 0 {
		t.Fatalf("a held descriptor still reads %d bytes after Close (%v)", len(b), err)
	}
}

// zeroFile overwrites the bytes in place before wipe truncates the file:
// on disk, truncation alone leaves them in free blocks.
func TestZeroFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	secret := bytes.Repeat([]byte("s3cret"), 30000) // several 64 KiB chunks
	if err := os.WriteFile(p, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := zeroFile(int(f.Fd()), int64(len(secret))); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || len(b) != len(secret) || !bytes.Equal(b, make([]byte, len(secret))) {
		t.Fatalf("after zeroFile: %d bytes, %v; want %d zeros", len(b), err, len(secret))
	}
}

// A non-root leash cannot open its own 0400 files for writing: wipe makes
// them writable first, so Close still empties them (a held descriptor
// reads nothing). macOS runs leash as the developer, never as root.
func TestDirWipeAsNonRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as another user")
	}
	top := t.TempDir()
	for d := top; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // traversable by nobody
	}
	parent := filepath.Join(top, "p")
	if err := os.Mkdir(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(parent, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, "diskwipe", true, nil, "LEASH_DIR="+parent)
	var got string
	c.readJSON(t, &got)
	if got != "held 0 <nil>" {
		t.Fatalf("child: %s", got)
	}
}
