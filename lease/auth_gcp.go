package lease

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Vault's gcp auth, gce type: the metadata server of a Compute Engine VM
// (or GKE node) issues a token Google signed, naming the instance and its
// service account, for the audience vault/ROLE; Vault checks it against
// Google's keys and the instance against the role.

// gceMetadataHost is the metadata server Google's client libraries use,
// unless GCE_METADATA_HOST names another (as it does for them).
const gceMetadataHost = "169.254.169.254"

// gcpIdentityURL is the identity-token URL for service account sa (""
// means the instance's default one) and Vault role role.
func gcpIdentityURL(sa, role string) string {
	host := firstNonEmpty(os.Getenv("GCE_METADATA_HOST"), gceMetadataHost)
	q := url.Values{"audience": {"vault/" + role}, "format": {"full"}}
	return "http://" + host + "/computeMetadata/v1/instance/service-accounts/" +
		url.PathEscape(firstNonEmpty(sa, "default")) + "/identity?" + q.Encode()
}

// gcpLoginData fetches a fresh instance identity token at every login
// (they are valid for an hour) and returns the login fields.
func (m *Manager) gcpLoginData(ctx context.Context) (map[string]any, error) {
	u := gcpIdentityURL(m.cfg.Auth.GCPServiceAccount, m.cfg.Auth.Role)
	src := "gcp metadata server " + strings.Split(u, "?")[0]
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &cloudError{Source: src, Err: err}
	}
	req.Header.Set("Metadata-Flavor", "Google")
	// Never through a proxy: the metadata server is link-local.
	c := &http.Client{Transport: &http.Transport{Proxy: nil}, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in src already
		}
		return nil, &cloudError{Source: src, Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, &cloudError{Source: src, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		// Error bodies are plain text such as "service account not found".
		msg := strings.TrimSpace(string(body[:min(len(body), 200)]))
		return nil, &cloudError{Source: src, Err: fmt.Errorf("%s: %s", resp.Status, msg)}
	}
	jwt := strings.TrimSpace(string(body))
	if strings.Count(jwt, ".") != 2 {
		return nil, &cloudError{Source: src, Err: errors.New("answer is not a JWT")}
	}
	return map[string]any{"role": m.cfg.Auth.Role, "jwt": jwt}, nil
}
