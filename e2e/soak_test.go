package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/leash-dev/leash/internal/testchild"
	"github.com/leash-dev/leash/internal/testpg"
	"github.com/leash-dev/leash/internal/testvault"
)

// soakSample is one reading of a leash process's resources.
type soakSample struct {
	at           time.Duration // since the start
	fds, threads int
	rssKiB       int
}

// sampleProc reads /proc/PID/fd and /proc/PID/status (leash is non-dumpable:
// the test reads them as root).
func sampleProc(pid int) (soakSample, error) {
	var s soakSample
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(ents)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "Threads:":
			s.threads, _ = strconv.Atoi(f[1])
		case "VmRSS:":
			s.rssKiB, _ = strconv.Atoi(f[1])
		}
	}
	return s, nil
}

// slopePerHour is the least-squares slope of y over the samples, per hour.
func slopePerHour(samples []soakSample, y func(soakSample) int) float64 {
	n := float64(len(samples))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, s := range samples {
		x, v := s.at.Hours(), float64(y(s))
		sx, sy, sxx, sxy = sx+x, sy+v, sxx+x*x, sxy+x*v
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// soakReport is what one leash instance did during a soak.
type soakReport struct {
	name                string
	handovers, renewals int
	appCredentials      int // connections the app made with a new credential
	failures            []string
	samples             []soakSample
	fdSlope, thrSlope   float64 // per hour
	rssSlope            float64 // KiB per hour
	minFds, maxFds      int
	firstRSS, lastRSS   int
}

func (r *soakReport) String() string {
	return fmt.Sprintf("%s: %d hand-overs, %d renewals, %d app connections, %d failures; fds %d..%d (slope %+.1f/h), threads slope %+.1f/h, RSS %d->%d KiB (slope %+.0f KiB/h), %d samples",
		r.name, r.handovers, r.renewals, r.appCredentials, len(r.failures), r.minFds, r.maxFds, r.fdSlope, r.thrSlope, r.firstRSS, r.lastRSS, r.rssSlope, len(r.samples))
}

// soak runs leash in signal and in restart mode side by side on 5s
// database leases (max ttl 10s: one renewal, then a hand-over every few
// seconds) for d, with pgApp querying every 20ms as the child. It samples
// each leash's fds, threads and RSS every second.
func soak(t *testing.T, d time.Duration) []*soakReport {
	srv := testvault.Shared(t)
	cluster := testpg.NewCluster(t)
	db := cluster.Database(t)
	db.Exec(t, "CREATE TABLE app_data (id int)")
	db.Exec(t, "INSERT INTO app_data VALUES (1)")
	creds := srv.Database(t, db.VaultURL(), db.User, db.Password, 5*time.Second, 10*time.Second)
	env := append(vaultEnv(srv.Addr, srv.RootToken),
		fmt.Sprintf(testchild.EnvPGURL+"=postgres://127.0.0.1:%d/%s?sslmode=disable", cluster.Port, db.Name))

	modes := []struct {
		name string
		args []string
	}{
		{"signal", []string{"--on-rotate", "signal", "--reload-grace", "500ms"}},
		{"restart", []string{"--on-rotate", "restart", "--kill-timeout", "5s"}},
	}
	reports := make([]*soakReport, len(modes))
	var wg sync.WaitGroup
	for i, m := range modes {
		r := &soakReport{name: m.name, minFds: 1 << 30}
		reports[i] = r
		args := append([]string{"--log-level", "info", "-s", "db=" + creds}, m.args...)
		lp := Start(t, env, append(append(args, "--"), testchild.Argv(t, "pgapp")...)...)
		start := time.Now()
		var connected atomic.Int32
		connects := make(chan struct{}, 1<<16) // one per connection
		var appFailures []string
		appDone := make(chan struct{})
		wg.Add(2)
		go func() { // the app's reports, until its output ends
			defer wg.Done()
			defer close(appDone)
			for l := range lp.Out.lines {
				switch {
				case strings.HasPrefix(l, "user "):
					connected.Add(1)
					connects <- struct{}{}
				case strings.HasPrefix(l, "pw "):
				default:
					appFailures = append(appFailures, "app: "+l)
				}
			}
		}()
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for time.Since(start) < d {
				select {
				case <-tick.C:
				case <-lp.done:
					r.failures = append(r.failures, fmt.Sprintf("leash exited early: %v", lp.err))
					return
				}
				s, err := sampleProc(lp.Cmd.Process.Pid)
				if err != nil {
					continue
				}
				s.at = time.Since(start)
				r.samples = append(r.samples, s)
			}
			// Stop between hand-overs: right after the app has connected
			// with the next credential, seconds before the one after.
			for len(connects) > 0 {
				<-connects
			}
			select {
			case <-connects:
			case <-time.After(60 * time.Second):
			}
			lp.Cmd.Process.Signal(syscall.SIGTERM)
			<-lp.done
			<-appDone
			r.appCredentials = int(connected.Load())
			r.failures = append(r.failures, appFailures...)
			if lp.err != nil {
				r.failures = append(r.failures, fmt.Sprintf("leash: %v", lp.err))
			}
			r.handovers = len(lp.Log.Events(evRotated))
			r.renewals = len(lp.Log.Events(evRenewed))
			for _, rec := range lp.Log.Events("") {
				if rec.Event == evLost || (strings.HasPrefix(rec.Event, "child_") && rec.Outcome != "ok") {
					r.failures = append(r.failures, fmt.Sprintf("audit event %s %s: %s", rec.Event, rec.Outcome, rec.Error))
				}
			}
			// Errors that have no audit event (rendering, the reload signal).
			if n := lp.Log.Count("[ERROR]"); n > 0 {
				r.failures = append(r.failures, fmt.Sprintf("leash logged %d errors", n))
			}
		}()
	}
	wg.Wait()
	for _, r := range reports {
		// The first samples include start-up; the trend is what matters.
		steady := r.samples[len(r.samples)/5:]
		for _, s := range steady {
			r.minFds, r.maxFds = min(r.minFds, s.fds), max(r.maxFds, s.fds)
		}
		if len(steady) > 0 {
			r.firstRSS, r.lastRSS = steady[0].rssKiB, steady[len(steady)-1].rssKiB
		}
		r.fdSlope = slopePerHour(steady, func(s soakSample) int { return s.fds })
		r.thrSlope = slopePerHour(steady, func(s soakSample) int { return s.threads })
		r.rssSlope = slopePerHour(steady, func(s soakSample) int { return s.rssKiB })
		t.Log(r)
	}
	if ids := leaseIDs(t, srv, creds); len(ids) > 0 {
		t.Errorf("%d leases left after the soak", len(ids))
	}
	return reports
}

// checkSoak applies the soak's pass criteria: no failed hand-over, every
// hand-over reached the app, and no descriptor leak.
func checkSoak(t *testing.T, reports []*soakReport) {
	for _, r := range reports {
		for _, f := range r.failures {
			t.Errorf("%s: %s", r.name, f)
		}
		if r.handovers < 2 {
			t.Errorf("%s: only %d hand-overs", r.name, r.handovers)
		}
		// One connection per credential: the first plus each hand-over.
		if r.appCredentials != r.handovers+1 {
			t.Errorf("%s: the app connected with %d credentials after %d hand-overs", r.name, r.appCredentials, r.handovers)
		}
		// A leak of one descriptor per hand-over would exceed this.
		if r.maxFds-r.minFds > 4 {
			t.Errorf("%s: leash's fd count ranged %d..%d", r.name, r.minFds, r.maxFds)
		}
	}
}

// TestSoakShort is the soak in miniature for every test run (the full one
// is TestSoak, behind the soak build tag).
func TestSoakShort(t *testing.T) {
	t.Parallel()
	checkSoak(t, soak(t, 15*time.Second))
}
