package testvault

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// Kubernetes is a Kubernetes auth mount whose TokenReview API is a small
// local fake: Vault's kubernetes auth cannot run against a real cluster
// here, so an httptest TLS server answers POST
// /apis/authentication.k8s.io/v1/tokenreviews for exactly one
// service-account token.
type Kubernetes struct {
	Mount, Role string
	JWT         string       // the service-account token the fake accepts
	Reviews     atomic.Int64 // TokenReview requests served
}

// Kubernetes mounts kubernetes auth pointed at the fake and a role "app"
// bound to service account default/app.
func (s *Server) Kubernetes(t testing.TB, policies []string, ttl, maxTTL time.Duration) *Kubernetes {
	t.Helper()
	const ns, sa, uid = "default", "app", "7d3f2c1e-0000-4000-8000-000000000001"
	k := &Kubernetes{Role: "app"}
	k.JWT = NewSigner(t).Sign(t, map[string]any{
		"iss":                                    "kubernetes/serviceaccount",
		"sub":                                    "system:serviceaccount:" + ns + ":" + sa,
		"kubernetes.io/serviceaccount/namespace": ns,
		"kubernetes.io/serviceaccount/service-account.name": sa,
		"kubernetes.io/serviceaccount/service-account.uid":  uid,
	})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" {
			http.NotFound(w, r)
			return
		}
		k.Reviews.Add(1)
		var req struct {
			Spec struct {
				Token string `json:"token"`
			} `json:"spec"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		status := map[string]any{"authenticated": false}
		if req.Spec.Token == k.JWT {
			status = map[string]any{
				"authenticated": true,
				"user": map[string]any{
					"username": "system:serviceaccount:" + ns + ":" + sa,
					"uid":      uid,
					"groups":   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns},
				},
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status,
		})
	}))
	t.Cleanup(srv.Close)
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	k.Mount = s.EnableAuth(t, "kubernetes")
	s.Write(t, "auth/"+k.Mount+"/config", map[string]any{
		"kubernetes_host":      srv.URL,
		"kubernetes_ca_cert":   caPEM,
		"disable_local_ca_jwt": true,
	})
	s.Write(t, "auth/"+k.Mount+"/role/app", map[string]any{
		"bound_service_account_names":      []string{sa},
		"bound_service_account_namespaces": []string{ns},
		"token_policies":                   policies,
		"token_ttl":                        secs(ttl),
		"token_max_ttl":                    secs(maxTTL),
	})
	return k
}
