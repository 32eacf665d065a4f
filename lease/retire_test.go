package lease

import (
	"testing"
)

// Retire(old) revokes only leases that no snapshot after old holds: with a
// newer snapshot still waiting in Updates, the child may be on an
// intermediate one. Vault is unreachable here; the test checks which leases
// Retire lets go of.
func TestRetireKeepsLeasesOfNewerSnapshots(t *testing.T) {
	m, err := New(Config{Env: []string{"VAULT_ADDR=http://127.0.0.1:1", "VAULT_MAX_RETRIES=0"}, Specs: []Spec{
		{ID: "a", Path: "x/a"}, {ID: "b", Path: "x/b"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tok := &token{}
	m.tokens.cur = tok
	m.ledger.cur = tok
	a, b := m.keeper.entries[0], m.keeper.entries[1]
	issue := func(e *entry, fp string) {
		is := &issued{secret: &Secret{ID: e.spec.ID, Fingerprint: fp}, lease: &held{fp: fp, id: e.spec.ID, leaseID: "id-" + secretString(fp), owner: tok}}
		m.keeper.apply(e, is)
	}
	issue(a, "a1")
	issue(b, "b1")
	snap1 := m.emit()
	issue(a, "a2")
	snap2 := m.emit()
	issue(b, "b2")
	snap3 := m.emit() // waiting in Updates while the child is on snap2

	m.Retire(snap1)
	if _, ok := m.ledger.held["a1"]; ok {
		t.Error("a1 (only in snap1) kept")
	}
	if _, ok := m.ledger.held["b1"]; !ok {
		t.Fatal("b1 revoked although snap2, which the child may be on, holds it")
	}
	m.Retire(snap2)
	if _, ok := m.ledger.held["b1"]; ok {
		t.Error("b1 kept after Retire(snap2)")
	}
	m.Retire(snap3)
	for _, fp := range []string{"a2", "b2"} {
		if _, ok := m.ledger.held[fp]; !ok {
			t.Errorf("current lease %s revoked by Retire(current)", fp)
		}
	}
	if tok.leases != 2 {
		t.Errorf("token owns %d leases, want 2", tok.leases)
	}
}
