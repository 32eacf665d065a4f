package main

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/leash-dev/leash/internal/status"
	"github.com/leash-dev/leash/lease"
	"github.com/leash-dev/leash/render"
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
	outputs    []render.Output // to map `leash rotate NAME` to secrets
	// discovered is, by output, what its template reads that parsing did
	// not find (paths computed from what Vault returned), as of the last
	// hand-over; settle keeps it.
	discovered map[string][]string
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
	next, err := rt.settle(ctx, next)
	if err != nil {
		if ctx.Err() == nil {
			rt.log.Error("fetching the secrets the templates now ask for failed; keeping the current ones", "error", err)
			rt.rec.RotationFailed(true)
		}
		return cur, false
	}
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
