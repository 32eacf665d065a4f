package testchild

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"
)

// Variables the stdout modes read.
const (
	// EnvTermDelay: in mode watch, how long to take to shut down on SIGTERM
	// (a duration; a slow shutdown, not synchronisation).
	EnvTermDelay = "LEASH_TESTCHILD_TERM_DELAY"
	// EnvTermExit: in mode watch, the exit code after SIGTERM (0 unless set).
	EnvTermExit = "LEASH_TESTCHILD_TERM_EXIT"
	// EnvNext: in mode sigconf, the mode of the helper that the executed
	// program (leash) starts in turn.
	EnvNext = "LEASH_TESTCHILD_NEXT"
	// EnvPGURL: in mode pgapp, the PostgreSQL URL without user and password.
	EnvPGURL = "LEASH_TESTCHILD_PG_URL"
)

// SigconfIgnored and SigconfBlocked are the signals mode sigconf ignores and
// blocks before it executes its argv, like tini's sigconf-test and nohup.
var (
	SigconfIgnored = []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTTOU}
	SigconfBlocked = []syscall.Signal{syscall.SIGTTIN, syscall.SIGUSR2}
)

// Argv returns the command line that runs the test binary as the helper in
// mode with args: give it to leash after "--". env(1) sets the mode, so only
// the helper sees it, not leash.
func Argv(t testing.TB, mode string, args ...string) []string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"env", EnvMode + "=" + mode, self}, args...)
}

// runMode runs one of the stdout modes:
//
//	signals: print "ready", then "sig N" per signal received (not SIGURG,
//	    SIGCHLD); exit 0 after reporting SIGTERM or SIGUSR2.
//	ignore-term: like signals, but SIGTERM does not end it.
//	status-signals: print its SigIgn and SigBlk lines, then act as signals.
//	watch VAR: print "ready PID B64" (B64: the contents of the file named by
//	    $VAR, base64), then "reload B64" on each SIGHUP and "sig N" for other
//	    signals; on SIGTERM print "term", take $EnvTermDelay to shut down
//	    and exit $EnvTermExit.
//	cat-file VAR: print the contents of the file named by $VAR.
//	probe PID...: for each pid print "PID mem=R environ=R ptrace=R", R being
//	    "ok" or the errno name (run it as another user).
//	pgapp: the seed scenario's application (see pgApp).
//	sigconf ARGV: exec ARGV with SigconfIgnored ignored and SigconfBlocked
//	    blocked, as mode $EnvNext.
//	swap-socket SOCK VICTIM: the attacker of internal/status's
//	    TestStatusSocketRace.
func runMode(mode string, args []string) int {
	switch mode {
	case "signals", "ignore-term":
		return signalsMode(mode == "signals")
	case "status-signals":
		b, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "SigIgn:") || strings.HasPrefix(l, "SigBlk:") {
				fmt.Println(l)
			}
		}
		return signalsMode(true)
	case "watch":
		return watch(args[0])
	case "cat-file":
		b, err := os.ReadFile(os.Getenv(args[0]))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		os.Stdout.Write(b)
		return 0
	case "probe":
		for _, a := range args {
			pid, _ := strconv.Atoi(a)
			fmt.Printf("%d mem=%s environ=%s ptrace=%s\n", pid,
				openResult(fmt.Sprintf("/proc/%d/mem", pid)),
				openResult(fmt.Sprintf("/proc/%d/environ", pid)),
				ptraceResult(pid))
		}
		return 0
	case "pgapp":
		return pgApp()
	case "sigconf":
		return sigconfExec(args)
	case "swap-socket":
		return swapSocket(args[0], args[1])
	}
	fmt.Fprintf(os.Stderr, "testchild: unknown mode %q\n", mode)
	return 2
}

func signalsMode(termExits bool) int {
	ch := make(chan os.Signal, 64)
	signal.Notify(ch)
	fmt.Println("ready")
	for sig := range ch {
		s := sig.(syscall.Signal)
		if s == syscall.SIGURG || s == syscall.SIGCHLD {
			continue
		}
		fmt.Printf("sig %d\n", int(s))
		if s == syscall.SIGUSR2 || (s == syscall.SIGTERM && termExits) {
			return 0
		}
	}
	return 0
}

func watch(v string) int {
	read := func() string {
		b, err := os.ReadFile(os.Getenv(v))
		if err != nil {
			return "ERR:" + err.Error()
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	ch := make(chan os.Signal, 64)
	signal.Notify(ch)
	fmt.Printf("ready %d %s\n", os.Getpid(), read())
	for sig := range ch {
		switch s := sig.(syscall.Signal); s {
		case syscall.SIGURG, syscall.SIGCHLD:
		case syscall.SIGHUP:
			fmt.Printf("reload %s\n", read())
		case syscall.SIGTERM:
			fmt.Println("term")
			if d, err := time.ParseDuration(os.Getenv(EnvTermDelay)); err == nil {
				time.Sleep(d) // a slow shutdown, not synchronisation
			}
			code, _ := strconv.Atoi(os.Getenv(EnvTermExit))
			return code
		default:
			fmt.Printf("sig %d\n", int(s))
		}
	}
	return 0
}

func openResult(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return errnoName(err)
	}
	f.Close()
	return "ok"
}

func ptraceResult(pid int) string {
	done := make(chan string)
	go func() {
		// ptrace requests must come from the attaching thread.
		runtime.LockOSThread()
		var res string
		if err := unix.PtraceAttach(pid); err != nil {
			res = errnoName(err)
		} else {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, waitAll, nil)
			unix.PtraceDetach(pid)
			res = "ok"
		}
		done <- res
	}()
	return <-done
}

func errnoName(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return err.Error()
}

// pgApp is the seed scenario's application: it reads $DB_FILE, connects as
// that role to $EnvPGURL and queries in a loop; on SIGHUP it re-reads the
// file and swaps to a new connection. It reports on stdout:
//
//	user NAME   connected as NAME (after start or a reload)
//	pw SECRET   the password it got (so the test can search for it)
//	FAIL ...    a query failed or ran as the wrong role
//	LEAK ...    the secret is in its environment
//
// It exits 0 on SIGTERM.
func pgApp() int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)
	base, err := pgx.ParseConfig(os.Getenv(EnvPGURL))
	if err != nil {
		fmt.Println("FAIL parse url:", err)
		return 1
	}
	ctx := context.Background()
	connect := func() (*pgx.Conn, string) {
		raw, err := os.ReadFile(os.Getenv("DB_FILE"))
		if err != nil {
			fmt.Println("FAIL read DB_FILE:", err)
			return nil, ""
		}
		var creds struct{ Username, Password string }
		if err := json.Unmarshal(raw, &creds); err != nil || creds.Username == "" {
			fmt.Println("FAIL bad DB_FILE contents")
			return nil, ""
		}
		fmt.Println("pw", creds.Password)
		if env, _ := os.ReadFile("/proc/self/environ"); strings.Contains(string(env), creds.Password) {
			fmt.Println("LEAK environment holds the password")
		}
		cfg := base.Copy()
		cfg.User, cfg.Password = creds.Username, creds.Password
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			fmt.Println("FAIL connect:", err)
			return nil, ""
		}
		fmt.Println("user", creds.Username)
		return conn, creds.Username
	}
	conn, user := connect()
	if conn == nil {
		return 1
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGTERM {
				conn.Close(ctx)
				return 0
			}
			if next, nextUser := connect(); next != nil {
				conn.Close(ctx)
				conn, user = next, nextUser
			}
		case <-tick.C:
			var cur string
			if err := conn.QueryRow(ctx, "SELECT current_user FROM app_data LIMIT 1").Scan(&cur); err != nil {
				fmt.Println("FAIL query:", err)
			} else if cur != user {
				fmt.Println("FAIL current_user", cur, "want", user)
			}
		}
	}
}

// sigconfExec executes argv with SigconfIgnored ignored and SigconfBlocked
// blocked, the way a C parent would between fork and exec: execve keeps
// ignored dispositions and the calling thread's mask.
func sigconfExec(argv []string) int {
	os.Setenv(EnvMode, os.Getenv(EnvNext))
	for _, s := range SigconfIgnored {
		signal.Ignore(s)
	}
	runtime.LockOSThread() // the mask is the thread's, and execve keeps it
	if err := blockSignals(SigconfBlocked); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	err := syscall.Exec(argv[0], argv, os.Environ())
	fmt.Fprintln(os.Stderr, "exec:", err)
	return 2
}

// swapSocket renames the socket away as soon as it appears and puts a
// symlink to victim in its place, and in between flickers a symlink at the
// name. A leash that sets the mode by path after binding makes victim 0660.
func swapSocket(sock, victim string) int {
	fmt.Println("ready")
	for {
		if os.Rename(sock, sock+".stolen") == nil {
			os.Symlink(victim, sock)
			time.Sleep(time.Millisecond)
			os.Remove(sock)
			os.Remove(sock + ".stolen")
		} else if os.Symlink(victim, sock) == nil {
			os.Remove(sock)
		}
	}
}
