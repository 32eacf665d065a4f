package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version and commit are set at build time (make build, make dist, the
// Dockerfile): -ldflags "-X main.version=$(git describe --tags --always
// --dirty) -X main.commit=$(git rev-parse HEAD)".
var (
	version = "dev"
	commit  = ""
)

// printVersion prints what `leash version` reports: the version, the
// commit it was built from, the Go toolchain and the platform, one per
// line, so a bug report carries all four.
func printVersion(w io.Writer) {
	fmt.Fprintln(w, "leash", version)
	fmt.Fprintln(w, "commit", buildCommit())
	fmt.Fprintln(w, "go", runtime.Version())
	fmt.Fprintln(w, "platform", runtime.GOOS+"/"+runtime.GOARCH)
}

// buildCommit is commit, or else the revision the go command recorded
// (a plain go build in a git checkout), or "unknown".
func buildCommit() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	return "unknown"
}
