package status

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Metric names: the /metrics contract (README, "Metrics"); keep them
// stable.
const (
	MetricLeaseExpiry          = "leash_lease_expiry_timestamp_seconds"
	MetricLeaseNextRenewal     = "leash_lease_next_renewal_timestamp_seconds"
	MetricStaticNextRotation   = "leash_static_next_rotation_timestamp_seconds"
	MetricRenewals             = "leash_renewals_total"
	MetricFailures             = "leash_failures_total"
	MetricRotations            = "leash_rotations_total"
	MetricChildRestarts        = "leash_child_restarts_total"
	MetricChildReloads         = "leash_child_reloads_total"
	MetricAuditDropped         = "leash_audit_records_dropped_total"
	MetricVaultRequestDuration = "leash_vault_request_duration_seconds"
)

// series is a counter's key: its name and labels, in the exposition
// format (label pairs in the order given).
func series(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	var b strings.Builder
	b.WriteString(name)
	for i := 0; i+1 < len(labels); i += 2 {
		sep := ","
		if i == 0 {
			sep = "{"
		}
		fmt.Fprintf(&b, "%s%s=%q", sep, labels[i], labels[i+1])
	}
	b.WriteString("}")
	return b.String()
}

// WriteMetrics writes the Prometheus text exposition format (0.0.4) by
// hand: a dozen series do not justify client_golang's 2.6 MB.
func (r *Recorder) WriteMetrics(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rows := r.sortedLocked()
	gauge := func(name, help string, val func(l Lease) (float64, bool)) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		for _, l := range rows {
			if v, ok := val(l); ok {
				fmt.Fprintf(w, "%s %g\n", series(name, "name", l.Name, "outputs", outputsLabel(l.Outputs), "path", l.Path), v)
			}
		}
	}
	gauge(MetricLeaseExpiry, "When the current lease expires (Unix time).", func(l Lease) (float64, bool) {
		return unixSeconds(l.Expires), !l.Expires.IsZero()
	})
	gauge(MetricLeaseNextRenewal, "When leash next renews or replaces the lease, or reads a secret without a lease again (Unix time).", func(l Lease) (float64, bool) {
		next := earliestTime(l.NextRenewal, l.NextRead)
		return unixSeconds(next), !next.IsZero()
	})
	gauge(MetricStaticNextRotation, "When Vault rotates a static role's credential next (Unix time).", func(l Lease) (float64, bool) {
		return unixSeconds(l.NextRotation), !l.NextRotation.IsZero()
	})
	counter := func(name, help string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		var keys []string
		for k := range r.counters {
			if strings.HasPrefix(k, name+"{") || k == name {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "%s %g\n", k, r.counters[k])
		}
	}
	counter(MetricRenewals, "Lease renewals that succeeded.")
	counter(MetricFailures, "Vault operations that failed (each retry counts).")
	counter(MetricRotations, "New credentials handed over before expiry.")
	counter(MetricChildRestarts, "Restarts of the child to pick up new credentials.")
	counter(MetricChildReloads, "Reload signals sent to the child.")
	counter(MetricAuditDropped, "Audit records a sink did not take (sink=\"syslog\": its queue was full or the system log refused them; sink=\"file\": a failed write).")
	r.latency.write(w, MetricVaultRequestDuration, "Duration of every HTTP request leash sent to Vault (logins, lookups, reads, renewals, revocations; each retry counts), from start-up on.")
}

// earliestTime returns the earlier non-zero time of a and b, or zero.
func earliestTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// outputsLabel is the outputs label: the output names joined by commas, so
// a lease feeding several outputs stays one series (summing per-output
// series would count its renewals once per output).
func outputsLabel(outs []string) string { return strings.Join(outs, ",") }

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// histogram is a fixed-bucket Prometheus histogram.
type histogram struct {
	bounds []float64
	counts []uint64
	sum    float64
	n      uint64
}

func newHistogram() histogram {
	b := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	return histogram{bounds: b, counts: make([]uint64, len(b))}
}

func (h *histogram) observe(v float64) {
	for i, b := range h.bounds {
		if v <= b {
			h.counts[i]++
		}
	}
	h.sum += v
	h.n++
}

func (h *histogram) write(w io.Writer, name, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	for i, b := range h.bounds {
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", name, b, h.counts[i])
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, h.n, name, h.sum, name, h.n)
}
