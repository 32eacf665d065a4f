package lease

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	pathpkg "path"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// Secret is one fetched credential in a Snapshot. Never mutated once emitted.
type Secret struct {
	ID, Path      string
	Data          Data          // the fields: inner data for KV v2, the auth block for token create
	Raw           Data          // the response's data exactly as Vault returned it (templates: .Data.data for KV v2)
	Fingerprint   string        // short SHA-256 of the lease id ("" when no lease)
	LeaseDuration time.Duration // as issued
	Renewable     bool
	IssuedAt      time.Time
	ExpiresAt     time.Time // as issued, bounded by a certificate's NotAfter; zero for static secrets
	Version       int       // KV v2 version, else 0
	// NextRotation is when Vault rotates a static role's credential
	// (database/static-creds, ldap/static-cred): the read's ttl after
	// IssuedAt. Zero for anything else.
	NextRotation time.Time
}

// Snapshot is the set of secrets at one moment. Never mutated after it is emitted.
type Snapshot struct {
	Seq     uint64
	Secrets map[string]*Secret // by Spec.ID
}

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

// entry is the live state of one Spec.
type entry struct {
	spec     Spec
	path     string // request path (KV v2: with data/)
	resolved bool
	kv       int // 0 (not KV or unknown), 1, 2

	cur       *Secret
	lease     *held // nil: no lease (static, or a certificate without one)
	leaseExp  time.Time
	notAfter  time.Time
	renewable bool
	maxed     bool          // renewal no longer extends the lease
	steady    bool          // renewed since the last issue or failure: renew without jitter
	ttl       time.Duration // lease duration as issued; renewals ask for this
	r         float64       // jitter drawn at issue
	next      time.Time     // next action
	failures  int
	hash      [sha256.Size]byte

	rot   *rotation // static role: what the credential's read said; nil otherwise
	stale int       // static role: reads since rotation time that found the same credential
	stuck bool      // static role: warned that Vault did not rotate in time
}

// rotation is what a static role's read says about Vault's rotation of the
// credential (database/static-creds, ldap/static-cred): no lease, but a
// ttl until the next rotation, after which the password stops working.
type rotation struct {
	next     time.Time     // the read's time plus its ttl
	last     time.Time     // last_vault_rotation (zero: not given)
	period   time.Duration // rotation_period (0: a rotation_schedule)
	schedule string        // rotation_schedule
}

// staticRotation recognises a static role's answer, read at readAt: no
// lease, a ttl, and one of rotation_period, rotation_schedule or
// last_vault_rotation. nil for anything else.
func staticRotation(data map[string]any, readAt time.Time) *rotation {
	ttl, ok := seconds(data["ttl"])
	if !ok {
		return nil
	}
	r := &rotation{next: readAt.Add(ttl)}
	r.period, _ = seconds(data["rotation_period"])
	r.schedule, _ = data["rotation_schedule"].(string)
	if v, ok := data["last_vault_rotation"].(string); ok {
		r.last, _ = time.Parse(time.RFC3339Nano, v)
	}
	if r.period == 0 && r.schedule == "" && r.last.IsZero() {
		return nil
	}
	return r
}

// seconds reads a JSON number of seconds (vault/api decodes with UseNumber).
func seconds(v any) (time.Duration, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	if err != nil || f < 0 {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

// fingerprint is the short SHA-256 of a lease id: safe to log, stable to match.
func fingerprint(leaseID string) string {
	if leaseID == "" {
		return ""
	}
	s := sha256.Sum256([]byte(leaseID))
	return hex.EncodeToString(s[:6])
}

// resolve applies `vault kv get` mount detection: for a KV v2 mount,
// "secret/app" becomes "secret/data/app" (a path already holding data/ is
// kept). When the lookup is not allowed the path is used as written.
func (m *Manager) resolve(ctx context.Context, e *entry) error {
	if e.resolved {
		return nil
	}
	e.path = strings.Trim(e.spec.Path, "/")
	if e.spec.Params != nil {
		e.resolved = true
		return nil
	}
	info, err := m.mounts.lookup(ctx, e.path, m.lookupMount)
	if err != nil {
		return err
	}
	e.resolved = true
	e.kv = info.kv
	if info.kv == 2 {
		rest := strings.TrimPrefix(e.path+"/", info.path)
		rest = strings.TrimSuffix(rest, "/")
		if !strings.HasPrefix(rest, "data/") {
			e.path = strings.TrimSuffix(info.path, "/") + "/data/" + rest
		}
	}
	return nil
}

// mountInfo is what Vault says about the mount holding a path.
type mountInfo struct {
	path string // "secret/", with Vault's trailing slash; empty: unknown
	kv   int    // KV version, 0 when not a KV mount
}

// lookupMount asks sys/internal/ui/mounts about path. Only transient
// failures are errors: an older Vault or a denied lookup leaves the path
// as written, as the vault CLI does.
func (m *Manager) lookupMount(ctx context.Context, path string) (mountInfo, error) {
	sec, err := m.client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+path)
	if err != nil {
		if _, transient := classify(err); transient {
			return mountInfo{}, err
		}
		return mountInfo{}, nil
	}
	if sec == nil || sec.Data == nil {
		return mountInfo{}, nil
	}
	typ, _ := sec.Data["type"].(string)
	mount, _ := sec.Data["path"].(string)
	info := mountInfo{path: mount}
	if typ != "kv" && typ != "generic" || mount == "" {
		return info, nil
	}
	info.kv = 1
	if opts, ok := sec.Data["options"].(map[string]any); ok {
		if v, ok := opts["version"].(string); ok && v == "2" {
			info.kv = 2
		}
	}
	return info, nil
}

// mountLookups shares mount lookups between the entries resolved at
// start-up: secrets under one mount (ten database roles; a thousand in a
// fleet test) need one lookup, not one each. Paths with the same first
// segment wait for the first lookup and use its answer when its mount
// holds them; otherwise, and after a failed lookup, they ask themselves.
type mountLookups struct {
	mu      sync.Mutex
	byFirst map[string]*mountLookup
}

type mountLookup struct {
	done chan struct{}
	info mountInfo // valid once done is closed
}

func (ml *mountLookups) lookup(ctx context.Context, path string, ask func(context.Context, string) (mountInfo, error)) (mountInfo, error) {
	first, _, _ := strings.Cut(path, "/")
	ml.mu.Lock()
	if ml.byFirst == nil {
		ml.byFirst = map[string]*mountLookup{}
	}
	l, shared := ml.byFirst[first]
	if !shared {
		l = &mountLookup{done: make(chan struct{})}
		ml.byFirst[first] = l
	}
	ml.mu.Unlock()
	if !shared {
		info, err := ask(ctx, path)
		if err != nil {
			ml.mu.Lock()
			delete(ml.byFirst, first) // the next attempt asks again
			ml.mu.Unlock()
		}
		l.info = info
		close(l.done)
		return info, err
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		return mountInfo{}, ctx.Err()
	}
	if l.info.path != "" && strings.HasPrefix(path+"/", l.info.path) {
		return l.info, nil
	}
	return ask(ctx, path)
}

// issued is the result of one fetch, applied to an entry by the caller.
type issued struct {
	secret    *Secret
	lease     *held
	leaseExp  time.Time
	notAfter  time.Time
	renewable bool
	ttl       time.Duration
	hash      [sha256.Size]byte
	rotation  *rotation // a static role's rotation
}

// fetch reads or writes the entry's path once with the current token.
func (m *Manager) fetch(ctx context.Context, e *entry) (*issued, error) {
	if !e.resolved && e.spec.Params == nil && isCredsPath(e.spec.Path) {
		is, err := m.fetchDirect(ctx, e)
		if is != nil || err != nil {
			return is, err
		}
	}
	if err := m.resolve(ctx, e); err != nil {
		return nil, err
	}
	var sec *api.Secret
	var err error
	// Vault counts the lease from when it handled the request: counting
	// from when leash sent it never overestimates the credential's life.
	now := m.now()
	if e.spec.Params != nil {
		body := make(map[string]any, len(e.spec.Params))
		for k, v := range e.spec.Params {
			body[k] = v
		}
		sec, err = m.client.Logical().WriteWithContext(ctx, e.path, body)
	} else {
		sec, err = m.client.Logical().ReadWithContext(ctx, e.path)
	}
	if err != nil {
		return nil, err
	}
	if sec == nil {
		return nil, ErrNotFound
	}
	return m.issue(e, sec, now)
}

// isCredsPath reports whether path has the shape MOUNT/creds/ROLE, the
// endpoint through which the dynamic secrets engines (database, aws, azure,
// consul, nomad, rabbitmq, ldap, ...) issue leased credentials.
func isCredsPath(path string) bool {
	dir, role := pathpkg.Split(strings.Trim(path, "/"))
	mount, ok := strings.CutSuffix(dir, "/creds/")
	return ok && role != "" && mount != ""
}

// fetchDirect reads a MOUNT/creds/ROLE path as written, without the mount
// lookup that resolve would make first: on the start-up path that lookup
// costs a whole round trip before the credential is even asked for. Only a
// leased answer is taken. Anything else (a KV secret that happens to live
// under a folder named creds, a denial, a 404) returns nil, nil and the
// caller resolves the mount and asks again, as for any other path; a
// transient failure is returned for the caller to retry.
func (m *Manager) fetchDirect(ctx context.Context, e *entry) (*issued, error) {
	path := strings.Trim(e.spec.Path, "/")
	now := m.now()
	sec, err := m.client.Logical().ReadWithContext(ctx, path)
	if err != nil {
		if _, transient := classify(err); transient {
			return nil, err
		}
		m.log.Debug("direct read failed; resolving the mount", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path)
		return nil, nil
	}
	if sec == nil || sec.LeaseID == "" {
		m.log.Debug("direct read gave no lease; resolving the mount", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path)
		return nil, nil
	}
	e.path, e.resolved = path, true
	return m.issue(e, sec, now)
}

// issue turns Vault's answer for e, requested at now, into an issued credential.
func (m *Manager) issue(e *entry, sec *api.Secret, now time.Time) (*issued, error) {
	s := &Secret{ID: e.spec.ID, Path: e.spec.Path, IssuedAt: now}
	out := &issued{secret: s}
	tok := m.currentToken()
	switch {
	case sec.Auth != nil && sec.Auth.ClientToken != "" && e.spec.Params != nil:
		// auth/token/create and friends: the auth block is the credential.
		a := sec.Auth
		data := map[string]any{
			"client_token": a.ClientToken, "accessor": a.Accessor, "policies": a.Policies,
			"token_policies": a.TokenPolicies, "lease_duration": a.LeaseDuration,
			"renewable": a.Renewable, "entity_id": a.EntityID, "orphan": a.Orphan,
		}
		s.Data = Data{data}
		s.Raw = Data{deepCopy(data)}
		s.LeaseDuration = time.Duration(a.LeaseDuration) * time.Second
		s.Renewable = a.Renewable
		s.Fingerprint = fingerprint(a.Accessor)
		out.lease = &held{fp: s.Fingerprint, id: s.ID, path: s.Path, outputs: e.spec.Outputs, childTok: secretString(a.ClientToken), owner: tok}
		if a.Orphan {
			out.lease.owner = nil
		}
	default:
		raw := sec.Data
		s.Raw = Data{raw}
		inner := raw
		if e.kv == 2 || (e.kv == 0 && isKV2(raw)) {
			inner, _ = raw["data"].(map[string]any)
			if inner == nil {
				return nil, ErrNotFound // deleted or destroyed version
			}
			if md, ok := raw["metadata"].(map[string]any); ok {
				if n, ok := md["version"].(json.Number); ok {
					v, _ := n.Int64()
					s.Version = int(v)
				}
			}
		}
		s.Data = Data{deepCopy(inner)}
		if sec.LeaseID != "" {
			s.LeaseDuration = time.Duration(sec.LeaseDuration) * time.Second
			s.Renewable = sec.Renewable
			s.Fingerprint = fingerprint(sec.LeaseID)
			out.lease = &held{fp: s.Fingerprint, id: s.ID, path: s.Path, outputs: e.spec.Outputs, leaseID: secretString(sec.LeaseID), owner: tok}
		}
		if c, ok := inner["certificate"].(string); ok {
			out.notAfter = certNotAfter(c)
		}
		if sec.LeaseID == "" && e.kv == 0 {
			out.rotation = staticRotation(inner, now)
		}
	}
	if out.lease != nil {
		out.ttl = s.LeaseDuration
		out.renewable = s.Renewable
		out.leaseExp = now.Add(s.LeaseDuration)
		out.lease.expires = out.leaseExp
		s.ExpiresAt = out.leaseExp
	}
	if !out.notAfter.IsZero() && (s.ExpiresAt.IsZero() || out.notAfter.Before(s.ExpiresAt)) {
		s.ExpiresAt = out.notAfter
		if out.ttl == 0 {
			out.ttl = out.notAfter.Sub(now)
		}
	}
	hashed := s.Data.m
	if out.rotation != nil {
		// The ttl counts down with every read: only a new credential
		// (password, last_vault_rotation) is a change.
		s.NextRotation = out.rotation.next
		hashed = maps.Clone(hashed)
		delete(hashed, "ttl")
	}
	b, err := json.Marshal(hashed)
	if err != nil {
		return nil, fmt.Errorf("hash secret data: %w", err)
	}
	out.hash = sha256.Sum256(b)
	return out, nil
}

// isKV2 recognises a KV v2 response when mount detection was not possible.
func isKV2(raw map[string]any) bool {
	_, d := raw["data"].(map[string]any)
	_, md := raw["metadata"].(map[string]any)
	return d && md && len(raw) == 2
}

// certNotAfter returns the NotAfter of the first PEM certificate in s.
func certNotAfter(s string) time.Time {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" {
		return time.Time{}
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Time{}
	}
	return c.NotAfter
}

// renewLease renews h asking for inc and returns the new duration.
func (m *Manager) renewLease(ctx context.Context, h *held, inc time.Duration) (time.Duration, error) {
	secs := int(inc / time.Second)
	if h.childTok != "" {
		// As the child token on the shared client, without a Clone per
		// renewal (Clone re-runs vault/api's NewClient and DefaultConfig).
		sec, err := m.anon.Auth().Token().RenewTokenAsSelfWithContext(ctx, string(h.childTok), secs)
		if err != nil {
			return 0, err
		}
		if sec == nil || sec.Auth == nil {
			return 0, errors.New("token renewal returned no auth")
		}
		return time.Duration(sec.Auth.LeaseDuration) * time.Second, nil
	}
	sec, err := m.client.Sys().RenewWithContext(ctx, string(h.leaseID), secs)
	if err != nil {
		return 0, err
	}
	if sec == nil {
		return 0, errors.New("lease renewal returned nothing")
	}
	return time.Duration(sec.LeaseDuration) * time.Second, nil
}

// revokeLease revokes h: a token credential revokes itself (the default
// policy allows revoke-self); a lease needs update on sys/leases/revoke.
func (m *Manager) revokeLease(ctx context.Context, h *held) error {
	if h.childTok != "" {
		c, err := m.clientWith(string(h.childTok))
		if err != nil {
			return err
		}
		return c.Auth().Token().RevokeSelfWithContext(ctx, "")
	}
	return m.client.Sys().RevokeWithContext(ctx, string(h.leaseID))
}
