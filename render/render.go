package render

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// Kind selects how an output's bytes are produced.
type Kind int

const (
	// JSON renders the secret's Data as one JSON object with sorted keys,
	// no HTML escaping and no trailing newline.
	JSON Kind = iota
	// Field renders one field's value exactly (no newline added).
	Field
	// Dotenv renders KEY=value lines, sorted, quoted so any byte round-trips.
	Dotenv
	// TemplateKind renders a text/template.
	TemplateKind
)

// String returns the kind's flag spelling: json, field, dotenv, template.
func (k Kind) String() string {
	switch k {
	case JSON:
		return "json"
	case Field:
		return "field"
	case Dotenv:
		return "dotenv"
	case TemplateKind:
		return "template"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Output is one rendered file.
type Output struct {
	Name     string    // letters, digits, . _ -; see ValidateName
	Kind     Kind      // zero: JSON
	Secret   string    // Spec.ID of the source secret for JSON, Field, Dotenv
	Field    string    // Field only: the field name
	Template *Template // Template only
	// Path, when set, is where the output is also written, as a file at
	// exactly that absolute path (Vault Agent's template destination):
	// atomically, owned like the other outputs, with Mode (zero:
	// DefaultPathMode, 0400), and removed by Close. Its directory must
	// exist and, unless Options.AllowDisk, be on tmpfs or ramfs.
	Path string
	Mode os.FileMode
}

// Mode selects where outputs are delivered.
type Mode int

const (
	// Memfd delivers each output as an inherited memfd (the default; Linux
	// only).
	Memfd Mode = iota
	// Dir delivers files into a private directory on tmpfs (on macOS,
	// which has neither memfd nor tmpfs, on disk under $TMPDIR).
	Dir
)

// Options configures a Renderer.
type Options struct {
	Mode      Mode
	Dir       string // Dir mode parent; "" means $XDG_RUNTIME_DIR, else /dev/shm (macOS: $TMPDIR)
	AllowDisk bool   // accept a Dir mode parent or an Output.Path not on tmpfs/ramfs (Dir mode: implied on macOS)
	UID, GID  int    // owner of memfds/files; -1 leaves them as leash's (0 is root)
	FirstFD   int    // child's fd number for output 0; 0 means 3
	// Mlock maps every memfd read-only and locks its pages so secrets are
	// never swapped out (Memfd mode; in Dir mode use a noswap tmpfs or
	// ramfs). An Update fails when RLIMIT_MEMLOCK forbids it.
	Mlock  bool
	Logger hclog.Logger // nil: no logging
}

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("render: renderer is closed")

// Renderer renders outputs and owns the memfds or directory they live in.
// Its methods are safe for concurrent use.
type Renderer struct {
	opts    Options
	outputs []Output
	log     hclog.Logger
	key     []byte // HMAC key for change detection: no plain hash of a secret is kept

	mu         sync.Mutex
	sums       [][]byte // per output: HMAC of the bytes last written; nil before the first write
	files      []*memfd // Memfd mode: current memfd per output
	superseded []*memfd // Memfd mode: memfds replaced by !inPlace updates, closed by Release
	dir        *privateDir
	exact      []*exactFile // per output: its Output.Path file, or nil
	closed     bool
}

// New validates outputs (Check) and prepares delivery: in Dir mode it checks the
// parent, removes directories left by dead leash processes and creates the
// private directory. Nothing is rendered until Update.
func New(opts Options, outputs []Output) (*Renderer, error) {
	if opts.FirstFD == 0 {
		opts.FirstFD = 3
	}
	if opts.FirstFD < 3 {
		return nil, fmt.Errorf("first fd %d: must be 3 or more", opts.FirstFD)
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if err := Check(outputs); err != nil {
		return nil, err
	}
	paths := false
	for _, o := range outputs {
		paths = paths || o.Path != ""
	}
	r := &Renderer{
		opts:    opts,
		outputs: append([]Output(nil), outputs...),
		log:     opts.Logger,
		key:     make([]byte, 32),
		sums:    make([][]byte, len(outputs)),
	}
	rand.Read(r.key)
	if paths {
		r.exact = make([]*exactFile, len(outputs))
		for i, o := range outputs {
			if o.Path == "" {
				continue
			}
			e, err := openExact(o, opts.AllowDisk)
			if err != nil {
				r.closeExact()
				return nil, err
			}
			r.exact[i] = e
		}
	}
	switch opts.Mode {
	case Memfd:
		if err := memfdAvailable(); err != nil {
			return nil, err
		}
		r.files = make([]*memfd, len(outputs))
	case Dir:
		d, err := openPrivateDir(opts, r.log)
		if err != nil {
			r.closeExact()
			return nil, err
		}
		r.dir = d
	default:
		return nil, fmt.Errorf("unknown delivery mode %d", opts.Mode)
	}
	return r, nil
}

// Update renders every output from secrets (keyed by Spec.ID; template
// `secret` calls by Ref.ID) and delivers the outputs whose bytes changed.
// It reports whether any did. Nothing is written unless every output
// renders. inPlace (reload signal or no notification) rewrites the same
// memfd before returning; !inPlace (restart) puts changed outputs into new
// sealed memfds, leaving the old ones for Release. A memfd created by a
// !inPlace update is sealed, so once an output has been delivered with
// !inPlace, an inPlace update of it is an error: use one mode throughout.
// Dir mode always replaces files atomically.
func (r *Renderer) Update(secrets map[string]Secret, inPlace bool) (changed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false, ErrClosed
	}
	bufs := make([]*buffer, len(r.outputs))
	defer func() {
		for _, b := range bufs {
			if b != nil {
				b.wipe()
			}
		}
	}()
	sums := make([][]byte, len(r.outputs))
	for i, o := range r.outputs {
		b := &buffer{}
		bufs[i] = b
		if err := r.renderOne(b, o, secrets); err != nil {
			return false, fmt.Errorf("render %s: %w", o.Name, err)
		}
		m := hmac.New(sha256.New, r.key)
		m.Write(b.b)
		sums[i] = m.Sum(nil)
	}
	for i, o := range r.outputs {
		if r.sums[i] != nil && hmac.Equal(r.sums[i], sums[i]) {
			continue
		}
		if err := r.deliver(i, bufs[i].b, inPlace); err != nil {
			return changed, fmt.Errorf("deliver %s: %w", o.Name, err)
		}
		if r.exact != nil && r.exact[i] != nil {
			if err := r.exact[i].write(bufs[i].b, r.opts.UID, r.opts.GID); err != nil {
				return changed, fmt.Errorf("deliver %s: %w", o.Name, err)
			}
			r.log.Debug("output written", "path", r.exact[i].path)
		}
		r.sums[i] = sums[i]
		changed = true
		r.log.Debug("output written", "path", r.pathLocked(i), "in_place", inPlace)
	}
	return changed, nil
}

func (r *Renderer) renderOne(w *buffer, o Output, secrets map[string]Secret) error {
	if o.Kind == TemplateKind {
		return o.Template.render(w, secrets)
	}
	s, ok := secrets[o.Secret]
	if !ok {
		return fmt.Errorf("secret %q was not fetched", o.Secret)
	}
	switch o.Kind {
	case JSON:
		m := s.Data.m
		if m == nil {
			m = map[string]any{}
		}
		return appendJSON(w, m)
	case Field:
		v, ok := s.Data.m[o.Field]
		if !ok {
			return fmt.Errorf("secret %q has no field %q", o.Secret, o.Field)
		}
		return appendField(w, v)
	case Dotenv:
		return appendDotenv(w, s.Data.m)
	}
	return fmt.Errorf("unknown kind %d", o.Kind)
}

func (r *Renderer) deliver(i int, b []byte, inPlace bool) error {
	name := r.outputs[i].Name
	if r.dir != nil {
		return r.dir.write(name, b, r.opts.UID, r.opts.GID)
	}
	if m := r.files[i]; m != nil && inPlace {
		if m.sealed {
			return errors.New("memfd is sealed (created for a restart); cannot rewrite it in place")
		}
		return m.rewrite(b)
	}
	m, err := newMemfd(name, b, r.opts.UID, r.opts.GID, !inPlace, r.opts.Mlock)
	if err != nil {
		return err
	}
	if old := r.files[i]; old != nil {
		r.superseded = append(r.superseded, old)
	}
	r.files[i] = m
	return nil
}

// Files returns read-only descriptors of the current memfds in output
// order; the child must see Files()[i] as fd FirstFD+i (exec.Cmd.ExtraFiles
// with FirstFD 3). They are separate open files from leash's read-write
// ones, so the child can neither write through them nor move leash's
// offset. Each call rewinds them to offset 0 for the next child. Files is
// nil in Dir mode and before the first Update. The files stay owned by the
// Renderer: do not close them.
func (r *Renderer) Files() []*os.File {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dir != nil || r.closed {
		return nil
	}
	files := make([]*os.File, len(r.files))
	for i, m := range r.files {
		if m == nil {
			return nil
		}
		// A child that read the inherited descriptor moved its shared
		// offset; the next child handed the same file starts at 0.
		if _, err := m.ro.Seek(0, io.SeekStart); err != nil {
			r.log.Warn("rewind memfd", "path", r.pathLocked(i), "error", err)
		}
		files[i] = m.ro
	}
	return files
}

// Removed returns the stale private directories (left by a leash that was
// killed, so it could not clean up) New removed in Dir mode; nil in Memfd
// mode.
func (r *Renderer) Removed() []string {
	if r.dir == nil {
		return nil
	}
	return r.dir.removed
}

// Path returns where the child finds output name: /dev/fd/N in Memfd
// mode, DIR/NAME in Dir mode.
func (r *Renderer) Path(name string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, o := range r.outputs {
		if o.Name == name {
			return r.pathLocked(i), nil
		}
	}
	return "", fmt.Errorf("no output named %q", name)
}

func (r *Renderer) pathLocked(i int) string {
	if r.dir != nil {
		return r.dir.path + "/" + r.outputs[i].Name
	}
	return "/dev/fd/" + strconv.Itoa(r.opts.FirstFD+i)
}

// Env returns NAME_FILE=path for every output (see EnvName) and, in Dir
// mode, CREDENTIALS_DIRECTORY=dir. It never holds a secret value.
func (r *Renderer) Env() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	env := make([]string, 0, len(r.outputs)+1)
	if r.dir != nil {
		env = append(env, "CREDENTIALS_DIRECTORY="+r.dir.path)
	}
	for i, o := range r.outputs {
		env = append(env, EnvName(o.Name)+"="+r.pathLocked(i))
	}
	return env
}

// Release truncates and closes the memfds superseded by !inPlace updates.
// Call it once the child that held them has been replaced.
func (r *Renderer) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.superseded {
		if err := m.close(); err != nil {
			r.log.Warn("release memfd", "error", err)
		}
	}
	r.superseded = nil
}

// closeExact removes the Output.Path files leash wrote.
func (r *Renderer) closeExact() error {
	var errs []error
	for _, e := range r.exact {
		if e != nil {
			errs = append(errs, e.remove())
		}
	}
	r.exact = nil
	return errors.Join(errs...)
}

// Close truncates every memfd to zero bytes (so descriptors inherited by
// leftover processes read nothing) and closes it, or removes the private
// directory with its files, and removes the Output.Path files. It is
// idempotent.
func (r *Renderer) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	var errs []error
	for _, m := range append(r.files, r.superseded...) {
		if m != nil {
			errs = append(errs, m.close())
		}
	}
	r.files, r.superseded = nil, nil
	errs = append(errs, r.closeExact())
	if r.dir != nil {
		errs = append(errs, r.dir.remove())
	}
	return errors.Join(errs...)
}
