package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
)

// Track adds and drops secrets while Run runs: an added one is fetched
// and in the snapshot Track returns (on Updates too); a dropped one is
// left out of it and its lease revoked by Retire of the snapshot the
// child used, even when Track published a snapshot holding it after that
// one. A failed fetch leaves nothing behind to renew.
func TestTrackWhileRunning(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	create := s.TokenRole(t, time.Hour)
	kv := s.KV(t, 2)
	s.Write(t, kv+"/data/b", map[string]any{"data": map[string]any{"k": "b"}})
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{Specs: []Spec{
		{ID: "kv", Path: kv + "/b"},
		{ID: "tok", Path: create, Params: map[string]string{"ttl": "1h"}, Outputs: []string{"t"}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := h.m.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.run()

	added, err := h.m.Track(ctx, []Spec{{ID: "b", Path: kv + "/b", Outputs: []string{"out"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if added.Secrets["b"] == nil || added.Secrets["tok"] == nil {
		t.Fatalf("Track's snapshot holds %v", added.Secrets)
	}
	if u := h.next(10 * time.Second); u != added {
		t.Errorf("Updates has snapshot %d, want Track's %d", u.Seq, added.Seq)
	}
	dropped, err := h.m.Track(ctx, nil, []string{"tok"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dropped.Secrets["tok"]; ok || dropped.Secrets["b"] == nil {
		t.Fatalf("after dropping tok the snapshot holds %v", dropped.Secrets)
	}
	if u := h.next(10 * time.Second); u != dropped {
		t.Errorf("Updates has snapshot %d, want Track's %d", u.Seq, dropped.Seq)
	}
	if n := len(s.LeaseIDs(t, create+"/")); n != 1 {
		t.Fatalf("Vault holds %d leases before Retire, want 1", n)
	}
	h.m.Retire(first) // the child switched from first straight to dropped
	if n := len(s.LeaseIDs(t, create+"/")); n != 0 {
		t.Errorf("Vault holds %d leases of the dropped secret after Retire, want 0", n)
	}
	if h.log.count("secret no longer used") != 1 {
		t.Errorf("the drop was not logged:\n%s", h.log)
	}

	if _, err := h.m.Track(ctx, []Spec{{ID: "gone", Path: kv + "/missing"}}, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Track of a missing path: %v, want ErrNotFound", err)
	}
	again, err := h.m.Track(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := again.Secrets["gone"]; ok {
		t.Errorf("a failed fetch left %q in the snapshot", "gone")
	}
	for _, e := range h.m.keeper.entries {
		if e.spec.ID == "gone" {
			t.Errorf("a failed fetch left an entry to renew")
		}
	}
	h.m.Close(ctx)
}
