// Package examples holds no library code. Its tests keep the examples in
// this directory true: every config validates, the Kubernetes manifest
// parses and keeps its one-container shape, the systemd unit verifies and
// agrees with its config, the example programs build,
// examples/postgres and examples/legacy run for real against Vault and
// PostgreSQL, and `make demo` runs end to end.
package examples
