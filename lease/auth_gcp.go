package lease

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// Vault's gcp auth has two types. gce: the metadata server of a Compute
// Engine VM (or GKE node) issues a token Google signed, naming the
// instance and its service account, for the audience vault/ROLE; Vault
// checks it against Google's keys and the instance against the role. iam:
// leash has Google's IAM Credentials API sign a short JWT (sub the service
// account, aud vault/ROLE) with a key only Google holds; Vault checks it
// against the service account's public keys and the account against the
// role. iam works wherever Application Default Credentials do (a key file,
// workload identity federation, Cloud Run, GKE), not only on a VM.

// gceMetadataHost is the metadata server Google's client libraries use,
// unless GCE_METADATA_HOST names another (as it does for them).
const gceMetadataHost = "169.254.169.254"

const (
	gcpIAMCredentialsURL = "https://iamcredentials.googleapis.com"
	// gcpJWTLifetime is how long a signed iam JWT is valid. Vault refuses
	// more than 15 minutes (a role's max_jwt_exp, 15m by default); 10
	// leaves room for clocks a few minutes apart, and the JWT is used at
	// once.
	gcpJWTLifetime = 10 * time.Minute
	// gcpScope is what the access token for signJwt must carry.
	gcpScope = "https://www.googleapis.com/auth/cloud-platform"
)

// validateCloud checks the cloud methods' fields New can check without
// the network.
func (a AuthConfig) validateCloud() error {
	if a.Method == "aws" && a.AWSType != "" && a.AWSType != "iam" && a.AWSType != "ec2" {
		return fmt.Errorf("unknown aws login type %q (iam, ec2)", a.AWSType)
	}
	if a.Method != "gcp" {
		return nil
	}
	switch a.GCPType {
	case "", "gce", "iam":
	default:
		return fmt.Errorf("unknown gcp login type %q (gce, iam)", a.GCPType)
	}
	if u := a.GCPIAMCredentialsURL; u != "" {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return fmt.Errorf("gcp IAM Credentials URL %q is not an http(s) URL", u)
		}
	}
	return nil
}

func metadataHost() string { return firstNonEmpty(os.Getenv("GCE_METADATA_HOST"), gceMetadataHost) }

// gcpIdentityURL is the identity-token URL for service account sa (""
// means the instance's default one) and Vault role role.
func gcpIdentityURL(sa, role string) string {
	q := url.Values{"audience": {"vault/" + role}, "format": {"full"}}
	return "http://" + metadataHost() + "/computeMetadata/v1/instance/service-accounts/" +
		url.PathEscape(firstNonEmpty(sa, "default")) + "/identity?" + q.Encode()
}

// gcpLoginData returns the login fields of the configured type, with a
// token or JWT obtained now: they are valid for minutes (iam) or an hour
// (gce), and leash logs in again well after that.
func (au *auth) gcpLoginData(ctx context.Context) (map[string]any, error) {
	if au.cfg.GCPType == "iam" {
		return au.gcpIAMLoginData(ctx)
	}
	u := gcpIdentityURL(au.cfg.GCPServiceAccount, au.cfg.Role)
	body, err := metadataGet(ctx, u, "Metadata-Flavor", "Google")
	if err != nil {
		return nil, err
	}
	jwt := strings.TrimSpace(string(body))
	if strings.Count(jwt, ".") != 2 {
		return nil, &cloudError{Source: "metadata server " + strings.Split(u, "?")[0], Err: errors.New("answer is not a JWT")}
	}
	return map[string]any{"role": au.cfg.Role, "jwt": jwt}, nil
}

// gcpIAMLoginData: an access token from Application Default Credentials
// (found again at every login, so a rotated key file is read afresh), then
// signJwt as the service account.
func (au *auth) gcpIAMLoginData(ctx context.Context) (map[string]any, error) {
	a := au.cfg
	// The token source keeps this context for its requests (a key file's
	// token endpoint, the metadata server): bound them.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tok, sa, src, err := gcpADCToken(ctx, a.GCPServiceAccount)
	if err != nil {
		return nil, err
	}
	au.log.Debug("gcp access token obtained", "source", src, "service_account", sa)
	claims, err := json.Marshal(map[string]any{
		"sub": sa, "aud": "vault/" + a.Role, "exp": time.Now().Add(gcpJWTLifetime).Unix(),
	})
	if err != nil {
		return nil, err
	}
	endpoint := strings.TrimRight(firstNonEmpty(a.GCPIAMCredentialsURL, gcpIAMCredentialsURL), "/") +
		"/v1/projects/-/serviceAccounts/" + url.PathEscape(sa) + ":signJwt"
	jwt, err := gcpSignJWT(ctx, endpoint, tok, claims)
	if err != nil {
		return nil, err
	}
	return map[string]any{"role": a.Role, "jwt": jwt}, nil
}

// gcpSignJWT has the IAM Credentials API at endpoint sign claims as the
// service account tok is for (or may act as).
func gcpSignJWT(ctx context.Context, endpoint string, tok *oauth2.Token, claims []byte) (string, error) {
	reqBody, err := json.Marshal(map[string]string{"payload": string(claims)})
	if err != nil {
		return "", err
	}
	esrc := "IAM Credentials API " + endpoint
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(reqBody))
	if err != nil {
		return "", &cloudError{Source: esrc, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	tok.SetAuthHeader(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in esrc already
		}
		return "", &cloudError{Source: esrc, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", &cloudError{Source: esrc, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		// Google's error bodies say what is wrong ("Permission
		// 'iam.serviceAccounts.signJwt' denied"), never a token.
		var ge struct {
			Error struct{ Message string } `json:"error"`
		}
		msg := strings.TrimSpace(string(b[:min(len(b), 300)]))
		if json.Unmarshal(b, &ge) == nil && ge.Error.Message != "" {
			msg = ge.Error.Message
		}
		return "", &cloudError{Source: esrc, Err: fmt.Errorf("%s: %s", resp.Status, msg),
			NoAnswer: resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests}
	}
	var signed struct {
		SignedJWT string `json:"signedJwt"`
	}
	if err := json.Unmarshal(b, &signed); err != nil || strings.Count(signed.SignedJWT, ".") != 2 {
		// Not err itself: a JSON error may quote the body.
		return "", &cloudError{Source: esrc, Err: errors.New("answer holds no signedJwt")}
	}
	return signed.SignedJWT, nil
}

// gcpADCToken returns an access token from Application Default
// Credentials, looked for where Google's libraries look: the file
// GOOGLE_APPLICATION_CREDENTIALS names, gcloud's
// application_default_credentials.json, else the metadata server. It also
// returns the service account to sign as (sa, else the one the credentials
// are) and where they came from. The metadata server is
// asked directly rather than through google.FindDefaultCredentials, which
// decides once per process whether it runs on Google Cloud: a leash started
// before the metadata server answers would never find it.
func gcpADCToken(ctx context.Context, sa string) (tok *oauth2.Token, account, src string, err error) {
	file, src := os.Getenv("GOOGLE_APPLICATION_CREDENTIALS"), ""
	if file != "" {
		src = "GOOGLE_APPLICATION_CREDENTIALS=" + file
	} else if f := gcloudADCFile(); f != "" {
		if _, err := os.Stat(f); err == nil {
			file, src = f, f
		}
	}
	if file == "" {
		return gcpMetadataToken(ctx, sa)
	}
	tok, account, err = gcpFileToken(ctx, file, src, sa)
	return tok, account, src, err
}

// gcpMetadataToken is the metadata server's access token for the default
// service account, which it also names unless sa does.
func gcpMetadataToken(ctx context.Context, sa string) (tok *oauth2.Token, account, src string, err error) {
	base := "http://" + metadataHost() + "/computeMetadata/v1/instance/service-accounts/default/"
	src = "metadata server " + base + "token"
	b, err := metadataGet(ctx, base+"token", "Metadata-Flavor", "Google")
	if err != nil {
		return nil, "", "", err
	}
	var mt struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(b, &mt); err != nil || mt.AccessToken == "" {
		// Not err itself: a JSON error may quote the body.
		return nil, "", "", &cloudError{Source: src, Err: errors.New("answer holds no access_token")}
	}
	email, err := metadataGet(ctx, base+"email", "Metadata-Flavor", "Google")
	if err != nil {
		return nil, "", "", err
	}
	return &oauth2.Token{AccessToken: mt.AccessToken, TokenType: mt.TokenType}, firstNonEmpty(sa, strings.TrimSpace(string(email))), src, nil
}

// gcpFileToken is an access token from the credentials file (src says
// where it was found), and the service account to sign as: sa, else the
// file's own.
func gcpFileToken(ctx context.Context, file, src, sa string) (tok *oauth2.Token, account string, err error) {
	esrc := "gcp application default credentials (" + src + ")"
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, "", &cloudError{Source: esrc, Err: err}
	}
	var f struct {
		Type        string `json:"type"`
		ClientEmail string `json:"client_email"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		// Not err itself: a JSON error may quote the key.
		return nil, "", &cloudError{Source: esrc, Err: errors.New("not a JSON credentials file")}
	}
	if account = sa; account == "" && f.Type == string(google.ServiceAccount) {
		account = f.ClientEmail
	}
	if account == "" {
		return nil, "", &cloudError{Source: esrc, Err: fmt.Errorf(
			"credentials of type %q name no service account (a user's gcloud login, workload identity federation): give one with --gcp-service-account", f.Type)}
	}
	// The file is the operator's own, as for FindDefaultCredentials: the
	// type it states is the type it is. Errors name the field, never a key.
	creds, err := google.CredentialsFromJSONWithType(ctx, b, google.CredentialsType(f.Type), gcpScope)
	if err != nil {
		return nil, "", &cloudError{Source: esrc, Err: err}
	}
	tok, err = creds.TokenSource.Token()
	if err != nil {
		// oauth2 formats transport errors with %v: anything but the token
		// endpoint's answer is no answer, and retried.
		var re *oauth2.RetrieveError
		return nil, "", &cloudError{Source: "gcp access token for " + src, Err: err, NoAnswer: !errors.As(err, &re)}
	}
	return tok, account, nil
}

// gcloudADCFile is where `gcloud auth application-default login` writes.
func gcloudADCFile() string {
	dir := os.Getenv("CLOUDSDK_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config", "gcloud")
	}
	return filepath.Join(dir, "application_default_credentials.json")
}
