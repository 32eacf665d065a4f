package main

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/leash-dev/leash/supervisor"
)

// The child's status passes through; a signal, the child's or one that
// stopped leash before the child started, is 128+N: one mapping for both.
func TestExitCodeMirrorsTheChild(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{&supervisor.ExitError{Code: 3}, 3},
		{fmt.Errorf("run: %w", &supervisor.ExitError{Code: 255}), 255},
		{&supervisor.ExitError{Code: -1, Signal: syscall.SIGTERM}, 143},
		{&supervisor.ExitError{Code: -1, Signal: syscall.SIGKILL}, 137},
		{&signalledError{syscall.SIGINT}, 130},
		{&supervisor.StartError{Code: 127, Name: "nope"}, 127},
	} {
		if got := exitCode(tt.err, hclog.NewNullLogger()); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
