package supervisor_test

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/leash-dev/leash/internal/testchild"
	"github.com/leash-dev/leash/supervisor"
)

// BenchmarkStartWait measures leash's overhead around a trivial child: New,
// Start (fork under a locked thread, exec) and Run until it exits.
func BenchmarkStartWait(b *testing.B) {
	for b.Loop() {
		sup, err := supervisor.New(supervisor.Config{Argv: []string{"true"}})
		if err != nil {
			b.Fatal(err)
		}
		if err := sup.Start(nil, nil); err != nil {
			b.Fatal(err)
		}
		if err := sup.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignalRoundTrip measures forwarding latency: Signal until the
// child reports the signal on its pipe.
func BenchmarkSignalRoundTrip(b *testing.B) {
	for _, childOnly := range []bool{false, true} {
		b.Run(fmt.Sprintf("childOnly=%v", childOnly), func(b *testing.B) {
			rep, w := testchild.Pipe(b)
			sup, err := supervisor.New(supervisor.Config{Argv: []string{self(b)}, ChildOnly: childOnly})
			if err != nil {
				b.Fatal(err)
			}
			if err := sup.Start([]*os.File{w}, []string{testchild.EnvMode + "=report"}); err != nil {
				b.Fatal(err)
			}
			w.Close()
			rep.Ready(b, "child", timeout)
			for b.Loop() {
				sup.Signal(syscall.SIGUSR1)
				rep.Expect(b, "child sig 10", timeout)
			}
			sup.Signal(syscall.SIGKILL)
			sup.Run(context.Background())
		})
	}
}

// BenchmarkRestart measures a full graceful restart of a child that exits
// on SIGTERM, until the new child is ready.
func BenchmarkRestart(b *testing.B) {
	env := []string{testchild.EnvMode + "=report", testchild.EnvExitOn + "=15"}
	rep, w := testchild.Pipe(b)
	sup, err := supervisor.New(supervisor.Config{Argv: []string{self(b)}})
	if err != nil {
		b.Fatal(err)
	}
	if err := sup.Start([]*os.File{w}, env); err != nil {
		b.Fatal(err)
	}
	w.Close()
	rep.Ready(b, "child", timeout)
	for b.Loop() {
		rep, w := testchild.Pipe(b)
		if err := sup.Restart(context.Background(), []*os.File{w}, env); err != nil {
			b.Fatal(err)
		}
		w.Close()
		rep.Ready(b, "child", timeout)
	}
	sup.Signal(syscall.SIGKILL)
	sup.Run(context.Background())
}
