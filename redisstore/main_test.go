//go:build unix

package redisstore_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/annuaire/tracker/internal/redisserver"
	"github.com/redis/go-redis/v9"
)

// server is the redis-server the tests share, each under key prefixes of
// its own; nil when redis-server is not installed.
var server *redisserver.Server

// exampleURL is the URL the examples connect to, the shared server's.
var exampleURL string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "redisstore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, err := redisserver.Start(dir)
	switch {
	case errors.Is(err, redisserver.ErrMissing) && os.Getenv("CI") == "":
		// Tests that need Redis skip; the examples, which cannot, are
		// left out.
		fmt.Fprintf(os.Stderr, "redisstore: %v: skipping the tests that need it\n", err)
		skip := "^Example"
		if s := flag.Lookup("test.skip").Value.String(); s != "" {
			skip += "|" + s
		}
		flag.Set("test.skip", skip)
	case err != nil:
		fmt.Fprintf(os.Stderr, "redisstore: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	default:
		server, exampleURL = srv, srv.URL()
	}
	code := m.Run()
	if srv != nil {
		srv.Kill()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// redisURL returns the URL of the shared server; it skips t without one.
func redisURL(t testing.TB) string {
	t.Helper()
	if server == nil {
		t.Skip("redis-server is not installed (Debian package redis-server)")
	}
	return server.URL()
}

// newClient returns a client of the shared server, closed when t ends.
func newClient(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(redisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	opt.ContextTimeoutEnabled = true
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

var prefixes atomic.Int64

// prefix returns a key prefix no other test uses.
func prefix() string { return fmt.Sprintf("test%d:", prefixes.Add(1)) }
