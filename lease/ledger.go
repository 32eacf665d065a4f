package lease

import "time"

// held is a lease (or a token credential) leash holds and has not revoked.
type held struct {
	fp, id, path string
	outputs      []string     // Spec.Outputs
	leaseID      secretString // "" for a token credential
	childTok     secretString // token credential: renewed and revoked as itself
	owner        *token
	expires      time.Time
	lastSeq      uint64 // last snapshot holding it (guarded by Manager.mu)
}

// emit builds a snapshot of the current secrets and publishes it (latest wins).
func (m *Manager) emit() *Snapshot {
	s, first := m.record()
	if !first {
		select {
		case m.updates <- s:
		default:
			select {
			case <-m.updates:
			default:
			}
			m.updates <- s
		}
	}
	return s
}

// record makes the entries' current secrets the last snapshot, reporting
// whether it is the first.
func (m *Manager) record() (s *Snapshot, first bool) {
	m.mu.Lock()
	first = m.snap == nil
	seq := uint64(1)
	if !first {
		seq = m.snap.Seq + 1
	}
	s = &Snapshot{Seq: seq, Secrets: make(map[string]*Secret, len(m.entries))}
	for _, e := range m.entries {
		s.Secrets[e.spec.ID] = e.cur
		if e.lease != nil {
			e.lease.lastSeq = seq
		}
	}
	m.snap = s
	m.mu.Unlock()
	return s, first
}

// prune forgets held leases that have expired on their own (never
// retired). It runs only once the earliest held expiry has passed.
func (m *Manager) prune(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pruneAt.IsZero() || now.Before(m.pruneAt) {
		return
	}
	m.pruneAt = time.Time{}
	for fp, h := range m.held {
		switch {
		case h.expires.IsZero():
		case now.Before(h.expires):
			m.pruneAt = earliest(m.pruneAt, h.expires)
		case !m.isCurrent(h):
			m.dropHeld(fp, h)
		}
		// A current credential past its expiry stays: Run reports its loss.
	}
}

func (m *Manager) isCurrent(h *held) bool {
	for _, e := range m.entries {
		if e.lease == h {
			return true
		}
	}
	return false
}

func (m *Manager) dropHeld(fp string, h *held) {
	delete(m.held, fp)
	if h.owner != nil {
		h.owner.leases--
	}
}

// started reports whether Start has emitted its snapshot.
func (m *Manager) started() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snap != nil
}
