package lease_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/leash-dev/leash/lease"
)

// The life of a Manager as package main drives it: Start before the child
// runs, Run alongside it, Retire once the child has switched, Close at exit.
func Example() {
	m, err := lease.New(lease.Config{
		Auth:   lease.AuthConfig{Method: "approle", RoleIDFile: "/run/role_id", SecretIDFile: "/run/secret_id"},
		Specs:  []lease.Spec{{ID: "db", Path: "database/creds/app"}},
		Logger: hclog.Default().Named("lease"),
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	snap, err := m.Start(ctx) // every secret, or an error naming the path
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for next := range m.Updates() {
			// render next, reload or restart the child, then:
			m.Retire(snap)
			snap = next
		}
	}()
	if err := m.Run(ctx); errors.Is(err, lease.ErrLeaseLost) {
		log.Print("credentials lost: stop the child") // fail closed
	}
	closeCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	m.Close(closeCtx)
}
