// Package testpg gives tests a real PostgreSQL: a per-test database on the
// machine's server (127.0.0.1:5432, user postgres, trust auth; override with
// LEASH_TEST_PG_URL) and, for tests that must see passwords checked, a
// throwaway cluster with scram-sha-256 authentication.
//
// Without a reachable server a test skips, unless LEASH_REQUIRE_VAULT=1 or
// LEASH_REQUIRE_PG=1, where it fails.
package testpg

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leash-dev/leash/internal/devkit"
)

const defaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// DB is a database created for one test and dropped in t.Cleanup.
type DB struct {
	Name     string
	URL      string // connects as the admin user to this database
	Host     string
	Port     int
	User     string
	Password string // "" with trust auth
}

// VaultURL returns a Vault database-engine connection_url template for db.
func (d *DB) VaultURL() string {
	return fmt.Sprintf("postgresql://{{username}}:{{password}}@%s/%s?sslmode=disable",
		net.JoinHostPort(d.Host, strconv.Itoa(d.Port)), d.Name)
}

// URLFor returns a URL connecting to this database as user/password.
func (d *DB) URLFor(user, password string) string {
	u := &url.URL{Scheme: "postgres", User: url.UserPassword(user, password),
		Host: net.JoinHostPort(d.Host, strconv.Itoa(d.Port)), Path: "/" + d.Name, RawQuery: "sslmode=disable"}
	return u.String()
}

func skipOrFail(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("LEASH_REQUIRE_VAULT") == "1" || os.Getenv("LEASH_REQUIRE_PG") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// AdminURL is the server tests create databases on.
func AdminURL() string {
	if u := os.Getenv("LEASH_TEST_PG_URL"); u != "" {
		return u
	}
	return defaultURL
}

// Database creates a fresh database on the shared server.
func Database(t testing.TB) *DB {
	t.Helper()
	return databaseOn(t, AdminURL())
}

func databaseOn(t testing.TB, admin string) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		skipOrFail(t, "no PostgreSQL at "+redactURL(admin)+": "+err.Error())
	}
	defer conn.Close(ctx)
	name := "leash_" + devkit.RandHex(6)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	cfg := conn.Config()
	u, _ := url.Parse(admin)
	u.Path = "/" + name
	return &DB{Name: name, URL: u.String(), Host: cfg.Host, Port: int(cfg.Port), User: cfg.User, Password: cfg.Password}
}

// Exec runs sql on the test database as the admin user.
func (d *DB) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.URL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// RoleExists reports whether a login role named role exists on the server.
func (d *DB) RoleExists(t testing.TB, role string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.URL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&n); err != nil {
		t.Fatalf("query roles: %v", err)
	}
	return n > 0
}

// Connect connects to the test database as user/password and runs a query,
// returning the error (nil when the credentials work).
func (d *DB) Connect(user, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.URLFor(user, password))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// Cluster is a throwaway PostgreSQL cluster with scram-sha-256 auth on a
// free loopback port, stopped and removed in t.Cleanup.
type Cluster struct {
	Port     int
	User     string // superuser "postgres"
	Password string
	URL      string // superuser URL for the "postgres" database
	dir      string
	bin      string
	cred     *syscall.Credential
}

// NewCluster runs initdb and starts the cluster. As root it runs the server
// as the postgres user (PostgreSQL refuses to run as root).
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := pgBinDir()
	if bin == "" {
		skipOrFail(t, "no initdb/pg_ctl under /usr/lib/postgresql/*/bin or PATH")
	}
	dir, err := os.MkdirTemp("", "leash-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := &Cluster{User: "postgres", Password: devkit.RandHex(16), dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			skipOrFail(t, "running as root and no postgres user to run PostgreSQL as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(c.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c.cred != nil {
		os.Chown(pwfile, int(c.cred.Uid), int(c.cred.Gid))
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run("initdb", "-D", data, "-U", "postgres", "--auth=scram-sha-256", "--pwfile="+pwfile, "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	os.Remove(pwfile)
	for range 5 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c.Port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off", c.Port, dir)
		var out []byte
		out, err = c.run("pg_ctl", "-D", data, "-w", "-t", "60", "-l", filepath.Join(dir, "log"), "-o", opts, "start")
		if err == nil {
			break
		}
		if !strings.Contains(string(out)+readFile(filepath.Join(dir, "log")), "in use") {
			t.Fatalf("pg_ctl start: %v\n%s", err, out)
		}
	}
	t.Cleanup(func() { c.run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop") })
	c.URL = (&url.URL{Scheme: "postgres", User: url.UserPassword(c.User, c.Password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)), Path: "/postgres", RawQuery: "sslmode=disable"}).String()
	return c
}

// Database creates a fresh database in the cluster.
func (c *Cluster) Database(t testing.TB) *DB {
	t.Helper()
	return databaseOn(t, c.URL)
}

func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "HOME=" + c.dir}
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd.CombinedOutput()
}

func pgBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}
