package render

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// lockedKiB returns the Locked: size of this process's mapping of memfd
// "leash:name", and whether such a mapping exists.
func lockedKiB(t *testing.T, name string) (int, bool) {
	t.Helper()
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	in := false
	for _, line := range strings.Split(string(smaps), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 6 && strings.Contains(line, "memfd:leash:"+name+" "):
			in = true
		case len(f) >= 6 && strings.Contains(f[0], "-"):
			in = false
		case in && len(f) >= 2 && f[0] == "Locked:":
			n, _ := strconv.Atoi(f[1])
			return n, true
		}
	}
	return 0, false
}

// With Mlock every memfd stays mapped and locked, through in-place
// rewrites and restarts, and the mapping goes away with Close.
func TestMlockLocksMemfdPages(t *testing.T) {
	for _, inPlace := range []bool{true, false} {
		r, err := New(Options{Mlock: true}, []Output{{Name: "mlk", Kind: Field, Secret: "s", Field: "password"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, pw := range []string{"first", strings.Repeat("x", 10000)} {
			if _, err := r.Update(map[string]Secret{"s": {Data: NewValues(map[string]any{"password": pw})}}, inPlace); err != nil {
				t.Fatalf("inPlace=%v: %v", inPlace, err)
			}
			r.Release()
			if kb, ok := lockedKiB(t, "mlk"); !ok || kb == 0 {
				t.Errorf("inPlace=%v, %d bytes: memfd mapped=%v, locked %d KiB; want locked pages", inPlace, len(pw), ok, kb)
			}
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if _, ok := lockedKiB(t, "mlk"); ok {
			t.Errorf("inPlace=%v: memfd still mapped after Close", inPlace)
		}
	}
}
