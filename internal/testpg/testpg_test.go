package testpg

import (
	"strings"
	"testing"
)

func TestDatabase(t *testing.T) {
	t.Parallel()
	db := Database(t)
	db.Exec(t, "CREATE TABLE t (x int)")
	db.Exec(t, `CREATE ROLE "leash_probe_`+db.Name+`" LOGIN PASSWORD 'pw'`)
	t.Cleanup(func() { db.Exec(t, `DROP ROLE IF EXISTS "leash_probe_`+db.Name+`"`) })
	if !db.RoleExists(t, "leash_probe_"+db.Name) {
		t.Fatal("role not found after CREATE ROLE")
	}
}

func TestClusterChecksPasswords(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	db := c.Database(t)
	if err := db.Connect(c.User, c.Password); err != nil {
		t.Fatalf("superuser with right password: %v", err)
	}
	err := db.Connect(c.User, "wrong")
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	if !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("wrong password: unexpected error %v", err)
	}
	db.Exec(t, `CREATE ROLE expired LOGIN PASSWORD 'pw' VALID UNTIL '2000-01-01'`)
	if err := db.Connect("expired", "pw"); err == nil {
		t.Fatal("expired role could log in")
	}
}
