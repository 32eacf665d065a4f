package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/leash-dev/leash/internal/status"
)

// run prints the lease table of a running leash.
func (c *StatusCmd) run(ctx context.Context, w io.Writer) error {
	if !strings.Contains(c.StatusAddr, "/") {
		if _, _, err := net.SplitHostPort(c.StatusAddr); err != nil {
			return &usageError{fmt.Errorf("--status-addr %q: want a Unix socket path or host:port", c.StatusAddr)}
		}
	}
	client, base := status.Client(c.StatusAddr)
	if c.Check {
		return c.check(ctx, client, base, w)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/leases", nil)
	if err != nil {
		return &usageError{err}
	}
	resp, err := client.Do(req)
	if err != nil {
		// "dial unix PATH: connect: ..." rather than also the URL, which
		// for a socket names a made-up host.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &unavailableError{fmt.Errorf("leash status: %w (is leash running with --status-addr %s?)", err, c.StatusAddr)}
	}
	defer resp.Body.Close()
	var body struct{ Leases []status.Lease }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("leash status: bad answer from %s: %w", c.StatusAddr, err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// OUTPUTS are the names the user chose; SECRET is what leash asks
	// Vault for (the path, with a write's parameters).
	// Rows without a lease say so, and when Vault rotates a static role.
	fmt.Fprintln(tw, "OUTPUTS\tSECRET\tLEASE\tISSUED\tEXPIRES\tNEXT\tRENEWALS\tFAILURES")
	for _, r := range body.Leases {
		lease, next := r.Fingerprint, "renew "+fmtWhen(r.NextRenewal)
		switch {
		case r.Kind == "static":
			lease, next = "none (static role, rotates "+fmtWhen(r.NextRotation)+")", "read "+fmtWhen(r.NextRead)
		case r.Fingerprint == "":
			lease, next = "none", "read "+fmtWhen(r.NextRead)
		case r.NextRenewal.IsZero():
			next = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", orDash(strings.Join(r.Outputs, ",")), r.Name, lease,
			fmtWhen(r.Issued), fmtWhen(r.Expires), next, r.Renewals, r.Failures)
	}
	return tw.Flush()
}

// check prints /healthz and fails with exit status 1 when leash is not
// healthy or cannot be reached.
func (c *StatusCmd) check(ctx context.Context, client *http.Client, base string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return &usageError{err}
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(w, "unreachable: %v\n", err)
		return exitRequest(1)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprint(w, string(body))
	if resp.StatusCode != http.StatusOK {
		return exitRequest(1)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtWhen(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Until(t).Round(time.Second)
	if d >= 0 {
		return fmt.Sprintf("%s (in %s)", t.Local().Format(time.TimeOnly), d)
	}
	return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.TimeOnly), -d)
}
