package render

import (
	"encoding/json"
	"time"
)

// tmplSecret is what `secret` returns to a template: consul-template's
// dependency.Secret, field for field, so that templates written for it
// (and its output, printed with {{ . }}) carry over unchanged.
type tmplSecret struct {
	RequestID     string
	LeaseID       string
	LeaseDuration int // seconds, as consul-template
	Renewable     bool
	Data          map[string]any
	Warnings      []string
	Auth          *tmplSecretAuth
	WrapInfo      *tmplSecretWrapInfo
}

// tmplSecretAuth is consul-template's SecretAuth.
type tmplSecretAuth struct {
	ClientToken   string
	Accessor      string
	Policies      []string
	Metadata      map[string]string
	LeaseDuration int
	Renewable     bool
}

// tmplSecretWrapInfo is consul-template's SecretWrapInfo.
type tmplSecretWrapInfo struct {
	Token           string
	TTL             int
	CreationTime    time.Time
	WrappedAccessor string
}

// newTmplSecret builds the template's view of s. Vault's own
// lease_duration and renewable are shown, as consul-template does (a KV v1
// read's 768h hint included); a Secret without Response falls back to
// LeaseDuration and Renewable.
func newTmplSecret(s Secret) *tmplSecret {
	t := &tmplSecret{Data: s.Raw.m, LeaseDuration: int(s.LeaseDuration.Seconds()), Renewable: s.Renewable}
	r := s.Response.m
	if r == nil {
		return t
	}
	t.RequestID, _ = r["request_id"].(string)
	t.LeaseID, _ = r["lease_id"].(string)
	t.LeaseDuration = intOf(r["lease_duration"])
	t.Renewable, _ = r["renewable"].(bool)
	t.Warnings = stringsOf(r["warnings"])
	if a, ok := r["auth"].(map[string]any); ok {
		t.Auth = &tmplSecretAuth{Policies: stringsOf(a["policies"]), LeaseDuration: intOf(a["lease_duration"])}
		t.Auth.ClientToken, _ = a["client_token"].(string)
		t.Auth.Accessor, _ = a["accessor"].(string)
		t.Auth.Renewable, _ = a["renewable"].(bool)
		if md, ok := a["metadata"].(map[string]string); ok && len(md) > 0 {
			t.Auth.Metadata = md
		}
	}
	if w, ok := r["wrap_info"].(map[string]any); ok {
		t.WrapInfo = &tmplSecretWrapInfo{TTL: intOf(w["ttl"])}
		t.WrapInfo.Token, _ = w["token"].(string)
		t.WrapInfo.CreationTime, _ = w["creation_time"].(time.Time)
		t.WrapInfo.WrappedAccessor, _ = w["wrapped_accessor"].(string)
	}
	return t
}

func intOf(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	case float64:
		return int(n)
	}
	return 0
}

// stringsOf is a []string or []any of strings as []string; empty is nil,
// as consul-template leaves an absent list.
func stringsOf(v any) []string {
	var out []string
	switch l := v.(type) {
	case []string:
		out = append(out, l...)
	case []any:
		for _, e := range l {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// tmplPKI is what `pkiCert` returns: consul-template's PemEncoded, the PEM
// fields of a pki/issue answer.
type tmplPKI struct {
	Cert, Key, CA string
	CAChain       []string
}

// Data returns p itself, so {{ .Data.Cert }} works as in consul-template,
// which mimics the KV v2 wrapper this way (func_pkiCert_Data_compat).
func (p tmplPKI) Data() tmplPKI { return p }
