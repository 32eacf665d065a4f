package supervisor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// DefaultKillTimeout is Config.KillTimeout's zero value: 10s, like docker stop.
const DefaultKillTimeout = 10 * time.Second

// Config describes the child and how to stop it.
type Config struct {
	// Argv is the child's argv; Argv[0] is resolved with leash's PATH and the
	// whole slice is passed through unchanged. Required.
	Argv []string
	// Env is the base environment (already scrubbed of leash's own
	// credentials); Start and Restart append their extra variables, which win
	// over duplicates. nil means os.Environ().
	Env []string
	// StopSignal is sent to stop the child (Stop, Restart, ctx cancel) and to
	// the rest of its group when it exits. 0 means SIGTERM.
	StopSignal syscall.Signal
	// KillTimeout is how long a stopping child may take before its group gets
	// SIGKILL. 0 means DefaultKillTimeout.
	KillTimeout time.Duration
	// StopDelay postpones the first stop signal (load balancer
	// deregistration). Restarts skip it. 0 means no delay.
	StopDelay time.Duration
	// Splay bounds a random delay before a restart stops the child, so
	// replicas do not restart in lockstep. 0 means none.
	Splay time.Duration
	// ChildOnly sends forwarded signals to the child alone (tini's default)
	// instead of its whole process group (dumb-init's default, and leash's).
	ChildOnly bool
	// Dir is the child's working directory at its start and every restart,
	// and what a relative command path is resolved against (leash itself
	// leaves its directory once the child runs). A child of another user
	// (Credential) that cannot enter it starts in leash's working directory
	// instead, with a warning. "" means leash's current one, as it is at
	// each start.
	Dir string
	// Credential runs the child as another user (--user); nil keeps leash's.
	Credential *syscall.Credential
	// Logger receives lifecycle events; nil discards them.
	Logger hclog.Logger
}

// Supervisor runs one child at a time. Its methods are safe for concurrent use.
type Supervisor struct {
	cfg  Config
	path string // Argv[0] resolved
	log  hclog.Logger
	wake chan struct{} // buffer 1: Run re-reads state (child replaced, fatal error)

	// forkMu serialises forking with IsChild, so the reaper cannot see a
	// just-forked child before it is recorded in pids.
	forkMu sync.Mutex
	pids   map[int]struct{} // children started and not yet reaped by their Wait

	// restartMu makes restarts one at a time.
	restartMu sync.Mutex

	mu         sync.Mutex
	started    bool
	contOwed   bool      // leash stopped itself with its child: the SIGCONT resuming it is awaitExit's to pass on
	cur        *child    // the current child; nil before Start
	restarting bool      // between stopping the old child and starting the new one
	queue      []request // signals that arrived while there was no child to take them
	finished   bool      // Run has returned or is returning: the child ended on its own
	fatal      error     // a restart could not start the new child
}

// request is a signal for the child. A stop request also arms the stop delay
// and the kill timeout.
type request struct {
	sig  syscall.Signal
	stop bool
}

// child is one process and the state of stopping it. Fields after done are
// guarded by Supervisor.mu.
type child struct {
	cmd  *exec.Cmd
	pid  int
	exit error         // macOS, where awaitExit reaps: the result, for reap (waitChild's goroutine only)
	done chan struct{} // closed once reaped; err is then valid

	err        error // nil, *ExitError, or a wait failure
	dead       bool  // exited (a zombie or reaped): send nothing more
	deliberate bool  // stopped by Restart: its exit does not end Run
	stopping   bool  // a stop request was accepted
	delaying   bool  // inside StopDelay; stop signals wait in delayed
	delayed    []syscall.Signal
	timers     []*time.Timer
}

// Prepare does ahead of time the part of the first Start that does not
// depend on the child. Go's os package checks once per process whether
// pidfds work, by forking a throwaway child, which put 0.2-0.4 ms on the
// path to leash's first child. Call it in a goroutine while something
// slower runs (leash fetches secrets); a Start that comes first simply
// waits for it.
func Prepare() {
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		p.Release()
	}
}

// New checks the configuration and resolves the command. A command that does
// not exist or cannot be executed gives a *StartError (127 or 126).
func New(cfg Config) (*Supervisor, error) {
	if len(cfg.Argv) == 0 || cfg.Argv[0] == "" {
		return nil, errors.New("supervisor: no command")
	}
	if cfg.StopSignal == 0 {
		cfg.StopSignal = syscall.SIGTERM
	}
	if cfg.KillTimeout == 0 {
		cfg.KillTimeout = DefaultKillTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	cfg.Argv = slices.Clone(cfg.Argv)
	cfg.Env = slices.Clip(slices.Clone(cfg.Env))

	name := cfg.Argv[0]
	if cfg.Dir != "" && strings.Contains(name, "/") && !filepath.IsAbs(name) {
		name = filepath.Join(cfg.Dir, name) // "./app", "bin/app": from Dir
	}
	path, err := exec.LookPath(name)
	if errors.Is(err, exec.ErrDot) {
		// An exec wrapper honours PATH as written, "." included.
		err = nil
	}
	if err != nil {
		se := startError(cfg.Argv[0], err)
		if errors.Is(err, exec.ErrNotFound) {
			se.Code = 127
		}
		return nil, se
	}
	if !filepath.IsAbs(path) {
		// A relative PATH entry (found from the current directory): the
		// same file at every restart, wherever leash is then.
		if path, err = filepath.Abs(path); err != nil {
			return nil, startError(cfg.Argv[0], err)
		}
	}
	return &Supervisor{
		cfg:  cfg,
		path: path,
		log:  cfg.Logger,
		wake: make(chan struct{}, 1),
		pids: make(map[int]struct{}),
	}, nil
}

// Start starts the child with files as its descriptors 3, 4, ... and env
// appended to Config.Env. It returns once the command has been executed (or
// failed to, as a *StartError). Signals received before Start are delivered
// right after it.
func (s *Supervisor) Start(files []*os.File, env []string) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("supervisor: already started")
	}
	s.started = true
	s.mu.Unlock()

	c, err := s.spawn(files, env)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.finished = true
		s.queue = nil
		return err
	}
	s.cur = c
	s.flushLocked()
	return nil
}

// Run waits for the child and returns nil when it exits 0, an *ExitError when
// it exits otherwise, or the *StartError of a failed restart. Children stopped
// by Restart do not end Run. Cancelling ctx stops the child gracefully (like
// Stop) and Run still returns the child's status.
func (s *Supervisor) Run(ctx context.Context) error {
	s.mu.Lock()
	if !s.started || (s.cur == nil && s.fatal == nil) {
		s.mu.Unlock()
		return ErrNotStarted
	}
	s.mu.Unlock()

	ctxDone := ctx.Done()
	for {
		s.mu.Lock()
		c, fatal := s.cur, s.fatal
		var done <-chan struct{}
		if !c.deliberate {
			done = c.done
		}
		s.mu.Unlock()
		if fatal != nil {
			s.mu.Lock()
			s.finished = true
			s.mu.Unlock()
			return fatal
		}
		select {
		case <-done:
			s.mu.Lock()
			if c.deliberate { // Restart got there first
				s.mu.Unlock()
				continue
			}
			s.finished = true
			s.queue = nil
			s.mu.Unlock()
			return c.err
		case <-s.wake:
		case <-ctxDone:
			ctxDone = nil
			s.Stop()
		}
	}
}

// Signal forwards sig to the child's process group (the child alone with
// ChildOnly). SIGTERM, SIGINT and StopSignal are stop requests: the first waits
// StopDelay, then is forwarded and arms the kill timeout; later ones are
// forwarded again (after the delay, if it is still running), never turned into
// SIGKILL. During a restart, or before Start, signals are queued for the new
// child. After the child has exited, Signal does nothing.
func (s *Supervisor) Signal(sig os.Signal) {
	ss, ok := sig.(syscall.Signal)
	if !ok || ss == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss == syscall.SIGCONT && s.contOwed {
		// The SIGCONT that resumed leash after it stopped with its child
		// (fg or bg in the shell). awaitExit hands the terminal back to
		// the child and only then continues it; continuing it here first
		// could let it read while still in the background and stop on
		// SIGTTIN.
		s.contOwed = false
		return
	}
	stop := ss == syscall.SIGTERM || ss == syscall.SIGINT || ss == s.cfg.StopSignal
	s.requestLocked(request{sig: ss, stop: stop})
}

// Stop stops the child: after StopDelay it sends StopSignal, and after
// KillTimeout more it SIGKILLs the process group. It does not wait; Run returns
// when the child is gone.
func (s *Supervisor) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requestLocked(request{sig: s.cfg.StopSignal, stop: true})
}

// Reload sends sig to the child (group) so it rereads its credentials in
// place; it never restarts. During a restart the signal is queued for the new
// child. It fails once the child has exited.
func (s *Supervisor) Reload(sig os.Signal) error {
	ss, ok := sig.(syscall.Signal)
	if !ok || ss == 0 {
		return fmt.Errorf("supervisor: reload: invalid signal %v", sig)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.started:
		return ErrNotStarted
	case s.finished || s.fatal != nil || (s.cur != nil && s.cur.dead && !s.restarting):
		return ErrExited
	}
	s.requestLocked(request{sig: ss})
	return nil
}

// Restart replaces the child: after a random delay below Splay it sends
// StopSignal, SIGKILLs the group after KillTimeout, waits for the exit and
// starts a new child with files and env as in Start. ctx cancels only the splay
// wait; once the old child is being stopped the restart completes. Signals
// received meanwhile go to the new child, except that a stop request (SIGTERM,
// SIGINT, StopSignal, Stop) cancels the restart: no new child is started, Run
// returns the old child's status and Restart returns ErrStopping. If the new
// child cannot start, Run returns the same error. Restart fails with ErrExited
// or ErrStopping when the child already exited or is being stopped.
func (s *Supervisor) Restart(ctx context.Context, files []*os.File, env []string) error {
	s.restartMu.Lock()
	defer s.restartMu.Unlock()

	if s.cfg.Splay > 0 {
		t := time.NewTimer(rand.N(s.cfg.Splay))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}

	s.mu.Lock()
	c := s.cur
	switch {
	case !s.started || (c == nil && s.fatal == nil):
		s.mu.Unlock()
		return ErrNotStarted
	case s.finished || s.fatal != nil || c.dead:
		s.mu.Unlock()
		return ErrExited
	case c.stopping:
		s.mu.Unlock()
		return ErrStopping
	}
	c.deliberate = true
	s.restarting = true
	s.log.Info("restarting child", "pid", c.pid)
	s.sendLocked(c, s.cfg.StopSignal)
	s.armKillLocked(c)
	s.mu.Unlock()

	<-c.done
	s.mu.Lock()
	if slices.ContainsFunc(s.queue, func(r request) bool { return r.stop }) {
		// Asked to stop while restarting: starting a new child only to
		// hand it a stop signal before it can install its handlers would
		// turn a clean shutdown into a death by signal. The old child's
		// exit is the final one.
		s.log.Info("stop requested during restart; not starting a new child", "pid", c.pid)
		c.deliberate = false
		s.restarting = false
		s.queue = nil
		s.mu.Unlock()
		s.poke()
		return ErrStopping
	}
	s.mu.Unlock()
	nc, err := s.spawn(files, env)

	s.mu.Lock()
	s.restarting = false
	if err != nil {
		s.fatal = err
		s.queue = nil
	} else {
		s.cur = nc
		s.flushLocked()
	}
	s.mu.Unlock()
	s.poke()
	return err
}

// IsChild reports whether pid is a child the supervisor started and has not
// yet reaped. It blocks while a child is being forked, so a reaper calling it
// as Reaper.Skip never reaps a child that exits before it is recorded.
func (s *Supervisor) IsChild(pid int) bool {
	s.forkMu.Lock()
	defer s.forkMu.Unlock()
	_, ok := s.pids[pid]
	return ok
}

// Pid returns the pid of the child that runs now, or 0 when none does
// (before Start, between the two children of a restart, once it exited).
func (s *Supervisor) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || s.cur.dead || s.restarting {
		return 0
	}
	return s.cur.pid
}

func (s *Supervisor) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// requestLocked delivers r now or queues it for the next child.
func (s *Supervisor) requestLocked(r request) {
	switch {
	case s.finished || s.fatal != nil:
	case s.cur == nil || s.restarting:
		s.queue = append(s.queue, r)
	default:
		s.deliverLocked(s.cur, r)
	}
}

func (s *Supervisor) flushLocked() {
	q := s.queue
	s.queue = nil
	for _, r := range q {
		s.deliverLocked(s.cur, r)
	}
}

func (s *Supervisor) deliverLocked(c *child, r request) {
	if c.dead {
		return
	}
	if !r.stop {
		s.sendLocked(c, r.sig)
		return
	}
	if c.delaying {
		c.delayed = append(c.delayed, r.sig)
		return
	}
	if c.stopping {
		s.sendLocked(c, r.sig) // a repeated stop request: forward again
		return
	}
	c.stopping = true
	if s.cfg.StopDelay <= 0 {
		s.sendLocked(c, r.sig)
		s.armKillLocked(c)
		return
	}
	s.log.Info("delaying stop signal", "pid", c.pid, "signal", sigName(r.sig), "delay", s.cfg.StopDelay)
	c.delaying = true
	c.delayed = append(c.delayed, r.sig)
	c.timers = append(c.timers, time.AfterFunc(s.cfg.StopDelay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		c.delaying = false
		if c.dead {
			return
		}
		for _, sig := range c.delayed {
			s.sendLocked(c, sig)
		}
		c.delayed = nil
		s.armKillLocked(c)
	}))
}

// armKillLocked SIGKILLs c's group if c is still alive after KillTimeout.
func (s *Supervisor) armKillLocked(c *child) {
	c.timers = append(c.timers, time.AfterFunc(s.cfg.KillTimeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if c.dead {
			return
		}
		s.log.Warn("kill timeout expired, killing process group", "pid", c.pid, "timeout", s.cfg.KillTimeout)
		// The group, and the child itself in case it left the group.
		gerr := unix.Kill(-c.pid, unix.SIGKILL)
		if perr := c.cmd.Process.Kill(); errors.Is(gerr, unix.EPERM) && perr != nil {
			s.log.Error("cannot kill the child: permission denied (leash needs CAP_KILL to signal a child running as another user)",
				"pid", c.pid, "error", perr)
		}
	}))
}

// sendLocked forwards sig to c's group, or to c alone with ChildOnly.
func (s *Supervisor) sendLocked(c *child, sig syscall.Signal) {
	if c.dead {
		return
	}
	var err error
	if s.cfg.ChildOnly {
		err = c.cmd.Process.Signal(sig) // by pidfd: immune to pid reuse
	} else {
		err = unix.Kill(-c.pid, sig)
	}
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			// Not a race with the child's exit: leash lacks the right
			// (a --user child without CAP_KILL). Say so loudly.
			s.log.Error("cannot signal the child: permission denied (leash needs CAP_KILL to signal a child running as another user)",
				"pid", c.pid, "signal", sigName(sig))
			return
		}
		s.log.Debug("signal not delivered", "pid", c.pid, "signal", sigName(sig), "error", err)
		return
	}
	s.log.Debug("forwarded signal", "pid", c.pid, "signal", sigName(sig), "group", !s.cfg.ChildOnly)
}

// spawn starts a child on a dedicated goroutine and returns once it runs.
func (s *Supervisor) spawn(files []*os.File, env []string) (*child, error) {
	dir := s.cfg.Dir
	if wd, err := os.Getwd(); err == nil && wd == dir {
		// Already there: the child inherits it. A chdir would run as the
		// child's user (after setuid), which may not be able to enter it.
		dir = ""
	}
	c, err := s.spawnIn(dir, files, env)
	if err != nil && dir != "" && s.cfg.Credential != nil {
		s.log.Warn("cannot start the child in its directory as its user; starting it in leash's", "path", dir, "error", err)
		c, err = s.spawnIn("", files, env)
	}
	return c, err
}

// spawnIn is spawn in dir ("": leash's working directory).
func (s *Supervisor) spawnIn(dir string, files []*os.File, env []string) (*child, error) {
	fg := isForeground()

	cmd := &exec.Cmd{
		Path:       s.path,
		Args:       s.cfg.Argv,
		Dir:        dir,
		Env:        append(s.cfg.Env, env...),
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		ExtraFiles: files,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:    true,
			Foreground: fg, // implies Setpgid; Ctty 0 is the child's stdin
			Credential: s.cfg.Credential,
		},
	}
	setParentDeathSignal(cmd.SysProcAttr)
	c := &child{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go s.waitChild(c, fg, started)
	if err := <-started; err != nil {
		se := startError(s.cfg.Argv[0], err)
		s.log.Error("cannot start child", "path", s.path, "error", se.Err)
		return nil, se
	}
	s.log.Info("started child", "pid", c.pid, "path", s.path)
	return c, nil
}

// waitChild forks c and is the one goroutine that waits for it.
func (s *Supervisor) waitChild(c *child, fg bool, started chan<- error) {
	// Pdeathsig fires when the forking thread exits (golang/go#27505). Lock
	// this goroutine to its thread and never unlock: the thread lives until
	// the child is reaped, and then exits with the goroutine. onStop
	// relies on it too, to stop this thread on a Ctrl-Z, and
	// reclaimTerminal to block SIGTTOU in it alone.
	runtime.LockOSThread()

	s.forkMu.Lock()
	err := c.cmd.Start()
	if err == nil {
		c.pid = c.cmd.Process.Pid
		s.pids[c.pid] = struct{}{}
	}
	s.forkMu.Unlock()
	started <- err
	if err != nil {
		return
	}

	// Wait for the exit, without reaping where the platform allows: the
	// zombie keeps its pid reserved while the rest of the group is
	// signalled.
	if s.awaitExit(c) {
		fg = true
	}
	s.mu.Lock()
	c.dead = true
	for _, t := range c.timers {
		t.Stop()
	}
	s.mu.Unlock()
	if !s.cfg.ChildOnly {
		// Tear down what the child left in its group (dumb-init does the same).
		if unix.Kill(-c.pid, s.cfg.StopSignal) == nil {
			s.log.Debug("signalled rest of process group", "pid", c.pid, "signal", sigName(s.cfg.StopSignal))
		}
	}

	result := s.reap(c)
	if fg {
		reclaimTerminal()
	}
	s.forkMu.Lock()
	delete(s.pids, c.pid)
	s.forkMu.Unlock()

	s.log.Info("child exited", "pid", c.pid, "status", statusText(result))
	s.mu.Lock()
	c.err = result
	close(c.done)
	s.mu.Unlock()
}

// onStop does job control for c, which stopped with sig (Ctrl-Z, a
// background read or write of the terminal, SIGTSTP forwarded from leash's
// parent), and reports whether it handed the child the terminal. leash
// stops itself too, so the job-control shell that started leash sees a
// stopped job and takes the terminal back, as dumb-init does; when leash
// is continued (fg, bg), it hands the terminal to the child if leash has
// it now and continues the child's group. With no such shell (leash is
// PID 1 or leads its session, or its process group is orphaned) a stopped
// leash could never be continued: a Ctrl-Z is undone instead, and other
// stops are left to whoever sent them, who continues leash and so the
// child.
func (s *Supervisor) onStop(c *child, sig syscall.Signal) (handed bool) {
	pgrp, _ := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	switch {
	case (sig == unix.SIGTTIN || sig == unix.SIGTTOU) && pgrp == unix.Getpgrp():
		// It touched the terminal before leash handed it over (just
		// after a resume): hand it over and carry on.
		s.log.Debug("child stopped in the background; handing it the terminal", "pid", c.pid, "signal", sigName(sig))
	case !canStop(pgrp == c.pid):
		if sig != unix.SIGTSTP || pgrp != c.pid {
			s.log.Info("child stopped", "pid", c.pid, "signal", sigName(sig))
			return false
		}
		s.log.Info("child stopped with no job control above leash; continuing it", "pid", c.pid, "signal", sigName(sig))
	default:
		// Mirror the stop to the shell, which takes the terminal back.
		s.log.Info("child stopped; stopping leash", "pid", c.pid, "signal", sigName(sig))
		s.mu.Lock()
		s.contOwed = true
		s.mu.Unlock()
		// SIGSTOP, not the child's own signal: leash catches those to
		// forward them.
		stopSelf()
		// Continued: fg gave leash the terminal; bg did not.
		s.log.Info("leash continued; continuing the child", "pid", c.pid)
	}
	if pgrp, _ := unix.IoctlGetInt(0, unix.TIOCGPGRP); pgrp == unix.Getpgrp() {
		if unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, c.pid) == nil {
			handed = true
		}
	}
	_ = unix.Kill(-c.pid, unix.SIGCONT)
	return handed
}

// canStop reports whether leash may stop itself with its child: whether its
// parent can continue it. Not as PID 1 (whose self-sent SIGSTOP the kernel
// ignores anyway) or as a session leader (the container runtime's or the
// service manager's child), nor when the parent is in another session
// (POSIX's orphaned process group, whose terminal stops the kernel
// discards). A child stopped while it holds the terminal (Ctrl-Z) also
// needs a job-control shell above leash, which put leash in a group of its
// own: a parent in leash's group (sh -c 'leash ...') waits for leash without
// seeing it stop, and the terminal would be left with a stopped group.
func canStop(childHasTerminal bool) bool {
	ppid, pid := unix.Getppid(), unix.Getpid()
	if ppid <= 0 || pid == 1 {
		return false
	}
	sid, err1 := unix.Getsid(0)
	psid, err2 := unix.Getsid(ppid)
	if err1 != nil || err2 != nil || sid == pid || psid != sid {
		return false
	}
	if !childHasTerminal {
		return true
	}
	ppgrp, err := unix.Getpgid(ppid)
	return err == nil && ppgrp != unix.Getpgrp()
}

func exitResult(ps *os.ProcessState, werr error) error {
	if ps == nil {
		return fmt.Errorf("wait for child: %w", werr)
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok {
		return fmt.Errorf("wait for child: unexpected status %v", ps)
	}
	return waitResult(ws)
}

// waitResult is the child's result from its wait status: nil, or an
// *ExitError.
func waitResult(ws syscall.WaitStatus) error {
	switch {
	case ws.Signaled():
		return &ExitError{Code: -1, Signal: ws.Signal()}
	case ws.ExitStatus() != 0:
		return &ExitError{Code: ws.ExitStatus()}
	}
	return nil
}

func statusText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// isForeground reports whether stdin is leash's controlling terminal and
// leash's process group is its foreground group. Only then does the child take
// the terminal: a background leash must not steal it.
func isForeground() bool {
	pgrp, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

func sigName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(sig))
}
