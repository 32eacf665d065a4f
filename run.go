package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/leash-dev/leash/internal/status"
	"github.com/leash-dev/leash/lease"
	"github.com/leash-dev/leash/render"
	"github.com/leash-dev/leash/signals"
	"github.com/leash-dev/leash/supervisor"
)

// Interfaces live with their consumer; these checks keep the concrete
// types honest.
var (
	_ rotator   = (*supervisor.Supervisor)(nil)
	_ deliverer = (*render.Renderer)(nil)
)

// rotator is what the rotation loop needs of the supervisor.
type rotator interface {
	Reload(sig os.Signal) error
	Restart(ctx context.Context, files []*os.File, env []string) error
	Pid() int
}

// deliverer is what the rotation loop needs of the renderer.
type deliverer interface {
	Update(secrets map[string]render.Secret, inPlace bool) (bool, error)
	Files() []*os.File
	Release()
}

// settings are the checked, typed form of Options.
type settings struct {
	plan         *plan
	stopSignal   syscall.Signal
	reloadSignal syscall.Signal
	rotateDur    time.Duration
	rotateFrac   float64
	cred         *syscall.Credential
	notices      []string // from a Vault Agent config, logged at start-up
	vaultEnv     []string // lease.Config.Env with --vault settings; nil: leash's environment
}

func (o *Options) settings(env func(string) string) (*settings, error) {
	p, err := o.buildPlan(env)
	if err != nil {
		return nil, err
	}
	s := &settings{plan: p}
	if s.notices, err = o.checkAgent(p); err != nil {
		return nil, err
	}
	if s.vaultEnv, err = o.vaultEnv(); err != nil {
		return nil, err
	}
	if s.stopSignal, err = signals.Parse(o.StopSignal); err != nil {
		return nil, &usageError{fmt.Errorf("--stop-signal: %w", err)}
	}
	if s.reloadSignal, err = signals.Parse(o.ReloadSignal); err != nil {
		return nil, &usageError{fmt.Errorf("--reload-signal: %w", err)}
	}
	d, f, err := parseRotateBefore(o.RotateBefore)
	if err != nil {
		return nil, &usageError{err}
	}
	s.rotateDur, s.rotateFrac = time.Duration(d), f
	if s.cred, err = lookupUser(o.User); err != nil {
		return nil, &usageError{err}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--kill-timeout", o.KillTimeout}, {"--splay", o.Splay}, {"--stop-delay", o.StopDelay}, {"--static-refresh", o.StaticRefresh}, {"--startup-timeout", o.StartupTimeout}, {"--reload-grace", o.ReloadGrace}, {"--revoke-timeout", o.RevokeTimeout}} {
		if d.v < 0 {
			return nil, &usageError{fmt.Errorf("%s %s: must not be negative", d.name, d.v)}
		}
	}
	if o.RevokeTimeout == 0 && !o.NoRevoke {
		return nil, &usageError{errors.New("--revoke-timeout 0s: must be positive (--no-revoke leaves leases and token in place)")}
	}
	if o.DrillEvery < 0 {
		return nil, &usageError{fmt.Errorf("--drill-every %s: must not be negative", o.DrillEvery)}
	}
	if o.AuditKeyFile != "" && o.AuditFile == "" && !o.auditSyslog() {
		return nil, &usageError{errors.New("--audit-key-file needs --audit-file or --audit-syslog")}
	}
	if o.Delivery != "dir" && o.Dir != "" {
		return nil, &usageError{errors.New("--dir needs --delivery dir")}
	}
	if err := o.checkAuth(); err != nil {
		return nil, err
	}
	for _, h := range o.VaultRedirectAllow {
		// lease.New checks the rest; a URL is the likely slip.
		if h == "" || strings.ContainsAny(h, "/?#@") {
			return nil, configErrorf("--vault-redirect-allow %q: want HOST or HOST:PORT, without a scheme or path", h)
		}
	}
	return s, nil
}

// auditSyslog reports whether the audit records go to the system log.
func (o *Options) auditSyslog() bool { return o.AuditSyslog || o.AuditSyslogAddr != "" }

// checkAuth names the flags an auth method lacks; lease.AuthConfig.Missing
// decides what a method needs.
func (o *Options) checkAuth() error {
	miss := o.authConfig().Missing()
	if len(miss) == 0 {
		return nil
	}
	flags := make([]string, len(miss))
	for i, f := range miss {
		flags[i] = authFlags[f]
	}
	return configErrorf("--auth %s needs %s", o.Auth, strings.Join(flags, " and "))
}

// authFlags are the flags setting the lease.AuthConfig fields Missing names.
var authFlags = map[string]string{
	"Role": "--auth-role", "RoleIDFile": "--role-id-file", "SecretIDFile": "--secret-id-file", "JWTFile": "--jwt-file",
}

func (o *Options) authConfig() lease.AuthConfig {
	return lease.AuthConfig{
		Method:             o.Auth,
		Mount:              o.AuthMount,
		Role:               o.AuthRole,
		TokenFile:          o.TokenFile,
		RoleIDFile:         o.RoleIDFile,
		SecretIDFile:       o.SecretIDFile,
		RemoveSecretIDFile: o.RemoveSecretIDFile,
		JWTFile:            o.JWTFile,
		AWSType:            o.AWSType,
		AWSRegion:          o.AWSRegion,
		AWSServerID:        o.AWSServerID,
		GCPServiceAccount:  o.GCPServiceAccount,
		GCPType:            o.GCPType, GCPIAMCredentialsURL: o.GCPIAMCredentialsURL,
		AzureIMDS: o.AzureIMDS, AzureResource: o.AzureResource, AzureClientID: o.AzureClientID,
		AzureSubscriptionID: o.AzureSubscriptionID, AzureResourceGroup: o.AzureResourceGroup,
		AzureVMName: o.AzureVMName, AzureVMSSName: o.AzureVMSSName,
	}
}

// restartStart is what a restart's child is allowed for starting: exec
// takes milliseconds, the child's own start-up is unknown to leash.
const restartStart = time.Second

// switchTime is how long the child needs after a hand-over before its old
// credential may go, and where that comes from in the flags' words: the
// reload grace, or a restart's splay, stop and start (issue 16).
func (o *Options) switchTime() (time.Duration, string) {
	switch o.OnRotate {
	case "signal":
		return o.ReloadGrace, "--reload-grace " + o.ReloadGrace.String()
	case "restart":
		kill := o.KillTimeout
		if kill == 0 {
			kill = supervisor.DefaultKillTimeout
		}
		return o.Splay + kill + restartStart, fmt.Sprintf("--splay %s + --kill-timeout %s + %s to start", o.Splay, kill, restartStart)
	}
	return 0, ""
}

func (o *Options) leaseConfig(s *settings, log hclog.Logger) lease.Config {
	switchTime, switchSource := o.switchTime()
	return lease.Config{
		Env:            s.vaultEnv,
		Auth:           o.authConfig(),
		Specs:          s.plan.specs,
		RotateBefore:   s.rotateDur,
		RotateFraction: s.rotateFrac,
		SwitchTime:     switchTime,
		SwitchSource:   switchSource,
		StaticRefresh:  o.StaticRefresh,
		StartupTimeout: o.StartupTimeout,
		RevokeTimeout:  o.RevokeTimeout,
		NoRevoke:       o.NoRevoke,
		RedirectAllow:  o.VaultRedirectAllow,
		Logger:         log.Named("lease"),
	}
}

// scrubbedEnv is leash's environment minus its own credentials and the
// service manager's variables addressed to leash (status.NotifyVars).
func scrubbedEnv(extra []string) (env []string, lookup func(string) string) {
	drop := map[string]bool{}
	for _, k := range slices.Concat(lease.CredentialVars(), status.NotifyVars, extra) {
		drop[k] = true
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	lookup = func(k string) string {
		if drop[k] {
			return ""
		}
		return os.Getenv(k)
	}
	return env, lookup
}

// run is the one orchestrator: log in, fetch, render, start the child, then
// rotate until the child exits; revoke and clean up on every way out.
func (c *RunCmd) run(ctx context.Context, log hclog.Logger) (err error) {
	if len(c.Command) == 0 {
		c.Command = c.Exec // exec = [...] of a config file
	}
	if len(c.Command) == 0 {
		return &usageError{errors.New("no command given: leash [flags] -- CMD [ARGS...]")}
	}
	if platformNotice != "" {
		log.Info(platformNotice)
	}
	// Relative paths are resolved against the directory leash was started
	// in, where the child runs too; leash leaves it once the child runs.
	startDir, werr := os.Getwd()
	if werr != nil {
		log.Warn("cannot tell the working directory; leash stays in it and relative paths stay relative", "error", werr)
		startDir = ""
	} else {
		c.absPaths(startDir)
		if err := absEnv(startDir); err != nil {
			return err
		}
	}
	if err := harden(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		log.Warn("cannot make leash non-dumpable; its memory could be read by same-user processes", "error", err)
	}
	if c.Mlock {
		if err := lockMemory(); err != nil {
			return &configError{err}
		}
	}
	baseEnv, envLookup := scrubbedEnv(c.authConfig().CredentialVars())
	s, err := c.settings(envLookup)
	if err != nil {
		return err
	}
	for _, n := range s.notices {
		log.Warn(n)
	}

	// nohup and background jobs of scripts start leash with signals
	// ignored; Notify leaves them so, for leash and the child alike.
	if ign := signals.InheritedIgnored(); len(ign) > 0 {
		names := make([]string, len(ign))
		for i, sig := range ign {
			names[i] = signals.Name(sig)
		}
		log.Info("signals ignored when leash started stay ignored for the child and are not forwarded", "signal", strings.Join(names, ","))
	}
	// From here on signals are caught: a stop signal ends start-up, others
	// are dropped until the child runs (there is no one to forward them
	// to), and the supervisor queues them during a restart.
	sigCtx, stopSignals := context.WithCancel(context.Background())
	defer stopSignals()
	sigs, sigsReady := signals.Notify(sigCtx)
	if os.Getpid() != 1 {
		if err := signals.SetSubreaper(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
			log.Warn("cannot become a child subreaper; orphans of the child will not be reaped", "error", err)
		}
	}

	// Outputs and the delivery directory are checked before Vault is
	// contacted: a bad --dir or output set must not issue credentials.
	uid, gid := -1, -1
	if s.cred != nil {
		uid, gid = int(s.cred.Uid), int(s.cred.Gid)
	}
	mode := render.Memfd
	if c.Delivery == "dir" {
		mode = render.Dir
	}
	r, err := render.New(render.Options{
		Mode: mode, Dir: c.Dir, AllowDisk: c.AllowDisk, UID: uid, GID: gid, Mlock: c.Mlock,
		Logger: log.Named("render"),
	}, s.plan.outputs)
	if err != nil {
		return &configError{err}
	}
	closeOutputs := sync.OnceFunc(func() {
		if cerr := r.Close(); cerr != nil {
			log.Error("cleaning up secret outputs failed", "error", cerr)
		}
	})
	defer closeOutputs()

	// The audit trail and the status server start before Vault is
	// contacted: /healthz answers 503 while leash starts.
	auditKey, err := status.ReadAuditKey(c.AuditKeyFile)
	if err != nil {
		return &configError{err}
	}
	auditFile, err := status.OpenAuditFile(c.AuditFile)
	if err != nil {
		return &configError{err}
	}
	var syslog *status.Syslog
	if c.auditSyslog() {
		if syslog, err = status.DialSyslog(c.AuditSyslogAddr); err != nil {
			auditFile.Close()
			return &configError{err}
		}
	}
	rec, err := status.New(status.Config{Logger: log.Named("audit"), AuditFile: auditFile, AuditKey: auditKey, Syslog: syslog, Version: version})
	if err != nil {
		return err
	}
	defer rec.Close()
	var controlL net.Listener
	if c.ControlSocket != "" {
		l, cleanup, err := listenControl(c.ControlSocket)
		if err != nil {
			return &configError{err}
		}
		defer cleanup()
		controlL = l
	}
	if c.StatusAddr != "" {
		stopStatus, err := startStatus(c.StatusAddr, rec, log)
		if err != nil {
			return &configError{err}
		}
		defer stopStatus()
	}

	var mgr *lease.Manager
	var snap *lease.Snapshot
	var discovered map[string][]string // output -> secrets found by discoverSecrets
	if len(s.plan.specs) > 0 {
		go supervisor.Prepare() // while Vault answers
		lc := c.leaseConfig(s, log)
		lc.OnEvent = func(e lease.Event) { rec.LeaseEvent(statusEvent(e)) }
		lc.OnRequest = rec.Request
		mgr, err = lease.New(lc)
		if err != nil {
			return &configError{err}
		}
		baseEnv, _ = scrubbedEnv(mgr.ScrubEnv())
		startCtx, cancelStart := context.WithCancel(ctx)
		stopWatch := watchStartupSignals(sigs, cancelStart, log)
		snap, err = mgr.Start(startCtx)
		caught := stopWatch()
		cancelStart()
		if err != nil {
			if caught != nil {
				return &signalledError{caught}
			}
			return err
		}
		defer func() {
			closeOutputs() // truncate before a possibly slow revocation
			// Bounded by --revoke-timeout, so a dead Vault cannot hold up
			// a container's shutdown.
			if cerr := mgr.Close(context.Background()); cerr != nil {
				log.Error("revoking on exit failed", "error", cerr)
			}
		}()
		if caught != nil {
			return &signalledError{caught}
		}
		if snap, discovered, err = discoverSecrets(ctx, mgr, snap, s.plan.outputs); err != nil {
			return err
		}
	}

	inPlace := c.OnRotate != "restart"
	if _, err := r.Update(renderSecrets(snap), inPlace); err != nil {
		return &configError{err}
	}
	env, err := childEnv(append(baseEnv, s.plan.setEnv...), r, s.plan.pointers)
	if err != nil {
		return &configError{err}
	}

	sup, err := supervisor.New(supervisor.Config{
		Argv:        c.Command,
		Env:         env,
		StopSignal:  s.stopSignal,
		KillTimeout: c.KillTimeout,
		StopDelay:   c.StopDelay,
		Splay:       c.Splay,
		ChildOnly:   c.SignalChildOnly,
		Credential:  s.cred,
		Dir:         startDir, // also resolves a relative command path
		Logger:      log.Named("supervisor"),
	})
	if err != nil {
		return err
	}
	sigsReady() // every forwardable signal caught, none left ignored for the child
	if err := sup.Start(r.Files(), nil); err != nil {
		rec.ChildStarted(err)
		return err
	}
	rec.Delivered()
	rec.ChildStarted(nil)
	if startDir != "" {
		// Never keep a file system busy (dumb-init does the same).
		if err := os.Chdir("/"); err != nil {
			log.Warn("cannot leave the working directory", "path", startDir, "error", err)
		}
	}
	// Type=notify: the service is up once its child runs with its
	// credentials, not when leash was exec'd, so units ordered after it
	// (and a start with Vault down) behave.
	sd := status.NewNotifier()
	if err := sd.Notify("READY=1\nSTATUS=child running"); err != nil {
		log.Warn("cannot notify the service manager", "error", err)
	}
	wd := watchdog{sd: sd, log: log}
	if d := sd.WatchdogInterval(); d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		wd.tick = t.C
	}

	// The child runs. Everything below ends when it exits on its own or is
	// stopped because its credentials are gone; the lease manager must have
	// stopped before its leases are revoked.
	runCtx, cancelRun := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancelRun()
		wg.Wait()
	}()

	reaper := &signals.Reaper{Skip: sup.IsChild}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := reaper.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("reaper stopped", "error", err)
		}
	}()

	leaseErr := make(chan error, 1)
	if mgr != nil {
		wg.Add(2)
		go func() {
			defer wg.Done()
			leaseErr <- mgr.Run(runCtx)
		}()
		rt := &rotation{mgr: mgr, out: r, sup: sup, onRotate: c.OnRotate, reloadSig: s.reloadSignal,
			grace: c.ReloadGrace, log: log, rec: rec, calls: make(chan controlCall), drillEvery: c.DrillEvery,
			outputs: s.plan.outputs, discovered: discovered}
		go func() {
			defer wg.Done()
			rt.run(runCtx, snap)
		}()
		if controlL != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := serveControl(runCtx, controlL, rt.request, log.Named("control")); err != nil {
					log.Error("control socket stopped", "error", err)
				}
			}()
		}
	}

	childErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		childErr <- sup.Run(runCtx)
	}()

	err = supervise(sigs, leaseErr, childErr, sup, wd, log)
	if nerr := sd.Notify("STOPPING=1\nSTATUS=child exited"); nerr != nil {
		log.Warn("cannot notify the service manager", "error", nerr)
	}
	cancelRun()
	rec.ChildExited(err)
	return err
}

// watchdog pings systemd's watchdog (WatchdogSec=) from supervise's loop:
// if that loop hangs, the pings stop and systemd restarts the service.
type watchdog struct {
	tick   <-chan time.Time // nil: no watchdog
	sd     status.Notifier
	log    hclog.Logger
	warned bool
}

func (w *watchdog) ping() {
	if err := w.sd.Notify("WATCHDOG=1"); err != nil && !w.warned {
		w.warned = true
		w.log.Warn("cannot ping the service manager's watchdog", "error", err)
	}
}

// supervise forwards signals to the child until it exits, and stops it
// when its credentials are lost (fail closed). It returns the child's
// result, or the loss that made leash stop it.
func supervise(sigs <-chan os.Signal, leaseErr, childErr <-chan error, sup *supervisor.Supervisor, wd watchdog, log hclog.Logger) error {
	var lost error
	for {
		select {
		case <-wd.tick:
			wd.ping()
		case sig := <-sigs:
			sup.Signal(sig)
		case err := <-leaseErr:
			if err == nil || errors.Is(err, context.Canceled) {
				continue
			}
			if errors.Is(err, lease.ErrLeaseLost) {
				log.Error("credential expired with no replacement; stopping the child (fail closed)", "error", err)
			} else {
				log.Error("lease manager stopped; stopping the child", "error", err)
			}
			lost = err
			sup.Stop()
		case err := <-childErr:
			if lost != nil {
				return lost
			}
			return err
		}
	}
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

// watchStartupSignals cancels start-up when a stop signal arrives before the
// child runs. The returned func stops watching and reports the signal.
func watchStartupSignals(sigs <-chan os.Signal, cancel context.CancelFunc, log hclog.Logger) func() os.Signal {
	done := make(chan struct{})
	result := make(chan os.Signal, 1)
	go func() {
		var caught os.Signal
		defer func() { result <- caught }()
		for {
			select {
			case <-done:
				return
			case sig := <-sigs:
				if !slices.Contains(signals.StopSignals, sig) {
					log.Debug("signal during start-up ignored: no child yet", "signal", sig)
					continue
				}
				log.Info("signal during start-up; giving up", "signal", sig)
				caught = sig
				cancel()
				return
			}
		}
	}()
	return func() os.Signal {
		close(done)
		return <-result
	}
}

// signalledError: leash was told to stop before the child started; it exits
// 128+N like a process killed by that signal.
type signalledError struct{ sig os.Signal }

func (e *signalledError) Error() string {
	return fmt.Sprintf("stopped by %v before the child started", e.sig)
}

// rotation applies every new snapshot: render, then restart or signal the
// child, then retire the old leases once the child has switched.
type rotation struct {
	mgr       *lease.Manager
	out       deliverer
	sup       rotator
	onRotate  string // restart, signal or none
	reloadSig os.Signal
	grace     time.Duration // after a reload signal, before retiring
	log       hclog.Logger
	rec       *status.Recorder
	// calls are `leash rotate` requests from the control socket (nil:
	// none); drillEvery, when positive, runs a drill about that often.
	calls      chan controlCall
	drillEvery time.Duration
	outputs    []render.Output     // to map `leash rotate NAME` to secrets
	discovered map[string][]string // and the secrets a template asked for at start
}

// controlCall is a control request waiting for the rotation loop; reply
// has room for the answer.
type controlCall struct {
	req   controlRequest
	reply chan<- controlReply
}

// defaultDrillWatch is how long a scheduled drill watches the child.
const defaultDrillWatch = 5 * time.Second

// run applies snapshots and control requests until ctx is done; cur is
// the snapshot the child was started with.
func (rt *rotation) run(ctx context.Context, cur *lease.Snapshot) {
	var drills <-chan time.Time
	var drillTimer *time.Timer
	if rt.drillEvery > 0 {
		drillTimer = time.NewTimer(jitter(rt.drillEvery))
		defer drillTimer.Stop()
		drills = drillTimer.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case next := <-rt.mgr.Updates():
			var ok bool
			if cur, ok = rt.handOver(ctx, cur, next, false); !ok && ctx.Err() != nil {
				return
			}
		case call := <-rt.calls:
			var rep controlReply
			cur, rep = rt.forced(ctx, cur, call.req)
			call.reply <- rep
		case <-drills:
			var rep controlReply
			cur, rep = rt.forced(ctx, cur, controlRequest{Op: "rotate", Drill: true, Watch: defaultDrillWatch})
			if ctx.Err() != nil {
				return
			}
			if rep.OK {
				rt.log.Info("scheduled drill passed: the child survived the immediate revocation of its old credentials")
			} else {
				rt.log.Error("scheduled drill failed", "error", rep.Error)
			}
			drillTimer.Reset(jitter(rt.drillEvery))
		}
	}
}

// jitter spreads d over [0.75d, 1.25d), so that a fleet's drills do not
// line up.
func jitter(d time.Duration) time.Duration {
	return d*3/4 + rand.N(d/2+1)
}

// handOver renders next, makes the child use it and retires cur. drill
// retires at once, without the reload grace. It returns the snapshot the
// child uses now and whether next was applied.
func (rt *rotation) handOver(ctx context.Context, cur, next *lease.Snapshot, drill bool) (*lease.Snapshot, bool) {
	changed, err := rt.out.Update(renderSecrets(next), rt.onRotate != "restart")
	if err != nil && ctx.Err() != nil {
		return cur, false // shutting down: the outputs are already closed
	}
	if err != nil {
		// The old credentials stay valid and unretired; the lease
		// manager reports loss if nothing replaces them in time.
		rt.log.Error("rendering new secrets failed; keeping the current ones", "error", err)
		rt.rec.RotationFailed(true)
		return cur, false
	}
	if changed && !rt.apply(ctx, drill) {
		return cur, false
	}
	rt.rec.RotationFailed(false)
	rt.mgr.Retire(cur)
	return next, true
}

// forced hands over now, as a scheduled rotation does (`leash rotate`,
// --drill-every). A drill retires the old credentials right after the
// delivery and then watches the child and health for req.Watch.
func (rt *rotation) forced(ctx context.Context, cur *lease.Snapshot, req controlRequest) (*lease.Snapshot, controlReply) {
	var rep controlReply
	defer func() {
		var err error
		if !rep.OK {
			err = errors.New(rep.Error)
		}
		if req.Drill {
			rt.rec.Drill(err)
		} else {
			rt.rec.RotateNow(err)
		}
	}()
	health := rt.rec.WatchHealth(50 * time.Millisecond)
	pidBefore := rt.sup.Pid()
	snap, err := rt.mgr.Rotate(ctx, rt.specIDs(req.Names))
	if snap == nil {
		health()
		rep.Error = err.Error()
		return cur, rep
	}
	next := snap
	// Rotate's snapshot is on Updates too, or a newer one: take it from
	// there, so that it is applied once.
	select {
	case n := <-rt.mgr.Updates():
		next = n
	default:
	}
	for _, name := range slices.Sorted(maps.Keys(next.Secrets)) {
		s := next.Secrets[name]
		if prev := cur.Secrets[name]; prev != nil && prev.Fingerprint != s.Fingerprint {
			rep.Rotated = append(rep.Rotated, rotatedInfo{Name: name, Lease: s.Fingerprint, Previous: prev.Fingerprint})
		}
	}
	cur, ok := rt.handOver(ctx, cur, next, req.Drill)
	if !ok {
		health()
		rep.Error = "the new credentials could not be delivered to the child; it keeps the old ones (see leash's log)"
		return cur, rep
	}
	if err != nil {
		rep.Error = err.Error() // some secrets were not rotated
	}
	if req.Drill {
		pidDelivered := rt.sup.Pid()
		t := time.NewTimer(req.Watch)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		d := &drillReport{PIDBefore: pidBefore, PIDAfter: rt.sup.Pid(), Watched: req.Watch.String()}
		d.Healthy, d.Unhealthy = health()
		d.ChildRunning = ctx.Err() == nil && d.PIDAfter != 0 && d.PIDAfter == pidDelivered
		if rt.onRotate != "restart" {
			d.ChildRunning = d.ChildRunning && d.PIDAfter == pidBefore
		}
		rep.Drill = d
		if rep.Error == "" && !d.survived() {
			rep.Error = "the child did not survive the drill"
			if d.ChildRunning {
				rep.Error = "leash was not healthy during the drill: " + d.Unhealthy
			}
		}
		rt.log.Info("drill done", "pid", d.PIDAfter, "child_running", d.ChildRunning, "healthy", d.Healthy)
	} else {
		health()
	}
	rep.OK = rep.Error == ""
	return cur, rep
}

// specIDs maps the output names of `leash rotate NAME...` to the secrets
// they come from (a template's: all it reads). A secret's own ID (its path)
// is accepted too.
func (rt *rotation) specIDs(names []string) []string {
	var ids []string
	for _, n := range names {
		i := slices.IndexFunc(rt.outputs, func(o render.Output) bool { return o.Name == n })
		switch {
		case i >= 0 && rt.outputs[i].Template != nil:
			for _, r := range rt.outputs[i].Template.Refs() {
				ids = append(ids, r.ID())
			}
			ids = append(ids, rt.discovered[n]...)
		case i >= 0:
			ids = append(ids, rt.outputs[i].Secret)
		default:
			ids = append(ids, n) // lease.Rotate refuses an unknown one
		}
	}
	return ids
}

// request hands a control request to the rotation loop and waits for its
// answer; ctx (leash stopping) cancels the wait.
func (rt *rotation) request(ctx context.Context, req controlRequest) controlReply {
	stopping := controlReply{Error: "leash is stopping"}
	reply := make(chan controlReply, 1)
	select {
	case rt.calls <- controlCall{req: req, reply: reply}:
	case <-ctx.Done():
		return stopping
	}
	select {
	case r := <-reply:
		return r
	case <-ctx.Done():
		select {
		case r := <-reply: // a drill that saw the child exit
			return r
		default:
			return stopping
		}
	}
}

// apply makes the child use the new bytes. It reports false when the child
// cannot be known to have switched (the old leases are then kept). drill
// skips the reload grace.
func (rt *rotation) apply(ctx context.Context, drill bool) bool {
	switch rt.onRotate {
	case "restart":
		err := rt.sup.Restart(ctx, rt.out.Files(), nil)
		rt.rec.Restarted(err)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, supervisor.ErrStopping) {
				rt.log.Error("restart after rotation failed", "error", err)
				rt.rec.RotationFailed(true)
			}
			return false
		}
		rt.out.Release()
	case "signal":
		err := rt.sup.Reload(rt.reloadSig)
		rt.rec.Reloaded(err)
		if err != nil {
			rt.log.Error("reload signal failed", "error", err)
		} else {
			rt.log.Info("new credentials delivered; reload signal sent", "signal", rt.reloadSig)
		}
		if drill {
			break // the drill: revoke at once
		}
		// Give the child time to switch before its old credentials are
		// revoked.
		t := time.NewTimer(rt.grace)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// renderSecrets converts a snapshot into render's values.
func renderSecrets(snap *lease.Snapshot) map[string]render.Secret {
	out := map[string]render.Secret{}
	if snap == nil {
		return out
	}
	for id, sec := range snap.Secrets {
		out[id] = render.Secret{
			Data:          render.NewValues(sec.Data.Map()),
			Raw:           render.NewValues(sec.Raw.Map()),
			LeaseDuration: sec.LeaseDuration,
			Renewable:     sec.Renewable,
			Version:       sec.Version,
			Response:      render.NewValues(sec.Response.Map()),
		}
	}
	return out
}

// childEnv adds the output pointers to the scrubbed base environment.
func childEnv(base []string, r *render.Renderer, ptrs []pointer) ([]string, error) {
	env := append(slices.Clone(base), r.Env()...)
	for _, p := range ptrs {
		path, err := r.Path(p.Output)
		if err != nil {
			return nil, fmt.Errorf("--env %s=%s: %w", p.Var, p.Output, err)
		}
		env = append(env, p.Var+"="+path)
	}
	return dedupEnv(env), nil
}

// dedupEnv keeps the last value of each variable, in first-seen order.
func dedupEnv(env []string) []string {
	idx := map[string]int{}
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// statusEvent converts a lease event for the status recorder.
func statusEvent(e lease.Event) status.LeaseEvent {
	return status.LeaseEvent{Time: e.Time, Kind: string(e.Kind), ID: e.ID, Path: e.Path, Outputs: e.Outputs,
		Fingerprint: e.Fingerprint, TTL: e.TTL, ExpiresAt: e.ExpiresAt, Next: e.Next, Rotation: e.Rotation, Op: e.Op, Err: e.Err}
}
