package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
)

// Rotate hands over at once, through Run: a new lease for every leased
// secret (the static one stays), the snapshot also on Updates, the old
// lease held until Retire. Unknown and static names are refused before
// anything is issued.
func TestRotateNow(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	create := s.TokenRole(t, time.Hour)
	kv := s.KV(t, 2)
	s.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"pw": "static"}})
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{Specs: []Spec{
		{ID: "tok", Path: create, Params: map[string]string{"ttl": "1h"}},
		{ID: "kv", Path: kv + "/app"},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := h.m.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.run()
	old := first.Secrets["tok"].Fingerprint

	for _, names := range [][]string{{"nope"}, {"kv"}, {"tok", "nope"}} {
		if snap, err := h.m.Rotate(ctx, names); !errors.Is(err, ErrNoRotation) || snap != nil {
			t.Errorf("Rotate(%q) = %v, %v; want ErrNoRotation", names, snap, err)
		}
	}
	snap, err := h.m.Rotate(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Secrets["tok"].Fingerprint; got == old || got == "" {
		t.Fatalf("Rotate kept lease %s", got)
	}
	if snap.Secrets["kv"] != first.Secrets["kv"] {
		t.Error("Rotate re-read the static secret")
	}
	if u := h.next(10 * time.Second); u != snap {
		t.Errorf("Updates has snapshot %d, want Rotate's %d", u.Seq, snap.Seq)
	}
	if n := len(s.LeaseIDs(t, create+"/")); n != 2 {
		t.Errorf("Vault holds %d leases before Retire, want old and new", n)
	}
	h.m.Retire(first)
	if n := len(s.LeaseIDs(t, create+"/")); n != 1 {
		t.Errorf("Vault holds %d leases after Retire, want 1", n)
	}
	if _, err := h.m.Rotate(ctx, []string{"tok"}); err != nil {
		t.Errorf("Rotate(tok): %v", err)
	}
	h.m.Close(ctx)
}
