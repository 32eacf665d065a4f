package lease

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
)

// bigProxy passes requests to Vault, except for path, which it answers
// with a 16 MiB body: a 200 with one long secret value or, with status
// set, an error with one long message. 16 MiB, not endless: should the
// bound fail, the test fails rather than eat the machine's memory. With
// declared, the answer says its length in Content-Length (else chunked).
type bigProxy struct {
	URL  string
	hits atomic.Int32 // requests for path
}

func newBigProxy(t *testing.T, vaultAddr, path string, status int, declared bool) *bigProxy {
	u, err := url.Parse(vaultAddr)
	if err != nil {
		t.Fatal(err)
	}
	p := &bigProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			rp.ServeHTTP(w, r)
			return
		}
		p.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		start, end := `{"data":{"k":"`, `"}}`
		if status != 0 {
			start, end = `{"errors":["`, `"]}`
		}
		const chunks, size = 256, 64 << 10
		if declared {
			w.Header().Set("Content-Length", strconv.Itoa(len(start)+chunks*size+len(end)))
		}
		if status != 0 {
			w.WriteHeader(status)
		}
		w.Write([]byte(start))
		chunk := []byte(strings.Repeat("a", size))
		for range chunks {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		w.Write([]byte(end))
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// An answer longer than MaxResponse fails with ErrTooLarge naming the
// path, at once and without retries, rather than growing leash's memory
// until the kernel kills it (before: 12.6 GB of RSS for a 4 GiB answer,
// then "vault unreachable" at the startup timeout). Error answers (a 500,
// which vault/api reads whole as well) are bounded the same way; answers
// within the bound pass.
func TestAnswerLargerThanMaxResponse(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	kv := s.KV(t, 1)
	const max = 1 << 20
	s.Write(t, kv+"/fits", map[string]any{"k": strings.Repeat("b", max-1024)})
	for _, tc := range []struct {
		name     string
		status   int
		declared bool // a Content-Length, which leash refuses before reading
	}{{"secret", 0, false}, {"error", http.StatusInternalServerError, false}, {"declared", 0, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newBigProxy(t, s.Addr, "/v1/"+kv+"/huge", tc.status, tc.declared)
			h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken, "VAULT_MAX_RETRIES=0"}, Config{
				Specs:          []Spec{{ID: "fits", Path: kv + "/fits"}, {ID: "huge", Path: kv + "/huge"}},
				MaxResponse:    max,
				StartupTimeout: time.Minute,
			})
			h.m.vault.client.SetAddress(p.URL)
			_, err := h.m.Start(context.Background())
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Start = %v, want ErrTooLarge", err)
			}
			if want := "read " + kv + "/huge: vault's answer is too large: longer than 1 MiB"; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			if n := p.hits.Load(); n != 1 {
				t.Errorf("%d requests for the huge answer: retried as if Vault had not answered", n)
			}
			h.m.Close(context.Background())
		})
	}
	// The same bound, a secret within it, straight from Vault.
	h := newHarness(t, s, []string{"VAULT_TOKEN=" + s.RootToken}, Config{Specs: []Spec{{ID: "fits", Path: kv + "/fits"}}, MaxResponse: max})
	snap, err := h.m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, snap.Secrets["fits"], "k"); len(got) != max-1024 {
		t.Errorf("secret within the bound: %d bytes, want %d", len(got), max-1024)
	}
	h.m.Close(context.Background())
}
