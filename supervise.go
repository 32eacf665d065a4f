package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/leash-dev/leash/internal/status"
	"github.com/leash-dev/leash/lease"
	"github.com/leash-dev/leash/signals"
	"golang.org/x/sync/errgroup"
)

// errChildExited ends superviseChild's group when the child has exited.
var errChildExited = errors.New("the child exited")

// superviseChild runs what lives as long as the child, until it exits:
// signal forwarding and watchdog pings, the reaper, the lease manager, the
// rotation loop and the control socket. A lease manager that fails (a
// credential expired with no replacement) stops the child: fail closed.
// It returns the child's result, or the failure that made leash stop it,
// once every goroutine has ended, so that the leases can be revoked.
func (r *runner) superviseChild() error {
	// exited ends with the child; ctx also with a failure, which Run turns
	// into a graceful stop of the child.
	exited, childGone := context.WithCancel(context.Background())
	defer childGone()
	g, ctx := errgroup.WithContext(exited)
	var childErr error
	g.Go(func() error {
		defer childGone()
		childErr = r.sup.Run(ctx)
		return errChildExited
	})
	g.Go(func() error {
		r.forward(exited)
		return nil
	})
	g.Go(func() error {
		reaper := &signals.Reaper{Skip: r.sup.IsChild}
		if err := reaper.Run(exited); err != nil && !errors.Is(err, context.Canceled) {
			r.log.Warn("reaper stopped", "error", err)
		}
		return nil
	})
	if r.mgr != nil {
		rt := r.rotation()
		g.Go(func() error { return r.runLeases(ctx, exited) })
		g.Go(func() error {
			rt.run(ctx, r.snap)
			return nil
		})
		if r.control != nil {
			g.Go(func() error {
				if err := serveControl(ctx, r.control, rt.request, r.rec.ControlRefused, r.log.Named("control")); err != nil {
					r.log.Error("control socket stopped", "error", err)
				}
				return nil
			})
		}
	}
	err := g.Wait()
	if errors.Is(err, errChildExited) {
		err = childErr
	}
	if nerr := r.sd.Notify("STOPPING=1\nSTATUS=child exited"); nerr != nil {
		r.log.Warn("cannot notify the service manager", "error", nerr)
	}
	r.rec.ChildExited(err)
	return err
}

// runLeases renews and replaces the leases until ctx is done. Its failure
// ends ctx, which stops the child; once the child has exited (exited done)
// a failure no longer matters.
func (r *runner) runLeases(ctx, exited context.Context) error {
	err := r.mgr.Run(ctx)
	if err == nil || errors.Is(err, context.Canceled) || exited.Err() != nil {
		return nil
	}
	if errors.Is(err, lease.ErrLeaseLost) {
		r.log.Error("credential expired with no replacement; stopping the child (fail closed)", "error", err)
	} else {
		r.log.Error("lease manager stopped; stopping the child", "error", err)
	}
	return err
}

// forward passes leash's signals to the child and pings the watchdog until
// ctx (the child's exit) is done.
func (r *runner) forward(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wd.tick:
			r.wd.ping()
		case sig := <-r.sigs:
			r.sup.Signal(sig)
		}
	}
}

// watchdog pings systemd's watchdog (WatchdogSec=) from the loop that
// forwards signals: if that loop hangs, the pings stop and systemd
// restarts the service.
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
