package postgres

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/postgres/pgtest"
)

// The tests share one server, started by TestMain; each test gets
// schemas of its own in its database. Tests that stop the server start
// their own.
var (
	server    *pgtest.Server
	serverErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	server, serverErr = pgtest.Start(pgtest.Config{})
	if errors.Is(serverErr, pgtest.ErrNoPostgres) && os.Getenv("CI") == "" {
		// Examples cannot skip: leave them out.
		flag.Set("test.skip", "^Example")
	}
	if serverErr == nil {
		exampleDSN = server.DSN("postgres")
	}
	code := m.Run()
	closeBench()
	if server != nil {
		if err := server.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// requireServer returns the shared server, or skips t when PostgreSQL is
// not installed (fails under CI, which installs it).
func requireServer(t testing.TB) *pgtest.Server {
	t.Helper()
	switch {
	case serverErr == nil:
		return server
	case errors.Is(serverErr, pgtest.ErrNoPostgres) && os.Getenv("CI") == "":
		t.Skip(serverErr)
	case errors.Is(serverErr, pgtest.ErrNoPostgres):
		t.Fatalf("%v; CI must install it (scripts/debian-packages.txt)", serverErr)
	default:
		t.Fatalf("starting PostgreSQL: %v", serverErr)
	}
	return nil
}

var schemas atomic.Int64

// newSchema returns a schema name no test used yet.
func newSchema() string { return fmt.Sprintf("test_%d", schemas.Add(1)) }

// openBackend opens a backend over schema of the shared server's
// database, closed at the end of the test.
func openBackend(t testing.TB, dsn, schema string, rules accounting.Rules) *Backend {
	t.Helper()
	b, err := Open(context.Background(), Config{DSN: dsn, Schema: schema, Rules: rules})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
