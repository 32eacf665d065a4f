package testvault

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// AWSEC2Auth is an aws auth mount with a role of auth_type ec2, whose AWS
// is a loopback fake (real AWS cannot be reached from the test machines;
// Vault's aws backend is real). The fake is two things:
//   - an IMDSv2 instance metadata service for leash
//     (AWS_EC2_METADATA_SERVICE_ENDPOINT): PUT /latest/api/token gives a
//     session token, and GET /latest/dynamic/instance-identity/pkcs7
//     without it is refused (401), as IMDSv2-only instances do;
//   - EC2 DescribeInstances for Vault (the mount's endpoint), saying
//     the instance is running, and STS GetCallerIdentity for Vault's own
//     (unchecked) credentials.
//
// The identity document is signed (PKCS#7 SignedData, RSA with SHA-256,
// without signed attributes or embedded certificates, the form Vault
// parses) with a key whose certificate is registered with Vault at
// config/certificate/, as an operator registers a region's AWS
// certificate. Vault verifies the signature itself.
type AWSEC2Auth struct {
	Mount, Role string
	URL         string // the fake: IMDS and EC2
	InstanceID  string

	mu         sync.Mutex
	pkcs7      string // base64, wrapped at 64 columns as IMDS serves it
	imdsToken  string
	docReads   int // identity document reads with the session token
	v1Refused  int // reads without it
	describeds int // DescribeInstances calls
}

// AWSEC2 mounts aws auth with a role "app" of auth_type ec2, bound to the
// fake's account.
func (s *Server) AWSEC2(t testing.TB, policies []string, ttl, maxTTL time.Duration) *AWSEC2Auth {
	t.Helper()
	a := &AWSEC2Auth{Role: "app", InstanceID: "i-0" + randHex(8), imdsToken: "imds-" + randHex(16)}
	key := rsaKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(4242), Subject: pkix.Name{CommonName: "leash-test EC2 identity"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(map[string]any{
		"accountId": AWSAccount, "architecture": "x86_64", "availabilityZone": "us-east-1a",
		"imageId": "ami-0123456789abcdef0", "instanceId": a.InstanceID, "instanceType": "t3.micro",
		"pendingTime": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "privateIp": "10.0.0.10",
		"region": "us-east-1", "version": "2017-09-30",
	})
	if err != nil {
		t.Fatal(err)
	}
	p7 := signPKCS7(t, doc, cert, key)
	b64 := base64.StdEncoding.EncodeToString(p7)
	var lines []string
	for len(b64) > 64 {
		lines, b64 = append(lines, b64[:64]), b64[64:]
	}
	a.pkcs7 = strings.Join(append(lines, b64), "\n")

	srv := httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	a.Mount = s.EnableAuth(t, "aws")
	s.Write(t, "auth/"+a.Mount+"/config/client", map[string]any{
		"access_key": "AKIAVAULT" + strings.ToUpper(randHex(4)), "secret_key": randHex(20),
		"endpoint": srv.URL, "sts_endpoint": srv.URL, "iam_endpoint": srv.URL, "sts_region": "us-east-1",
	})
	s.Write(t, "auth/"+a.Mount+"/config/certificate/leash-test", map[string]any{
		"aws_public_cert": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), "type": "pkcs7",
	})
	s.Write(t, "auth/"+a.Mount+"/role/app", map[string]any{
		"auth_type":        "ec2",
		"bound_account_id": []string{AWSAccount},
		"token_policies":   policies,
		"token_ttl":        secs(ttl),
		"token_max_ttl":    secs(maxTTL),
	})
	return a
}

// Counts returns the identity document reads that carried the IMDSv2
// session token, the reads refused without it, and Vault's
// DescribeInstances calls.
func (a *AWSEC2Auth) Counts() (reads, refused, described int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.docReads, a.v1Refused, a.describeds
}

func (a *AWSEC2Auth) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
		if r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == "" {
			http.Error(w, "ttl required", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
		w.Write([]byte(a.imdsToken))
	case r.Method == http.MethodGet && r.URL.Path == "/latest/dynamic/instance-identity/pkcs7":
		a.mu.Lock()
		ok := r.Header.Get("X-Aws-Ec2-Metadata-Token") == a.imdsToken
		if ok {
			a.docReads++
		} else {
			a.v1Refused++
		}
		a.mu.Unlock()
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(a.pkcs7))
	case r.Method == http.MethodPost && r.URL.Path == "/":
		if err := r.ParseForm(); err != nil {
			stsError(w, http.StatusBadRequest, "InvalidAction", err.Error())
			return
		}
		if r.PostForm.Get("Action") == "GetCallerIdentity" {
			// Vault asks who its own credentials are (the account of
			// its EC2 client); it does not check leash with it.
			w.Header().Set("Content-Type", "text/xml")
			fmt.Fprintf(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>
<Arn>arn:aws:iam::%s:user/vault</Arn><UserId>AIDAVAULTEXAMPLE</UserId><Account>%s</Account></GetCallerIdentityResult>
<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></GetCallerIdentityResponse>`, AWSAccount, AWSAccount, randHex(8))
			return
		}
		if r.PostForm.Get("Action") != "DescribeInstances" {
			stsError(w, http.StatusBadRequest, "InvalidAction", "only DescribeInstances and GetCallerIdentity")
			return
		}
		a.mu.Lock()
		a.describeds++
		a.mu.Unlock()
		id := r.PostForm.Get("InstanceId.1")
		if id != a.InstanceID {
			stsError(w, http.StatusBadRequest, "InvalidInstanceID.NotFound", "The instance ID '"+id+"' does not exist")
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>%s</requestId>
<reservationSet><item><reservationId>r-0%s</reservationId><ownerId>%s</ownerId><instancesSet><item>
<instanceId>%s</instanceId><imageId>ami-0123456789abcdef0</imageId><instanceState><code>16</code><name>running</name></instanceState>
</item></instancesSet></item></reservationSet></DescribeInstancesResponse>`, randHex(8), randHex(8), AWSAccount, a.InstanceID)
	default:
		http.NotFound(w, r)
	}
}

// signPKCS7 is a DER PKCS#7 SignedData of content with an RSA SHA-256
// signature by key (cert's), no signed attributes, no certificates.
func signPKCS7(t testing.TB, content []byte, cert *x509.Certificate, key *rsa.PrivateKey) []byte {
	t.Helper()
	type algo struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue `asn1:"optional"`
	}
	type issuerAndSerial struct {
		Issuer asn1.RawValue
		Serial *big.Int
	}
	type signerInfo struct {
		Version         int
		IssuerAndSerial issuerAndSerial
		DigestAlgorithm algo
		DigestEncAlgo   algo
		EncryptedDigest []byte
	}
	type contentInfo struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue // [0] EXPLICIT, by explicitWrap
	}
	type signedData struct {
		Version          int
		DigestAlgorithms []algo `asn1:"set"`
		ContentInfo      contentInfo
		SignerInfos      []signerInfo `asn1:"set"`
	}
	var (
		oidData      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
		oidSigned    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
		oidSHA256    = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
		oidRSA       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
		null         = asn1.RawValue{Tag: asn1.TagNull}
		mustMarshal  = func(v any) []byte { b, err := asn1.Marshal(v); must(t, err); return b }
		explicitWrap = func(der []byte) asn1.RawValue {
			return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: der}
		}
	)
	sum := sha256.Sum256(content)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	must(t, err)
	octets := mustMarshal(content) // OCTET STRING
	sd := signedData{
		Version:          1,
		DigestAlgorithms: []algo{{Algorithm: oidSHA256, Parameters: null}},
		ContentInfo:      contentInfo{ContentType: oidData, Content: explicitWrap(octets)},
		SignerInfos: []signerInfo{{
			Version:         1,
			IssuerAndSerial: issuerAndSerial{Issuer: asn1.RawValue{FullBytes: cert.RawIssuer}, Serial: cert.SerialNumber},
			DigestAlgorithm: algo{Algorithm: oidSHA256, Parameters: null},
			DigestEncAlgo:   algo{Algorithm: oidRSA, Parameters: null},
			EncryptedDigest: sig,
		}},
	}
	return mustMarshal(contentInfo{ContentType: oidSigned, Content: explicitWrap(mustMarshal(sd))})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
