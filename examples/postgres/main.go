// Command app is the examples/postgres application: a service with a
// database/sql connection pool whose credentials come from leash.
//
// It reads the JSON credential leash delivers at $DB_FILE
// ({"password":"...","username":"..."}), opens a pool with it and queries
// from a few workers. On SIGHUP (leash --on-rotate signal) it re-reads
// $DB_FILE, opens a second pool with the new credential, checks it, swaps
// it in and closes the old one once no query uses it; if the new
// credential does not work it keeps the old pool. It never prints the
// password. SIGTERM or SIGINT stops it with exit 0.
//
// The database address comes from the usual libpq variables (PGHOST,
// PGPORT, PGDATABASE, PGSSLMODE), which hold nothing secret.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// pool is the current *sql.DB. Workers hold the read lock for one query;
// a swap takes the write lock, so when it returns no query runs on the old
// pool and it can be closed.
type pool struct {
	mu   sync.RWMutex
	db   *sql.DB
	user string
}

func main() {
	workers := flag.Int("workers", 4, "concurrent query loops")
	interval := flag.Duration("interval", 200*time.Millisecond, "pause between a worker's queries")
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.SetOutput(os.Stdout) // stderr is leash's log
	if err := run(*workers, *interval); err != nil {
		log.Printf("error: %v", err)
		os.Exit(1)
	}
}

func run(workers int, interval time.Duration) error {
	path := os.Getenv("DB_FILE")
	if path == "" {
		return errors.New("DB_FILE is not set: run me under leash -s db=database/creds/ROLE")
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)

	db, user, err := open(path)
	if err != nil {
		return err
	}
	p := &pool{db: db, user: user}
	log.Printf("connected as %s", user)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.work(ctx, interval)
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
		p.db.Close()
	}()

	for sig := range sigs {
		if sig != syscall.SIGHUP {
			log.Printf("%v: shutting down", sig)
			return nil
		}
		// leash replaced the bytes before signalling: re-open the path
		// and read it from the start.
		db, user, err := open(path)
		if err != nil {
			log.Printf("reload failed, keeping %s: %v", p.current(), err)
			continue
		}
		p.mu.Lock()
		old, oldUser := p.db, p.user
		p.db, p.user = db, user
		p.mu.Unlock()
		old.Close()
		log.Printf("reloaded: now %s (was %s)", user, oldUser)
	}
	return nil
}

func (p *pool) current() string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.user
}

// work queries until ctx is done, and logs the first success of each
// credential and every failure.
func (p *pool) work(ctx context.Context, interval time.Duration) {
	var lastOK string
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		p.mu.RLock()
		var who string
		err := p.db.QueryRowContext(ctx, "SELECT current_user").Scan(&who)
		user := p.user
		p.mu.RUnlock()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Printf("query failed as %s: %v", user, err)
		case who != user:
			log.Printf("query ran as %s, want %s", who, user)
		case who != lastOK:
			lastOK = who
			log.Printf("query ok as %s", who)
		}
	}
}

// open reads the credential at path and returns a checked pool using it.
func open(path string) (*sql.DB, string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("read credential: %w", err)
	}
	var cred struct{ Username, Password string }
	if err := json.Unmarshal(raw, &cred); err != nil || cred.Username == "" {
		return nil, "", errors.New("credential is not a JSON object with a username")
	}
	cfg, err := pgx.ParseConfig("") // PGHOST, PGPORT, PGDATABASE, PGSSLMODE
	if err != nil {
		return nil, "", fmt.Errorf("database settings: %w", err)
	}
	cfg.User, cfg.Password = cred.Username, cred.Password
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(8)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, "", fmt.Errorf("connect as %s: %w", cred.Username, err)
	}
	return db, cred.Username, nil
}
