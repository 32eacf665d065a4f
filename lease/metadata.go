package lease

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// metadataGet GETs u from a cloud's instance metadata service with the
// header it demands, and returns the body. Failures are a cloudError whose
// source is src (the URL without its query). The body may be a token: it
// is never logged or put in an error.
func metadataGet(ctx context.Context, u, header, value string) ([]byte, error) {
	src := "metadata server " + strings.Split(u, "?")[0]
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &cloudError{Source: src, Err: err}
	}
	req.Header.Set(header, value)
	// Never through a proxy (the service is link-local), never redirected.
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
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, &cloudError{Source: src, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		// Error bodies say what is wrong ("service account not found",
		// "Identity not found"), never a token.
		msg := strings.TrimSpace(string(body[:min(len(body), 300)]))
		return nil, &cloudError{Source: src, Err: fmt.Errorf("%s: %s", resp.Status, msg)}
	}
	return body, nil
}
