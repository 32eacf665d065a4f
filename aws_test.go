package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
)

// awsEnv is the environment of a leash using only kv for AWS: every
// other variable of the SDK's chain cleared, the shared files pointed at
// nothing, IMDS off (no test may reach 169.254.169.254). Later entries of
// an exec.Cmd's Env win.
func awsEnv(t *testing.T, kv ...string) []string {
	dir := t.TempDir()
	env := []string{
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_DEFAULT_PROFILE=",
		"AWS_WEB_IDENTITY_TOKEN_FILE=", "AWS_ROLE_ARN=", "AWS_REGION=", "AWS_DEFAULT_REGION=",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=", "AWS_ENDPOINT_URL=", "AWS_ENDPOINT_URL_STS=",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
	}
	return append(env, kv...)
}

// TestAWSAuthEndToEnd: --auth aws through the binary against Vault's aws
// auth (its STS a loopback fake, see testvault.AWSAuth). The child reads
// the secret, `validate --online` logs in too, and leash's stderr at trace
// level, text and JSON, holds neither the secret access key nor the session
// token; nor does it when STS rejects the signature.
func TestAWSAuthEndToEnd(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	kv := srv.KV(t, 1)
	const secret = "aws-kv-secret-4Tq"
	srv.Write(t, kv+"/app", map[string]any{"k": secret})
	a := srv.AWS(t, []string{srv.Policy(t, `path "`+kv+`/app" { capabilities = ["read"] }`)}, time.Hour, time.Hour, "vault.example.test")
	k := a.NewKey(t, true)
	env := append(awsEnv(t, "AWS_ACCESS_KEY_ID="+k.ID, "AWS_SECRET_ACCESS_KEY="+k.Secret, "AWS_SESSION_TOKEN="+k.Session),
		"VAULT_ADDR="+srv.Addr)
	flags := []string{"--log-level", "trace", "--auth", "aws", "--auth-mount", a.Mount, "--auth-role", a.Role,
		"--aws-iam-server-id", "vault.example.test", "-s", "k=" + kv + "/app#k"}
	leaks := func(what, stderr string) {
		t.Helper()
		for _, s := range []string{k.Secret, k.Session} {
			if strings.Contains(stderr, s) {
				t.Errorf("%s: an AWS secret is in leash's stderr:\n%s", what, stderr)
			}
		}
	}
	for _, format := range []string{"text", "json"} {
		cmd := leashCmd(t, append(append([]string{"--log-format", format}, flags...), "--", "sh", "-c", `cat "$K_FILE"`)...)
		cmd.Env = append(cmd.Env, env...)
		out, stderr := leashOutput(t, cmd)
		if string(out) != secret {
			t.Errorf("%s: child read %q", format, out)
		}
		if !strings.Contains(stderr, "auth/"+a.Mount+"/login") {
			t.Errorf("%s: no aws login logged:\n%s", format, stderr)
		}
		leaks(format, stderr)
	}

	cmd := leashCmd(t, append([]string{"validate", "--online"}, flags...)...)
	cmd.Env = append(cmd.Env, env...)
	out, stderr := leashOutput(t, cmd)
	if !strings.HasPrefix(string(out), "ok:") {
		t.Errorf("validate --online printed %q", out)
	}
	leaks("validate", stderr)

	cmd = leashCmd(t, append(flags, "--", "true")...)
	cmd.Env = append(append(cmd.Env, env...), "AWS_SECRET_ACCESS_KEY=wrong-"+k.Secret)
	got, stderr := exitStatus(t, cmd)
	if got != exitNoPerm || !strings.Contains(stderr, "SignatureDoesNotMatch") {
		t.Errorf("rejected signature: exit %d, want %d with STS's answer; stderr:\n%s", got, exitNoPerm, stderr)
	}
	leaks("rejected", stderr)
}

// With no AWS credentials anywhere leash exits 69 before starting the
// child, saying where it looked.
func TestAWSAuthNoCredentialsExits69(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	marker := filepath.Join(t.TempDir(), "started")
	cmd := leashCmd(t, "--auth", "aws", "--startup-timeout", "5s", "-s", "k=secret/x", "--", "touch", marker)
	cmd.Env = append(append(cmd.Env, awsEnv(t)...), "VAULT_ADDR="+srv.Addr)
	got, stderr := exitStatus(t, cmd)
	if got != exitUnavailable || !strings.Contains(stderr, "aws credentials") || !strings.Contains(stderr, "cloud identity") {
		t.Errorf("exit %d, want %d naming the AWS credential chain; stderr:\n%s", got, exitUnavailable, stderr)
	}
}
