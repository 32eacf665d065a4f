// Package render owns every byte of secret output leash produces.
//
// It sits between lease and supervisor in leash's one-way flow: package main
// turns a lease snapshot into a map of [Secret] values, [Renderer.Update]
// renders every [Output] (JSON, one raw field, dotenv or a text/template)
// and writes the bytes into memory only, and main hands [Renderer.Files],
// [Renderer.Env] to the supervisor. render never sees a process and the
// supervisor never sees a secret byte.
//
// # Guarantees
//
//   - Secret bytes go only into a memfd or a file in a private directory on
//     tmpfs/ramfs (on disk only with Options.AllowDisk, and on macOS, which
//     has neither memfd nor tmpfs: there Dir mode under $TMPDIR is the only
//     one); never into environment variables, argv, logs or errors.
//     [Values] cannot be printed by fmt, encoding/json or hclog.
//   - Rendering is deterministic. An output whose bytes did not change is not
//     rewritten and does not count as a change.
//   - Every write is complete before Update returns.
//
// # Memfd delivery: what the child sees
//
// Output i is the inherited file descriptor FirstFD+i (3, 4, ... by
// default), opened read-only; its path /dev/fd/N is in NAME_FILE. The memfd
// is named "leash:NAME" (visible in /proc/PID/fd), has mode 0400 and is
// owned by Options.UID/GID. A re-open of /dev/fd/N checks the inode mode
// like any open(2): the child must run as that user (or root) to read it
// that way, and a non-root child cannot re-open it for writing. A root
// child could, which is why restart-mode memfds are sealed.
//
// After a restart (Update with inPlace=false) each changed output is a new
// memfd sealed with F_SEAL_WRITE and F_SEAL_GROW: nobody, root included, can
// change its bytes. It is not sealed against shrinking so that Close and
// Release can truncate it to zero bytes for holders that outlive the child.
//
// With a reload signal (Update with inPlace=true) the bytes are replaced in
// the same memfd before Update returns, so main sends the signal afterwards.
// To pick up new content the child must, after receiving the signal, open
// /dev/fd/N again (a new open file description, offset 0) and read to EOF,
// or pread from offset 0 on the inherited descriptor until EOF. It must not
// just keep reading the inherited descriptor: its file offset is shared with
// every process that inherited it and stays wherever the last read left it.
// A reader that does not wait for the signal can observe a
// half-written file; in-place memfds are not sealed, so a root child could
// also write them.
//
// The app's own subprocesses inherit these descriptors unless the app sets
// FD_CLOEXEC on them (fcntl(fd, F_SETFD, FD_CLOEXEC)); Close truncates the
// memfds so such leftovers read nothing once leash exits.
//
// # Directory delivery
//
// A fresh 0700 directory leash-PID-RANDOM is created under Options.Dir
// ($XDG_RUNTIME_DIR, else /dev/shm), which must be on tmpfs or ramfs unless
// Options.AllowDisk is set, and must not be a symlink. It, every ancestor
// up to / and every symlink followed on the way must be owned by root or
// leash's user, and none of those directories may be writable by its group
// or by others unless it has the sticky bit: whoever could rename one could
// swap the directory the child reads by path for their own.
// Files are 0400, written to an O_EXCL|O_NOFOLLOW temporary file and renamed
// into place, so a reader always sees a complete file and no symlink or
// pre-created file can redirect a write. The child gets
// CREDENTIALS_DIRECTORY (systemd's convention) and NAME_FILE pointers. With
// Options.UID set the directory is chowned to the child's user, and a parent
// that user cannot enter is refused up front. Close overwrites the files
// with zeros, truncates and removes them, and removes the directory. Each live leash holds a flock on its
// directory; New removes leash-* directories whose lock is free, i.e. whose
// leash died without cleaning up (the PID in the name is only informative:
// PIDs are reused and differ across PID namespaces).
package render
