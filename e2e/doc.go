// Package e2e holds leash's black-box tests: they build the leash binary
// once per test run and run it as a user would, against a real Vault dev
// server (internal/testvault), a real PostgreSQL (internal/testpg) and real
// processes and signals, the children being the test binary itself in one
// of internal/testchild's modes. The tests know leash only by its command
// line, exit codes, outputs, audit events and status server; white-box
// tests of package main stay beside it at the module root.
//
// The harness (harness_test.go) starts leash, reads the child's stdout line
// by line and leash's stderr into a locked buffer, and lets a test wait on
// audit events (the lease.EventKind vocabulary and leash's child events).
// Files are by theme: process, seed, faults, rotation, badinput, secrecy,
// auth, observability, audit, agent (Vault Agent configs), soak, script.
package e2e
