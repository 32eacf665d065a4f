package lease

import (
	"context"
	"fmt"
	"testing"

	"github.com/leash-dev/leash/internal/testvault"
)

// BenchmarkStartClose measures leash's startup cost against a local Vault:
// token lookup plus ten KV v2 reads (with mount detection) in parallel,
// then Close.
func BenchmarkStartClose(b *testing.B) {
	s := testvault.Shared(b)
	kv := s.KV(b, 2)
	var specs []Spec
	for i := range 10 {
		p := fmt.Sprintf("app%d", i)
		if _, err := s.Client.KVv2(kv).Put(context.Background(), p, map[string]any{"k": "v"}); err != nil {
			b.Fatal(err)
		}
		specs = append(specs, Spec{ID: p, Path: kv + "/" + p})
	}
	env := []string{"VAULT_ADDR=" + s.Addr, "VAULT_TOKEN=" + s.RootToken}
	b.ResetTimer()
	for b.Loop() {
		m, err := New(Config{Env: env, Specs: specs})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		if err := m.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
