package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

// Sentinel errors returned by Restart, Reload and Run.
var (
	// ErrNotStarted: Start has not been called (or failed).
	ErrNotStarted = errors.New("supervisor: child not started")
	// ErrExited: the child has exited on its own; Run reports its status.
	ErrExited = errors.New("supervisor: child has exited")
	// ErrStopping: a stop was requested; the child is on its way out and is not
	// restarted.
	ErrStopping = errors.New("supervisor: child is stopping")
)

// ExitError reports a child that exited with a non-zero status or was killed by
// a signal. It carries the raw status; the mapping to leash's own exit code
// (128+N for signal N) is package main's alone.
type ExitError struct {
	// Code is the exit status, or -1 when a signal killed the child.
	Code int
	// Signal is the signal that killed the child, or 0 when it exited.
	Signal syscall.Signal
}

func (e *ExitError) Error() string {
	if e.Signal != 0 {
		return "child killed by signal " + sigName(e.Signal)
	}
	return fmt.Sprintf("child exited with status %d", e.Code)
}

// StartError reports a command that could not be started, with the exit code a
// shell would use: 127 when it does not exist, 126 when it exists but cannot
// be executed.
type StartError struct {
	Code int    // 127 or 126
	Name string // the command as given (Argv[0])
	Err  error
}

func (e *StartError) Error() string {
	if e.Code == 127 {
		return fmt.Sprintf("start %s: command not found", e.Name)
	}
	return fmt.Sprintf("start %s: cannot execute: %v", e.Name, e.Err)
}

func (e *StartError) Unwrap() error { return e.Err }

// ExitCode returns Code, the status a shell would exit with.
func (e *StartError) ExitCode() int { return e.Code }

// startError classifies an exec or lookup failure.
func startError(name string, err error) *StartError {
	code := 126
	if errors.Is(err, fs.ErrNotExist) {
		code = 127
	}
	// Show the bare errno ("permission denied") rather than Go's
	// "fork/exec /path:" wrapping; Name already says which command.
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &StartError{Code: code, Name: name, Err: err}
}
