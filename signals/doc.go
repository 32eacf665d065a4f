// Package signals is the small, pure part of leash's init duties: signal names,
// the forwarding policy (which signals leash relays to its child), notification
// of those signals, and the zombie reaper leash runs as PID 1 or as a child
// subreaper (Linux; on macOS leash is neither, and the Reaper does nothing).
//
// It sits beside the flow main -> lease -> render -> supervisor: package main
// feeds Notify's channel into supervisor.Supervisor.Signal and runs a Reaper
// whose Skip is supervisor.Supervisor.IsChild, so reaping never steals the
// supervised child's exit status.
package signals
