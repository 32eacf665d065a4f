package lease

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testvault"
)

// --auth aws --aws-type ec2 against Vault's real aws backend: the identity
// document comes from a loopback IMDSv2 (testvault.AWSEC2Auth), Vault
// verifies its PKCS#7 signature with the certificate registered for it and
// asks a loopback EC2 whether the instance runs. AWS_* is process
// environment: not parallel.

func ec2Fixture(t *testing.T, ttl, maxTTL time.Duration) (*testvault.Server, *testvault.AWSEC2Auth, Config) {
	s := testvault.Shared(t)
	kv := s.KV(t, 1)
	s.Write(t, kv+"/app", map[string]any{"k": "v"})
	a := s.AWSEC2(t, []string{s.Policy(t, `path "`+kv+`/app" { capabilities = ["read"] }`)}, ttl, maxTTL)
	awsEnv(t, "AWS_EC2_METADATA_DISABLED=false", "AWS_EC2_METADATA_SERVICE_ENDPOINT="+a.URL, "AWS_EC2_METADATA_V1_DISABLED=true")
	return s, a, Config{Auth: AuthConfig{Method: "aws", AWSType: "ec2", Mount: a.Mount, Role: a.Role}, Specs: []Spec{{ID: "app", Path: kv + "/app"}}}
}

// leash logs in and, before the token's max ttl, again with the same
// nonce, which Vault demands; another Manager (a restarted leash) has
// another nonce and Vault refuses it.
func TestAWSEC2LoginReusesTheNonce(t *testing.T) {
	s, a, cfg := ec2Fixture(t, 3*time.Second, 6*time.Second)
	h := newHarness(t, s, nil, cfg)
	snap, err := h.m.Start(context.Background())
	if err != nil {
		t.Fatalf("Start: %v\n%s", err, h.log)
	}
	if got := str(t, snap.Secrets["app"], "k"); got != "v" {
		t.Fatalf("secret = %q", got)
	}
	stop := h.run()
	h.log.wait(t, "logged in again", 1, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := h.m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	reads, refused, described := a.Counts()
	if reads < 2 || refused != 0 || described == 0 {
		t.Fatalf("IMDS reads %d (refused without the IMDSv2 token %d), DescribeInstances %d: want a read per login over IMDSv2 and Vault asking EC2", reads, refused, described)
	}
	nonce := h.m.auth.ec2Nonce.v
	if nonce == "" || strings.Contains(h.log.String(), nonce) {
		t.Fatalf("nonce %q empty or in the trace log", nonce)
	}

	other := newHarness(t, s, nil, cfg)
	err = other.m.Check(context.Background())
	if !errors.Is(err, ErrPermissionDenied) || !strings.Contains(err.Error(), "client nonce mismatch") {
		t.Fatalf("second leash: err = %v, want Vault's nonce mismatch", err)
	}
}

// An IMDS that does not answer is retried until the startup timeout and
// named; one that refuses is named with its answer.
func TestAWSEC2LoginErrorsNameIMDS(t *testing.T) {
	s, a, cfg := ec2Fixture(t, time.Hour, time.Hour)
	cfg.StartupTimeout = 3 * time.Second
	t.Run("down", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL)
		_, err := newHarness(t, s, nil, cfg).m.Start(context.Background())
		want := "EC2 instance metadata (" + srv.URL + ") /latest/dynamic/instance-identity/pkcs7"
		if !errors.Is(err, ErrNoIdentity) || !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want unreachable naming %s", err, want)
		}
	})
	t.Run("no document", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
				w.Write([]byte("tok"))
				return
			}
			http.NotFound(w, r)
		}))
		t.Cleanup(srv.Close)
		t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL)
		_, err := newHarness(t, s, nil, cfg).m.Start(context.Background())
		if !errors.Is(err, ErrNoIdentity) || errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), srv.URL) || !strings.Contains(err.Error(), "404") {
			t.Fatalf("err = %v, want a 404 naming %s", err, srv.URL)
		}
	})
	_ = a
}
