package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/leash-dev/leash/internal/testvault"
)

// requestLog records the requests a metadata stand-in got.
type requestLog struct {
	mu   sync.Mutex
	reqs []string
}

func (l *requestLog) add(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, r.Header.Get("Metadata-Flavor")+r.Header.Get("Metadata")+" "+r.URL.RequestURI())
}

func (l *requestLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.reqs, "\n")
}

// TestCloudAuthFlags: the gcp and azure flags reach the metadata requests
// leash makes (through `validate --online`, the binary's own wiring), and
// Vault's verdict on the login is exit 77. Neither login can succeed here
// (see lease's TestGCPLogin* and TestAzureLogin*): the tokens are not
// Google's or Azure AD's.
func TestCloudAuthFlags(t *testing.T) {
	t.Parallel()
	srv := testvault.Shared(t)
	const token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJzdWIiOiIxIn0.c2ln"
	var log requestLog
	md := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		switch r.URL.Path {
		case "/computeMetadata/v1/instance/service-accounts/app@p.iam.gserviceaccount.com/identity":
			w.Write([]byte(token))
		case "/metadata/identity/oauth2/token":
			w.Write([]byte(`{"access_token":"` + token + `"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(md.Close)

	gcp := srv.EnableAuth(t, "gcp")
	srv.Write(t, "auth/"+gcp+"/config", map[string]any{"custom_endpoint": map[string]any{"api": md.URL, "iam": md.URL, "crm": md.URL, "compute": md.URL}})
	srv.Write(t, "auth/"+gcp+"/role/web", map[string]any{"type": "gce", "bound_projects": []string{"p"}})
	azure := srv.EnableAuth(t, "azure")
	srv.Write(t, "auth/"+azure+"/role/web", map[string]any{"bound_subscription_ids": []string{"11111111-2222-4333-8444-555555555555"}, "token_bound_cidrs": []string{"192.0.2.0/24"}})

	for _, c := range []struct {
		name  string
		flags []string
		env   []string
		want  string // the metadata request
	}{
		{"gcp", []string{"--auth", "gcp", "--auth-mount", gcp, "--auth-role", "web", "--gcp-service-account", "app@p.iam.gserviceaccount.com"},
			[]string{"GCE_METADATA_HOST=" + strings.TrimPrefix(md.URL, "http://")},
			"Google /computeMetadata/v1/instance/service-accounts/app@p.iam.gserviceaccount.com/identity?audience=vault%2Fweb&format=full"},
		{"azure", []string{"--auth", "azure", "--auth-mount", azure, "--auth-role", "web", "--azure-imds-url", md.URL,
			"--azure-resource", "https://vault.example.test/", "--azure-client-id", "cid",
			"--azure-subscription-id", "11111111-2222-4333-8444-555555555555", "--azure-resource-group", "rg", "--azure-vm-name", "vm"},
			nil,
			"true /metadata/identity/oauth2/token?api-version=2018-02-01&client_id=cid&resource=https%3A%2F%2Fvault.example.test%2F"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := leashCmd(t, append(append([]string{"validate", "--online", "--log-level", "trace"}, c.flags...), "-s", "k=secret/x")...)
			cmd.Env = append(append(cmd.Env, "VAULT_ADDR="+srv.Addr), c.env...)
			got, stderr := exitStatus(t, cmd)
			if got != exitNoPerm || !strings.Contains(stderr, "/login") {
				t.Errorf("exit %d, want %d for the login Vault refused; stderr:\n%s", got, exitNoPerm, stderr)
			}
			if !strings.Contains(log.String(), c.want) {
				t.Errorf("metadata requests:\n%s\nwant %s", log.String(), c.want)
			}
			if strings.Contains(stderr, token) {
				t.Errorf("the identity token is in leash's stderr")
			}
		})
	}
}
