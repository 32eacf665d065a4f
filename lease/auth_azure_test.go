package lease

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/leash-dev/leash/internal/testvault"
)

// The full azure login is NOT proven here: Vault's azure backend checks
// the token against Azure AD's published keys, which it fetches from
// Microsoft and cannot be pointed elsewhere. These tests prove leash's
// half: the requests leash makes to a loopback stand-in for IMDS, and the
// login Vault's real azure backend receives, read back from Vault's own
// audit log. The role is bound to a CIDR leash is not in, so Vault refuses
// the login before it would contact Azure.

const (
	azSub = "11111111-2222-4333-8444-555555555555"
	azRG  = "leash-rg"
	azVM  = "leash-vm"
)

type imdsLog struct {
	mu   sync.Mutex
	reqs []string // method path?query
}

func (l *imdsLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.reqs...)
}

// fakeAzureIMDS answers the managed-identity token and instance metadata
// requests that carry Metadata: true, as IMDS does.
func fakeAzureIMDS(t *testing.T, token string) (*httptest.Server, *imdsLog) {
	l := &imdsLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, r.Method+" "+r.URL.RequestURI())
		l.mu.Unlock()
		if r.Header.Get("Metadata") != "true" {
			http.Error(w, `{"error":"invalid_request","error_description":"Required metadata header not specified"}`, http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/metadata/identity/oauth2/token":
			if r.URL.Query().Get("client_id") == "unknown" {
				http.Error(w, `{"error":"invalid_request","error_description":"Identity not found"}`, http.StatusBadRequest)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"access_token": token, "token_type": "Bearer", "resource": r.URL.Query().Get("resource")})
		case "/metadata/instance":
			json.NewEncoder(w).Encode(map[string]any{"compute": map[string]string{
				"subscriptionId": azSub, "resourceGroupName": azRG, "name": azVM, "vmScaleSetName": "",
			}})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, l
}

// azureMount is Vault's azure auth with a role "app" that no login from
// loopback may pass, and a file audit device; the login's fields other
// than the token are audited in the clear.
func azureMount(t *testing.T, s *testvault.Server) (mount, auditDev, auditFile string) {
	mount = s.EnableAuth(t, "azure")
	keys := []string{"role", "subscription_id", "resource_group_name", "vm_name", "vmss_name"}
	if err := s.Client.Sys().TuneMount("auth/"+mount, api.MountConfigInput{AuditNonHMACRequestKeys: keys}); err != nil {
		t.Fatal(err)
	}
	s.Write(t, "auth/"+mount+"/role/app", map[string]any{
		"bound_subscription_ids": []string{azSub}, "token_bound_cidrs": []string{"192.0.2.0/24"}, "token_policies": []string{"default"},
	})
	auditFile = filepath.Join(t.TempDir(), "audit.log")
	auditDev = testvault.Unique(t, "audit")
	if err := s.Client.Sys().EnableAuditWithOptions(auditDev, &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": auditFile}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Client.Sys().DisableAudit(auditDev) })
	return mount, auditDev, auditFile
}

// auditedLogin returns the data of the audited login request to mount.
func auditedLogin(t *testing.T, file, mount string) map[string]any {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			Type    string `json:"type"`
			Request struct {
				Path string         `json:"path"`
				Data map[string]any `json:"data"`
			} `json:"request"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Type == "request" && e.Request.Path == "auth/"+mount+"/login" {
			return e.Request.Data
		}
	}
	t.Fatalf("no login to auth/%s in the audit log", mount)
	return nil
}

func TestAzureLoginSendsTheManagedIdentity(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	mount, dev, audit := azureMount(t, s)
	const token = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tLyJ9.azure-test-signature"
	imds, log := fakeAzureIMDS(t, token)
	cfg := Config{Auth: AuthConfig{Method: "azure", Mount: mount, Role: "app", AzureIMDS: imds.URL}, Specs: []Spec{{ID: "x", Path: "secret/x"}}, StartupTimeout: 5 * time.Second}
	h := newHarness(t, s, nil, cfg)
	err := h.m.Check(context.Background())
	if !errors.Is(err, ErrPermissionDenied) || !strings.Contains(err.Error(), "auth/"+mount+"/login") {
		t.Fatalf("Check = %v, want the bound CIDR's permission denied", err)
	}
	want := []string{
		"GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F",
		"GET /metadata/instance?api-version=2021-02-01",
	}
	if got := log.all(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("IMDS requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	data := auditedLogin(t, audit, mount)
	hash, herr := s.Client.Sys().AuditHash(dev, token)
	if herr != nil {
		t.Fatal(herr)
	}
	for k, v := range map[string]string{"role": "app", "subscription_id": azSub, "resource_group_name": azRG, "vm_name": azVM} {
		if data[k] != v {
			t.Errorf("Vault got %s=%v, want %q (all: %v)", k, data[k], v, data)
		}
	}
	if _, ok := data["vmss_name"]; ok {
		t.Errorf("vmss_name sent for a plain VM: %v", data)
	}
	if data["jwt"] != hash {
		t.Errorf("Vault got jwt with HMAC %v, want the token's, %s", data["jwt"], hash)
	}
	if strings.Contains(h.log.String()+err.Error(), token) {
		t.Fatal("the managed-identity token is in the trace log or the error")
	}
}

// Given all of subscription, resource group and scale set, leash asks IMDS
// only for the token and sends what it was given; an identity IMDS does
// not know is an error naming the token endpoint, not retried.
func TestAzureLoginFlagsAndErrors(t *testing.T) {
	t.Parallel()
	s := testvault.Shared(t)
	mount, _, audit := azureMount(t, s)
	imds, log := fakeAzureIMDS(t, "eyJ0eXAiOiJKV1QifQ.e30.sig")
	base := AuthConfig{Method: "azure", Mount: mount, Role: "app", AzureIMDS: imds.URL,
		AzureSubscriptionID: azSub, AzureResourceGroup: "other-rg", AzureVMSSName: "leash-vmss"}
	cfg := Config{Auth: base, Specs: []Spec{{ID: "x", Path: "secret/x"}}, StartupTimeout: 5 * time.Second}
	if err := newHarness(t, s, nil, cfg).m.Check(context.Background()); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("Check = %v, want permission denied", err)
	}
	for _, r := range log.all() {
		if strings.Contains(r, "/metadata/instance") {
			t.Errorf("instance metadata read although every field was given: %s", r)
		}
	}
	data := auditedLogin(t, audit, mount)
	if data["resource_group_name"] != "other-rg" || data["vmss_name"] != "leash-vmss" || data["vm_name"] != nil {
		t.Errorf("Vault got %v, want the given resource group and scale set, no vm_name", data)
	}

	cfg.Auth.AzureClientID = "unknown"
	_, err := newHarness(t, s, nil, cfg).m.Start(context.Background())
	want := "metadata server " + imds.URL + "/metadata/identity/oauth2/token"
	if !errors.Is(err, ErrNoIdentity) || errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Identity not found") {
		t.Fatalf("Start = %v, want an error naming %s", err, want)
	}
}
