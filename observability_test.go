package main

import (
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/leash-dev/leash/internal/testvault"
)

// TestMetricsCountStartupRequests: after a start with a token lookup, a
// mount lookup and a KV read, the request histogram has counted them (it
// counted only renewals and rotations, so 0 here: issue 16).
func TestMetricsCountStartupRequests(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "pw-Hq2r"}})
	sock := filepath.Join(t.TempDir(), "status.sock")
	cmd := leashCmd(t, "--status-addr", sock, "-s", "pw="+kv+"/app#password", "--on-rotate", "none",
		"--", "sleep", "600")
	cmd.Env = append(cmd.Env, "VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.RootToken)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitHealth(t, sock, http.StatusOK)
	_, metrics := getStatus(t, sock, "/metrics")
	m := regexp.MustCompile(`(?m)^leash_vault_request_duration_seconds_count (\d+)$`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no request count in /metrics:\n%s", metrics)
	}
	// lookup-self, sys/internal/ui/mounts, the read.
	if n, _ := strconv.Atoi(m[1]); n < 3 {
		t.Errorf("leash_vault_request_duration_seconds_count = %d after a login and a read, want >= 3; leash:\n%s", n, stderr.String())
	}
	if !strings.Contains(metrics, `leash_vault_request_duration_seconds_bucket{le="+Inf"} `+m[1]+"\n") {
		t.Errorf("+Inf bucket disagrees with the count:\n%s", metrics)
	}
}
