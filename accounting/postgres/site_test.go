package postgres

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/accountingtest"
	"github.com/annuaire/tracker/trackertest"
	"github.com/jackc/pgx/v5"
)

// siteConn connects to the database as a site would, with the schema on
// its search path.
func siteConn(t *testing.T, dsn, schema string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	if _, err := c.Exec(context.Background(), "SET search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return c
}

// eventually waits up to 10 seconds for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSiteWrites: a site writes users and torrents with plain SQL; a
// running Ledger picks every change up at its next poll, deletions
// included, and a transaction that commits after a later one is not
// missed.
func TestSiteWrites(t *testing.T) {
	dsn := requireServer(t).DSN("postgres")
	schema := newSchema()
	b := openBackend(t, dsn, schema, accountingtest.Rules)
	ctx := context.Background()
	l, err := accounting.Open(ctx, b, accounting.Config{PollInterval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(ctx) })
	site := siteConn(t, dsn, schema)
	run := func(sql string, args ...any) {
		t.Helper()
		if _, err := site.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	valid := func(pk string) bool {
		id, err := l.ValidatePasskey(ctx, pk)
		return err == nil && id.UserID != 0
	}
	pk1, pk2 := accountingtest.Passkey(1), accountingtest.Passkey(2)

	run(`INSERT INTO users (id, passkey) VALUES (1, $1)`, pk1)
	eventually(t, "a user inserted with SQL is not accepted", func() bool { return valid(pk1) })
	run(`UPDATE users SET passkey = $1 WHERE id = 1`, pk2)
	eventually(t, "a passkey changed with SQL is not in force", func() bool { return valid(pk2) && !valid(pk1) })
	run(`UPDATE users SET can_leech = false, up_factor = 200 WHERE id = 1`)
	eventually(t, "a user's factors changed with SQL are not in force", func() bool {
		req := tracker.AnnounceRequest{Left: 100}
		return errors.Is(l.AllowAnnounce(ctx, &req, tracker.Identity{UserID: 1}), accounting.ErrLeechingDisabled)
	})
	run(`DELETE FROM users WHERE id = 1`)
	eventually(t, "a user deleted with SQL is still accepted", func() bool { return !valid(pk2) })

	h := trackertest.Hash(1)
	allowed := func() error { return l.AllowTorrent(ctx, h, tracker.Identity{}) }
	run(`INSERT INTO torrents (info_hash) VALUES ($1)`, h[:])
	eventually(t, "a torrent inserted with SQL is not served", func() bool { return allowed() == nil })
	run(`UPDATE torrents SET deleted = true, reason = 'dupe' WHERE info_hash = $1`, h[:])
	eventually(t, "a torrent deleted with a reason is still served", func() bool {
		err := allowed()
		return err != nil && strings.HasSuffix(err.Error(), ": dupe")
	})
	run(`UPDATE torrents SET deleted = false WHERE info_hash = $1`, h[:])
	eventually(t, "a torrent restored is not served", func() bool { return allowed() == nil })
	run(`DELETE FROM torrents WHERE info_hash = $1`, h[:])
	eventually(t, "a torrent deleted from the table is still served", func() bool {
		return errors.Is(allowed(), tracker.ErrUnregisteredTorrent)
	})

	// A transaction that began first and commits last: its change is read
	// at a later poll, however many polls went by meanwhile.
	late, err := site.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := late.Exec(ctx, `INSERT INTO users (id, passkey) VALUES (3, $1)`, accountingtest.Passkey(3)); err != nil {
		t.Fatal(err)
	}
	other := siteConn(t, dsn, schema)
	if _, err := other.Exec(ctx, `INSERT INTO users (id, passkey) VALUES (4, $1)`, accountingtest.Passkey(4)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "user 4 is not accepted", func() bool { return valid(accountingtest.Passkey(4)) })
	time.Sleep(200 * time.Millisecond) // a few more polls
	if valid(accountingtest.Passkey(3)) {
		t.Fatal("user 3 accepted before its transaction committed")
	}
	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "user 3, whose transaction committed after user 4's, is never accepted", func() bool { return valid(accountingtest.Passkey(3)) })

	// What the Ledger would refuse, the tables refuse too.
	for _, sql := range []string{
		`INSERT INTO users (id, passkey) VALUES (5, 'short')`,
		`INSERT INTO users (id, passkey) VALUES (0, '` + accountingtest.Passkey(5) + `')`,
		`INSERT INTO users (id, passkey) VALUES (5, '` + accountingtest.Passkey(3) + `')`,
		`INSERT INTO users (id, passkey, up_factor) VALUES (5, '` + accountingtest.Passkey(5) + `', 1001)`,
		`INSERT INTO torrents (info_hash) VALUES ('\x0102')`,
		`INSERT INTO torrents (info_hash, reason) VALUES ('\x0102030405060708091011121314151617181920', E'a\nb')`,
	} {
		if _, err := site.Exec(ctx, sql); err == nil {
			t.Errorf("%s: accepted", sql)
		}
	}
}

// TestDirectoryErrors: the constraints' violations come back as the
// accounting package's errors.
func TestDirectoryErrors(t *testing.T) {
	dsn := requireServer(t).DSN("postgres")
	b := openBackend(t, dsn, newSchema(), accountingtest.Rules)
	ctx := context.Background()
	if err := b.PutUser(ctx, accounting.User{ID: 1, Passkey: accountingtest.Passkey(1), UpFactor: 100, DownFactor: 100}); err != nil {
		t.Fatal(err)
	}
	err := b.PutUser(ctx, accounting.User{ID: 2, Passkey: accountingtest.Passkey(1), UpFactor: 100, DownFactor: 100})
	if !errors.Is(err, accounting.ErrPasskeyInUse) {
		t.Errorf("a passkey another user holds: %v; want ErrPasskeyInUse", err)
	}
	var invalid *accounting.ValidationError
	err = b.PutUser(ctx, accounting.User{ID: 2, Passkey: "short"})
	if !errors.As(err, &invalid) || invalid.Field != "passkey" {
		t.Errorf("a short passkey: %v; want a ValidationError of passkey", err)
	}
	err = b.PutUser(ctx, accounting.User{ID: 1 << 63, Passkey: accountingtest.Passkey(3)})
	if !errors.As(err, &invalid) || invalid.Field != "id" {
		t.Errorf("an id over the largest bigint: %v; want a ValidationError of id", err)
	}
	err = b.PutTorrent(ctx, accounting.Torrent{InfoHash: trackertest.Hash(1), UpFactor: 2000})
	if !errors.As(err, &invalid) || invalid.Field != "upload_factor" {
		t.Errorf("a factor over MaxFactor: %v; want a ValidationError of upload_factor", err)
	}
	if _, err := b.User(ctx, 1<<63); !errors.Is(err, accounting.ErrNotFound) {
		t.Errorf("User(1<<63): %v; want ErrNotFound", err)
	}
}

// TestMigrations: trackers starting at once on an empty database create
// the schema once; a schema newer than the tracker is refused.
func TestMigrations(t *testing.T) {
	dsn := requireServer(t).DSN("postgres")
	schema := newSchema()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() {
			b, err := Open(ctx, Config{DSN: dsn, Schema: schema, Rules: accountingtest.Rules})
			if err == nil {
				b.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Open, six at once: %v", err)
		}
	}
	site := siteConn(t, dsn, schema)
	var n, v int
	if err := site.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_version`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if n != SchemaVersion || v != SchemaVersion {
		t.Errorf("schema_version: %d rows, version %d; want %d and %d", n, v, SchemaVersion, SchemaVersion)
	}
	openBackend(t, dsn, schema, accountingtest.Rules) // once more: nothing to do
	if _, err := site.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	if b, err := Open(ctx, Config{DSN: dsn, Schema: schema}); err == nil || !strings.Contains(err.Error(), "newer") {
		if b != nil {
			b.Close()
		}
		t.Errorf("Open over a newer schema: %v; want an error", err)
	}
}
