// Package supervisor owns the child process: it starts it, relays signals to
// it, stops, restarts and reloads it, and reports how it ended. It is the last
// stage of leash's flow (main -> lease -> render -> supervisor) and never sees
// secret bytes, only the files and environment main hands it.
//
// Guarantees:
//   - The child runs in its own process group. Signals go to the whole group by
//     default (a shell wrapper cannot swallow SIGTERM); Config.ChildOnly sends
//     them to the child alone. The kill timeout always SIGKILLs the group.
//   - Exactly one goroutine waits for each child, and the reaper (see
//     signals.Reaper with Skip set to IsChild) cannot steal its status: IsChild
//     is serialised with the fork.
//   - On Linux the child gets SIGKILL if leash dies (Pdeathsig, set from a
//     locked OS thread that lives as long as the child; golang/go#27505).
//     macOS has no parent-death signal (wait_darwin.go): there a leash that
//     is SIGKILLed or crashes leaves its child running.
//   - On a terminal where leash is in the foreground, the child's process group
//     becomes the foreground group, so interactive programs and Ctrl-C work;
//     leash takes the terminal back when the child exits.
//   - Job control: when the child stops (Ctrl-Z, a background read of the
//     terminal, a forwarded SIGTSTP), leash stops itself too unless it is
//     PID 1, leads its session or has no parent able to continue it, so
//     the shell's fg and bg work; continued, leash hands the terminal back
//     if it has it and continues the child's group.
//   - A child stopped on purpose by Restart never ends Run, and signals that
//     arrive during a restart are queued for the new child.
//   - Run reports the exit status unmapped (ExitError carries Code and Signal);
//     package main maps it to leash's own exit code.
package supervisor
