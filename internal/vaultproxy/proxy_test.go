package vaultproxy_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/leash-dev/leash/internal/testvault"
	"github.com/leash-dev/leash/internal/vaultproxy"
)

// client returns a root Vault client that talks through p and never retries,
// so every call is exactly one request.
func client(t *testing.T, v *testvault.Server, p *vaultproxy.Proxy) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = p.Addr()
	cfg.MaxRetries = 0
	cfg.Timeout = 30 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(v.RootToken)
	return c
}

// raw sends one request through the proxy with the root token.
func raw(t *testing.T, v *testvault.Server, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", v.RootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func deadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestForwardsAndCounts(t *testing.T) {
	t.Parallel()
	v := testvault.Shared(t)
	p := vaultproxy.Start(t, v.Addr)
	c := client(t, v, p)
	kv := v.KV(t, 1)

	if _, err := c.Logical().Write(kv+"/app", map[string]any{"password": "hunter2-forwarded"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		sec, err := c.Logical().Read(kv + "/app")
		if err != nil {
			t.Fatal(err)
		}
		if got := sec.Data["password"]; got != "hunter2-forwarded" {
			t.Fatalf("read through proxy: password %v", got)
		}
	}

	counts := p.Counts()
	if counts["PUT "+kv+"/app"] != 1 || counts["GET "+kv+"/app"] != 3 {
		t.Errorf("counts = %v, want 1 PUT and 3 GET of %s/app", counts, kv)
	}
	if n := p.Requests(kv + "/"); n != 4 {
		t.Errorf("Requests(%q) = %d, want 4", kv+"/", n)
	}
	if n := p.Requests("/v1/" + kv + "/"); n != 4 {
		t.Errorf("Requests with /v1/ prefix = %d, want 4", n)
	}
	if n := p.MaxPerSecond(kv); n < 1 || n > 4 {
		t.Errorf("MaxPerSecond = %d, want 1..4", n)
	}
	for _, r := range p.Log() {
		if r.Fault != "" || (r.Status != 200 && r.Status != 204) {
			t.Errorf("log entry %+v: want a forwarded 2xx", r)
		}
	}
	p.Reset()
	if n := p.Requests(""); n != 0 {
		t.Errorf("after Reset: %d requests", n)
	}
}

func TestRecordsLeaseIDOfRequestBodies(t *testing.T) {
	t.Parallel()
	v := testvault.Shared(t)
	p := vaultproxy.Start(t, v.Addr)
	c := client(t, v, p)
	issue := v.PKI(t, time.Hour)

	sec, err := c.Logical().Write(issue, map[string]any{"common_name": "a.example.test", "ttl": "10m"})
	if err != nil {
		t.Fatal(err)
	}
	if sec.LeaseID == "" {
		t.Fatal("pki issue returned no lease")
	}
	// PKI leases cannot be renewed; a revocation carries lease_id the same way.
	if err := c.Sys().Revoke(sec.LeaseID); err != nil {
		t.Fatal(err)
	}
	answered, err := p.WaitFor(deadline(t), func(r vaultproxy.Request) bool {
		return r.Path == "sys/leases/revoke" && r.Status == 204
	})
	if err != nil || answered.LeaseID != sec.LeaseID {
		t.Fatalf("WaitFor the answered revocation: %+v, %v", answered, err)
	}
	var revokes []vaultproxy.Request
	for _, r := range p.Log() {
		if r.Path == "sys/leases/revoke" {
			revokes = append(revokes, r)
		}
	}
	if len(revokes) != 1 || revokes[0].LeaseID != sec.LeaseID || revokes[0].Method != http.MethodPut || revokes[0].Status != 204 {
		t.Fatalf("revocations = %+v, want one PUT with lease %s answered 204", revokes, sec.LeaseID)
	}
	if revokes[0].Done.Before(revokes[0].Time) {
		t.Errorf("Done %v before Time %v", revokes[0].Done, revokes[0].Time)
	}
}

func TestDownRefusesAndDropsThenUpRecovers(t *testing.T) {
	t.Parallel()
	v := testvault.Shared(t)
	p := vaultproxy.Start(t, v.Addr)
	c := client(t, v, p)
	ctx := deadline(t)

	if _, err := c.Sys().Health(); err != nil {
		t.Fatal(err)
	}

	// A request held by Delay is in flight when the proxy goes down.
	p.Delay(time.Hour)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Logical().Read("sys/mounts")
		errc <- err
	}()
	if err := p.Wait(ctx, "sys/mounts", 1); err != nil {
		t.Fatal(err)
	}
	p.Down()
	if !p.IsDown() {
		t.Fatal("IsDown = false after Down")
	}
	select {
	case err := <-errc:
		var re *api.ResponseError
		if err == nil || errors.As(err, &re) {
			t.Fatalf("in-flight request during Down: err = %v, want a transport error", err)
		}
	case <-ctx.Done():
		t.Fatal("in-flight request not dropped by Down")
	}
	p.Clear()

	// New connections are refused (reset before any response) and counted.
	for i := range 3 {
		_, err := c.Sys().Health()
		var re *api.ResponseError
		if err == nil || errors.As(err, &re) {
			t.Fatalf("request %d while down: err = %v, want a transport error", i, err)
		}
	}
	if err := p.WaitRefused(ctx, 3); err != nil {
		t.Fatal(err)
	}
	var dropped int
	for _, r := range p.Log() {
		if r.Fault == vaultproxy.FaultDown {
			dropped++
		}
	}
	if dropped != 1 {
		t.Errorf("log has %d requests with fault down, want 1: %+v", dropped, p.Log())
	}

	p.Up()
	if _, err := c.Sys().Health(); err != nil {
		t.Fatalf("after Up: %v", err)
	}
	if got := len(p.Refused()); got < 3 {
		t.Errorf("Refused() = %d after Up, want the 3 earlier attempts kept", got)
	}
}

func TestDelayHoldsRequests(t *testing.T) {
	t.Parallel()
	v := testvault.Shared(t)
	p := vaultproxy.Start(t, v.Addr)
	c := client(t, v, p)

	const d = 300 * time.Millisecond
	p.Delay(d)
	start := time.Now()
	if _, err := c.Sys().Health(); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < d {
		t.Errorf("delayed request took %v, want at least %v", el, d)
	}

	// A client timeout shorter than the delay fails; the request never reaches Vault.
	p.Delay(time.Hour)
	c2 := client(t, v, p)
	c2.SetClientTimeout(200 * time.Millisecond)
	if _, err := c2.Sys().Health(); err == nil {
		t.Fatal("request with a 200ms timeout through a 1h delay succeeded")
	}
	p.Delay(0)
	if _, err := c.Sys().Health(); err != nil {
		t.Fatalf("after Delay(0): %v", err)
	}
}

func TestResetMidResponseAfterVaultActed(t *testing.T) {
	t.Parallel()
	v := testvault.Shared(t)
	p := vaultproxy.Start(t, v.Addr)
	c := client(t, v, p)
	kv := v.KV(t, 1)

	p.ResetMidResponse(1)
	_, err := c.Logical().Write(kv+"/x", map[string]any{"v": "written-before-reset"})
	var re *api.ResponseError
	if err == nil || errors.As(err, &re) {
		t.Fatalf("write with reset: err = %v, want a transport error", err)
	}
	// Vault applied the write although the client never got the answer.
	sec := v.Read(t, kv+"/x")
	if sec == nil || sec.Data["v"] != "written-before-reset" {
		t.Fatalf("direct read after reset write: %v", sec)
	}

	// A read whose body is cut in half: the client gets a broken response.
	p.ResetMidResponseOn(kv+"/x", 1)
	if _, err := c.Logical().Read(kv + "/x"); err == nil {
		t.Fatal("read with reset succeeded")
	}
	if sec, err := c.Logical().Read(kv + "/x"); err != nil || sec.Data["v"] != "written-before-reset" {
		t.Fatalf("read after the fault was used up: %v, %v", sec, err)
	}
	var resets int
	for _, r := range p.Log() {
		if r.Fault == vaultproxy.FaultReset {
			resets++
		}
	}
	if resets != 2 {
		t.Errorf("%d requests logged as reset, want 2", resets)
	}
}

func TestStatusWithRetryAfter(t *testing.T) {
	t.Parallel()
	v := testvault.Shared(t)
	p := vaultproxy.Start(t, v.Addr)

	p.Status(http.StatusTooManyRequests, 1500*time.Millisecond, 2)
	for i := range 2 {
		resp, body := raw(t, v, http.MethodGet, p.Addr()+"/v1/sys/mounts")
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
			t.Fatalf("request %d: %d Retry-After %q, want 429 and 2", i, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if !strings.Contains(body, `"errors"`) {
			t.Errorf("body %q is not a Vault error", body)
		}
	}
	if resp, _ := raw(t, v, http.MethodGet, p.Addr()+"/v1/sys/mounts"); resp.StatusCode != http.StatusOK {
		t.Fatalf("third request: %d, want 200 (fault used up)", resp.StatusCode)
	}

	// A path-scoped, unlimited fault leaves other paths alone until Clear.
	p.StatusOn("sys/mounts", http.StatusInternalServerError, 0, -1)
	for range 3 {
		if resp, _ := raw(t, v, http.MethodGet, p.Addr()+"/v1/sys/mounts"); resp.StatusCode != 500 || resp.Header.Get("Retry-After") != "" {
			t.Fatalf("scoped fault: %d Retry-After %q, want 500 without", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if resp, _ := raw(t, v, http.MethodGet, p.Addr()+"/v1/sys/health"); resp.StatusCode != http.StatusOK {
		t.Fatalf("other path under a scoped fault: %d", resp.StatusCode)
	}
	p.Clear()
	if resp, _ := raw(t, v, http.MethodGet, p.Addr()+"/v1/sys/mounts"); resp.StatusCode != http.StatusOK {
		t.Fatalf("after Clear: %d", resp.StatusCode)
	}
	var injected int
	for _, r := range p.Log() {
		if r.Fault == vaultproxy.FaultStatus {
			injected++
		}
	}
	if injected != 5 {
		t.Errorf("%d requests logged with an injected status, want 5", injected)
	}
}

func TestRedirect(t *testing.T) {
	t.Parallel()
	v := testvault.Shared(t)
	p := vaultproxy.Start(t, v.Addr)
	p.Redirect("http://127.0.0.1:1/", 1)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(p.Addr() + "/v1/sys/health?standbyok=true")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusTemporaryRedirect || loc != "http://127.0.0.1:1/v1/sys/health?standbyok=true" {
		t.Fatalf("%d Location %q, want 307 to the same path on the other address", resp.StatusCode, loc)
	}
	if resp, _ := raw(t, v, http.MethodGet, p.Addr()+"/v1/sys/health"); resp.StatusCode != http.StatusOK {
		t.Fatalf("second request: %d, want 200 (fault used up)", resp.StatusCode)
	}
	if log := p.Log(); len(log) != 2 || log[0].Fault != vaultproxy.FaultRedirect || log[0].Status != 307 {
		t.Errorf("log %+v, want the redirect recorded", log)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	t.Parallel()
	v := testvault.Shared(t)
	p := vaultproxy.Start(t, v.Addr)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Wait(ctx, "never", 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a canceled context: %v", err)
	}
}

func TestNewRejectsBadTarget(t *testing.T) {
	for _, target := range []string{"", "127.0.0.1:8200", "ftp://x", "http://"} {
		if p, err := vaultproxy.New(target); err == nil {
			p.Close()
			t.Errorf("New(%q) succeeded", target)
		}
	}
}

func TestMaxInWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms ...int) []time.Time {
		var ts []time.Time
		for _, m := range ms {
			ts = append(ts, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return ts
	}
	for _, tc := range []struct {
		name string
		ts   []time.Time
		want int
	}{
		{"empty", nil, 0},
		{"one", at(5), 1},
		{"spread", at(0, 1000, 2000, 3000), 1},
		{"burst across a calendar second", at(900, 950, 1050, 1100, 3000), 4},
		{"unsorted", at(3000, 100, 2999, 2500), 3},
		{"window end excluded", at(0, 999, 1999), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := vaultproxy.MaxInWindow(tc.ts, time.Second); got != tc.want {
				t.Errorf("MaxInWindow = %d, want %d", got, tc.want)
			}
		})
	}
}
