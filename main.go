// Command leash runs a program with leased Vault secrets delivered only
// through memory (memfd or a private tmpfs directory), renews and rotates
// them while it runs, and revokes them when it exits. It is a correct PID 1:
// it forwards signals, reaps zombies and mirrors the child's exit status.
//
// Package main wires the packages together, one way, as plain values:
// lease (Vault) -> render (bytes into memfd/tmpfs) -> supervisor (the child),
// with signals for names, forwarding and reaping. Only this package maps
// errors to exit codes.
package main

import (
	"context"
	"io"
	stdlog "log"
	"os"
)

func main() {
	// Libraries write to the standard logger only in debug modes, and those
	// print what leash must never log: GODEBUG=http2debug=1 prints every
	// request header (the Vault token), =2 every response body (the
	// secrets). leash's own logs go through hclog.
	stdlog.SetOutput(io.Discard)
	cli, kctx, err := parseCLI(os.Args[1:])
	if err != nil {
		os.Exit(reportParseError(err))
	}
	log := newLogger(cli.LogLevel, cli.LogFormat, os.Stderr)
	os.Exit(exitCode(dispatch(context.Background(), cli, kctx, log), log))
}
