// Package bench holds `make bench`: leash measured against the tools users
// would pick instead (Vault Agent in exec mode, consul-template in exec mode,
// tini, a direct exec), side by side in one run on one machine, against the
// real Vault dev server and PostgreSQL.
//
// The harness is a Go test behind the `bench` build tag (bench_test.go and
// friends), so it can use the same Vault and PostgreSQL helpers as the test
// suite:
//
//	make bench                  # full run, writes bench/results.md (tens of minutes)
//	make bench BENCH_SHORT=1    # one iteration each (CI, ~3 minutes), writes .cache/bench/results-short.md
//	go test -tags bench -run TestBench -v -timeout 3h ./bench/   # the same by hand
//
// BENCH_OUT overrides the results file. The stand-in application every
// wrapper runs is ./child. Peers are built into .cache (never committed):
// consul-template from tools/consul-template, Vault Agent is the Vault test
// server binary, tini is Debian's /usr/bin/tini.
package bench
