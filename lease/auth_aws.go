package lease

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
)

// Vault's aws auth, iam type: leash signs an sts:GetCallerIdentity request
// with the instance's or task's AWS credentials and hands it to Vault, which
// sends it to STS and learns from the answer who leash is. The credentials
// never leave the machine; the signature is valid for 15 minutes and for
// that one request only.

const (
	stsBody = "Action=GetCallerIdentity&Version=2011-06-15"
	// awsServerIDHeader binds a signed request to one Vault (Vault's
	// iam_server_id_header_value), so another server it is shown to cannot
	// replay it.
	awsServerIDHeader = "X-Vault-AWS-IAM-Server-ID"
	// awsDefaultRegion is what leash signs for without --aws-region, with
	// STS's global endpoint: Vault's defaults (sts.amazonaws.com), and what
	// Vault Agent and the vault CLI send.
	awsDefaultRegion = "us-east-1"
)

// awsCredentialVars are the AWS credential chain's variables that hold
// secret values, not paths or URIs: the static keys and session token, the
// ECS/EKS Pod Identity authorization token, and AWS_SECURITY_TOKEN (the
// session token's old name, which boto and SDK v1 still read). With --auth
// aws they are leash's identity for Vault, so a child holding them could
// log in as leash. The variables naming files or endpoints
// (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_CONTAINER_CREDENTIALS_*_URI, the
// profile's) stay: they are not secrets, a child of the same user could
// read the file or ask the endpoint anyway, and a child often uses the same
// role for its own AWS calls.
var awsCredentialVars = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN",
}

// CredentialVars returns the environment variables that hold a's cloud
// credentials (only aws has any in the environment), in addition to the
// Vault token variables of the package's CredentialVars. Main keeps them
// from the child and from templates' env: leash logs in with them.
func (a AuthConfig) CredentialVars() []string {
	if a.Method == "aws" {
		return slices.Clone(awsCredentialVars)
	}
	return nil
}

// awsLoginData returns the iam login fields for Vault, signed with
// credentials the SDK's default chain retrieves now: environment, shared
// config and credentials files (AWS_PROFILE), web identity token (EKS IRSA),
// ECS container credentials, EC2 instance metadata (IMDSv2). The chain is
// built again for every login, so credentials rotated on disk or by the
// metadata services are always the current ones.
func (au *auth) awsLoginData(ctx context.Context) (map[string]any, error) {
	region, stsURL := awsSTS(au.cfg.AWSRegion)
	// The default region only matters to sources that call AWS themselves
	// (web identity, assume role), when AWS_REGION and the profile name none.
	cfg, err := config.LoadDefaultConfig(ctx, config.WithDefaultRegion(region))
	if err != nil {
		return nil, &cloudError{Source: "aws config (" + awsProfileDesc() + ")", Err: err}
	}
	src := awsSourceDesc(cfg.Credentials)
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, &cloudError{Source: "aws credentials from " + src, Err: err}
	}
	au.log.Debug("aws credentials retrieved", "source", src, "expires", creds.CanExpire)

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, stsURL, strings.NewReader(stsBody))
	if err != nil {
		return nil, fmt.Errorf("aws sts request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if v := au.cfg.AWSServerID; v != "" {
		req.Header.Set(awsServerIDHeader, v)
	}
	sum := sha256.Sum256([]byte(stsBody))
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "sts", region, time.Now()); err != nil {
		return nil, fmt.Errorf("aws sts request: sign: %w", err)
	}
	headers, err := json.Marshal(req.Header)
	if err != nil {
		return nil, fmt.Errorf("aws sts request: %w", err)
	}
	b64 := base64.StdEncoding.EncodeToString
	body := map[string]any{
		"iam_http_request_method": req.Method,
		"iam_request_url":         b64([]byte(req.URL.String())),
		"iam_request_body":        b64([]byte(stsBody)),
		"iam_request_headers":     b64(headers),
	}
	if au.cfg.Role != "" {
		body["role"] = au.cfg.Role // else Vault takes the IAM principal's name
	}
	return body, nil
}

// awsSTS is the signing region and STS endpoint for region ("": the
// global endpoint, signed for us-east-1).
func awsSTS(region string) (signing, url string) {
	switch {
	case region == "":
		return awsDefaultRegion, "https://sts.amazonaws.com/"
	case strings.HasPrefix(region, "cn-"):
		return region, "https://sts." + region + ".amazonaws.com.cn/"
	}
	return region, "https://sts." + region + ".amazonaws.com/"
}

// awsSourceDesc names the credential source the SDK's chain chose, with
// the variables or files that select it, for errors: "no credentials"
// alone does not tell an operator what to fix.
func awsSourceDesc(p aws.CredentialsProvider) string {
	ps, ok := p.(aws.CredentialProviderSource)
	if !ok {
		return "the default chain"
	}
	var parts []string
	for _, s := range ps.ProviderSources() {
		var d string
		switch s {
		case aws.CredentialSourceEnvVars:
			d = "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
		case aws.CredentialSourceEnvVarsSTSWebIDToken, aws.CredentialSourceProfileSTSWebIDToken:
			d = "web identity token (" + envDesc("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN") + ")"
		case aws.CredentialSourceProfile, aws.CredentialSourceProfileSourceProfile, aws.CredentialSourceProfileNamedProvider,
			aws.CredentialSourceProfileSSO, aws.CredentialSourceProfileSSOLegacy, aws.CredentialSourceProfileProcess,
			aws.CredentialSourceProfileLogin:
			d = awsProfileDesc()
		case aws.CredentialSourceHTTP:
			d = "container credentials endpoint (" + containerEndpoint() + ")"
		case aws.CredentialSourceIMDS:
			ep := os.Getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT")
			if ep == "" {
				ep = "http://169.254.169.254"
			}
			d = "EC2 instance metadata (" + ep + ")"
		case aws.CredentialSourceSTSAssumeRole, aws.CredentialSourceSTSAssumeRoleWebID:
			d = "sts:AssumeRole"
		case aws.CredentialSourceProcess:
			d = "credential_process"
		case aws.CredentialSourceSSO, aws.CredentialSourceSSOLegacy:
			d = "SSO"
		default:
			continue
		}
		if len(parts) == 0 || parts[len(parts)-1] != d {
			parts = append(parts, d)
		}
	}
	if len(parts) == 0 {
		return "the default chain"
	}
	return strings.Join(parts, " via ")
}

// awsProfileDesc names the shared profile and the files it is read from.
func awsProfileDesc() string {
	profile := firstNonEmpty(os.Getenv("AWS_PROFILE"), os.Getenv("AWS_DEFAULT_PROFILE"), "default")
	return fmt.Sprintf("profile %q in %s and %s", profile,
		firstNonEmpty(os.Getenv("AWS_CONFIG_FILE"), "~/.aws/config"),
		firstNonEmpty(os.Getenv("AWS_SHARED_CREDENTIALS_FILE"), "~/.aws/credentials"))
}

// containerEndpoint is where ECS (or EKS Pod Identity) serves credentials.
// The URIs are not secret; the authorization token is, and is not named.
func containerEndpoint() string {
	if v := os.Getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"); v != "" {
		return "AWS_CONTAINER_CREDENTIALS_FULL_URI=" + v
	}
	return "http://169.254.170.2" + os.Getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") + " from AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
}

func envDesc(names ...string) string {
	var out []string
	for _, n := range names {
		out = append(out, n+"="+os.Getenv(n))
	}
	return strings.Join(out, ", ")
}

// cloudError is a failure to obtain the cloud identity leash logs in with,
// before Vault is asked: Source names the credential source or metadata
// endpoint. It is transient when that source did not answer (a metadata
// service not up yet at boot), so the login is retried.
type cloudError struct {
	Source string
	Err    error
	// NoAnswer marks Err transient where its type does not show it (a
	// library that formats a network error with %v, a 503).
	NoAnswer bool
}

func (e *cloudError) Error() string { return e.Source + ": " + e.Err.Error() }
func (e *cloudError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNoIdentity) true.
func (e *cloudError) Is(target error) bool { return target == ErrNoIdentity }

func (e *cloudError) transient() bool { return e.NoAnswer || noAnswer(e.Err) }
