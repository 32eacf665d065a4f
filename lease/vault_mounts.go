package lease

import (
	"context"
	"strings"
	"sync"
)

// resolve applies `vault kv get` mount detection: for a KV v2 mount,
// "secret/app" becomes "secret/data/app" (a path already holding data/ is
// kept). When the lookup is not allowed the path is used as written.
func (f *fetcher) resolve(ctx context.Context, e *entry) error {
	if e.resolved {
		return nil
	}
	e.path = strings.Trim(e.spec.Path, "/")
	if e.spec.Params != nil {
		e.resolved = true
		return nil
	}
	info, err := f.mounts.lookup(ctx, e.path, f.vault.lookupMount)
	if err != nil {
		return err
	}
	e.resolved = true
	e.kv = info.kv
	if info.kv == 2 {
		rest := strings.TrimPrefix(e.path+"/", info.path)
		rest = strings.TrimSuffix(rest, "/")
		if e.spec.List {
			if rest != "metadata" && !strings.HasPrefix(rest, "metadata/") {
				e.path = strings.TrimSuffix(strings.TrimSuffix(info.path, "/")+"/metadata/"+rest, "/")
			}
		} else if !strings.HasPrefix(rest, "data/") {
			e.path = strings.TrimSuffix(info.path, "/") + "/data/" + rest
		}
	}
	return nil
}

// mountInfo is what Vault says about the mount holding a path.
type mountInfo struct {
	path string // "secret/", with Vault's trailing slash; empty: unknown
	kv   int    // KV version, 0 when not a KV mount
}

// lookupMount asks sys/internal/ui/mounts about path. Only transient
// failures are errors: an older Vault or a denied lookup leaves the path
// as written, as the vault CLI does.
func (v *vault) lookupMount(ctx context.Context, path string) (mountInfo, error) {
	sec, err := v.client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+path)
	if err != nil {
		if _, transient := classify(err); transient {
			return mountInfo{}, err
		}
		return mountInfo{}, nil
	}
	if sec == nil || sec.Data == nil {
		return mountInfo{}, nil
	}
	typ, _ := sec.Data["type"].(string)
	mount, _ := sec.Data["path"].(string)
	info := mountInfo{path: mount}
	if typ != "kv" && typ != "generic" || mount == "" {
		return info, nil
	}
	info.kv = 1
	if opts, ok := sec.Data["options"].(map[string]any); ok {
		if v, ok := opts["version"].(string); ok && v == "2" {
			info.kv = 2
		}
	}
	return info, nil
}

// mountLookups shares mount lookups between the entries resolved at
// start-up: secrets under one mount (ten database roles; a thousand in a
// fleet test) need one lookup, not one each. Paths with the same first
// segment wait for the first lookup and use its answer when its mount
// holds them; otherwise, and after a failed lookup, they ask themselves.
type mountLookups struct {
	mu      sync.Mutex
	byFirst map[string]*mountLookup
}

type mountLookup struct {
	done chan struct{}
	info mountInfo // valid once done is closed
}

func (ml *mountLookups) lookup(ctx context.Context, path string, ask func(context.Context, string) (mountInfo, error)) (mountInfo, error) {
	first, _, _ := strings.Cut(path, "/")
	ml.mu.Lock()
	if ml.byFirst == nil {
		ml.byFirst = map[string]*mountLookup{}
	}
	l, shared := ml.byFirst[first]
	if !shared {
		l = &mountLookup{done: make(chan struct{})}
		ml.byFirst[first] = l
	}
	ml.mu.Unlock()
	if !shared {
		info, err := ask(ctx, path)
		if err != nil {
			ml.mu.Lock()
			delete(ml.byFirst, first) // the next attempt asks again
			ml.mu.Unlock()
		}
		l.info = info
		close(l.done)
		return info, err
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		return mountInfo{}, ctx.Err()
	}
	if l.info.path != "" && strings.HasPrefix(path+"/", l.info.path) {
		return l.info, nil
	}
	return ask(ctx, path)
}
