package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/leash-dev/leash/internal/status"
	"github.com/leash-dev/leash/lease"
	"github.com/leash-dev/leash/render"
)

// scrubbedEnv is leash's environment minus its own credentials and the
// service manager's variables addressed to leash (status.NotifyVars).
func scrubbedEnv(extra []string) (env []string, lookup func(string) string) {
	drop := map[string]bool{}
	for _, k := range slices.Concat(lease.CredentialVars(), status.NotifyVars, extra) {
		drop[k] = true
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	lookup = func(k string) string {
		if drop[k] {
			return ""
		}
		return os.Getenv(k)
	}
	return env, lookup
}

// childEnv adds the output pointers to the scrubbed base environment.
func childEnv(base []string, r *render.Renderer, ptrs []pointer) ([]string, error) {
	env := append(slices.Clone(base), r.Env()...)
	for _, p := range ptrs {
		path, err := r.Path(p.Output)
		if err != nil {
			return nil, fmt.Errorf("--env %s=%s: %w", p.Var, p.Output, err)
		}
		env = append(env, p.Var+"="+path)
	}
	return dedupEnv(env), nil
}

// dedupEnv keeps the last value of each variable, in first-seen order.
func dedupEnv(env []string) []string {
	idx := map[string]int{}
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}
