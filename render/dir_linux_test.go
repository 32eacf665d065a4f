package render

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// shmParent makes a private parent directory on /dev/shm (tmpfs).
func shmParent(t *testing.T) string {
	t.Helper()
	var sfs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &sfs); err != nil || !inMemory(&sfs) {
		t.Skip("/dev/shm is not tmpfs here")
	}
	d, err := os.MkdirTemp("/dev/shm", "leash-render-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// mkdirMode makes directory p with exactly mode (not narrowed by the umask).
func mkdirMode(t *testing.T, p string, mode os.FileMode) string {
	t.Helper()
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func dirOutputs(t *testing.T) []Output { return memfdOutputs(t)[:2] }

func statT(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

func TestDirDelivery(t *testing.T) {
	parent := shmParent(t)
	// The child's user must be able to enter the parent.
	_, err := New(Options{Mode: Dir, Dir: parent, UID: nobody, GID: nobody}, dirOutputs(t))
	if err == nil || !strings.Contains(err.Error(), "cannot enter") {
		t.Fatalf("parent closed to the child's user: %v", err)
	}
	os.Chmod(parent, 0o711)
	r, err := New(Options{Mode: Dir, Dir: parent, UID: nobody, GID: nobody}, dirOutputs(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Files() != nil {
		t.Fatal("Files in Dir mode")
	}
	if changed, err := r.Update(appSecret(rawSecret), true); err != nil || !changed {
		t.Fatalf("Update: changed=%v err=%v", changed, err)
	}
	pw, _ := r.Path("pw")
	dir := filepath.Dir(pw)
	if filepath.Dir(dir) != parent || !staleName.MatchString(filepath.Base(dir)) {
		t.Fatalf("private dir %s", dir)
	}
	env := r.Env()
	if env[0] != "CREDENTIALS_DIRECTORY="+dir || env[1] != "PW_FILE="+dir+"/pw" || env[2] != "DB_JSON_FILE="+dir+"/db.json" {
		t.Fatalf("Env = %q", env)
	}
	if st := statT(t, dir); st.Mode&0o7777 != 0o700 || st.Uid != nobody {
		t.Fatalf("dir mode %o uid %d", st.Mode&0o7777, st.Uid)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("dir holds %v (temporary files left?)", ents)
	}

	c := startChild(t, "inspect", true, nil, append(env, "LEASH_PATHS="+pw)...)
	var res []inspectResult
	c.readJSON(t, &res)
	if got := res[0]; string(got.Data) != rawSecret || got.Mode != 0o400 || got.UID != nobody || got.OpenWErr != syscall.EACCES.Error() {
		t.Fatalf("child saw %+v", got)
	}

	// Rotation replaces the file atomically (a new inode).
	oldIno := statT(t, pw).Ino
	if changed, err := r.Update(appSecret("rotated"), true); err != nil || !changed {
		t.Fatalf("rotate: changed=%v err=%v", changed, err)
	}
	if b, _ := os.ReadFile(pw); string(b) != "rotated" || statT(t, pw).Ino == oldIno {
		t.Fatalf("after rotation %q", b)
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("dir still there after Close: %v", err)
	}
}

func TestDirDefaultsToXDGRuntimeDir(t *testing.T) {
	parent := shmParent(t)
	t.Setenv("XDG_RUNTIME_DIR", parent)
	r, err := New(Options{Mode: Dir, UID: -1, GID: -1}, dirOutputs(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if p, _ := r.Path("pw"); !strings.HasPrefix(p, parent+"/leash-") {
		t.Fatalf("path %s not under $XDG_RUNTIME_DIR", p)
	}
}

func TestDirRefusesUnsafeParents(t *testing.T) {
	// A directory on disk: under /var/tmp, unless that is itself tmpfs.
	disk, err := os.MkdirTemp("/var/tmp", "leash-render-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(disk)
	var sfs unix.Statfs_t
	if err := unix.Statfs(disk, &sfs); err != nil {
		t.Fatal(err)
	}
	onDisk := !inMemory(&sfs)

	shm := shmParent(t)
	link := filepath.Join(shm, "link")
	target := filepath.Join(shm, "target")
	os.Mkdir(target, 0o700)
	os.Symlink(target, link)
	open := filepath.Join(shm, "open")
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o777)
	sticky := filepath.Join(shm, "sticky")
	os.Mkdir(sticky, 0o700)
	os.Chmod(sticky, os.ModeSticky|0o777)
	// Group-writable directories, as the parent and as an ancestor, also
	// reached through a symlink; with the sticky bit they are safe.
	group := mkdirMode(t, filepath.Join(shm, "group"), 0o770)
	groupAnc := mkdirMode(t, filepath.Join(shm, "group-anc"), 0o775)
	groupSub := mkdirMode(t, filepath.Join(groupAnc, "sub"), 0o700)
	viaLink := filepath.Join(shm, "to-group-anc")
	os.Symlink(groupAnc, viaLink)
	stickyGroup := mkdirMode(t, filepath.Join(shm, "sticky-group"), os.ModeSticky|0o770)
	stickySub := mkdirMode(t, filepath.Join(sticky, "sub"), 0o700)

	type parentCase struct {
		name, dir string
		allowDisk bool
		want      string // "" means accepted
	}
	cases := []parentCase{
		{"symlink", link, false, "is a symlink"},
		{"world-writable", open, false, "(mode 0777) is group-writable (group 0) and world-writable without the sticky bit"},
		{"world-writable fix", open, false, "chmod go-w " + open},
		{"sticky world-writable", sticky, false, ""},
		{"group-writable", group, false, "delivery dir " + group + " (mode 0770) is group-writable"},
		{"group-writable fix", group, false, "run chmod g-w " + group + ", or choose another delivery dir"},
		{"group-writable ancestor", groupSub, false, "its ancestor " + groupAnc + " (mode 0775) is group-writable"},
		{"group-writable ancestor via symlink", filepath.Join(viaLink, "sub"), false, "chmod g-w " + groupAnc},
		{"sticky group-writable", stickyGroup, false, ""},
		{"under a sticky ancestor", stickySub, false, ""},
		{"the tmpfs default", "/dev/shm", false, ""},
		{"missing", filepath.Join(shm, "nope"), false, "no such file"},
	}
	if onDisk {
		cases = append(cases,
			parentCase{"disk", disk, false, "not on tmpfs or ramfs"},
			parentCase{"disk allowed", disk, true, ""})
	} else {
		t.Log("/var/tmp is tmpfs here: disk refusal not exercised")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := New(Options{Mode: Dir, Dir: c.dir, AllowDisk: c.allowDisk, UID: -1, GID: -1}, dirOutputs(t))
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.Update(appSecret("x"), true); err != nil {
					t.Fatal(err)
				}
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				r.Close()
				t.Fatalf("accepted %s", c.dir)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want %q", err, c.want)
			}
		})
	}
	// Nothing was created inside the refused directories.
	for _, d := range []string{disk, target, open, group, groupSub} {
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Fatalf("%s: created %v", d, ents)
		}
	}
}

// A parent owned by another user (not root) could be swapped or filled by
// that user: refused.
func TestDirRefusesForeignOwnerAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	shm := shmParent(t)
	foreign := filepath.Join(shm, "foreign")
	if err := os.Mkdir(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(foreign, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{Mode: Dir, Dir: foreign, UID: -1, GID: -1}, dirOutputs(t))
	if err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("foreign-owned parent: %v", err)
	}
}

// The attack of issue 24: a member of the group that may write the parent
// (or an ancestor) renames leash's private directory (or the parent) away
// and puts their own under the same name, so the child, which follows
// $NAME_FILE by path, reads the attacker's bytes. Such parents are refused;
// if one were accepted, the attack is carried out as uid/gid 65534 to show
// what it would cost.
func TestDirGroupMemberCannotSwap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown to another group and run as another user")
	}
	shm := shmParent(t)
	os.Chmod(shm, 0o755) // the attacker must be able to reach the parent
	groupOwned := func(p string, mode os.FileMode) string {
		mkdirMode(t, p, mode)
		if err := os.Chown(p, 0, nobody); err != nil {
			t.Fatal(err)
		}
		return p
	}
	parent := groupOwned(filepath.Join(shm, "parent"), 0o770)
	anc := groupOwned(filepath.Join(shm, "anc"), 0o770)
	ancParent := mkdirMode(t, filepath.Join(anc, "parent"), 0o755)
	for _, c := range []struct {
		name, dir, swapped, want string
	}{
		{"parent", parent, "", "delivery dir " + parent + " (mode 0770) is group-writable (group 65534)"},
		{"ancestor", ancParent, ancParent, "its ancestor " + anc + " (mode 0770) is group-writable (group 65534)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := New(Options{Mode: Dir, Dir: c.dir, UID: -1, GID: -1}, dirOutputs(t))
			if err != nil {
				if !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %q, want %q", err, c.want)
				}
				return
			}
			defer r.Close()
			if _, err := r.Update(appSecret(rawSecret), true); err != nil {
				t.Fatal(err)
			}
			pw, _ := r.Path("pw")
			// Rename the private directory (or the parent) away and put
			// the attacker's own at the same path.
			swapped := c.swapped
			if swapped == "" {
				swapped = filepath.Dir(pw)
			}
			script := `set -e; mv "$1" "$1.away"; mkdir -p "$(dirname "$2")"; printf ATTACKER > "$2"`
			sh := exec.Command("/bin/sh", "-c", script, "sh", swapped, pw)
			sh.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
			if out, err := sh.CombinedOutput(); err != nil {
				t.Fatalf("accepted %s, and the swap failed: %v: %s", c.dir, err, out)
			}
			got, _ := os.ReadFile(pw)
			t.Fatalf("accepted %s (mode 0770, group 65534): uid 65534 swapped the directory and $PW_FILE now reads %q", c.dir, got)
		})
	}
}

// Whoever can write in the private directory (the child's user) cannot
// redirect leash's writes with symlinks, pre-created files or hard links.
func TestDirAttacksFailSafely(t *testing.T) {
	parent := shmParent(t)
	victim := filepath.Join(parent, "victim")
	if err := os.WriteFile(victim, []byte("victim"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{Mode: Dir, Dir: parent, UID: -1, GID: -1}, dirOutputs(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pw, _ := r.Path("pw")
	dbj, _ := r.Path("db.json")
	dir := filepath.Dir(pw)

	// A symlink planted at the output name is replaced, not followed.
	if err := os.Symlink(victim, pw); err != nil {
		t.Fatal(err)
	}
	// A pre-created, world-writable file held open by the attacker.
	if err := os.WriteFile(dbj, []byte("attacker"), 0o666); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(dbj)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := r.Update(appSecret(rawSecret), true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "victim" {
		t.Fatalf("write followed the symlink: victim now %q", b)
	}
	if fi, _ := os.Lstat(pw); !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o400 {
		t.Fatalf("pw is %v", fi.Mode())
	}
	if b, _ := os.ReadFile(pw); string(b) != rawSecret {
		t.Fatalf("pw = %q", b)
	}
	if b := make([]byte, 64); true {
		n, _ := held.ReadAt(b, 0)
		if string(b[:n]) != "attacker" {
			t.Fatalf("attacker's pre-created file received %q", b[:n])
		}
	}
	if fi, _ := os.Lstat(dbj); fi.Mode().Perm() != 0o400 {
		t.Fatalf("db.json mode %v", fi.Mode())
	}

	// A directory at the output name: the update fails and leaves no
	// temporary file behind.
	if err := os.Remove(pw); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(pw, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Update(appSecret("second"), true); err == nil {
		t.Fatal("update over a directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}
	os.Remove(pw)

	// A hard link to a file outside, planted before Close: Close must not
	// empty the victim through it.
	if err := os.Link(victim, filepath.Join(dir, "planted")); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "victim" {
		t.Fatalf("Close emptied a hard-linked victim: %q", b)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("dir left after Close: %v", err)
	}
}

func TestDirStaleCleanup(t *testing.T) {
	parent := shmParent(t)
	// Left by a leash that was SIGKILLed: nobody holds its lock.
	stale := filepath.Join(parent, "leash-999999-0123abcd")
	os.Mkdir(stale, 0o700)
	os.WriteFile(filepath.Join(stale, "pw"), []byte("old secret"), 0o400)
	// A live leash in another PID namespace: its lock is held.
	live := filepath.Join(parent, "leash-1-feed")
	os.Mkdir(live, 0o700)
	lf, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(parent, "leash-not-ours")
	os.Mkdir(other, 0o700)

	r, err := New(Options{Mode: Dir, Dir: parent, UID: -1, GID: -1}, dirOutputs(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale dir kept: %v", err)
	}
	if got := r.Removed(); len(got) != 1 || got[0] != stale {
		t.Errorf("Removed() = %q, want [%s]", got, stale)
	}
	for _, d := range []string{live, other} {
		if _, err := os.Lstat(d); err != nil {
			t.Fatalf("%s removed: %v", d, err)
		}
	}
}

// A real leash process: SIGTERM (handled, Close called) removes its
// directory; SIGKILL leaves it, and the next New removes it.
func TestDirCleanupAfterSignals(t *testing.T) {
	parent := shmParent(t)
	run := func() (*child, string) {
		c := startChild(t, "dirholder", false, nil, "LEASH_DIR="+parent)
		line, err := c.out.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		dir := strings.TrimSpace(line)
		if _, err := os.Stat(filepath.Join(dir, "pw")); err != nil {
			t.Fatalf("child output %q: %v", line, err)
		}
		return c, dir
	}

	c, dir := run()
	c.cmd.Process.Signal(syscall.SIGTERM)
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("child after SIGTERM: %v", err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("dir left after SIGTERM: %v", err)
	}

	c, dir = run()
	c.cmd.Process.Kill()
	c.cmd.Wait()
	if _, err := os.Lstat(dir); err != nil {
		t.Fatalf("SIGKILLed leash's dir should remain until the next start: %v", err)
	}
	r, err := New(Options{Mode: Dir, Dir: parent, UID: -1, GID: -1}, dirOutputs(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("stale dir of the killed leash kept: %v", err)
	}
}
