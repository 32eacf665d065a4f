package lease

import (
	"context"
	"errors"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
)

// BenchmarkScaleCPU is make bench's "Many short leases" in-process, so the
// Manager's share can be profiled (-cpuprofile) without the rest of leash:
// LEASH_SCALE_LEASES (default 1000) renewable database credentials (ttl
// LEASH_SCALE_TTL, default 30s) in one Manager, watched for
// LEASH_SCALE_WINDOW (default three TTLs) after Start. It reports the
// process's CPU per lease-hour (Vault and PostgreSQL run in other
// processes), Vault requests per lease per TTL and the spread of first
// renewals. One window per run, whatever b.N:
//
//	go test -run '^$' -bench ScaleCPU -benchtime 1x ./lease/
func BenchmarkScaleCPU(b *testing.B) {
	n := 1000
	if v := os.Getenv("LEASH_SCALE_LEASES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("LEASH_SCALE_LEASES=%q: want a positive number", v)
		}
	}
	ttl := 30 * time.Second
	if v := os.Getenv("LEASH_SCALE_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		ttl = d
	}
	window := 3 * ttl
	if v := os.Getenv("LEASH_SCALE_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		window = d
	}
	s := testvault.New(b)
	db := testpg.Database(b)
	creds := s.Database(b, db.VaultURL(), db.User, db.Password, ttl, time.Hour)
	specs := make([]Spec, n)
	for i := range specs {
		specs[i] = Spec{ID: "db" + strconv.Itoa(i), Path: creds}
	}

	var mu sync.Mutex
	var t0 time.Time
	requests := 0
	first := map[string]time.Time{}
	m, err := New(Config{
		Env:            []string{"VAULT_ADDR=" + s.Addr, "VAULT_TOKEN=" + s.RootToken, "HOME=" + b.TempDir()},
		Specs:          specs,
		StartupTimeout: 5 * time.Minute,
		// Info, like leash's default: one line per renewal.
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: io.Discard, TimeFormat: time.RFC3339Nano}),
		OnEvent: func(e Event) {
			mu.Lock()
			defer mu.Unlock()
			if t0.IsZero() || e.ID == "" {
				return
			}
			switch e.Kind {
			case EventRenewed, EventRotated, EventFailed:
				requests++
			}
			if _, ok := first[e.ID]; !ok && e.Kind == EventRenewed {
				first[e.ID] = e.Time
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	began := time.Now()
	if _, err := m.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d leases issued in %s", n, time.Since(began).Round(time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	mu.Lock()
	t0 = time.Now()
	mu.Unlock()
	cpu0 := cpuTime(b)
	go func() { done <- m.Run(ctx) }()
	time.Sleep(window) // the observation window being measured, not a synchronisation
	cpu1, el := cpuTime(b), time.Since(t0)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	if err := m.Close(cctx); err != nil {
		// Revoking a thousand database leases can outlast Close's bound
		// on a busy machine; Vault and the database go away with the test.
		b.Logf("close: %d errors, first: %v", strings.Count(err.Error(), "\n")+1, errors.Unwrap(err))
	}

	mu.Lock()
	defer mu.Unlock()
	var firsts []float64
	for _, at := range first {
		firsts = append(firsts, at.Sub(t0).Seconds())
	}
	spread := 0.0
	if len(firsts) > 1 {
		sort.Float64s(firsts)
		last := float64(len(firsts) - 1)
		spread = (firsts[int(0.95*last)] - firsts[int(0.05*last)]) / ttl.Seconds()
	}
	b.ReportMetric((cpu1-cpu0).Seconds()*1000/float64(n)/el.Hours(), "cpu-ms/lease-hour")
	b.ReportMetric(float64(requests)/float64(n)/(el.Seconds()/ttl.Seconds()), "requests/lease/ttl")
	b.ReportMetric(spread*100, "spread-%ttl")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
