package main

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/leash-dev/leash/internal/status"
	"github.com/leash-dev/leash/lease"
	"github.com/leash-dev/leash/render"
	"github.com/leash-dev/leash/signals"
	"github.com/leash-dev/leash/supervisor"
)

// run is the one orchestrator: prepare (settings, signals, outputs, audit
// and status), obtain the secrets from Vault, launch the child with them,
// then supervise it, rotating, until it exits; revoke and clean up on
// every way out.
func (c *RunCmd) run(ctx context.Context, log hclog.Logger) error {
	if len(c.Command) == 0 {
		c.Command = c.Exec // exec = [...] of a config file
	}
	if len(c.Command) == 0 {
		return &usageError{errors.New("no command given: leash [flags] -- CMD [ARGS...]")}
	}
	r := &runner{c: c, log: log}
	defer r.close()
	if err := r.prepare(); err != nil {
		return err
	}
	if err := r.obtain(ctx); err != nil {
		return err
	}
	if err := r.launch(); err != nil {
		return err
	}
	return r.superviseChild()
}

// runner is one run of leash: what each phase of RunCmd.run sets up for
// the next, and the clean-up of all of them.
type runner struct {
	c   *RunCmd
	log hclog.Logger

	// prepare
	startDir  string // "" when it cannot be told
	s         *settings
	baseEnv   []string // the child's environment before the outputs
	sigs      <-chan os.Signal
	sigsReady func()
	out       *render.Renderer
	rec       *status.Recorder
	control   net.Listener // nil: no --control-socket

	// obtain
	mgr        *lease.Manager // nil: no secrets from Vault
	snap       *lease.Snapshot
	discovered map[string][]string // output -> secrets found by discoverSecrets

	// launch
	sup *supervisor.Supervisor
	sd  status.Notifier
	wd  watchdog

	cleanups     []func() // close runs them, the last first
	closeOutputs func()   // once: before a slow revocation, and at the end
}

// onClose registers f for close.
func (r *runner) onClose(f func()) { r.cleanups = append(r.cleanups, f) }

// close undoes what the phases set up, in reverse.
func (r *runner) close() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// prepare checks the settings and opens everything that must work before
// Vault is contacted, so that a bad flag or output never issues
// credentials: the outputs, the audit trail, the control socket and the
// status server (whose /healthz answers 503 while leash starts).
func (r *runner) prepare() error {
	if platformNotice != "" {
		r.log.Info(platformNotice)
	}
	if err := r.leaveRelative(); err != nil {
		return err
	}
	if err := harden(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		r.log.Warn("cannot make leash non-dumpable; its memory could be read by same-user processes", "error", err)
	}
	if r.c.Mlock {
		if err := lockMemory(); err != nil {
			return &configError{err}
		}
	}
	var envLookup func(string) string
	r.baseEnv, envLookup = scrubbedEnv(r.c.authConfig().CredentialVars())
	s, err := r.c.settings(envLookup)
	if err != nil {
		return err
	}
	r.s = s
	for _, n := range s.notices {
		r.log.Warn(n)
	}
	r.catchSignals()
	if err := r.openOutputs(); err != nil {
		return err
	}
	if err := r.startRecording(); err != nil {
		return err
	}
	// Cleaned up before the audit trail could open (a bad output must
	// fail before anything is written), audited now.
	for _, dir := range r.out.Removed() {
		r.rec.StaleDirRemoved(dir)
	}
	return nil
}

// leaveRelative makes every relative path absolute against the directory
// leash was started in, where the child runs too: leash leaves it once the
// child runs.
func (r *runner) leaveRelative() error {
	dir, err := os.Getwd()
	if err != nil {
		r.log.Warn("cannot tell the working directory; leash stays in it and relative paths stay relative", "error", err)
		return nil
	}
	r.startDir = dir
	r.c.absPaths(dir)
	return absEnv(dir)
}

// catchSignals starts catching signals for the child and becomes a
// subreaper. From here on a stop signal ends start-up, others are dropped
// until the child runs (there is no one to forward them to), and the
// supervisor queues them during a restart.
func (r *runner) catchSignals() {
	// nohup and background jobs of scripts start leash with signals
	// ignored; Notify leaves them so, for leash and the child alike.
	if ign := signals.InheritedIgnored(); len(ign) > 0 {
		names := make([]string, len(ign))
		for i, sig := range ign {
			names[i] = signals.Name(sig)
		}
		r.log.Info("signals ignored when leash started stay ignored for the child and are not forwarded", "signal", strings.Join(names, ","))
	}
	ctx, stop := context.WithCancel(context.Background())
	r.onClose(stop)
	r.sigs, r.sigsReady = signals.Notify(ctx)
	if os.Getpid() != 1 {
		if err := signals.SetSubreaper(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
			r.log.Warn("cannot become a child subreaper; orphans of the child will not be reaped", "error", err)
		}
	}
}

// openOutputs checks the outputs and the delivery directory.
func (r *runner) openOutputs() error {
	uid, gid := -1, -1
	if cred := r.s.cred; cred != nil {
		uid, gid = int(cred.Uid), int(cred.Gid)
	}
	mode := render.Memfd
	if r.c.Delivery == "dir" {
		mode = render.Dir
	}
	out, err := render.New(render.Options{
		Mode: mode, Dir: r.c.Dir, AllowDisk: r.c.AllowDisk, UID: uid, GID: gid, Mlock: r.c.Mlock,
		Logger: r.log.Named("render"),
	}, r.s.plan.outputs)
	if err != nil {
		return &configError{err}
	}
	r.out = out
	r.closeOutputs = sync.OnceFunc(func() {
		if err := out.Close(); err != nil {
			r.log.Error("cleaning up secret outputs failed", "error", err)
		}
	})
	r.onClose(r.closeOutputs)
	return nil
}

// startRecording opens the audit trail's sinks, the control socket and the
// status server.
func (r *runner) startRecording() error {
	c := r.c
	key, err := status.ReadAuditKey(c.AuditKeyFile)
	if err != nil {
		return &configError{err}
	}
	file, err := status.OpenAuditFile(c.AuditFile)
	if err != nil {
		return &configError{err}
	}
	var syslog *status.Syslog
	if c.auditSyslog() {
		if syslog, err = status.DialSyslog(c.AuditSyslogAddr); err != nil {
			file.Close()
			return &configError{err}
		}
	}
	r.rec, err = status.New(status.Config{Logger: r.log.Named("audit"), AuditFile: file, AuditKey: key, Syslog: syslog, Version: version})
	if err != nil {
		return err
	}
	r.onClose(func() { r.rec.Close() })
	if c.ControlSocket != "" {
		l, cleanup, err := listenControl(c.ControlSocket)
		if err != nil {
			return &configError{err}
		}
		r.onClose(cleanup)
		r.control = l
	}
	if c.StatusAddr != "" {
		stop, err := startStatus(c.StatusAddr, r.rec, r.log)
		if err != nil {
			return &configError{err}
		}
		r.onClose(stop)
	}
	return nil
}

// obtain logs in and fetches every secret; a stop signal meanwhile gives
// up (what was issued is revoked). From then on close revokes the leases.
func (r *runner) obtain(ctx context.Context) error {
	if len(r.s.plan.specs) == 0 {
		return nil
	}
	go supervisor.Prepare() // while Vault answers
	lc := r.c.leaseConfig(r.s, r.log)
	lc.OnEvent = func(e lease.Event) { r.rec.LeaseEvent(statusEvent(e)) }
	lc.OnRequest = r.rec.Request
	mgr, err := lease.New(lc)
	if err != nil {
		return &configError{err}
	}
	startCtx, cancelStart := context.WithCancel(ctx)
	stopWatch := watchStartupSignals(r.sigs, cancelStart, r.log)
	r.snap, err = mgr.Start(startCtx)
	caught := stopWatch()
	cancelStart()
	if err != nil {
		if caught != nil {
			return &signalledError{caught}
		}
		return err
	}
	r.mgr = mgr
	r.onClose(func() {
		r.closeOutputs() // truncate before a possibly slow revocation
		// Bounded by --revoke-timeout, so a dead Vault cannot hold up a
		// container's shutdown.
		if err := mgr.Close(context.Background()); err != nil {
			r.log.Error("revoking on exit failed", "error", err)
		}
	})
	if caught != nil {
		return &signalledError{caught}
	}
	r.snap, r.discovered, err = discoverSecrets(ctx, mgr, r.snap, r.s.plan.outputs)
	return err
}

// launch delivers the secrets and starts the child with them, then tells
// the service manager it is up.
func (r *runner) launch() error {
	c, s := r.c, r.s
	if _, err := r.out.Update(renderSecrets(r.snap), c.OnRotate != "restart"); err != nil {
		return &configError{err}
	}
	env, err := childEnv(append(r.baseEnv, s.plan.setEnv...), r.out, s.plan.pointers)
	if err != nil {
		return &configError{err}
	}
	r.sup, err = supervisor.New(supervisor.Config{
		Argv:        c.Command,
		Env:         env,
		StopSignal:  s.stopSignal,
		KillTimeout: c.KillTimeout,
		StopDelay:   c.StopDelay,
		Splay:       c.Splay,
		ChildOnly:   c.SignalChildOnly,
		Credential:  s.cred,
		Dir:         r.startDir, // also resolves a relative command path
		Logger:      r.log.Named("supervisor"),
	})
	if err != nil {
		return err
	}
	r.sigsReady() // every forwardable signal caught, none left ignored for the child
	if err := r.sup.Start(r.out.Files(), nil); err != nil {
		r.rec.ChildStarted(err)
		return err
	}
	r.rec.Delivered()
	r.rec.ChildStarted(nil)
	if r.startDir != "" {
		// Never keep a file system busy (dumb-init does the same).
		if err := os.Chdir("/"); err != nil {
			r.log.Warn("cannot leave the working directory", "path", r.startDir, "error", err)
		}
	}
	// Type=notify: the service is up once its child runs with its
	// credentials, not when leash was exec'd, so units ordered after it
	// (and a start with Vault down) behave.
	r.sd = status.NewNotifier()
	if err := r.sd.Notify("READY=1\nSTATUS=child running"); err != nil {
		r.log.Warn("cannot notify the service manager", "error", err)
	}
	r.wd = watchdog{sd: r.sd, log: r.log}
	if d := r.sd.WatchdogInterval(); d > 0 {
		t := time.NewTicker(d)
		r.onClose(t.Stop)
		r.wd.tick = t.C
	}
	return nil
}

// rotation is the rotation loop of this run.
func (r *runner) rotation() *rotation {
	c := r.c
	return &rotation{mgr: r.mgr, out: r.out, sup: r.sup, onRotate: c.OnRotate, reloadSig: r.s.reloadSignal,
		grace: c.ReloadGrace, log: r.log, rec: r.rec, calls: make(chan controlCall), drillEvery: c.DrillEvery,
		outputs: r.s.plan.outputs, discovered: r.discovered}
}

// startStatus serves --status-addr until the returned stop is called.
func startStatus(addr string, rec *status.Recorder, log hclog.Logger) (stop func(), err error) {
	l, err := status.Listen(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := status.Serve(ctx, l, rec); err != nil {
			log.Error("status server stopped", "error", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

// statusEvent converts a lease event for the status recorder.
func statusEvent(e lease.Event) status.LeaseEvent {
	return status.LeaseEvent{Time: e.Time, Kind: string(e.Kind), ID: e.ID, Path: e.Path, Outputs: e.Outputs,
		Fingerprint: e.Fingerprint, TTL: e.TTL, ExpiresAt: e.ExpiresAt, Next: e.Next, Rotation: e.Rotation, Op: e.Op, Err: e.Err}
}
