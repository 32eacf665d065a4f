package main

import (
	"context"
	"slices"
	"strings"

	"github.com/leash-dev/leash/lease"
	"github.com/leash-dev/leash/render"
)

// maxDiscoveryRounds bounds the fetch-and-render rounds: a chain of
// secrets each naming the next is at most this deep.
const maxDiscoveryRounds = 8

// discovery is what templates ask for given a snapshot: the secrets they
// lack, as specs naming the outputs that ask (in output order), and, by
// output, every secret they read that no output names statically (a path
// computed from what Vault returned): settle may drop those.
type discovery struct {
	add  []lease.Spec
	uses map[string][]string
}

// discover renders each template with computed calls against snap's
// secrets and records what it asks for. Without such templates (the
// common case) it costs nothing: it runs at every hand-over.
func discover(snap *lease.Snapshot, outputs []render.Output) discovery {
	return discoverWith(func() map[string]render.Secret { return renderSecrets(snap) }, outputs)
}

// discoverWith is discover with the snapshot's secrets from get, called
// once they are needed.
func discoverWith(get func() map[string]render.Secret, outputs []render.Output) discovery {
	d := discovery{uses: map[string][]string{}}
	var secrets map[string]render.Secret
	var static map[string]bool
	index := map[string]int{}
	for _, o := range outputs {
		if o.Template == nil || !o.Template.Computed() {
			continue
		}
		if secrets == nil {
			secrets, static = get(), staticIDs(outputs)
		}
		missing, uses := o.Template.Calls(secrets)
		// A secret another output names (a -s, another template's
		// literal path) stays whatever this template computes.
		if uses = slices.DeleteFunc(uses, func(id string) bool { return static[id] }); len(uses) > 0 {
			d.uses[o.Name] = uses
		}
		for _, r := range missing {
			if i, ok := index[r.ID()]; ok {
				d.add[i].Outputs = append(d.add[i].Outputs, o.Name)
				continue
			}
			index[r.ID()] = len(d.add)
			d.add = append(d.add, lease.Spec{ID: r.ID(), Path: r.Path, Params: r.Params, List: r.List, Outputs: []string{o.Name}})
		}
	}
	return d
}

// staticIDs are the secrets outputs name without computing them: those of
// --secret outputs and every template's parsed calls (the plan's specs).
func staticIDs(outputs []render.Output) map[string]bool {
	ids := map[string]bool{}
	for _, o := range outputs {
		if o.Template == nil {
			ids[o.Secret] = true
			continue
		}
		for _, r := range o.Template.Refs() {
			ids[r.ID()] = true
		}
	}
	return ids
}

// unused returns the IDs in found (what templates read at the last
// settling, by output) that d's templates no longer read, sorted.
func (d discovery) unused(found map[string][]string) []string {
	now := map[string]bool{}
	for _, ids := range d.uses {
		for _, id := range ids {
			now[id] = true
		}
	}
	var out []string
	for _, ids := range found {
		for _, id := range ids {
			if !now[id] && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}

// tooDeep is the error when templates still ask for new secrets after
// maxDiscoveryRounds rounds.
func tooDeep(add []lease.Spec) error {
	ids := make([]string, len(add))
	for i, a := range add {
		ids[i] = a.ID
	}
	return configErrorf("templates still ask for new secrets after %d rounds of fetching (%s): a path computed from a secret must not keep changing", maxDiscoveryRounds, strings.Join(ids, ", "))
}

// discoverSecrets fetches, before the child starts, the secrets templates
// ask for once they see others (a path computed from a secret's value,
// `range secrets` then `secret (printf ... .)`), round after round until
// nothing new is asked, as consul-template renders until its dependencies
// settle. It returns the snapshot holding them all and, by output, the
// IDs of the secrets found so.
func discoverSecrets(ctx context.Context, mgr *lease.Manager, snap *lease.Snapshot, outputs []render.Output) (*lease.Snapshot, map[string][]string, error) {
	for round := 0; ; round++ {
		d := discover(snap, outputs)
		if len(d.add) == 0 {
			return snap, d.uses, nil
		}
		if round == maxDiscoveryRounds {
			return nil, nil, tooDeep(d.add)
		}
		var err error
		if snap, err = mgr.Add(ctx, d.add); err != nil {
			return nil, nil, err
		}
	}
}

// settle is discoverSecrets while the child runs, for each snapshot
// before it is rendered: when a value that feeds a computed path has
// changed, the templates ask for other secrets. It fetches those (round
// by round), stops keeping the ones no template reads any more (their
// leases are retired after the hand-over, as a rotation's), and returns
// the snapshot to render.
func (rt *rotation) settle(ctx context.Context, next *lease.Snapshot) (*lease.Snapshot, error) {
	for round := 0; ; round++ {
		d := discover(next, rt.outputs)
		var drop []string
		switch {
		case len(d.add) > 0 && round == maxDiscoveryRounds:
			return nil, tooDeep(d.add)
		case len(d.add) == 0:
			if drop = d.unused(rt.discovered); len(drop) == 0 {
				rt.discovered = d.uses
				return next, nil
			}
		}
		snap, err := rt.mgr.Track(ctx, d.add, drop)
		if err != nil {
			return nil, err
		}
		// Track's snapshot is on Updates too, or a newer one: take it from
		// there, so that it is applied once.
		select {
		case n := <-rt.mgr.Updates():
			if n.Seq > snap.Seq {
				snap = n
			}
		default:
		}
		next = snap
		if len(drop) > 0 {
			rt.discovered = d.uses
			return next, nil
		}
	}
}
