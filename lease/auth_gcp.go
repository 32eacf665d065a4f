package lease

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
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
	body, err := metadataGet(ctx, u, "Metadata-Flavor", "Google")
	if err != nil {
		return nil, err
	}
	jwt := strings.TrimSpace(string(body))
	if strings.Count(jwt, ".") != 2 {
		return nil, &cloudError{Source: "metadata server " + strings.Split(u, "?")[0], Err: errors.New("answer is not a JWT")}
	}
	return map[string]any{"role": m.cfg.Auth.Role, "jwt": jwt}, nil
}
