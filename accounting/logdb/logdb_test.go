package logdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/accountingtest"
	"github.com/annuaire/tracker/accounting/logdb/internal/workload"
)

var testRules = accounting.Rules{PeerTTL: time.Hour, SeedGap: 45 * time.Minute}

func open(t testing.TB, dir string, opts Options) *DB {
	t.Helper()
	db, err := Open(dir, testRules, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// abandon drops db as a crash would: no snapshot, files closed, lock
// released.
func abandon(db *DB) {
	db.mu.Lock()
	db.closed = true
	db.finish.Wait()
	db.log.Close()
	db.lock.Close()
	db.smu.Lock()
	db.st.free()
	db.st = nil
	db.smu.Unlock()
	db.mu.Unlock()
}

// compare checks every user, torrent and history of m against db.
func compare(t *testing.T, db *DB, m *accountingtest.Model, now time.Time) {
	t.Helper()
	ctx := context.Background()
	bad := 0
	for id := range m.Users {
		want, _ := m.User(id, now)
		got, err := db.User(ctx, id)
		if err != nil || got != want {
			t.Errorf("User(%d) = %+v, %v; want %+v", id, got, err, want)
			bad++
		}
		wantH := m.UserTorrents(id, now)
		gotH, err := db.UserTorrents(ctx, id)
		if err != nil || len(gotH) != len(wantH) {
			t.Errorf("UserTorrents(%d) = %d rows, %v; want %d", id, len(gotH), err, len(wantH))
			bad++
		} else {
			for i := range gotH {
				if !historyEqual(gotH[i], wantH[i]) {
					t.Errorf("UserTorrents(%d)[%d] = %+v; want %+v", id, i, gotH[i], wantH[i])
					bad++
				}
			}
		}
		if bad > 5 {
			t.FailNow()
		}
	}
	for h := range m.Torrents {
		want, _ := m.Torrent(h, now)
		got, err := db.Torrent(ctx, h)
		if err != nil || got != want {
			t.Fatalf("Torrent(%x) = %+v, %v; want %+v", h, got, err, want)
		}
	}
}

func historyEqual(a, b accounting.History) bool {
	return a.InfoHash == b.InfoHash && a.Uploaded == b.Uploaded && a.Downloaded == b.Downloaded &&
		a.RawUploaded == b.RawUploaded && a.RawDownloaded == b.RawDownloaded && a.SeedTime == b.SeedTime &&
		a.FirstSeen.Equal(b.FirstSeen) && a.LastSeen.Equal(b.LastSeen) && a.CompletedAt.Equal(b.CompletedAt) &&
		a.CompletedAt.IsZero() == b.CompletedAt.IsZero() && a.Active == b.Active
}

// TestModel applies generated announces (sessions, completions, stops,
// restarts, duplicates) and checks every total against Credit run over
// maps, then again after a reopen from the snapshot, and after a reopen
// that replays the log.
func TestModel(t *testing.T) {
	dir := t.TempDir()
	g := workload.New(workload.Config{Users: 300, Peers: 1000, Torrents: 200, Seed: 7})
	now := time.Unix(0, g.Now()).Add(2 * time.Minute)
	opts := Options{Now: func() time.Time { return now }, SnapshotBytes: 200 << 10}
	db := open(t, dir, opts)
	m := accountingtest.NewModel(testRules)
	ctx := context.Background()
	var buf []accounting.Record
	for i := range 40 {
		if i < 2 {
			buf = g.Fill(buf[:0], i*500, 500)
		} else {
			buf = g.Next(buf[:0], 400)
		}
		if err := db.Apply(ctx, buf); err != nil {
			t.Fatal(err)
		}
		m.Apply(buf)
	}
	now = time.Unix(0, g.Now())
	compare(t, db, m, now)
	db.finish.Wait()
	if s := db.Stats(); s.Snapshots == 0 || s.Commits != 40 {
		t.Errorf("Stats = %+v; want 40 commits and some snapshots", s)
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open(t, dir, opts)
	compare(t, db, m, now)

	// More batches, then a crash: the reopened database replays the log.
	for range 5 {
		buf = g.Next(buf[:0], 400)
		if err := db.Apply(ctx, buf); err != nil {
			t.Fatal(err)
		}
		m.Apply(buf)
	}
	abandon(db)
	db = open(t, dir, opts)
	now = time.Unix(0, g.Now())
	compare(t, db, m, now)
}

func rec(user uint64, hash byte, peer byte, up, down, left int64, ev tracker.Event, at int64) accounting.Record {
	r := accounting.Record{User: user, Uploaded: up, Downloaded: down, Left: left, Event: ev, Key: 9, Time: at,
		UpFactor: 1_000_000, DownFactor: 1_000_000}
	r.InfoHash[0], r.PeerID[0] = hash, peer
	return r
}

// TestCreditRule walks one peer through the cases of accounting.Credit.
func TestCreditRule(t *testing.T) {
	const min = int64(time.Minute)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	now := time.Unix(0, t0+120*min)
	db := open(t, t.TempDir(), Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	type totals struct{ up, down, rawUp, rawDown, snatches int64 }
	for _, step := range []struct {
		name string
		r    accounting.Record
		want totals // the user's totals after the step
	}{
		{"started", rec(1, 1, 1, 0, 0, 1000, tracker.EventStarted, t0), totals{}},
		{"growth", rec(1, 1, 1, 100, 400, 600, 0, t0+30*min), totals{100, 400, 100, 400, 0}},
		{"replay of growth", rec(1, 1, 1, 100, 400, 600, 0, t0+30*min), totals{100, 400, 100, 400, 0}},
		{"late, smaller", rec(1, 1, 1, 50, 200, 800, 0, t0+29*min), totals{100, 400, 100, 400, 0}},
		{"decrease without started", rec(1, 1, 1, 0, 10, 990, 0, t0+31*min), totals{100, 400, 100, 400, 0}},
		{"completed", rec(1, 1, 1, 150, 1000, 0, tracker.EventCompleted, t0+40*min), totals{150, 1000, 150, 1000, 1}},
		{"completed again", rec(1, 1, 1, 150, 1000, 0, tracker.EventCompleted, t0+41*min), totals{150, 1000, 150, 1000, 1}},
		{"seeding", rec(1, 1, 1, 650, 1000, 0, 0, t0+70*min), totals{650, 1000, 650, 1000, 1}},
		{"retransmitted started", rec(1, 1, 1, 0, 0, 0, tracker.EventStarted, t0+71*min), totals{650, 1000, 650, 1000, 1}},
		{"stopped", rec(1, 1, 1, 700, 1000, 0, tracker.EventStopped, t0+80*min), totals{700, 1000, 700, 1000, 1}},
		{"new session", func() accounting.Record {
			r := rec(1, 1, 1, 20, 0, 0, tracker.EventStarted, t0+100*min)
			r.Key = 10
			return r
		}(), totals{720, 1000, 720, 1000, 1}},
		{"freeleech, double upload", func() accounting.Record {
			r := rec(1, 2, 1, 100, 500, 0, tracker.EventCompleted, t0+110*min)
			r.UpFactor, r.DownFactor = accounting.Factor(200, 100, 100), accounting.Factor(100, 0, 100)
			return r
		}(), totals{920, 1000, 820, 1500, 2}},
	} {
		if err := db.Apply(ctx, []accounting.Record{step.r}); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		u, err := db.User(ctx, 1)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got := totals{u.Uploaded, u.Downloaded, u.RawUploaded, u.RawDownloaded, u.Snatches}
		if got != step.want {
			t.Errorf("%s: user totals %+v; want %+v", step.name, got, step.want)
		}
	}
	h, err := db.UserTorrents(ctx, 1)
	if err != nil || len(h) != 2 {
		t.Fatalf("UserTorrents = %+v, %v; want 2 rows", h, err)
	}
	// Seed time: 40 to 70 min seeding, 70 to 80 min then stopped; the
	// new session's first announce follows a stop and counts none.
	if h[0].SeedTime != 40*time.Minute || !h[0].CompletedAt.Equal(time.Unix(0, t0+40*min)) ||
		!h[0].FirstSeen.Equal(time.Unix(0, t0)) || !h[0].LastSeen.Equal(time.Unix(0, t0+100*min)) || !h[0].Active {
		t.Errorf("history on torrent 1 = %+v; want 40m seeding, completed at +40m, seen from +0 to +100m, active", h[0])
	}
	if h[1].Uploaded != 200 || h[1].Downloaded != 0 || h[1].RawDownloaded != 500 || h[1].CompletedAt.IsZero() {
		t.Errorf("history on torrent 2 = %+v; want 200 up, 0 down (500 raw), completed", h[1])
	}
	tt, err := db.Torrent(ctx, tracker.InfoHash{1})
	if err != nil || tt.Uploaded != 720 || tt.Downloaded != 1000 || tt.Snatches != 1 || tt.Seeders != 1 || tt.Leechers != 0 {
		t.Errorf("Torrent(1) = %+v, %v; want 720 up, 1000 down, 1 snatch, 1 seeder", tt, err)
	}
}

// TestApplyTwice: a batch applied again, whole or in part, after more
// batches or right away, changes nothing.
func TestApplyTwice(t *testing.T) {
	g := workload.New(workload.Config{Users: 50, Peers: 200, Torrents: 30, Seed: 3})
	now := time.Unix(0, g.Now())
	db := open(t, t.TempDir(), Options{Now: func() time.Time { return now }})
	m := accountingtest.NewModel(testRules)
	ctx := context.Background()
	var prev []accounting.Record
	for i := range 30 {
		b := g.Next(nil, 100)
		if i == 0 {
			b = g.Fill(nil, 0, 200)
		}
		for range 2 {
			if err := db.Apply(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		if len(prev) > 0 {
			if err := db.Apply(ctx, prev[len(prev)/2:]); err != nil {
				t.Fatal(err)
			}
		}
		m.Apply(b)
		prev = b
	}
	now = time.Unix(0, g.Now())
	compare(t, db, m, now)
}

// TestConcurrentApply applies, from several goroutines at once, batches
// that interleave records of the same peers: whatever the order, each
// peer is credited its largest counters, once.
func TestConcurrentApply(t *testing.T) {
	db := open(t, t.TempDir(), Options{})
	ctx := context.Background()
	const workers, rounds, peers = 4, 50, 8
	t0 := time.Now().UnixNano()
	errc := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := range rounds {
				var b []accounting.Record
				for p := range peers {
					n := int64(i*workers + w + 1)
					r := rec(uint64(p%3+1), byte(p%2), byte(p), n*1000, n*10, 1, 0, t0+n)
					if n == 1 {
						r.Event = tracker.EventStarted
					}
					b = append(b, r)
				}
				if err := db.Apply(ctx, b); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range workers {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	top := int64(rounds * workers)
	var up int64
	for u := uint64(1); u <= 3; u++ {
		tot, err := db.User(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		up += tot.Uploaded
		if tot.Uploaded%(top*1000) != 0 || tot.Downloaded != tot.Uploaded/100 {
			t.Errorf("user %d: %+v; want whole multiples of the top counters", u, tot)
		}
	}
	if up != peers*top*1000 {
		t.Errorf("uploaded %d in all; want %d", up, peers*top*1000)
	}
}

func TestDirectory(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, Options{})
	ctx := context.Background()
	users, torrents, v0, err := db.Changes(ctx, 0)
	if err != nil || len(users)+len(torrents) != 0 {
		t.Fatalf("Changes(0) on a new database = %v, %v, %d, %v", users, torrents, v0, err)
	}
	alice := accounting.User{ID: 1, Passkey: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", CanLeech: true, UpFactor: 100, DownFactor: 100}
	bob := accounting.User{ID: 2, Passkey: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", UpFactor: 150, DownFactor: 50}
	free := accounting.Torrent{InfoHash: tracker.InfoHash{1}, UpFactor: 100, DownFactor: 0}
	for _, u := range []accounting.User{alice, bob} {
		if err := db.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutTorrent(ctx, free); err != nil {
		t.Fatal(err)
	}
	users, torrents, v1, err := db.Changes(ctx, v0)
	if err != nil || len(users) != 2 || users[0] != alice || users[1] != bob || len(torrents) != 1 || torrents[0] != free || v1 <= v0 {
		t.Fatalf("Changes(%d) = %+v, %+v, %d, %v; want alice, bob, the freeleech torrent", v0, users, torrents, v1, err)
	}
	if users, torrents, v, _ := db.Changes(ctx, v1); len(users)+len(torrents) != 0 || v != v1 {
		t.Errorf("Changes(%d) with nothing new = %v, %v, %d", v1, users, torrents, v)
	}
	// Bob loses leech rights twice, alice is deleted, the torrent too.
	bob.CanLeech, bob.DownFactor = false, 0
	gone := accounting.Torrent{InfoHash: free.InfoHash, Deleted: true, Reason: "duplicate of a better encode"}
	for range 2 {
		if err := db.PutUser(ctx, bob); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutUser(ctx, accounting.User{ID: 1, Deleted: true}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutTorrent(ctx, gone); err != nil {
		t.Fatal(err)
	}
	check := func(db *DB) {
		t.Helper()
		users, torrents, v2, err := db.Changes(ctx, v1)
		if err != nil || len(users) != 2 || users[0] != bob || users[1].ID != 1 || !users[1].Deleted || len(torrents) != 1 || torrents[0] != gone || v2 != v1+4 {
			t.Errorf("Changes(%d) = %+v, %+v, %d, %v; want bob once, alice deleted, the torrent deleted, version %d", v1, users, torrents, v2, err, v1+4)
		}
		if all, _, _, _ := db.Changes(ctx, 0); len(all) != 2 {
			t.Errorf("Changes(0) = %d users; want 2", len(all))
		}
		if _, err := db.User(ctx, 1); !errors.Is(err, accounting.ErrNotFound) {
			t.Errorf("User(deleted) = %v; want ErrNotFound", err)
		}
		if _, err := db.UserTorrents(ctx, 1); !errors.Is(err, accounting.ErrNotFound) {
			t.Errorf("UserTorrents(deleted) = %v; want ErrNotFound", err)
		}
		if u, err := db.User(ctx, 2); err != nil || u != (accounting.UserTotals{ID: 2}) {
			t.Errorf("User(2) = %+v, %v; want zero totals", u, err)
		}
		if h, err := db.UserTorrents(ctx, 2); err != nil || len(h) != 0 {
			t.Errorf("UserTorrents(2) = %v, %v; want none", h, err)
		}
		if _, err := db.Torrent(ctx, free.InfoHash); err != nil {
			t.Errorf("Torrent(deleted) = %v; a deleted torrent stays", err)
		}
		for _, err := range []error{
			func() error { _, err := db.User(ctx, 99); return err }(),
			func() error { _, err := db.UserTorrents(ctx, 99); return err }(),
			func() error { _, err := db.Torrent(ctx, tracker.InfoHash{99}); return err }(),
		} {
			if !errors.Is(err, accounting.ErrNotFound) {
				t.Errorf("unknown user or torrent: %v; want ErrNotFound", err)
			}
		}
	}
	check(db)
	db.Close()
	db = open(t, dir, Options{})
	check(db)

	for _, bad := range []accounting.User{
		{ID: 3, Passkey: "a passkey longer than thirty-two bytes"},
		{ID: 3, UpFactor: accounting.MaxFactor + 1},
	} {
		if err := db.PutUser(ctx, bad); err == nil {
			t.Errorf("PutUser(%+v) succeeded", bad)
		}
	}
	if err := db.PutTorrent(ctx, accounting.Torrent{DownFactor: accounting.MaxFactor + 1}); err == nil {
		t.Errorf("PutTorrent with a factor above the maximum succeeded")
	}
}

// TestActive: seeders, leechers and active histories are the peers that
// announced within PeerTTL and did not stop.
func TestActive(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	db := open(t, t.TempDir(), Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	at := func(d time.Duration) int64 { return now.Add(-d).UnixNano() }
	batch := []accounting.Record{
		rec(1, 1, 1, 0, 0, 0, tracker.EventStarted, at(10*time.Minute)),   // seeding
		rec(1, 1, 2, 0, 0, 500, tracker.EventStarted, at(59*time.Minute)), // leeching, same torrent
		rec(1, 2, 1, 0, 0, 500, tracker.EventStarted, at(61*time.Minute)), // expired
		rec(1, 3, 1, 0, 0, 0, tracker.EventStarted, at(20*time.Minute)),
		rec(1, 3, 1, 0, 0, 0, tracker.EventStopped, at(5*time.Minute)), // stopped
		rec(2, 1, 3, 0, 0, 10, tracker.EventStarted, at(time.Minute)),  // another user leeching
	}
	if err := db.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if u, _ := db.User(ctx, 1); u.Seeding != 1 || u.Leeching != 1 {
		t.Errorf("User(1) = %+v; want 1 seeding, 1 leeching", u)
	}
	if tt, _ := db.Torrent(ctx, tracker.InfoHash{1}); tt.Seeders != 1 || tt.Leechers != 2 {
		t.Errorf("Torrent(1) = %+v; want 1 seeder, 2 leechers", tt)
	}
	h, _ := db.UserTorrents(ctx, 1)
	if len(h) != 3 || !h[0].Active || h[1].Active || h[2].Active {
		t.Errorf("UserTorrents(1) = %+v; want 3, only the first active", h)
	}
	now = now.Add(time.Hour)
	if u, _ := db.User(ctx, 1); u.Seeding != 0 || u.Leeching != 0 {
		t.Errorf("an hour later, User(1) = %+v; want no peer", u)
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, Options{})
	if _, err := Open(dir, testRules, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v; want ErrLocked", err)
	}
	db.Close()
	open(t, dir, Options{}).Close()
	if err := db.Apply(context.Background(), []accounting.Record{rec(1, 1, 1, 0, 0, 0, 0, 1)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close = %v; want ErrClosed", err)
	}
	if _, err := db.User(context.Background(), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("User after Close = %v; want ErrClosed", err)
	}
}

// TestSchema: files of a newer schema are refused, clearly.
func TestSchema(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, Options{}).Close()
	name := filepath.Join(dir, snapName)
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	b[16] = schemaVersion + 1
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, testRules, Options{}); !errors.Is(err, ErrSchema) {
		t.Fatalf("Open of a newer schema = %v; want ErrSchema", err)
	}
	b[16] = schemaVersion
	b[len(b)-10] ^= 1
	os.WriteFile(name, b, 0o600)
	if _, err := Open(dir, testRules, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a damaged snapshot = %v; want ErrCorrupt", err)
	}
}

// TestTornLog: a frame cut short at the end of the log (a crash during a
// write) is dropped; damage in a log that others follow is an error.
func TestTornLog(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, Options{})
	ctx := context.Background()
	batch := []accounting.Record{rec(1, 1, 1, 100, 0, 0, tracker.EventStarted, 1)}
	if err := db.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	gen := db.gen
	abandon(db)
	name := filepath.Join(dir, logName(gen))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, opApply, 1})
	f.Close()
	db = open(t, dir, Options{})
	if u, err := db.User(ctx, 1); err != nil || u.Uploaded != 100 {
		t.Fatalf("after a torn frame, User(1) = %+v, %v; want 100 up", u, err)
	}
	abandon(db)

	// Two logs, the first damaged.
	gens, _ := logGens(dir)
	snap, _ := os.ReadFile(filepath.Join(dir, snapName))
	first := filepath.Join(dir, logName(gens[0]))
	f, _ = os.OpenFile(first, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{1, 0, 0, 0, 0, 0, 0, 0, opApply})
	f.Close()
	next, err := createLog(dir, gens[0]+1, testRules)
	if err != nil {
		t.Fatal(err)
	}
	next.Close()
	if _, err := Open(dir, testRules, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with a damaged log before the last = %v; want ErrCorrupt", err)
	}
	if now, _ := os.ReadFile(filepath.Join(dir, snapName)); string(now) != string(snap) {
		t.Errorf("a failed Open changed the snapshot")
	}
}

// TestSnapshotWhileApplying: a snapshot holds the ledger as it was when
// it began, however many batches change it while it is written.
func TestSnapshotWhileApplying(t *testing.T) {
	g := workload.New(workload.Config{Users: 1000, Peers: 3000, Torrents: 300, Seed: 9})
	defer func(n uint32) { snapshotBlock = n }(snapshotBlock)
	snapshotBlock = 8 // many turns of the lock, between which batches apply
	db := open(t, t.TempDir(), Options{SnapshotBytes: 1 << 40})
	m := accountingtest.NewModel(testRules)
	ctx := context.Background()
	apply := func(b []accounting.Record) {
		if err := db.Apply(ctx, b); err != nil {
			t.Error(err)
		}
	}
	for i := range 3 {
		b := g.Fill(nil, i*1000, 1000)
		apply(b)
		m.Apply(b)
	}
	now := time.Unix(0, g.Now())
	db.smu.Lock()
	hdr := db.st.freeze(99)
	db.smu.Unlock()
	for range 3 { // before the first row is written
		apply(g.Next(nil, 1000))
	}
	name := filepath.Join(t.TempDir(), "snap")
	done := make(chan error)
	go func() {
		f, err := os.Create(name)
		if err == nil {
			err = db.st.writeSnapshot(f, hdr, db.smu.RLocker(), nil)
			f.Close()
		}
		done <- err
	}()
	for range 10 {
		apply(g.Next(nil, 300))
		db.PutUser(ctx, accounting.User{ID: 5, Passkey: "changed"})
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	db.smu.Lock()
	db.st.thaw()
	db.smu.Unlock()

	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, next, err := readSnapshot(f, testRules)
	if err != nil || next != 99 {
		t.Fatalf("readSnapshot = %d, %v", next, err)
	}
	defer st.free()
	compare(t, &DB{st: st, opts: Options{Now: func() time.Time { return now }}}, m, now)
	if users, _ := st.changesSince(0); len(users) != 0 {
		t.Errorf("the snapshot has users put after it began: %+v", users)
	}
}

// TestSnapshotMemory: while a snapshot keeps more rows as they were than
// its bound, transactions wait for it, and the ledger stays exact.
func TestSnapshotMemory(t *testing.T) {
	defer func(n uint32, m int64) { snapshotBlock, snapshotMemory = n, m }(snapshotBlock, snapshotMemory)
	snapshotBlock, snapshotMemory = 8, 1
	g := workload.New(workload.Config{Users: 500, Peers: 1500, Torrents: 200, Seed: 4})
	now := time.Unix(0, g.Now())
	db := open(t, t.TempDir(), Options{SnapshotBytes: 100 << 10, Now: func() time.Time { return now }})
	m := accountingtest.NewModel(testRules)
	for i := range 60 {
		b := g.Next(nil, 100)
		if i < 15 {
			b = g.Fill(nil, i*100, 100)
		}
		if err := db.Apply(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		m.Apply(b)
	}
	db.finish.Wait()
	if s := db.Stats(); s.SnapshotWait == 0 || s.Snapshots == 0 {
		t.Errorf("Stats = %+v; want snapshots, and transactions that waited for them", s)
	}
	now = time.Unix(0, g.Now())
	compare(t, db, m, now)
}

// TestChangesCompact: a user put again and again leaves one change.
func TestChangesCompact(t *testing.T) {
	db := open(t, t.TempDir(), Options{})
	ctx := context.Background()
	var mid uint64
	for i := range 3000 {
		if err := db.PutUser(ctx, accounting.User{ID: uint64(i % 2), Passkey: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if i == 1500 {
			_, _, mid, _ = db.Changes(ctx, 0)
		}
	}
	users, _, v, err := db.Changes(ctx, 0)
	if err != nil || len(users) != 2 || v != 3000 || users[0].Passkey != "2998" || users[1].Passkey != "2999" {
		t.Fatalf("Changes(0) = %+v, %d, %v; want users 0 and 1 with their last passkeys, version 3000", users, v, err)
	}
	if users, _, _, _ := db.Changes(ctx, mid); len(users) != 2 {
		t.Errorf("Changes(%d) = %d users; want 2", mid, len(users))
	}
	if n := len(db.st.changes); n > 1024 {
		t.Errorf("%d entries in the change list for 2 users", n)
	}
}

// TestBulkPut: PutUsers and PutTorrents put everything with one sync, and
// a reopen after a crash replays each of them.
func TestBulkPut(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, Options{})
	ctx := context.Background()
	var users []accounting.User
	var torrents []accounting.Torrent
	for i := range 1000 {
		users = append(users, accounting.User{ID: uint64(i + 1), Passkey: fmt.Sprintf("%032d", i), CanLeech: i%2 == 0, UpFactor: 100, DownFactor: uint16(i % 3 * 50)})
		torrents = append(torrents, accounting.Torrent{InfoHash: tracker.InfoHash{byte(i), byte(i >> 8), 1}, UpFactor: 200, DownFactor: 0})
	}
	before := db.Stats().Commits
	if err := db.PutUsers(ctx, users); err != nil {
		t.Fatal(err)
	}
	if err := db.PutTorrents(ctx, torrents); err != nil {
		t.Fatal(err)
	}
	if n := db.Stats().Commits - before; n != 2 {
		t.Errorf("%d syncs for two bulk puts; want 2", n)
	}
	check := func(db *DB) {
		t.Helper()
		gotU, gotT, _, err := db.Changes(ctx, 0)
		if err != nil || len(gotU) != len(users) || len(gotT) != len(torrents) {
			t.Fatalf("Changes(0) = %d users, %d torrents, %v; want %d and %d", len(gotU), len(gotT), err, len(users), len(torrents))
		}
		for i := range gotU {
			if gotU[i] != users[i] {
				t.Fatalf("user %d = %+v; want %+v", i, gotU[i], users[i])
			}
		}
		for i := range gotT {
			if gotT[i] != torrents[i] {
				t.Fatalf("torrent %d = %+v; want %+v", i, gotT[i], torrents[i])
			}
		}
	}
	check(db)
	abandon(db)
	db = open(t, dir, Options{})
	check(db)

	bad := []accounting.User{users[0], {ID: 5000, Passkey: "a passkey longer than thirty-two bytes"}}
	if err := db.PutUsers(ctx, bad); err == nil {
		t.Error("PutUsers with a passkey too long succeeded")
	}
	if err := db.PutTorrents(ctx, []accounting.Torrent{{UpFactor: accounting.MaxFactor + 1}}); err == nil {
		t.Error("PutTorrents with a factor above the maximum succeeded")
	}
	if err := db.PutUsers(ctx, nil); err != nil {
		t.Errorf("PutUsers(nil) = %v", err)
	}
}
