// Package lease is the first stage of leash's flow (main -> lease -> render
// -> supervisor) and the only package that talks to Vault.
//
// A Manager logs in (token, approle, kubernetes or jwt), fetches every Spec,
// and emits immutable Snapshots. Run keeps each credential alive: renewable
// leases are renewed at about two thirds of their remaining time; when a
// lease can no longer be extended (max TTL, non-renewable, or its owning
// token dies first) a new credential is fetched while the old one is still
// valid, and the old lease is revoked only when the consumer calls Retire.
// The login token is renewed, and replaced by a new login before it can no
// longer be renewed. Static secrets (KV) are re-read and produce a snapshot
// only when their content changed.
//
// Secret values live in Data, which cannot be printed or marshalled; logs
// carry only names, paths, a lease fingerprint (short SHA-256 of the lease
// id), ttl and expiry.
//
// Where things are: manager.go is the API (New, Updates, Retire, Close)
// and startup.go, run.go and check.go its Start, Run and Check. entry.go
// renews, rotates and refreshes one secret, token.go keeps leash's token
// alive. plan.go and schedule.go are pure: when each secret and the token
// need attention. ledger.go holds what leash must revoke, under its own
// mutex. report.go turns every event into the log line. The vault_*.go
// files are the Vault client and one file per kind of request, and with
// vault_errors.go the only files that import vault/api; auth*.go build
// the login of each method.
package lease
