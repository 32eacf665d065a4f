package main

import (
	"context"
	"strings"

	"github.com/leash-dev/leash/lease"
	"github.com/leash-dev/leash/render"
)

// maxDiscoveryRounds bounds the fetch-and-render rounds at start: a chain
// of secrets each naming the next is at most this deep.
const maxDiscoveryRounds = 8

// discoverSecrets fetches, before the child starts, the secrets templates
// ask for once they see others (a path computed from a secret's value,
// `range secrets` then `secret (printf ... .)`), round after round until
// nothing new is asked, as consul-template renders until its dependencies
// settle. It returns the snapshot holding them all and, by output, the
// IDs of the secrets it added.
func discoverSecrets(ctx context.Context, mgr *lease.Manager, snap *lease.Snapshot, outputs []render.Output) (*lease.Snapshot, map[string][]string, error) {
	found := map[string][]string{}
	for round := 0; ; round++ {
		secrets := renderSecrets(snap)
		var add []lease.Spec
		index := map[string]int{}
		for _, o := range outputs {
			if o.Template == nil {
				continue
			}
			for _, r := range o.Template.Discover(secrets) {
				if i, ok := index[r.ID()]; ok {
					add[i].Outputs = append(add[i].Outputs, o.Name)
					continue
				}
				index[r.ID()] = len(add)
				add = append(add, lease.Spec{ID: r.ID(), Path: r.Path, Params: r.Params, List: r.List, Outputs: []string{o.Name}})
			}
		}
		if len(add) == 0 {
			return snap, found, nil
		}
		if round == maxDiscoveryRounds {
			ids := make([]string, len(add))
			for i, a := range add {
				ids[i] = a.ID
			}
			return nil, nil, configErrorf("templates still ask for new secrets after %d rounds of fetching (%s): a path computed from a secret must not keep changing", maxDiscoveryRounds, strings.Join(ids, ", "))
		}
		var err error
		if snap, err = mgr.Add(ctx, add); err != nil {
			return nil, nil, err
		}
		for _, a := range add {
			for _, o := range a.Outputs {
				found[o] = append(found[o], a.ID)
			}
		}
	}
}
