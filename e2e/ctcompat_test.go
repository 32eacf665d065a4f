package e2e

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/leash-dev/leash/internal/testvault"
)

// consulTemplateBin is consul-template v0.41.1: LEASH_CONSUL_TEMPLATE_BIN
// (make test sets it, and then it must be there), else .cache/bin as
// `make consul-template` builds it from tools/consul-template; the test is
// skipped if that is absent.
func consulTemplateBin(t *testing.T) string {
	if p := os.Getenv("LEASH_CONSUL_TEMPLATE_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("LEASH_CONSUL_TEMPLATE_BIN: %v", err)
		}
		return p
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(filepath.Dir(wd), ".cache", "bin", "consul-template")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no consul-template at %s (make consul-template builds it): %v", p, err)
	}
	return p
}

// The corpus in testdata/ctcompat (one template per construct of issue
// 18: the secret object, pkiCert, secrets, every function family, sprig,
// missing keys) is rendered by leash and by consul-template v0.41.1
// against the same Vault and compared byte for byte; only values Vault
// issues anew for each of them (credentials, certificates, lease and
// request ids, tokens) are masked.
func TestConsulTemplateCorpus(t *testing.T) {
	ct := consulTemplateBin(t)
	srv := testvault.Shared(t)
	ctx := context.Background()
	kv2, kv1 := srv.KV(t, 2), srv.KV(t, 1)
	app := map[string]any{
		"username": "app", "password": "hunter2<>&\"'", "port": 5432, "ratio": 0.75, "enabled": true,
		"empty": "", "tags": []any{"web", "db", "prod"}, "nested": map[string]any{"a": map[string]any{"b": "deep"}},
		"dotted.key": "x", "yaml": "a: 1\nb: [x, y]\n", "json": `{"k":"v","n":3}`, "csv": "a:1,b:2,c:3",
		"b64": base64.StdEncoding.EncodeToString([]byte("hello")), "multi": "line1\nline2\n", "unicode": "héllo wörld",
	}
	if _, err := srv.Client.KVv2(kv2).Put(ctx, "app", app); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"workers/one", "workers/two", "workers/sub/three"} {
		if _, err := srv.Client.KVv2(kv2).Put(ctx, w, map[string]any{"name": w}); err != nil {
			t.Fatal(err)
		}
	}
	srv.Write(t, kv1+"/legacy", map[string]any{"user": "legacy", "pass": "s3cr3t", "count": 3})
	// A chain of paths read from secrets: two rounds of discovery.
	srv.Write(t, kv1+"/pointer", map[string]any{"target": kv1 + "/pointer2"})
	srv.Write(t, kv1+"/pointer2", map[string]any{"target": kv2 + "/workers/two"})
	pki := srv.PKI(t, 2*time.Hour)
	caSec, err := srv.Client.Logical().Read(strings.Split(pki, "/")[0] + "/cert/ca")
	if err != nil {
		t.Fatal(err)
	}
	ca := strings.TrimSpace(caSec.Data["certificate"].(string))
	db := dbCreds(t, srv, time.Hour, 2*time.Hour)
	file := filepath.Join(t.TempDir(), "ca.txt")
	if err := os.WriteFile(file, []byte("file contents\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	srcs, err := filepath.Glob("testdata/ctcompat/*.tmpl")
	if err != nil || len(srcs) < 60 {
		t.Fatalf("corpus: %d templates, %v", len(srcs), err)
	}
	dir := t.TempDir()
	in, leashOut, ctOut := filepath.Join(dir, "in"), filepath.Join(dir, "leash"), filepath.Join(dir, "ct")
	for _, d := range []string{in, leashOut, ctOut} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	repl := strings.NewReplacer("@KV2@", kv2, "@KV1@", kv1, "@PKI@", pki, "@DB@", db, "@FILE@", file)
	var names []string
	leashArgs := []string{"--delivery", "dir", "--allow-disk", "--dir", dir}
	ctArgs := []string{"-once", "-vault-addr", srv.Addr, "-vault-renew-token=false", "-log-level", "err"}
	for _, src := range srcs {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(src), ".tmpl")
		f := filepath.Join(in, name)
		if err := os.WriteFile(f, []byte(repl.Replace(string(b))), 0o600); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		leashArgs = append(leashArgs, "-t", name+"="+f)
		if strings.Contains(name, "nokey") { // consul-template's default
			leashArgs = append(leashArgs, "--allow-missing-key", name)
		}
		ctArgs = append(ctArgs, "-template", f+":"+filepath.Join(ctOut, name))
	}
	env := append(os.Environ(), "APP_ENV=prod", "APP_NAME=app")

	cmd := Command(t, append(leashArgs, "--", "sh", "-c", `cp "$CREDENTIALS_DIRECTORY"/* "$0"/`, leashOut)...)
	cmd.Env = append(env, vaultEnv(srv.Addr, runToken(t, srv))...)
	code, stderr := ExitStatus(t, cmd)
	if code != 0 {
		t.Fatalf("leash exited %d:\n%s", code, stderr)
	}
	for _, secret := range []string{"hunter2", "s3cr3t", "file contents", "aHVudGVyMjw"} {
		if strings.Contains(stderr, secret) {
			t.Errorf("leash's log holds %q", secret)
		}
	}
	ctCmd := exec.Command(ct, append(ctArgs, "-vault-token", runToken(t, srv))...)
	ctCmd.Env = env
	if out, err := ctCmd.CombinedOutput(); err != nil {
		t.Fatalf("consul-template: %v\n%s", err, out)
	}

	mask := masker(ca)
	for _, n := range names {
		l, err := os.ReadFile(filepath.Join(leashOut, n))
		if err != nil {
			t.Errorf("%s: leash: %v", n, err)
			continue
		}
		c, err := os.ReadFile(filepath.Join(ctOut, n))
		if err != nil {
			t.Errorf("%s: consul-template: %v", n, err)
			continue
		}
		if ml, mc := mask(string(l)), mask(string(c)); ml != mc {
			t.Errorf("%s differs (masked):\nleash:           %q\nconsul-template: %q", n, ml, mc)
		} else if os.Getenv("LEASH_CT_SHOW") != "" {
			t.Logf("%s: %q", n, ml)
		}
	}
}

// runToken is a token for one renderer: leash revokes its own at exit.
func runToken(t *testing.T, srv *testvault.Server) string {
	sec, err := srv.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"root"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	return sec.Auth.ClientToken
}

// masker replaces what Vault issues anew per request with placeholders:
// the shared CA is kept apart from the certificates and keys issued under
// it.
func masker(ca string) func(string) string {
	type rule struct {
		re   *regexp.Regexp
		with string
	}
	rules := []rule{
		{regexp.MustCompile(`-----BEGIN ([A-Z ]+)-----\n[A-Za-z0-9+/=\n]+-----END [A-Z ]+-----`), "<PEM $1>"},
		{regexp.MustCompile(`hvs\.[A-Za-z0-9_-]+`), "<token>"},
		{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "<uuid>"},
		{regexp.MustCompile(`v-token-[A-Za-z0-9_-]+`), "<dbuser>"},
		{regexp.MustCompile(`([0-9a-f]{2}:){10,}[0-9a-f]{2}`), "<serial>"},
		{regexp.MustCompile(`\b[A-Za-z0-9]{24}\b`), "<id24>"},
	}
	// Vault's default password policy: 20 of [A-Za-z0-9-], with at least
	// one upper, lower and digit.
	pw := regexp.MustCompile(`[A-Za-z0-9-]{20,}`)
	return func(s string) string {
		s = strings.ReplaceAll(s, ca, "<CA>")
		for _, r := range rules {
			s = r.re.ReplaceAllString(s, r.with)
		}
		return pw.ReplaceAllStringFunc(s, func(m string) string {
			if len(m) == 20 && strings.ContainsAny(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") && strings.ContainsAny(m, "abcdefghijklmnopqrstuvwxyz") && strings.ContainsAny(m, "0123456789") {
				return "<pw>"
			}
			return m
		})
	}
}
