package lease

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
)

// The AWS SDK reads AWS_* from the process environment, so these tests set
// it with t.Setenv and cannot run in parallel.

// awsEnv clears every variable the SDK's credential chain reads, points
// the shared files at nothing, and disables IMDS: no test may reach
// 169.254.169.254. It then sets kv ("NAME=value").
func awsEnv(t *testing.T, kv ...string) {
	t.Helper()
	dir := t.TempDir()
	for _, k := range []string{
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS",
	} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, e := range kv {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
}

// awsFixture is a KV secret readable by the aws auth role.
func awsFixture(t *testing.T, ttl, maxTTL time.Duration, serverID string) (*testvault.Server, *testvault.AWSAuth, Spec) {
	s := testvault.Shared(t)
	kv := s.KV(t, 1)
	s.Write(t, kv+"/app", map[string]any{"k": "v"})
	a := s.AWS(t, []string{s.Policy(t, `path "`+kv+`/app" { capabilities = ["read"] }`)}, ttl, maxTTL, serverID)
	return s, a, Spec{ID: "app", Path: kv + "/app"}
}

func awsConfig(a *testvault.AWSAuth, spec Spec) Config {
	return Config{Auth: AuthConfig{Method: "aws", Mount: a.Mount, Role: a.Role}, Specs: []Spec{spec}}
}

// --auth aws against Vault's aws auth: leash logs in with the signed
// GetCallerIdentity, logs in again before the token's max ttl, and that
// login signs with the credentials of that moment (rotated in the
// environment meanwhile), not the ones it started with.
func TestAWSLoginReloginsWithFreshCredentials(t *testing.T) {
	s, a, spec := awsFixture(t, 3*time.Second, 6*time.Second, "")
	k1, k2 := a.NewKey(t, true), a.NewKey(t, false)
	awsEnv(t, "AWS_ACCESS_KEY_ID="+k1.ID, "AWS_SECRET_ACCESS_KEY="+k1.Secret, "AWS_SESSION_TOKEN="+k1.Session)
	h := newHarness(t, s, nil, awsConfig(a, spec))
	snap, err := h.m.Start(context.Background())
	if err != nil {
		t.Fatalf("Start: %v\n%s", err, h.log)
	}
	if got := str(t, snap.Secrets["app"], "k"); got != "v" {
		t.Fatalf("secret = %q", got)
	}
	if id, _ := a.Last(); id != k1.ID {
		t.Fatalf("STS saw key %s, want %s", id, k1.ID)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", k2.ID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", k2.Secret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	stop := h.run()
	h.log.wait(t, "logged in again", 1, 20*time.Second)
	if id, _ := a.Last(); id != k2.ID {
		t.Fatalf("re-login signed with %s, want the rotated key %s", id, k2.ID)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	tok := h.token()
	if err := h.m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.Auth().Token().Lookup(string(tok.value)); err == nil {
		t.Fatal("login token still valid after Close")
	}
	for _, sec := range append(secretsOf(k1), secretsOf(k2)...) {
		if strings.Contains(h.log.String(), sec) {
			t.Fatal("a secret access key or session token is in the trace log")
		}
	}
}

// secretsOf is what must never be logged of k.
func secretsOf(k testvault.AWSKey) []string {
	out := []string{k.Secret}
	if k.Session != "" {
		out = append(out, k.Session)
	}
	return out
}

// The signed request carries X-Vault-AWS-IAM-Server-ID when Vault demands
// it (iam_server_id_header_value), and Vault refuses the login without it.
func TestAWSLoginServerIDHeader(t *testing.T) {
	s, a, spec := awsFixture(t, time.Hour, time.Hour, "vault.example.test")
	k := a.NewKey(t, false)
	awsEnv(t, "AWS_ACCESS_KEY_ID="+k.ID, "AWS_SECRET_ACCESS_KEY="+k.Secret)

	cfg := awsConfig(a, spec)
	cfg.StartupTimeout = 5 * time.Second
	h := newHarness(t, s, nil, cfg)
	err := h.m.Check(context.Background())
	if !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("Check without the header = %v, want permission denied", err)
	}

	cfg.Auth.AWSServerID = "vault.example.test"
	h = newHarness(t, s, nil, cfg)
	if err := h.m.Check(context.Background()); err != nil {
		t.Fatalf("Check with the header: %v\n%s", err, h.log)
	}
	_, hdr := a.Last()
	if got := hdr.Get("X-Vault-AWS-IAM-Server-Id"); got != "vault.example.test" {
		t.Fatalf("STS got server id %q", got)
	}
	if !strings.Contains(hdr.Get("Authorization"), "x-vault-aws-iam-server-id") {
		t.Fatalf("server id header not signed: %s", hdr.Get("Authorization"))
	}
}

// Every credential source of the SDK's chain that can be served on
// loopback: the shared credentials file (a named profile), web identity
// (EKS IRSA, with STS's AssumeRoleWithWebIdentity at AWS_ENDPOINT_URL_STS),
// ECS container credentials with an authorization token, and EC2 IMDSv2
// (a fake that refuses every read without the PUT session token).
func TestAWSLoginCredentialSources(t *testing.T) {
	s, a, spec := awsFixture(t, time.Hour, time.Hour, "")
	check := func(t *testing.T, wantKey string) {
		t.Helper()
		h := newHarness(t, s, nil, awsConfig(a, spec))
		before := a.Calls.Load()
		if err := h.m.Check(context.Background()); err != nil {
			t.Fatalf("Check: %v\n%s", err, h.log)
		}
		// Vault sends the request twice per login: to resolve the role
		// (for quotas), then to log in.
		if a.Calls.Load() == before {
			t.Fatal("STS was not asked")
		}
		if id, _ := a.Last(); wantKey != "" && id != wantKey {
			t.Fatalf("signed with %s, want %s", id, wantKey)
		}
	}
	t.Run("shared credentials file", func(t *testing.T) {
		k := a.NewKey(t, true)
		awsEnv(t, "AWS_PROFILE=leash")
		f := os.Getenv("AWS_SHARED_CREDENTIALS_FILE")
		content := "[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = wrong\n\n[leash]\naws_access_key_id = " + k.ID +
			"\naws_secret_access_key = " + k.Secret + "\naws_session_token = " + k.Session + "\n"
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		check(t, k.ID)
	})
	t.Run("web identity", func(t *testing.T) {
		tok := writeFile(t, "token", a.WebIdentity)
		awsEnv(t, "AWS_WEB_IDENTITY_TOKEN_FILE="+tok, "AWS_ROLE_ARN="+a.RoleARN, "AWS_ROLE_SESSION_NAME=leash-test",
			"AWS_ENDPOINT_URL_STS="+a.URL)
		check(t, "")
	})
	t.Run("ecs container credentials", func(t *testing.T) {
		k := a.NewKey(t, true)
		const authz = "ecs-authz-token-0123456789"
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v2/credentials/task" || r.Header.Get("Authorization") != authz {
				http.Error(w, `{"code":"AccessDenied","message":"no"}`, http.StatusForbidden)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{
				"AccessKeyId": k.ID, "SecretAccessKey": k.Secret, "Token": k.Session,
				"Expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "RoleArn": a.RoleARN,
			})
		}))
		t.Cleanup(srv.Close)
		awsEnv(t, "AWS_CONTAINER_CREDENTIALS_FULL_URI="+srv.URL+"/v2/credentials/task", "AWS_CONTAINER_AUTHORIZATION_TOKEN="+authz)
		check(t, k.ID)
	})
	t.Run("ec2 imdsv2", func(t *testing.T) {
		k := a.NewKey(t, true)
		srv := fakeIMDS(t, k)
		awsEnv(t, "AWS_EC2_METADATA_DISABLED=false", "AWS_EC2_METADATA_SERVICE_ENDPOINT="+srv.URL)
		check(t, k.ID)
	})
}

// fakeIMDS serves EC2 role credentials for k over IMDSv2 only: every GET
// without the session token from PUT /latest/api/token is refused.
func fakeIMDS(t *testing.T, k testvault.AWSKey) *httptest.Server {
	const session = "imds-session-token"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
			if r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == "" {
				http.Error(w, "ttl required", http.StatusBadRequest)
				return
			}
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
			w.Write([]byte(session))
			return
		}
		if r.Header.Get("X-Aws-Ec2-Metadata-Token") != session {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/latest/meta-data/iam/security-credentials/":
			w.Write([]byte("leash-app"))
		case "/latest/meta-data/iam/security-credentials/leash-app":
			json.NewEncoder(w).Encode(map[string]string{
				"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": k.ID, "SecretAccessKey": k.Secret, "Token": k.Session,
				"Expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "LastUpdated": time.Now().UTC().Format(time.RFC3339),
			})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A credential source that fails is named in the error, which matches
// ErrNoIdentity; one that does not answer is retried until the startup
// timeout. Rejected credentials are Vault's permission denied. The trace
// log and the errors hold no secret access key or session token.
func TestAWSLoginErrorsNameTheSource(t *testing.T) {
	s, a, spec := awsFixture(t, time.Hour, time.Hour, "")
	run := func(t *testing.T) (error, string) {
		cfg := awsConfig(a, spec)
		cfg.StartupTimeout = 4 * time.Second
		h := newHarness(t, s, nil, cfg)
		_, err := h.m.Start(context.Background())
		if err == nil {
			t.Fatal("Start succeeded")
		}
		return err, h.log.String()
	}
	// The SDK retries too: the startup timeout ends it within its first attempt.
	t.Run("imds down", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close() // connection refused from now on
		awsEnv(t, "AWS_EC2_METADATA_DISABLED=false", "AWS_EC2_METADATA_SERVICE_ENDPOINT="+url)
		err, _ := run(t)
		if !errors.Is(err, ErrNoIdentity) || !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "EC2 instance metadata ("+url+")") {
			t.Fatalf("err = %v, want it unreachable, naming IMDS at %s", err, url)
		}
	})
	t.Run("ecs refuses", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"code":"AccessDenied","message":"task role missing"}`, http.StatusForbidden)
		}))
		t.Cleanup(srv.Close)
		awsEnv(t, "AWS_CONTAINER_CREDENTIALS_FULL_URI="+srv.URL+"/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN=authz-secret-value")
		err, log := run(t)
		if !errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), "container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI="+srv.URL+"/creds)") {
			t.Fatalf("err = %v, want it naming the container endpoint", err)
		}
		if strings.Contains(err.Error()+log, "authz-secret-value") {
			t.Fatal("the container authorization token is in the error or log")
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		awsEnv(t)
		err, _ := run(t)
		if !errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), "aws credentials") {
			t.Fatalf("err = %v, want no identity", err)
		}
	})
	t.Run("rejected by sts", func(t *testing.T) {
		k := a.NewKey(t, true)
		awsEnv(t, "AWS_ACCESS_KEY_ID="+k.ID, "AWS_SECRET_ACCESS_KEY=not-"+k.Secret, "AWS_SESSION_TOKEN="+k.Session)
		err, log := run(t)
		if !errors.Is(err, ErrPermissionDenied) {
			t.Fatalf("err = %v, want permission denied", err)
		}
		for _, sec := range append(secretsOf(k), "not-"+k.Secret) {
			if strings.Contains(err.Error(), sec) || strings.Contains(log, sec) {
				t.Fatalf("a secret is in the error or the trace log: %v\n%s", err, log)
			}
		}
	})
}

// With --auth aws the AWS variables holding secret values are leash's
// credentials: CredentialVars names them for main to keep from the child.
// Other methods leave them to the child.
func TestAWSCredentialVars(t *testing.T) {
	for method, want := range map[string][]string{
		"aws":     {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN"},
		"approle": nil,
	} {
		if got := (AuthConfig{Method: method}).CredentialVars(); !slices.Equal(got, want) {
			t.Errorf("%s: CredentialVars = %v, want %v", method, got, want)
		}
	}
}
