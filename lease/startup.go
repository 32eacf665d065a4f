package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Start logs in and fetches every secret in parallel. Transient failures are
// retried until StartupTimeout (then ErrUnreachable); permanent ones fail at
// once. On failure everything already issued is revoked.
//
// With the token method the token is known before Vault is asked about it,
// so its lookup runs alongside the fetches: one round trip less before the
// child can start. Other methods log in first.
func (m *Manager) Start(ctx context.Context) (*Snapshot, error) {
	st := newStartup(ctx, m.cfg.StartupTimeout, m.log, &m.clock)
	defer st.close()
	loginDone, err := m.tokens.start(st)
	if err != nil {
		return nil, err
	}
	results, errs := m.keeper.fetchAll(st, m.keeper.entries)
	loginErr := loginDone() // before apply: the token's expiry may bound the leases'
	m.keeper.applyAll(m.keeper.entries, results)
	err = loginErr // a bad token explains the fetches' failures
	if err == nil {
		err = firstError(errs)
	}
	if err != nil {
		if errors.Is(err, ErrPermissionDenied) && loginErr == nil {
			err = m.keeper.explainDenied(err)
		}
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.RevokeTimeout)
		defer ccancel()
		m.revoker.all(cctx)
		return nil, err
	}
	m.keeper.warnTokenBound()
	m.keeper.warnTooShort(m.cfg.SwitchTime, m.cfg.SwitchSource)
	return m.emit(), nil
}

// startup holds one start-up's contexts (Start, Add, Track, Check) and
// retries its requests.
type startup struct {
	timeout time.Duration // StartupTimeout, for errors
	log     hclog.Logger
	clock   *clock

	outer context.Context // the caller's: its cancellation is returned as is
	sctx  context.Context // bounded by StartupTimeout: retries end there
	// fctx stops retries once the start has failed (fail). Requests
	// already in flight get abandonGrace to finish (rctx) so that a
	// credential Vault is issuing right now is seen and revoked, not
	// orphaned until its TTL.
	fctx, rctx context.Context
	fail       context.CancelFunc
	close      func()
}

func newStartup(ctx context.Context, timeout time.Duration, log hclog.Logger, clk *clock) *startup {
	sctx, cancel := context.WithTimeout(ctx, timeout)
	fctx, fcancel := context.WithCancel(sctx)
	rctx, rcancel := context.WithCancel(sctx)
	stopGrace := context.AfterFunc(fctx, func() { time.AfterFunc(abandonGrace, rcancel) })
	return &startup{timeout: timeout, log: log, clock: clk, outer: ctx, sctx: sctx, fctx: fctx, rctx: rctx, fail: fcancel, close: func() {
		stopGrace()
		rcancel()
		fcancel()
		cancel()
	}}
}

// fetchAll fetches entries in parallel, for Start and Add; the first
// failure fails the start (st.fail): the child cannot start anyway.
func (k *keeper) fetchAll(st *startup, entries []*entry) ([]*issued, []error) {
	results := make([]*issued, len(entries))
	errs := make([]error, len(entries))
	var wg sync.WaitGroup
	for i, e := range entries {
		wg.Go(func() {
			op := "read"
			if e.spec.Params != nil {
				op = "write"
			}
			errs[i] = st.retry(st.fctx, op, e.spec.Path, func(context.Context) error {
				is, err := k.fetcher.fetch(st.rctx, e)
				results[i] = is
				return err
			})
			if errs[i] != nil {
				st.fail()
			}
		})
	}
	wg.Wait()
	return results, errs
}

// applyAll installs fetchAll's results (nil: that fetch failed).
func (k *keeper) applyAll(entries []*entry, results []*issued) {
	for i, e := range entries {
		if results[i] != nil {
			k.apply(e, results[i])
		}
	}
}

// abandonGrace is how long a failed start waits for requests in flight.
const abandonGrace = 2 * time.Second

// firstError prefers a real failure over the cancellations it caused.
func firstError(errs []error) error {
	var canceled error
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, context.Canceled):
			canceled = err
		default:
			return err
		}
	}
	return canceled
}

// explainDenied adds the capabilities the token does hold on the path.
func (k *keeper) explainDenied(err error) error {
	var le *Error
	if !errors.As(err, &le) || le.Op == "login" {
		return err
	}
	need := "read"
	if le.Op == "write" {
		need = "update"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	path := le.Path
	for _, e := range k.entries {
		if e.spec.Path == le.Path && e.path != "" {
			path = e.path
		}
	}
	caps, cerr := k.vault.capabilities(ctx, path)
	if cerr != nil {
		return err
	}
	return &Error{Op: le.Op, Path: le.Path, Err: fmt.Errorf("%w: token lacks %q on %s (has %v)", ErrPermissionDenied, need, path, caps)}
}

// retry runs fn until it succeeds, fails permanently, or sctx (one of st's
// contexts) ends. The cancellation of st.outer, the caller's context, is
// returned as is, while sctx's deadline means Vault stayed unreachable.
func (st *startup) retry(sctx context.Context, op, path string, fn func(context.Context) error) error {
	outer := st.outer
	var last error
	for attempt := 0; ; attempt++ {
		err := fn(sctx)
		if err == nil {
			return nil
		}
		if outer.Err() != nil {
			return outer.Err()
		}
		cerr, transient := classify(err)
		if sctx.Err() != nil {
			if errors.Is(sctx.Err(), context.DeadlineExceeded) {
				if last == nil {
					last = cerr
				}
				return &Error{Op: op, Path: path, Err: fmt.Errorf("%w after %s: %w", ErrUnreachable, st.timeout, last)}
			}
			return sctx.Err()
		}
		if !transient {
			var le *Error
			if errors.As(cerr, &le) {
				return le
			}
			return &Error{Op: op, Path: path, Err: cerr}
		}
		last = cerr
		d := backoff(attempt, 250*time.Millisecond, 5*time.Second, st.clock.rand())
		st.log.Warn("vault request failed, retrying", "path", path, "error", cerr, "attempt", attempt+1, "backoff", d.String())
		t := time.NewTimer(d)
		select {
		case <-sctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}
