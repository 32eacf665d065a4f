package testvault

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// AWSAccount is the account id of the fake STS's identities.
const AWSAccount = "123456789012"

// AWSAuth is an aws auth mount (iam type) whose STS is a local fake. It is
// a fake only because real AWS cannot be reached from the test machines:
// Vault itself is real, configured with sts_endpoint (and iam_endpoint)
// pointing at an httptest server on loopback. That server plays
// sts:GetCallerIdentity as STS does: it recomputes the request's SigV4
// signature from the secret key of the access key id (with the AWS SDK's
// signer, over exactly the headers the request says it signed), checks the
// session token and the signing time, and answers with the ARN of the
// role the key belongs to. It also answers AssumeRoleWithWebIdentity for
// one web identity token (for AWS_ENDPOINT_URL_STS), issuing a new key.
type AWSAuth struct {
	Mount, Role string
	RoleARN     string // the IAM role Vault's role is bound to
	URL         string // the fake STS
	WebIdentity string // the web identity token AssumeRoleWithWebIdentity accepts

	Calls   atomic.Int64 // GetCallerIdentity requests with a valid signature
	mu      sync.Mutex
	keys    map[string]AWSKey
	lastKey string      // access key id of the last valid GetCallerIdentity
	lastHdr http.Header // its headers, as Vault forwarded them
}

// AWSKey is a fake access key. Session is "" for a long-term key.
type AWSKey struct{ ID, Secret, Session string }

// AWS mounts aws auth pointed at the fake STS and a role "app" of
// auth_type iam bound to RoleARN. serverID, when set, is Vault's
// iam_server_id_header_value.
func (s *Server) AWS(t testing.TB, policies []string, ttl, maxTTL time.Duration, serverID string) *AWSAuth {
	t.Helper()
	a := &AWSAuth{
		Role:        "app",
		RoleARN:     "arn:aws:iam::" + AWSAccount + ":role/leash-app",
		WebIdentity: "eyJ.web-identity." + randHex(12),
		keys:        map[string]AWSKey{},
	}
	srv := httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	a.Mount = s.EnableAuth(t, "aws")
	cfg := map[string]any{"sts_endpoint": srv.URL, "iam_endpoint": srv.URL, "sts_region": "us-east-1"}
	if serverID != "" {
		cfg["iam_server_id_header_value"] = serverID
	}
	s.Write(t, "auth/"+a.Mount+"/config/client", cfg)
	s.Write(t, "auth/"+a.Mount+"/role/app", map[string]any{
		"auth_type":               "iam",
		"bound_iam_principal_arn": []string{a.RoleARN},
		"resolve_aws_unique_ids":  false,
		"token_policies":          policies,
		"token_ttl":               secs(ttl),
		"token_max_ttl":           secs(maxTTL),
	})
	return a
}

// NewKey registers a new key of the role, with a session token when
// session is set (as instance, task and assumed-role credentials have).
func (a *AWSAuth) NewKey(t testing.TB, session bool) AWSKey {
	t.Helper()
	k := AWSKey{ID: "AKIA" + strings.ToUpper(randHex(8)), Secret: "secret/" + randHex(18)}
	if session {
		k.ID = "ASIA" + k.ID[4:]
		k.Session = "session+" + randHex(30)
	}
	a.mu.Lock()
	a.keys[k.ID] = k
	a.mu.Unlock()
	return k
}

// Last returns the access key id and the headers of the last request that
// passed the signature check.
func (a *AWSAuth) Last() (keyID string, h http.Header) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastKey, a.lastHdr
}

// randHex is n random bytes in hex (crypto/rand.Read never fails).
func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (a *AWSAuth) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, err := url.ParseQuery(string(body))
	if r.Method != http.MethodPost || err != nil {
		stsError(w, http.StatusBadRequest, "InvalidAction", "want a POST form")
		return
	}
	switch form.Get("Action") {
	case "GetCallerIdentity":
		a.getCallerIdentity(w, r, body)
	case "AssumeRoleWithWebIdentity":
		a.assumeRoleWithWebIdentity(w, form)
	default:
		stsError(w, http.StatusBadRequest, "InvalidAction", "unexpected action")
	}
}

func (a *AWSAuth) getCallerIdentity(w http.ResponseWriter, r *http.Request, body []byte) {
	keyID, err := a.verify(r, body)
	if err != nil {
		stsError(w, http.StatusForbidden, "SignatureDoesNotMatch", err.Error())
		return
	}
	a.Calls.Add(1)
	a.mu.Lock()
	a.lastKey, a.lastHdr = keyID, r.Header.Clone()
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml") // Vault accepts nothing else
	fmt.Fprintf(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::%s:assumed-role/leash-app/i-0123456789abcdef0</Arn>
    <UserId>AROAEXAMPLEROLEID:i-0123456789abcdef0</UserId>
    <Account>%s</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>00000000-0000-4000-8000-000000000000</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>`, AWSAccount, AWSAccount)
}

// verify checks r's SigV4 signature and returns its access key id.
func (a *AWSAuth) verify(r *http.Request, body []byte) (string, error) {
	auth := r.Header.Get("Authorization")
	fields, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return "", fmt.Errorf("not a SigV4 authorization")
	}
	var cred, signed string
	for _, f := range strings.Split(fields, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		}
	}
	scope := strings.Split(cred, "/") // id/date/region/service/aws4_request
	if len(scope) != 5 || scope[3] != "sts" || scope[4] != "aws4_request" {
		return "", fmt.Errorf("bad credential scope %q", cred)
	}
	a.mu.Lock()
	key, ok := a.keys[scope[0]]
	a.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("unknown access key id")
	}
	if tok := r.Header.Get("X-Amz-Security-Token"); subtle.ConstantTimeCompare([]byte(tok), []byte(key.Session)) != 1 {
		return "", fmt.Errorf("wrong or missing session token")
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || time.Since(at).Abs() > 15*time.Minute {
		return "", fmt.Errorf("bad or stale X-Amz-Date")
	}
	// Rebuild the request as the client signed it. Vault forwards to
	// sts_endpoint + "/" + the path, so the path arrives as "//": STS
	// normalizes it, so does this check. Only the signed headers count.
	req, _ := http.NewRequest(r.Method, "https://"+r.Host+path.Clean(r.URL.Path), strings.NewReader(string(body)))
	req.Host = r.Host
	req.ContentLength = 0
	for _, h := range strings.Split(signed, ";") {
		switch h {
		case "host":
		case "content-length":
			req.ContentLength = int64(len(body))
		default:
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: key.ID, SecretAccessKey: key.Secret, SessionToken: key.Session}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "sts", scope[2], at); err != nil {
		return "", err
	}
	if subtle.ConstantTimeCompare([]byte(req.Header.Get("Authorization")), []byte(auth)) != 1 {
		return "", fmt.Errorf("signature does not match")
	}
	return key.ID, nil
}

func (a *AWSAuth) assumeRoleWithWebIdentity(w http.ResponseWriter, form url.Values) {
	if subtle.ConstantTimeCompare([]byte(form.Get("WebIdentityToken")), []byte(a.WebIdentity)) != 1 || form.Get("RoleArn") != a.RoleARN {
		stsError(w, http.StatusBadRequest, "InvalidIdentityToken", "token or role not accepted")
		return
	}
	k := AWSKey{ID: "ASIA" + strings.ToUpper(randHex(8)), Secret: "secret/" + randHex(18), Session: "session+" + randHex(30)}
	a.mu.Lock()
	a.keys[k.ID] = k
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>%s</AccessKeyId>
      <SecretAccessKey>%s</SecretAccessKey>
      <SessionToken>%s</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <AssumedRoleUser><Arn>arn:aws:sts::%s:assumed-role/leash-app/%s</Arn><AssumedRoleId>AROAEXAMPLEROLEID:%s</AssumedRoleId></AssumedRoleUser>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>00000000-0000-4000-8000-000000000001</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`, k.ID, k.Secret, k.Session, time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		AWSAccount, form.Get("RoleSessionName"), form.Get("RoleSessionName"))
}

func stsError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(code)
	fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>0</RequestId></ErrorResponse>`, typ, msg)
}
