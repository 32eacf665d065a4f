package lease

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	pathpkg "path"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
)

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

// fetcher reads and writes the entries' paths and turns Vault's answers
// into issued credentials: the request side of an entry's lifecycle. Its
// methods may run for different entries at once (Start fetches in
// parallel); mounts shares their mount lookups.
type fetcher struct {
	vault  *vault
	mounts mountLookups
	ledger *ledger // the current token, which owns what is issued
	clock  *clock
	log    hclog.Logger
}

// fetch reads or writes the entry's path once with the current token.
func (f *fetcher) fetch(ctx context.Context, e *entry) (*issued, error) {
	if !e.resolved && e.spec.Params == nil && !e.spec.List && isCredsPath(e.spec.Path) {
		is, err := f.fetchDirect(ctx, e)
		if is != nil || err != nil {
			return is, err
		}
	}
	if err := f.resolve(ctx, e); err != nil {
		return nil, err
	}
	var sec *api.Secret
	var err error
	// Vault counts the lease from when it handled the request: counting
	// from when leash sent it never overestimates the credential's life.
	now := f.clock.now()
	if e.spec.Params != nil {
		body := make(map[string]any, len(e.spec.Params))
		for k, v := range e.spec.Params {
			body[k] = v
		}
		sec, err = f.vault.client.Logical().WriteWithContext(ctx, e.path, body)
	} else if e.spec.List {
		sec, err = f.vault.client.Logical().ListWithContext(ctx, e.path)
		if err == nil && (sec == nil || sec.Data["keys"] == nil) {
			sec = &api.Secret{Data: map[string]any{"keys": []any{}}} // Vault's 404 for an empty folder
		}
	} else {
		sec, err = f.vault.client.Logical().ReadWithContext(ctx, e.path)
	}
	if err != nil {
		return nil, err
	}
	if sec == nil {
		return nil, ErrNotFound
	}
	return f.issue(e, sec, now)
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
func (f *fetcher) fetchDirect(ctx context.Context, e *entry) (*issued, error) {
	path := strings.Trim(e.spec.Path, "/")
	now := f.clock.now()
	sec, err := f.vault.client.Logical().ReadWithContext(ctx, path)
	if err != nil {
		if _, transient := classify(err); transient {
			return nil, err
		}
		f.log.Debug("direct read failed; resolving the mount", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path)
		return nil, nil
	}
	if sec == nil || sec.LeaseID == "" {
		f.log.Debug("direct read gave no lease; resolving the mount", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path)
		return nil, nil
	}
	e.path, e.resolved = path, true
	return f.issue(e, sec, now)
}

// issue turns Vault's answer for e, requested at now, into an issued credential.
func (f *fetcher) issue(e *entry, sec *api.Secret, now time.Time) (*issued, error) {
	if len(sec.Warnings) > 0 {
		// "Endpoint ignored these unrecognized parameters: [tll]": a
		// misspelt parameter Vault took no notice of, otherwise silent.
		f.log.Warn("vault warned", "name", e.spec.ID, "outputs", e.spec.Outputs, "path", e.spec.Path,
			"warning", printable(strings.Join(slices.Compact(slices.Clone(sec.Warnings)), "; "), maxVaultMessage))
	}
	s := &Secret{ID: e.spec.ID, Path: e.spec.Path, IssuedAt: now, Response: response(sec)}
	out := &issued{secret: s}
	tok := f.ledger.current() // fetches of Start run in parallel
	if sec.Auth != nil && sec.Auth.ClientToken != "" && e.spec.Params != nil {
		out.fromAuth(e, sec.Auth, tok)
	} else if err := out.fromData(e, sec, tok, now); err != nil {
		return nil, err
	}
	out.expire(now)
	if err := out.hashData(); err != nil {
		return nil, err
	}
	return out, nil
}

// fromAuth fills in a credential that is the auth block of the answer:
// auth/token/create and friends. The token is renewed and revoked as
// itself; an orphan does not die with leash's token.
func (out *issued) fromAuth(e *entry, a *api.SecretAuth, tok *token) {
	s := out.secret
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
}

// fromData fills in a credential from the answer's data: a lease, a KV
// secret (v2: the inner data and its version), a certificate (its
// NotAfter), or a static role (its rotation).
func (out *issued) fromData(e *entry, sec *api.Secret, tok *token, now time.Time) error {
	s := out.secret
	raw := sec.Data
	s.Raw = Data{raw}
	inner := raw
	if !e.spec.List && (e.kv == 2 || (e.kv == 0 && isKV2(raw))) {
		inner, _ = raw["data"].(map[string]any)
		if inner == nil {
			return ErrNotFound // deleted or destroyed version
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
	if sec.LeaseID == "" && e.kv == 0 && !e.spec.List {
		out.rotation = staticRotation(inner, now)
	}
	return nil
}

// expire sets the lease's duration and expiry, counted from now, bounded
// by a certificate's NotAfter.
func (out *issued) expire(now time.Time) {
	s := out.secret
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
}

// hashData hashes the secret's data, which tells a changed static secret
// from an unchanged one.
func (out *issued) hashData() error {
	hashed := out.secret.Data.m
	if out.rotation != nil {
		// The ttl counts down with every read: only a new credential
		// (password, last_vault_rotation) is a change.
		out.secret.NextRotation = out.rotation.next
		hashed = maps.Clone(hashed)
		delete(hashed, "ttl")
	}
	b, err := json.Marshal(hashed)
	if err != nil {
		return fmt.Errorf("hash secret data: %w", err)
	}
	out.hash = sha256.Sum256(b)
	return nil
}

// response is sec less its data, for Secret.Response.
func response(sec *api.Secret) Data {
	m := map[string]any{
		"request_id": sec.RequestID, "lease_id": sec.LeaseID,
		"lease_duration": sec.LeaseDuration, "renewable": sec.Renewable,
		"warnings": slices.Clone(sec.Warnings), "auth": nil, "wrap_info": nil,
	}
	if a := sec.Auth; a != nil {
		m["auth"] = map[string]any{
			"client_token": a.ClientToken, "accessor": a.Accessor, "policies": slices.Clone(a.Policies),
			"metadata": maps.Clone(a.Metadata), "lease_duration": a.LeaseDuration, "renewable": a.Renewable,
		}
	}
	if w := sec.WrapInfo; w != nil {
		m["wrap_info"] = map[string]any{
			"token": w.Token, "ttl": w.TTL, "creation_time": w.CreationTime, "wrapped_accessor": w.WrappedAccessor,
		}
	}
	return Data{m}
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
