// Command child is the benchmark's stand-in application. Every wrapper under
// test (leash, Vault Agent, consul-template, tini, a direct exec) runs this
// same binary, so differences in the numbers are the wrapper's.
//
// It reports events as lines on a FIFO the harness reads (a FIFO by path,
// because wrappers do not pass extra descriptors through):
//
//	start PID N USER ROT   started; N credentials were readable, USER is the first one's username,
//	                       ROT its last_vault_rotation (a static role), else "-"
//	reload PID N USER ROT  got the reload signal (HUP) and re-read its credentials
//	usr1 PID           got SIGUSR1 (signal forwarding latency)
//	term PID COUNT     got SIGTERM or SIGINT after COUNT SIGUSR1s; exits 0 right after
//
// Only usernames are reported, never passwords.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	fifo := flag.String("fifo", "", "FIFO to report events on")
	creds := flag.String("cred", "", "comma-separated credential sources: file:ENV (path in $ENV), env:ENV (value in $ENV), path:FILE")
	exit := flag.Bool("exit", false, "exit right after reporting start")
	noop := flag.Bool("noop", false, "return at once: the cost of starting a Go program")
	flag.Parse()
	if *noop {
		return
	}

	// Install handlers before reporting start, so no signal sent after the
	// harness sees "start" can hit the default action.
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)

	out, err := os.OpenFile(*fifo, os.O_WRONLY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	pid := os.Getpid()
	report := func(format string, args ...any) {
		// One write per line: atomic on a FIFO (below PIPE_BUF).
		out.Write([]byte(fmt.Sprintf(format, args...) + "\n"))
	}

	n, user, rot := readCreds(*creds)
	report("start %d %d %s %s", pid, n, user, rot)
	if *exit {
		return
	}
	usr1 := 0
	for s := range sigs {
		switch s {
		case syscall.SIGUSR1:
			usr1++
			report("usr1 %d", pid)
		case syscall.SIGHUP:
			n, user, rot := readCreds(*creds)
			report("reload %d %d %s %s", pid, n, user, rot)
		default:
			report("term %d %d", pid, usr1)
			os.Exit(0)
		}
	}
}

// readCreds reads every source and returns how many were non-empty, the
// first one's username and its last_vault_rotation ("-" when none).
func readCreds(spec string) (n int, first, rot string) {
	first, rot = "-", "-"
	if spec == "" {
		return 0, first, rot
	}
	for _, src := range strings.Split(spec, ",") {
		kind, name, _ := strings.Cut(src, ":")
		var b []byte
		switch kind {
		case "env":
			b = []byte(os.Getenv(name))
		case "file":
			b, _ = os.ReadFile(os.Getenv(name)) // re-opens /dev/fd/N: sees replaced bytes
		case "path":
			b, _ = os.ReadFile(name)
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		n++
		if first == "-" {
			first, rot = username(b)
		}
	}
	return n, first, rot
}

// username extracts the username (and a static role's last_vault_rotation,
// else "-") from a JSON credential, or takes the bytes as the username itself.
func username(b []byte) (user, rot string) {
	if b[0] == '{' {
		var v struct {
			Username string `json:"username"`
			Rotation string `json:"last_vault_rotation"`
		}
		if json.Unmarshal(b, &v) == nil && v.Username != "" {
			if v.Rotation == "" {
				v.Rotation = "-"
			}
			return v.Username, v.Rotation
		}
		return "?", "-"
	}
	return strings.Fields(string(b))[0], "-"
}
