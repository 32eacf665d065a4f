package main

import (
	"strings"
	"testing"

	"github.com/leash-dev/leash/internal/testvault"
)

// Against a TLS Vault: a certificate that does not verify (unknown CA,
// wrong server name) is a configuration problem, exit 78 naming the fix,
// not 70; VAULT_SKIP_VERIFY and BAO_SKIP_VERIFY connect, with one WARN
// line at start-up, in run and in validate.
func TestVaultTLSExitAndSkipVerifyWarning(t *testing.T) {
	t.Parallel()
	srv := testvault.NewTLS(t)
	kv := srv.KV(t, 2)
	srv.Write(t, kv+"/data/app", map[string]any{"data": map[string]any{"password": "p"}})
	leash := func(env []string, args ...string) (int, string) {
		// -s goes after a command name and before "--".
		i := 0
		if args[0] == "validate" {
			i = 1
		}
		args = append(append(append([]string{}, args[:i]...), "-s", "pw="+kv+"/app#password"), args[i:]...)
		cmd := leashCmd(t, args...)
		cmd.Env = append(cmd.Env, append([]string{"VAULT_ADDR=" + srv.Addr, "VAULT_TOKEN=" + srv.RootToken,
			"VAULT_CACERT=", "VAULT_CAPATH=", "VAULT_SKIP_VERIFY=", "BAO_SKIP_VERIFY=", "VAULT_TLS_SERVER_NAME="}, env...)...)
		return exitStatus(t, cmd)
	}
	const warning = "SKIP_VERIFY is set: Vault's TLS certificate is not verified"
	for _, tt := range []struct {
		name string
		env  []string
	}{
		{"unknown CA", nil},
		{"wrong server name", []string{"VAULT_CACERT=" + srv.CACert, "VAULT_TLS_SERVER_NAME=other.example"}},
	} {
		got, stderr := leash(tt.env, "--", "true")
		if got != exitConfig || !strings.Contains(stderr, "VAULT_CACERT") {
			t.Errorf("%s: exit %d, want %d with a hint naming VAULT_CACERT; stderr:\n%s", tt.name, got, exitConfig, stderr)
		}
		if strings.Contains(stderr, warning) {
			t.Errorf("%s: warned about a skip that is off:\n%s", tt.name, stderr)
		}
	}
	for _, tt := range []struct {
		name, skip string
		args       []string
	}{
		{"run", "VAULT_SKIP_VERIFY=true", []string{"--", "true"}},
		{"validate --online", "BAO_SKIP_VERIFY=1", []string{"validate", "--online"}},
		{"validate", "VAULT_SKIP_VERIFY=1", []string{"validate"}},
	} {
		got, stderr := leash([]string{tt.skip}, tt.args...)
		if got != 0 {
			t.Errorf("%s with %s: exit %d; stderr:\n%s", tt.name, tt.skip, got, stderr)
		}
		name, _, _ := strings.Cut(tt.skip, "=")
		if n := strings.Count(stderr, "[WARN]  leash.lease: "+name+" is set"); n != 1 {
			t.Errorf("%s with %s: %d warnings, want 1; stderr:\n%s", tt.name, tt.skip, n, stderr)
		}
	}
}
