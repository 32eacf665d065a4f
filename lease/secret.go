package lease

import "time"

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
	// Response is the rest of Vault's answer, for templates (consul-template's
	// .RequestID, .LeaseID, .Warnings, .Auth, .WrapInfo): request_id,
	// lease_id, lease_duration, renewable, warnings ([]string), auth
	// (client_token, accessor, policies, metadata, lease_duration,
	// renewable) and wrap_info (token, ttl, creation_time, wrapped_accessor),
	// the last two nil when absent. Values as Vault gave them.
	Response Data
}

// Snapshot is the set of secrets at one moment. Never mutated after it is emitted.
type Snapshot struct {
	Seq     uint64
	Secrets map[string]*Secret // by Spec.ID
}
