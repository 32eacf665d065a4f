package lease

import (
	"sync"
	"time"
)

// held is a lease (or a token credential) leash holds and has not revoked.
type held struct {
	fp, id, path string
	outputs      []string     // Spec.Outputs
	leaseID      secretString // "" for a token credential
	childTok     secretString // token credential: renewed and revoked as itself
	owner        *token
	expires      time.Time
	lastSeq      uint64 // last snapshot holding it (guarded by ledger.mu)
}

// ledger is what leash holds and has not revoked: the leases, by
// fingerprint, the tokens it logged in with, and which snapshot and token
// are current. It has its own mutex because Retire uses it from the
// consumer's goroutine while Run works; no network call happens under it,
// so Retire never waits for a slow Vault request of Run. It also guards
// token.leases, the number of held leases a token owns.
type ledger struct {
	mu     sync.Mutex
	cur    *token           // the current token (tokens.cur, for Retire)
	tokens []*token         // tokens leash logged in with and has not revoked
	held   map[string]*held // by fingerprint
	snap   *Snapshot        // last published
	// pruneAt is no later than the earliest expiry in held (zero: none to
	// watch); prune recomputes it.
	pruneAt time.Time
}

func newLedger() *ledger { return &ledger{held: map[string]*held{}} }

// setCurrent records t as the current token, and as one to revoke if
// leash logged in for it.
func (l *ledger) setCurrent(t *token) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur = t
	if t.own {
		l.tokens = append(l.tokens, t)
	}
}

func (l *ledger) current() *token {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// hold records a newly issued lease.
func (l *ledger) hold(h *held) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held[h.fp] = h
	l.pruneAt = earliest(l.pruneAt, h.expires)
	if h.owner != nil {
		h.owner.leases++
	}
}

// drop forgets h; l.mu is held.
func (l *ledger) drop(h *held) {
	delete(l.held, h.fp)
	if h.owner != nil {
		h.owner.leases--
	}
}

// publish records the entries' current secrets as the next snapshot.
// first reports that it is the first.
func (l *ledger) publish(entries []*entry) (s *Snapshot, first bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	first = l.snap == nil
	seq := uint64(1)
	if !first {
		seq = l.snap.Seq + 1
	}
	s = &Snapshot{Seq: seq, Secrets: make(map[string]*Secret, len(entries))}
	for _, e := range entries {
		s.Secrets[e.spec.ID] = e.cur
		if e.lease != nil {
			e.lease.lastSeq = seq
		}
	}
	l.snap = s
	return s, first
}

// published reports whether a snapshot has been published (Start is done).
func (l *ledger) published() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.snap != nil
}

// retire forgets and returns the leases of old that no later snapshot
// holds, and the tokens, other than the current one, left without leases.
func (l *ledger) retire(old *Snapshot) (leases []*held, toks []*token) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keep := map[string]bool{}
	if l.snap != nil {
		for _, s := range l.snap.Secrets {
			keep[s.Fingerprint] = true
		}
	}
	for _, s := range old.Secrets {
		if s.Fingerprint == "" || keep[s.Fingerprint] {
			continue
		}
		if h, ok := l.held[s.Fingerprint]; ok && h.lastSeq <= old.Seq {
			l.drop(h)
			leases = append(leases, h)
		}
	}
	kept := l.tokens[:0]
	for _, t := range l.tokens {
		if t != l.cur && t.leases <= 0 {
			toks = append(toks, t)
		} else {
			kept = append(kept, t)
		}
	}
	l.tokens = kept
	return leases, toks
}

// takeAll forgets and returns everything held: leases and tokens.
func (l *ledger) takeAll() (leases []*held, toks []*token) {
	l.mu.Lock()
	defer l.mu.Unlock()
	leases = make([]*held, 0, len(l.held))
	for _, h := range l.held {
		leases = append(leases, h)
		l.drop(h)
	}
	toks, l.tokens = l.tokens, nil
	return leases, toks
}

// forgetTokens forgets the tokens (Check has revoked its own).
func (l *ledger) forgetTokens() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tokens = nil
}

func (l *ledger) nextPrune() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pruneAt
}

// prune forgets held leases that have expired on their own (never
// retired) and that current does not hold. It runs only once the earliest
// held expiry has passed.
func (l *ledger) prune(now time.Time, current func(*held) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pruneAt.IsZero() || now.Before(l.pruneAt) {
		return
	}
	l.pruneAt = time.Time{}
	for _, h := range l.held {
		switch {
		case h.expires.IsZero():
		case now.Before(h.expires):
			l.pruneAt = earliest(l.pruneAt, h.expires)
		case !current(h):
			l.drop(h)
		}
		// A current credential past its expiry stays: Run reports its loss.
	}
}

// release marks h as held by no later snapshot: Track dropped its entry,
// so the next Retire of a snapshot holding it revokes it, even one older
// than a snapshot published after it that the child never used (one
// Track published with the secrets it fetched before it dropped this).
func (l *ledger) release(h *held) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h.lastSeq = 0
}
