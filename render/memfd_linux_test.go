package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMemfdChildReadsExactBytes(t *testing.T) {
	r, err := New(Options{UID: nobody, GID: nobody}, memfdOutputs(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Files() != nil {
		t.Fatal("Files before the first Update")
	}
	changed, err := r.Update(appSecret(rawSecret), false)
	if err != nil || !changed {
		t.Fatalf("Update: changed=%v err=%v", changed, err)
	}
	files := r.Files()
	if len(files) != 4 {
		t.Fatalf("%d files", len(files))
	}
	env := r.Env()
	wantEnv := []string{"PW_FILE=/dev/fd/3", "DB_JSON_FILE=/dev/fd/4", "APP_ENV_FILE=/dev/fd/5", "CONF_FILE=/dev/fd/6"}
	if strings.Join(env, " ") != strings.Join(wantEnv, " ") {
		t.Fatalf("Env = %q", env)
	}
	if link, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(files[1].Fd()))); !strings.HasPrefix(link, "/memfd:leash:db.json") {
		t.Fatalf("memfd name %q", link)
	}
	var paths []string
	for _, o := range memfdOutputs(t) {
		p, err := r.Path(o.Name)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}

	c := startChild(t, "inspect", true, files, append(env, "LEASH_PATHS="+strings.Join(paths, ","))...)
	var res []inspectResult
	c.readJSON(t, &res)

	want := []string{
		rawSecret,
		`{"password":"pw-\u0000-8f3K` + leakMarker + `","username":"v-app-1"}`,
		"password=\"pw-\\x00-8f3K" + leakMarker + "\"\nusername='v-app-1'\n",
		"user=v-app-1\n",
	}
	for i, got := range res {
		if got.ReadErr != "" || string(got.Data) != want[i] {
			t.Errorf("%s: read %q (err %q), want %q", got.Path, got.Data, got.ReadErr, want[i])
		}
		if got.Mode != 0o400 || got.UID != nobody {
			t.Errorf("%s: mode %o uid %d, want 0400 %d", got.Path, got.Mode, got.UID, nobody)
		}
		if got.OpenWErr != syscall.EACCES.Error() {
			t.Errorf("%s: re-open for writing: %q, want permission denied", got.Path, got.OpenWErr)
		}
		if got.FDWErr != syscall.EBADF.Error() {
			t.Errorf("%s: write to inherited fd: %q, want bad file descriptor", got.Path, got.FDWErr)
		}
	}

	// The child's environment and argv hold pointers, never values.
	for _, f := range []string{"environ", "cmdline"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", c.cmd.Process.Pid, f))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(leakMarker)) || bytes.Contains(b, []byte("v-app-1")) {
			t.Fatalf("secret in child's %s: %q", f, b)
		}
		if f == "environ" && !bytes.Contains(b, []byte("PW_FILE=/dev/fd/3\x00")) {
			t.Fatalf("no pointer in environ: %q", b)
		}
	}
}

// Restart-mode memfds are sealed: even root, who may re-open the memfd for
// writing, cannot change a byte.
func TestMemfdSealedAgainstRoot(t *testing.T) {
	r, err := New(Options{UID: -1, GID: -1}, memfdOutputs(t)[:1])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Update(appSecret(rawSecret), false); err != nil {
		t.Fatal(err)
	}
	ro := r.Files()[0]
	seals, err := unix.FcntlInt(ro.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		t.Fatal(err)
	}
	if seals&unix.F_SEAL_WRITE == 0 || seals&unix.F_SEAL_GROW == 0 {
		t.Fatalf("seals %#x", seals)
	}
	if os.Geteuid() == 0 {
		f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(ro.Fd())), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte("X"), 0); err == nil {
			t.Fatal("wrote to a sealed memfd")
		}
	}
	if _, err := r.Update(appSecret("new"), true); err == nil {
		t.Fatal("in-place update of a sealed memfd succeeded")
	}
}

// Reload-signal rotation: after each in-place Update the parent signals
// the child, which re-opens /dev/fd/3; it must always see the complete new
// content, whatever the length change.
func TestInPlaceRotationWithSignal(t *testing.T) {
	r, err := New(Options{UID: nobody, GID: nobody}, memfdOutputs(t)[:1])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Update(appSecret("initial"), true); err != nil {
		t.Fatal(err)
	}
	fd := r.Files()[0]
	c := startChild(t, "reread", true, r.Files(), "LEASH_PATHS=/dev/fd/3")
	var ready string
	c.readJSON(t, &ready)
	const rotations = 300
	for i := 0; i < rotations; i++ {
		// Lengths swing between tiny and 256 KiB so both growth and
		// truncation are exercised.
		n := (i * 7919) % (256 << 10)
		if i%2 == 1 {
			n = i
		}
		pw := fmt.Sprintf("BEGIN-%d|%s|END-%d", i, strings.Repeat(string(rune('a'+i%26)), n), i)
		changed, err := r.Update(appSecret(pw), true)
		if err != nil || !changed {
			t.Fatalf("rotation %d: changed=%v err=%v", i, changed, err)
		}
		if r.Files()[0] != fd {
			t.Fatal("in-place update replaced the memfd")
		}
		if err := c.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		var got []byte
		c.readJSON(t, &got)
		if string(got) != pw {
			t.Fatalf("rotation %d: child read %d bytes %.40q..., want %d bytes", i, len(got), got, len(pw))
		}
	}
	if changed, err := r.Update(appSecret(fmt.Sprintf("BEGIN-%d|%s|END-%d", rotations-1, strings.Repeat(string(rune('a'+(rotations-1)%26)), rotations-1), rotations-1)), true); err != nil || changed {
		t.Fatalf("same bytes again: changed=%v err=%v", changed, err)
	}
}

// Measures what the docs warn about: a reader that does not wait for the
// notification can observe a rewrite half-done. Logged, not asserted (it
// depends on scheduling); readers after Update returns are always exact.
func TestInPlaceTornReads(t *testing.T) {
	r, err := New(Options{UID: -1, GID: -1}, memfdOutputs(t)[:1])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a, b := strings.Repeat("a", 1<<20), strings.Repeat("b", 1<<19)
	if _, err := r.Update(appSecret(a), true); err != nil {
		t.Fatal(err)
	}
	path := "/proc/self/fd/" + strconv.Itoa(int(r.Files()[0].Fd()))
	stop := make(chan struct{})
	done := make(chan [2]int)
	go func() {
		var reads, torn int
		for {
			select {
			case <-stop:
				done <- [2]int{reads, torn}
				return
			default:
			}
			got, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			reads++
			if s := string(got); s != a && s != b {
				torn++
			}
		}
	}()
	for i := 0; i < 200; i++ {
		want := a
		if i%2 == 0 {
			want = b
		}
		if _, err := r.Update(appSecret(want), true); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Fatalf("read after Update %d: %d bytes, err %v", i, len(got), err)
		}
	}
	close(stop)
	res := <-done
	t.Logf("unsynchronised reader: %d of %d reads saw a partial rewrite", res[1], res[0])
}

func TestNoMemfdLeaks(t *testing.T) {
	before := openFDs(t)
	outs := memfdOutputs(t)
	r, err := New(Options{UID: -1, GID: -1}, outs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Update(appSecret("v0"), false); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 200; i++ {
		old := r.Files()
		// An inherited copy (as a restarted child's leftover subprocess
		// would hold) must read nothing once released.
		held, err := os.Open("/proc/self/fd/" + strconv.Itoa(int(old[0].Fd())))
		if err != nil {
			t.Fatal(err)
		}
		changed, err := r.Update(appSecret(fmt.Sprintf("v%d", i)), false)
		if err != nil || !changed {
			t.Fatalf("update %d: changed=%v err=%v", i, changed, err)
		}
		if r.Files()[0] == old[0] {
			t.Fatal("restart update reused the memfd")
		}
		r.Release()
		if st, err := held.Stat(); err != nil || st.Size() != 0 {
			t.Fatalf("released memfd: size %v err %v", st.Size(), err)
		}
		held.Close()
	}
	// Two descriptors (read-write and read-only) per output.
	if n := openFDs(t); n != before+2*len(outs) {
		t.Fatalf("%d fds open, want %d", n, before+2*len(outs))
	}
	held, err := os.Open("/proc/self/fd/" + strconv.Itoa(int(r.Files()[1].Fd())))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile("/proc/self/fd/" + strconv.Itoa(int(held.Fd()))); err != nil || len(b) != 0 {
		t.Fatalf("after Close an inherited copy reads %q (err %v)", b, err)
	}
	if n := openFDs(t); n != before+1 {
		t.Fatalf("%d fds open after Close, want %d", n, before+1)
	}
	if _, err := r.Update(appSecret("x"), false); err != ErrClosed {
		t.Fatalf("Update after Close: %v", err)
	}
}

func TestUpdateChangeDetection(t *testing.T) {
	r, err := New(Options{UID: -1, GID: -1}, memfdOutputs(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Update(appSecret("a"), false); err != nil {
		t.Fatal(err)
	}
	first := r.Files()
	if changed, err := r.Update(appSecret("a"), false); err != nil || changed {
		t.Fatalf("same data: changed=%v err=%v", changed, err)
	}
	for i, f := range r.Files() {
		if f != first[i] {
			t.Fatalf("output %d rewritten without a change", i)
		}
	}
	// Only the password changed: the template output (username only) keeps
	// its memfd.
	if changed, err := r.Update(appSecret("b"), false); err != nil || !changed {
		t.Fatalf("new data: changed=%v err=%v", changed, err)
	}
	now := r.Files()
	if now[0] == first[0] || now[3] != first[3] {
		t.Fatal("wrong outputs replaced")
	}
	// A render error writes nothing.
	bad := appSecret("c")
	delete(bad, "database/creds/app")
	if _, err := r.Update(bad, false); err == nil || !strings.Contains(err.Error(), "not fetched") {
		t.Fatalf("missing secret: %v", err)
	}
	if got, _ := os.ReadFile("/proc/self/fd/" + strconv.Itoa(int(r.Files()[0].Fd()))); string(got) != "b" {
		t.Fatalf("content after failed update: %q", got)
	}
}

func TestNewRejectsBadOutputs(t *testing.T) {
	for _, outs := range [][]Output{
		{{Name: "a/b", Secret: "s"}},
		{{Name: "a", Secret: "s"}, {Name: "a", Secret: "s"}},
		{{Name: "a.b", Secret: "s"}, {Name: "a-b", Secret: "s"}},
		{{Name: "a", Kind: Field, Secret: "s"}},
		{{Name: "a", Kind: TemplateKind}},
		{{Name: "a"}},
	} {
		if r, err := New(Options{}, outs); err == nil {
			r.Close()
			t.Errorf("%+v accepted", outs)
		}
	}
}

// leash runs non-dumpable (main sets PR_SET_DUMPABLE 0), possibly as a
// non-root user: the read-only re-open through /proc/self/fd must still
// work.
func TestMemfdNonDumpableNonRoot(t *testing.T) {
	c := startChild(t, "nondumpable", true, nil)
	var got string
	c.readJSON(t, &got)
	if got != "ok 65534 nd-secret" {
		t.Fatalf("child: %s", got)
	}
}

// A child that reads its inherited descriptor directly moves the shared
// offset; the next child handed Files() must still read from the start.
func TestFilesRewindForNextChild(t *testing.T) {
	r, err := New(Options{UID: -1, GID: -1}, memfdOutputs(t)[:1])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Update(appSecret("whole"), true); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		b := make([]byte, 16)
		n, _ := r.Files()[0].Read(b)
		if string(b[:n]) != "whole" {
			t.Fatalf("child %d read %q", i, b[:n])
		}
	}
}

func init() { platformChildren["nondumpable"] = childNonDumpable }

// childNonDumpable renders into memfds the way main runs leash: as a
// non-root user with PR_SET_DUMPABLE 0 (which makes /proc/self/fd
// root-owned). It prints the bytes read back from the child's descriptor.
func childNonDumpable() {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		json.NewEncoder(os.Stdout).Encode(err.Error())
		return
	}
	r, err := New(Options{UID: -1, GID: -1}, []Output{{Name: "pw", Kind: Field, Secret: "s", Field: "password"}})
	if err == nil {
		_, err = r.Update(map[string]Secret{"s": {Data: NewValues(map[string]any{"password": "nd-secret"})}}, false)
	}
	if err != nil {
		json.NewEncoder(os.Stdout).Encode(err.Error())
		return
	}
	b := make([]byte, 64)
	n, err := r.Files()[0].ReadAt(b, 0)
	if err != nil && err != io.EOF {
		json.NewEncoder(os.Stdout).Encode(err.Error())
		return
	}
	json.NewEncoder(os.Stdout).Encode(fmt.Sprintf("ok %d %s", os.Geteuid(), b[:n]))
	r.Close()
}
