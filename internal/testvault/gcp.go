package testvault

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// GCPProject is the project of the fake Google's service accounts.
const GCPProject = "leash-test"

// GCPAuth is a gcp auth mount with a role of type iam and one of type
// gce, on its own Vault server, whose Google is a loopback fake. It is a fake only because
// Google cannot be reached from the test machines: Vault and its gcp
// backend are real. Vault's own calls go to the fake through the mount's
// custom_endpoint (keys, IAM) and through the Application Default
// Credentials in the server's HOME, a service-account key whose token_uri
// is the fake's. The fake plays, as Google does:
//   - the OAuth token endpoint (POST /token): a JWT-bearer grant signed
//     with a registered service-account key gets an access token;
//   - the metadata server's token, email and identity token (format full,
//     for any audience) of the default account, for requests with
//     Metadata-Flavor: Google (GCE_METADATA_HOST), as on a VM "vm-1";
//   - IAM Credentials signJwt (POST /v1/projects/-/serviceAccounts/EMAIL:signJwt):
//     with an access token of EMAIL itself, a payload of exactly sub = EMAIL,
//     aud = vault/ROLE and exp within 15 minutes, signed with a key only
//     the fake holds;
//   - the service account's public certificates
//     (/service_accounts/v1/metadata/x509/EMAIL), Google's OAuth keys (which
//     sign the identity tokens), the IAM service account resource (by email
//     or unique id) and the Compute instance, for Vault.
type GCPAuth struct {
	Server      *Server // the Vault this mount is on
	Mount, Role string  // Role is of type iam
	GCERole     string  // of type gce, bound to GCPProject
	URL         string  // the fake Google
	Account     string  // the service account bound to Role
	KeyFile     string  // a service-account key file for Account (GOOGLE_APPLICATION_CREDENTIALS)

	Signed atomic.Int64 // signJwt calls that passed every check

	mu         sync.Mutex
	keys       map[string]*rsa.PublicKey // service-account key id -> its public key (token grants)
	tokens     map[string]string         // access token -> service account
	signer     *rsa.PrivateKey           // Google's key for Account's JWTs
	signerKID  string
	signerCert string          // PEM
	oauth      *rsa.PrivateKey // Google's OAuth key, for identity tokens
	oauthKID   string
	oauthCert  string
	created    time.Time // the instance's creation
	audiences  []string  // of the identity tokens issued
	lastClaims map[string]any
	rejects    []string
}

// GCP starts a Vault server owned by t with gcp auth pointed at a fake
// Google, and a role "app" of type iam bound to Account.
func GCP(t testing.TB, policies []string, ttl, maxTTL time.Duration) *GCPAuth {
	t.Helper()
	g := &GCPAuth{
		Role: "app", GCERole: "gce-app",
		created: time.Now().Add(-time.Hour).Truncate(time.Second),
		Account: "leash-app@" + GCPProject + ".iam.gserviceaccount.com",
		keys:    map[string]*rsa.PublicKey{},
		tokens:  map[string]string{},
	}
	g.signer, g.signerKID = rsaKey(t), "google-"+randHex(8)
	g.signerCert = selfSigned(t, g.signer, g.Account)
	g.oauth, g.oauthKID = rsaKey(t), "oauth-"+randHex(8)
	g.oauthCert = selfSigned(t, g.oauth, "accounts.google.com")
	srv := httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(srv.Close)
	g.URL = srv.URL

	dir := t.TempDir()
	g.KeyFile = filepath.Join(dir, "leash-app.json")
	g.writeKey(t, g.KeyFile, g.Account)

	s := New(t)
	g.Server = s
	// Vault's gcp backend calls Google with Application Default
	// Credentials when its config has none; the server's HOME is its own.
	adc := filepath.Join(s.home, ".config", "gcloud", "application_default_credentials.json")
	if err := os.MkdirAll(filepath.Dir(adc), 0o700); err != nil {
		t.Fatal(err)
	}
	g.writeKey(t, adc, "vault@"+GCPProject+".iam.gserviceaccount.com")

	g.Mount = s.EnableAuth(t, "gcp")
	s.Write(t, "auth/"+g.Mount+"/config", map[string]any{"custom_endpoint": map[string]any{
		"api": g.URL, "iam": g.URL, "crm": g.URL, "compute": g.URL,
	}})
	s.Write(t, "auth/"+g.Mount+"/role/app", map[string]any{
		"type":                   "iam",
		"bound_service_accounts": []string{g.Account},
		"token_policies":         policies,
		"token_ttl":              secs(ttl),
		"token_max_ttl":          secs(maxTTL),
	})
	s.Write(t, "auth/"+g.Mount+"/role/gce-app", map[string]any{
		"type":           "gce",
		"bound_projects": []string{GCPProject},
		"bound_zones":    []string{gceZone},
		"token_policies": policies,
		"token_ttl":      secs(ttl),
		"token_max_ttl":  secs(maxTTL),
	})
	return g
}

const (
	gceZone     = "europe-west1-b"
	gceInstance = "vm-1"
	gceID       = "4242424242"
	gcpSAID     = "104729" // the service account's unique id
)

// Audiences returns the audiences of the identity tokens the metadata
// server issued.
func (g *GCPAuth) Audiences() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.audiences...)
}

// identity is the metadata server's identity token (format=full): signed
// with Google's OAuth key, sub the account's unique id, and the instance in
// google.compute_engine.
func (g *GCPAuth) identity(w http.ResponseWriter, r *http.Request) {
	aud := r.URL.Query().Get("audience")
	if aud == "" || r.URL.Query().Get("format") != "full" {
		http.Error(w, "non-empty audience and format=full required", http.StatusBadRequest)
		return
	}
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{
		"iss": "https://accounts.google.com", "aud": aud, "azp": gcpSAID, "sub": gcpSAID,
		"email": g.Account, "email_verified": true, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"google": map[string]any{"compute_engine": map[string]any{
			"project_id": GCPProject, "project_number": 314159, "zone": gceZone,
			"instance_id": gceID, "instance_name": gceInstance, "instance_creation_timestamp": g.created.Unix(),
		}},
	})
	hdr, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": g.oauthKID, "typ": "JWT"})
	b64 := base64.RawURLEncoding.EncodeToString
	unsigned := b64(hdr) + "." + b64(claims)
	sum := sha256.Sum256([]byte(unsigned))
	sig, err := rsa.SignPKCS1v15(rand.Reader, g.oauth, crypto.SHA256, sum[:])
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	g.mu.Lock()
	g.audiences = append(g.audiences, aud)
	g.mu.Unlock()
	io.WriteString(w, unsigned+"."+b64(sig))
}

// LastClaims returns the payload of the last signJwt that passed.
func (g *GCPAuth) LastClaims() map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastClaims
}

// Rejects returns why the fake refused requests, for failure messages.
func (g *GCPAuth) Rejects() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.rejects...)
}

// MetadataHost is the fake as GCE_METADATA_HOST (host:port).
func (g *GCPAuth) MetadataHost() string { return strings.TrimPrefix(g.URL, "http://") }

// writeKey writes a service-account key file for account whose token_uri
// is the fake's, and registers the key.
func (g *GCPAuth) writeKey(t testing.TB, path, account string) {
	t.Helper()
	k := rsaKey(t)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	kid := randHex(20)
	g.mu.Lock()
	g.keys[kid] = &k.PublicKey
	g.mu.Unlock()
	b, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": GCPProject, "private_key_id": kid,
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": account, "client_id": "1" + randHex(6),
		"token_uri": g.URL + "/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (g *GCPAuth) reject(w http.ResponseWriter, code int, status, msg string) {
	g.mu.Lock()
	g.rejects = append(g.rejects, msg)
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg, "status": status}})
}

func (g *GCPAuth) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	metadata := "/computeMetadata/v1/instance/service-accounts/default/"
	switch {
	case r.Method == http.MethodPost && p == "/token":
		g.token(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(p, metadata):
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "Missing Metadata-Flavor:Google header.", http.StatusForbidden)
			return
		}
		switch strings.TrimPrefix(p, metadata) {
		case "token":
			g.issue(w, g.Account)
		case "email":
			io.WriteString(w, g.Account)
		case "identity":
			g.identity(w, r)
		default:
			http.NotFound(w, r)
		}
	case r.Method == http.MethodPost && strings.HasPrefix(p, "/v1/projects/-/serviceAccounts/") && strings.HasSuffix(p, ":signJwt"):
		g.signJWT(w, r, strings.TrimSuffix(strings.TrimPrefix(p, "/v1/projects/-/serviceAccounts/"), ":signJwt"))
	case r.Method == http.MethodGet && p == "/oauth2/v1/certs":
		json.NewEncoder(w).Encode(map[string]string{g.oauthKID: g.oauthCert})
	case r.Method == http.MethodGet && p == "/service_accounts/v1/metadata/x509/"+g.Account:
		json.NewEncoder(w).Encode(map[string]string{g.signerKID: g.signerCert})
	case r.Method == http.MethodGet && strings.HasSuffix(p, "/projects/"+GCPProject+"/zones/"+gceZone+"/instances/"+gceInstance):
		// Compute's instances.get; with a custom endpoint the client
		// drops the compute/v1 prefix.
		if g.caller(r) == "" {
			g.reject(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
			return
		}
		zone := "https://www.googleapis.com/compute/v1/projects/" + GCPProject + "/zones/" + gceZone
		json.NewEncoder(w).Encode(map[string]any{
			"kind": "compute#instance", "id": gceID, "name": gceInstance, "status": "RUNNING", "zone": zone,
			"selfLink":          zone + "/instances/" + gceInstance,
			"creationTimestamp": g.created.Format(time.RFC3339Nano),
			"serviceAccounts":   []map[string]any{{"email": g.Account}},
		})
	case r.Method == http.MethodGet && (p == "/v1/projects/-/serviceAccounts/"+g.Account || p == "/v1/projects/-/serviceAccounts/"+gcpSAID):
		if g.caller(r) == "" {
			g.reject(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
			return
		}
		json.NewEncoder(w).Encode(map[string]string{
			"name":      "projects/" + GCPProject + "/serviceAccounts/" + g.Account,
			"projectId": GCPProject, "uniqueId": gcpSAID, "email": g.Account,
		})
	default:
		g.reject(w, http.StatusNotFound, "NOT_FOUND", r.Method+" "+p+": not found")
	}
}

// caller is the service account whose access token r bears, or "".
func (g *GCPAuth) caller(r *http.Request) string {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tokens[tok]
}

func (g *GCPAuth) issue(w http.ResponseWriter, account string) {
	tok := "ya29.fake-" + randHex(24)
	g.mu.Lock()
	g.tokens[tok] = account
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3599})
}

// token is the JWT-bearer grant: the assertion must be signed with a
// registered key, by the account it names, for this endpoint.
func (g *GCPAuth) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	claims, err := g.verifyAssertion(r.PostForm.Get("assertion"))
	if err != nil {
		g.mu.Lock()
		g.rejects = append(g.rejects, "token grant: "+err.Error())
		g.mu.Unlock()
		http.Error(w, `{"error":"invalid_grant","error_description":"`+err.Error()+`"}`, http.StatusBadRequest)
		return
	}
	g.issue(w, claims["iss"].(string))
}

func (g *GCPAuth) verifyAssertion(a string) (claims map[string]any, err error) {
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		return nil, errors.New("assertion is not a JWT")
	}
	var hdr map[string]any
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return nil, err
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return nil, err
	}
	kid, _ := hdr["kid"].(string)
	g.mu.Lock()
	pub := g.keys[kid]
	g.mu.Unlock()
	if pub == nil || hdr["alg"] != "RS256" {
		return nil, fmt.Errorf("unknown key %q or alg %v", kid, hdr["alg"])
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return nil, errors.New("invalid JWT signature")
	}
	if iss, _ := claims["iss"].(string); iss == "" || claims["aud"] != g.URL+"/token" {
		return nil, fmt.Errorf("iss %v aud %v", claims["iss"], claims["aud"])
	}
	return claims, nil
}

func decodeSegment(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// signJWT is IAM Credentials' signJwt, with the checks a login relies on.
func (g *GCPAuth) signJWT(w http.ResponseWriter, r *http.Request, name string) {
	account, err := url.PathUnescape(name)
	if err != nil || account != g.Account {
		g.reject(w, http.StatusNotFound, "NOT_FOUND", "Service account "+name+" not found")
		return
	}
	if caller := g.caller(r); caller != account {
		g.reject(w, http.StatusForbidden, "PERMISSION_DENIED",
			"Permission 'iam.serviceAccounts.signJwt' denied on resource (or it may not exist).")
		return
	}
	var req struct {
		Payload string `json:"payload"`
	}
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &req) != nil {
		g.reject(w, http.StatusBadRequest, "INVALID_ARGUMENT", "request is not JSON with a payload")
		return
	}
	var claims map[string]any
	if err := json.Unmarshal([]byte(req.Payload), &claims); err != nil {
		g.reject(w, http.StatusBadRequest, "INVALID_ARGUMENT", "payload is not JSON")
		return
	}
	exp, _ := claims["exp"].(float64)
	left := time.Until(time.Unix(int64(exp), 0))
	if len(claims) != 3 || claims["sub"] != account || claims["aud"] != "vault/"+g.Role || left <= 0 || left > 15*time.Minute {
		g.reject(w, http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("payload %s: want exactly sub %s, aud vault/%s, exp within 15m", req.Payload, account, g.Role))
		return
	}
	hdr, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": g.signerKID, "typ": "JWT"})
	b64 := base64.RawURLEncoding.EncodeToString
	unsigned := b64(hdr) + "." + b64([]byte(req.Payload))
	sum := sha256.Sum256([]byte(unsigned))
	sig, err := rsa.SignPKCS1v15(rand.Reader, g.signer, crypto.SHA256, sum[:])
	if err != nil {
		g.reject(w, http.StatusInternalServerError, "INTERNAL", err.Error())
		return
	}
	g.mu.Lock()
	g.lastClaims = claims
	g.mu.Unlock()
	g.Signed.Add(1)
	json.NewEncoder(w).Encode(map[string]string{"keyId": g.signerKID, "signedJwt": unsigned + "." + b64(sig)})
}

func rsaKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// selfSigned is a certificate for k's public key, in PEM, as Google
// publishes a service account's keys.
func selfSigned(t testing.TB, k *rsa.PrivateKey, cn string) string {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
