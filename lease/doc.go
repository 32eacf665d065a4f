// Package lease is the first stage of leash's flow (main -> lease -> render
// -> supervisor) and the only package that talks to Vault.
//
// A Manager logs in (token, approle, kubernetes, jwt, cert, aws, gcp or
// azure), fetches every Spec,
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
// and startup.go, add.go, track.go, run.go, rotate.go and check.go its
// Start, Add, Track, Run, Rotate and Check. The Manager is thin over its
// parts, each a type holding only what it needs, and itself only
// publishes snapshots: auth (auth*.go, vault_login.go) logs in with the
// configured method; tokens (token.go) keeps leash's token alive;
// fetcher (vault_read.go, vault_mounts.go) makes an entry's requests and
// turns the answers into credentials; keeper (entry.go, with its step in
// run.go) holds the entries and renews, rotates and refreshes each with
// the fetcher, and has tokens log in again when a credential would die
// with the token. planner and schedule (plan.go, schedule.go) are pure:
// when each secret and the token need attention. ledger.go holds what
// leash must revoke, under its own mutex; revoker (revoke.go) revokes
// what the ledger gives up, at Retire and Close. reporter (report.go)
// turns every event into OnEvent's call and the log line. clock is the time and jitter they share, which tests
// replace. The vault_*.go files are the Vault client and one file per
// kind of request, and with vault_errors.go the only files that import
// vault/api.
package lease
