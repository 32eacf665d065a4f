// Command demo is the application `make demo` runs under leash. It shows
// what an application sees, without ever printing a secret:
//
//   - which credential it holds (a PostgreSQL username and its VALID UNTIL,
//     or a Vault token's accessor and expiry) and that the credential works;
//   - that its environment holds no secret: it searches /proc/self/environ
//     for the secret bytes it read from $DB_FILE;
//   - every rotation, announced by SIGHUP (leash --on-rotate signal), after
//     which it re-opens $DB_FILE and reads the new credential.
//
// It exits 0 by itself after -rotations rotations (or on SIGTERM/SIGINT),
// and 1 if the credential does not work or leaked into its environment.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	rotations := flag.Int("rotations", 3, "exit 0 after this many rotations (SIGHUPs with a new credential)")
	fileVar := flag.String("var", "DB_FILE", "environment variable naming the credential file")
	flag.Parse()
	os.Exit(run(*fileVar, *rotations))
}

func run(fileVar string, rotations int) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)

	path := os.Getenv(fileVar)
	if path == "" {
		say("FAIL: $%s is not set; run me under leash", fileVar)
		return 1
	}
	say("started; the credential arrives as %s=%s (no secret in the environment)", fileVar, path)
	if os.Getenv("VAULT_TOKEN") == "" {
		say("VAULT_TOKEN is not in my environment: leash removed its own token")
	} else {
		say("FAIL: VAULT_TOKEN is in my environment")
		return 1
	}
	prev, err := show(path)
	if err != nil {
		say("FAIL: %v", err)
		return 1
	}
	for seen := 0; seen < rotations; {
		sig := <-sigs
		if sig != syscall.SIGHUP {
			say("got %v; exiting", sig)
			return 0
		}
		// Re-open the path and read from the start: leash has replaced the
		// bytes before it sent the signal.
		say("SIGHUP: re-reading %s", path)
		id, err := show(path)
		if err != nil {
			say("FAIL: %v", err)
			return 1
		}
		if id == prev {
			say("(same credential as before; not counted as a rotation)")
			continue
		}
		seen++
		say("rotation %d of %d: %s -> %s", seen, rotations, prev, id)
		prev = id
	}
	say("saw %d rotations; exiting 0 (leash now revokes the last lease and its token)", rotations)
	return 0
}

func say(format string, args ...any) {
	fmt.Printf(format+"\n", args...)
}

// show reads the credential at path, proves it works, checks the
// environment for its secret bytes and prints who it is. It returns the
// credential's public identity (username or token accessor).
func show(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read credential: %w", err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		return "", errors.New("credential file is not JSON")
	}
	var id, expiry, secretName string
	var secret []byte
	switch {
	case str(data, "username") != "":
		secretName, secret = "password", []byte(str(data, "password"))
		id, expiry, err = checkPostgres(str(data, "username"), str(data, "password"))
	case str(data, "client_token") != "":
		secretName, secret = "token", []byte(str(data, "client_token"))
		id, expiry, err = checkToken(str(data, "client_token"))
	default:
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return "", fmt.Errorf("unknown credential with fields %v", keys)
	}
	if err != nil {
		return "", err
	}
	say("holding %s; %s", id, expiry)
	if err := checkEnviron(secret, raw); err != nil {
		return "", err
	}
	say("checked /proc/self/environ: no variable holds the %s or the file's bytes", secretName)
	return id, nil
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// checkEnviron fails when the environment holds the secret or the file's
// content, the two ways an env-based tool would have delivered them.
func checkEnviron(secret, raw []byte) error {
	env, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		return fmt.Errorf("read /proc/self/environ: %w", err)
	}
	if len(secret) == 0 {
		return errors.New("credential has an empty secret")
	}
	if bytes.Contains(env, secret) || bytes.Contains(env, bytes.TrimSpace(raw)) {
		return errors.New("LEAK: the secret is in my environment")
	}
	return nil
}

// checkPostgres logs in with the credential (host, port and database come
// from PGHOST, PGPORT and PGDATABASE, which are not secret) and reads the
// role's VALID UNTIL, which Vault sets at issue and moves at each renewal.
func checkPostgres(user, password string) (id, expiry string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return "", "", fmt.Errorf("postgres settings: %w", err)
	}
	cfg.User, cfg.Password = user, password
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", "", fmt.Errorf("log in to PostgreSQL as %s: %w", user, err)
	}
	defer conn.Close(ctx)
	var cur string
	var until *time.Time
	err = conn.QueryRow(ctx, "SELECT current_user, rolvaliduntil FROM pg_roles WHERE rolname = current_user").Scan(&cur, &until)
	if err != nil {
		return "", "", fmt.Errorf("query as %s: %w", user, err)
	}
	say("logged in to PostgreSQL database %s as %s", cfg.Database, cur)
	return "PostgreSQL role " + cur, "its VALID UNTIL is " + describe(until), nil
}

// checkToken looks the token up in Vault (VAULT_ADDR is not secret, so
// leash leaves it in the environment) and returns its accessor and expiry.
func checkToken(token string) (id, expiry string, err error) {
	addr := strings.TrimRight(os.Getenv("VAULT_ADDR"), "/")
	if addr == "" {
		return "", "", errors.New("VAULT_ADDR is not set")
	}
	req, err := http.NewRequest(http.MethodGet, addr+"/v1/auth/token/lookup-self", nil)
	if err != nil {
		return "", "", err
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return "", "", fmt.Errorf("look up token: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("look up token: HTTP %d", resp.StatusCode)
	}
	var out struct {
		Data struct {
			Accessor   string `json:"accessor"`
			ExpireTime string `json:"expire_time"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", "", fmt.Errorf("look up token: %w", err)
	}
	say("Vault accepts the token (auth/token/lookup-self)")
	var until *time.Time
	if t, err := time.Parse(time.RFC3339Nano, out.Data.ExpireTime); err == nil {
		until = &t
	}
	return "Vault token with accessor " + out.Data.Accessor, "it expires at " + describe(until), nil
}

func describe(t *time.Time) string {
	if t == nil {
		return "(no expiry)"
	}
	return fmt.Sprintf("%s (in %s)", t.Local().Format("15:04:05"), time.Until(*t).Round(time.Second))
}
