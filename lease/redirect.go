package lease

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// maxRedirects bounds the redirects followed for one request. vault/api
// follows one; a standby's 307 to the active node is one.
const maxRedirects = 3

// redirectGuard is the transport under every Vault client leash builds, and
// the only place a redirect is followed. Each request carries the token in
// X-Vault-Token, and logins carry role_id, secret_id or a JWT in the body:
// vault/api and net/http would both resend them to whatever host a
// Location names. vault/api follows 301, 302 and 307 in its own request
// loop, and Client.Clone (one per login and per child token) drops
// Config.DisableRedirects, so a flag on the client cannot close that path;
// a transport shared by every clone can. The guard follows a redirect only
// to the address leash was given (same scheme, host and port) or to a host
// in allow, never from https to http, and returns a *RedirectError
// otherwise, before anything is sent to the new address. Neither vault/api
// nor net/http ever sees a redirect response.
type redirectGuard struct {
	next   http.RoundTripper
	origin string   // scheme://host:port of VAULT_ADDR (or VAULT_AGENT_ADDR)
	allow  []string // lower-case "host" (any port) or "host:port"
}

func (g *redirectGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := g.next.RoundTrip(req)
	for hops := 0; err == nil && followable(resp.StatusCode); hops++ {
		to, lerr := resp.Location()
		// Nothing of the redirect response is used: drain a little so the
		// connection can be reused, and close it.
		io.CopyN(io.Discard, resp.Body, 4<<10)
		resp.Body.Close()
		from := originOf(req.URL)
		switch {
		case lerr != nil:
			return nil, &RedirectError{From: from, To: "(no valid Location)", Reason: "the redirect names no valid address"}
		case hops == maxRedirects:
			return nil, &RedirectError{From: from, To: originOf(to), Reason: fmt.Sprintf("more than %d redirects", maxRedirects)}
		}
		if reason := g.refuse(req.URL, to); reason != "" {
			return nil, &RedirectError{From: from, To: originOf(to), Reason: reason}
		}
		next, err := redirected(req, to)
		if err != nil {
			return nil, err
		}
		req = next
		resp, err = g.next.RoundTrip(req)
	}
	return resp, err
}

// followable are the redirects vault/api would follow (plus 308, its
// permanent twin): all keep the method and body.
func followable(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// refuse says why the redirect of a request for from to to must not be
// followed, or "" when it may be.
func (g *redirectGuard) refuse(from, to *url.URL) string {
	switch {
	case to.Scheme != "http" && to.Scheme != "https":
		return "not an http or https address"
	case from.Scheme == "https" && to.Scheme != "https":
		return "a redirect from https to http would send the token in clear text"
	case originOf(to) == g.origin:
		return ""
	}
	host, port := strings.ToLower(to.Hostname()), portOf(to)
	for _, a := range g.allow {
		if a == host || a == net.JoinHostPort(host, port) {
			return ""
		}
	}
	return "not the Vault address leash was given and not an allowed redirect host"
}

// redirected is req for to: same method, headers (the token) and body.
func redirected(req *http.Request, to *url.URL) (*http.Request, error) {
	r := req.Clone(req.Context())
	r.URL = to
	r.Host = "" // vault/api sets Host to the first address; use to's
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return nil, errors.New("vault redirected a request whose body cannot be sent again")
		}
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("redirect: %w", err)
		}
		r.Body = body
	}
	return r, nil
}

// originOf is scheme://host:port, with the scheme's default port filled in;
// it never includes user info, path or query.
func originOf(u *url.URL) string {
	if u == nil {
		return ""
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), portOf(u))
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// parseRedirectAllow checks and normalises the allowed redirect hosts:
// "host" or "host:port", no scheme or path.
func parseRedirectAllow(hosts []string) ([]string, error) {
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" || strings.ContainsAny(h, "/?#@ ") {
			return nil, fmt.Errorf("redirect host %q: want HOST or HOST:PORT, without a scheme or path", h)
		}
		if host, port, err := net.SplitHostPort(h); err == nil {
			if host == "" || port == "" {
				return nil, fmt.Errorf("redirect host %q: want HOST or HOST:PORT", h)
			}
		} else if strings.Contains(h, ":") {
			// Only a bare IPv6 address has colons and no port; it matches
			// what url.URL.Hostname returns.
			if ip := net.ParseIP(strings.Trim(h, "[]")); ip == nil || ip.To4() != nil {
				return nil, fmt.Errorf("redirect host %q: want HOST or HOST:PORT", h)
			}
			h = strings.Trim(h, "[]")
		}
		out = append(out, h)
	}
	return out, nil
}
