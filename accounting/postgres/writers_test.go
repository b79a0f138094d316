package postgres

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/accountingtest"
	"github.com/annuaire/tracker/trackertest"
)

// checkModel compares what backend b reports with m: the records applied
// in order with accounting.Credit, as a single backend applying them one
// at a time would.
func checkModel(t *testing.T, m *accountingtest.Model, b accounting.Backend) {
	t.Helper()
	ctx := context.Background()
	for id, want := range m.Users {
		got, err := b.User(ctx, id)
		if err != nil {
			t.Fatalf("User(%d): %v", id, err)
		}
		got.Seeding, got.Leeching = 0, 0
		if got != *want {
			t.Errorf("user %d: %+v; want %+v", id, got, *want)
		}
		rows, err := b.UserTorrents(ctx, id)
		if err != nil {
			t.Fatalf("UserTorrents(%d): %v", id, err)
		}
		for _, got := range rows {
			want := m.History[accountingtest.HistKey{User: id, InfoHash: got.InfoHash}]
			if want == nil {
				t.Errorf("user %d: a history row for %v, which it never announced", id, got.InfoHash)
				continue
			}
			if got.Uploaded != want.Uploaded || got.Downloaded != want.Downloaded || got.RawUploaded != want.RawUploaded ||
				got.RawDownloaded != want.RawDownloaded || got.SeedTime != want.SeedTime || !got.CompletedAt.Equal(want.CompletedAt) {
				t.Errorf("user %d on %v: %+v; want %+v", id, got.InfoHash, got, *want)
			}
		}
	}
	for h, want := range m.Torrents {
		got, err := b.Torrent(ctx, h)
		if err != nil {
			t.Fatalf("Torrent(%v): %v", h, err)
		}
		got.Seeders, got.Leechers = 0, 0
		if got != *want {
			t.Errorf("torrent %v: %+v; want %+v", h, got, *want)
		}
	}
}

// sessions returns the announces of peers that each start (peer p at
// minute p%10), download at their own pace, complete, seed and announce
// every minute until minute steps, ordered by time.
func sessions(base time.Time, users, torrents, peers, steps int) []accounting.Record {
	rnd := rand.New(rand.NewPCG(1, 2))
	var recs []accounting.Record
	order := make([]int, peers)
	for i := range order {
		order[i] = i
	}
	for s := range steps {
		rnd.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, p := range order {
			if s < p%10 {
				continue
			}
			const size = 1 << 20
			id := trackertest.ID(p)
			binary.BigEndian.PutUint32(id[8:], uint32(p))
			pace := int64(size/8 + p*997)
			s := s - p%10
			down := min(int64(s)*pace, size)
			r := accounting.Record{
				User: uint64(p%users + 1), InfoHash: trackertest.Hash(p%torrents + 1), PeerID: id,
				Key: uint32(p), Addr: trackertest.Addr4(p),
				Uploaded: int64(s) * int64(1000+p), Downloaded: down, Left: size - down,
				Time:     base.Add(time.Duration(s+p%10)*time.Minute + time.Duration(p)*time.Millisecond).UnixNano(),
				UpFactor: uint32(1_000_000 + 500_000*(p%2)), DownFactor: uint32(1_000_000 * (p % 3) / 2),
			}
			switch {
			case s == 0:
				r.Event = tracker.EventStarted
			case r.Left == 0 && int64(s-1)*pace < size && p%2 == 0:
				r.Event = tracker.EventCompleted // the others complete with left reaching 0
			}
			recs = append(recs, r)
		}
	}
	return recs
}

// TestWriters: several trackers, each with its own backend (its own
// connection pool), apply the same announces concurrently, in batches cut
// differently: a client reaching any of them, or its announce relayed to
// all. Every byte, snatch and second of seeding is counted once.
func TestWriters(t *testing.T) {
	m := applyConcurrently(t, []int{2, 2, 2}, []int{40, 57, 74}, 7, 5, 300, 30)
	if m.Users[1].Snatches == 0 || m.Users[1].Uploaded == 0 {
		t.Fatalf("the model credits user 1 with %+v; want bytes and snatches", *m.Users[1])
	}
}

// TestWritersLargeBatches is TestWriters with batches large enough to be
// split into transactions applied concurrently, by backends with
// different numbers of writers, and one applying small batches.
func TestWritersLargeBatches(t *testing.T) {
	applyConcurrently(t, []int{1, 2, 5}, []int{50, 2*minPart + 100, 5*minPart + 7}, 50, 9, 600, 20)
}

// TestApplySplits: a batch of 2*minPart records or more, over many users,
// is applied in Config.Writers transactions, each with its share of the
// users; a smaller one in one transaction.
func TestApplySplits(t *testing.T) {
	dsn := requireServer(t).DSN("postgres")
	rules := accountingtest.Rules
	ctx := context.Background()
	b, err := Open(ctx, Config{DSN: dsn, Schema: newSchema(), Rules: rules, Writers: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	const users = 30
	for u := range users {
		if err := b.PutUser(ctx, accounting.User{ID: uint64(u + 1), Passkey: accountingtest.Passkey(uint64(u + 1)), CanLeech: true, UpFactor: 100, DownFactor: 100}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.PutTorrent(ctx, accounting.Torrent{InfoHash: trackertest.Hash(1), UpFactor: 100, DownFactor: 100}); err != nil {
		t.Fatal(err)
	}
	recs := sessions(time.Now().Add(-time.Hour).Truncate(time.Second), users, 1, minPart, 10)
	if len(recs) < 4*minPart {
		t.Fatalf("%d records; want at least %d", len(recs), 4*minPart)
	}
	var mu sync.Mutex
	var txs int
	b.afterRead = func(bool) {
		mu.Lock()
		txs++
		mu.Unlock()
	}
	for _, c := range []struct {
		batch []accounting.Record
		want  int
	}{{recs[:2*minPart-1], 1}, {recs[2*minPart-1:], 3}, {recs, 3}} {
		txs = 0
		if err := b.Apply(ctx, c.batch); err != nil {
			t.Fatal(err)
		}
		if txs != c.want {
			t.Errorf("a batch of %d records: %d transactions; want %d", len(c.batch), txs, c.want)
		}
	}
	m := accountingtest.NewModel(rules)
	m.Apply(recs[:2*minPart-1])
	m.Apply(recs[2*minPart-1:])
	checkModel(t, m, b) // recs applied a second time changed nothing
}

// applyConcurrently opens a backend per element of writers (with that
// many writers) on one schema, puts the users and torrents of sessions,
// has backend i apply all of the sessions' records in batches of
// sizes[i], all at once, and checks the totals against the model, which
// it returns.
func applyConcurrently(t *testing.T, writers, sizes []int, users, torrents, peers, steps int) *accountingtest.Model {
	t.Helper()
	dsn := requireServer(t).DSN("postgres")
	rules := accountingtest.Rules
	schema := newSchema()
	ctx := context.Background()
	var backends []*Backend
	for _, w := range writers {
		b, err := Open(ctx, Config{DSN: dsn, Schema: schema, Rules: rules, Writers: w})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		backends = append(backends, b)
	}
	for u := range users {
		if err := backends[0].PutUser(ctx, accounting.User{ID: uint64(u + 1), Passkey: accountingtest.Passkey(uint64(u + 1)), CanLeech: true, UpFactor: 100, DownFactor: 100}); err != nil {
			t.Fatal(err)
		}
	}
	for n := range torrents {
		if err := backends[1%len(backends)].PutTorrent(ctx, accounting.Torrent{InfoHash: trackertest.Hash(n + 1), UpFactor: 100, DownFactor: 100}); err != nil {
			t.Fatal(err)
		}
	}
	recs := sessions(time.Now().Add(-time.Hour).Truncate(time.Second), users, torrents, peers, steps)
	m := accountingtest.NewModel(rules)
	m.Apply(recs)

	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, len(backends))
	for i, b := range backends {
		size := sizes[i]
		wg.Go(func() {
			<-start
			for from := 0; from < len(recs); from += size {
				if err := b.Apply(ctx, recs[from:min(from+size, len(recs))]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Apply: %v", err)
	}
	checkModel(t, m, backends[len(backends)-1])
	return m
}

// TestChangedUnderRead: another tracker changes a peer's baseline, or
// creates it, between a transaction's reading of the baselines and its
// writing them. The transaction must not write over what the other left:
// it is tried again, locking the rows it reads, and credits against the
// other's baseline.
func TestChangedUnderRead(t *testing.T) {
	dsn := requireServer(t).DSN("postgres")
	rules := accountingtest.Rules
	schema := newSchema()
	a, b := openBackend(t, dsn, schema, rules), openBackend(t, dsn, schema, rules)
	ctx := context.Background()
	if err := a.PutUser(ctx, accounting.User{ID: 1, Passkey: accountingtest.Passkey(1), CanLeech: true, UpFactor: 100, DownFactor: 100}); err != nil {
		t.Fatal(err)
	}
	h := trackertest.Hash(1)
	if err := a.PutTorrent(ctx, accounting.Torrent{InfoHash: h, UpFactor: 100, DownFactor: 100}); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	rec := func(peer int, minute int, up int64, ev tracker.Event) accounting.Record {
		return accounting.Record{User: 1, InfoHash: h, PeerID: trackertest.ID(peer), Key: uint32(peer), Addr: trackertest.Addr4(peer),
			Uploaded: up, Left: 100, Event: ev, Time: base.Add(time.Duration(minute) * time.Minute).UnixNano(),
			UpFactor: 1_000_000, DownFactor: 1_000_000}
	}
	m := accountingtest.NewModel(rules)
	apply := func(be *Backend, r accounting.Record) {
		t.Helper()
		if err := be.Apply(ctx, []accounting.Record{r}); err != nil {
			t.Fatal(err)
		}
		m.Apply([]accounting.Record{r})
	}
	// Peer 1 is stored; peer 2 is not, until b creates it.
	apply(a, rec(1, 0, 0, tracker.EventStarted))
	var tries []bool
	for _, c := range []struct {
		name  string
		other accounting.Record   // b's, between a's reading and writing
		batch []accounting.Record // a's
	}{
		// a reads peer 1 at 0 bytes; b moves it to 100: a's record
		// credits 200, not 300.
		{"moved", rec(1, 1, 100, tracker.EventNone), []accounting.Record{rec(1, 2, 300, tracker.EventNone)}},
		// a finds no peer 2; b creates it at 1000: a's record credits
		// 500, not 1500.
		{"created", rec(2, 1, 1000, tracker.EventStarted), []accounting.Record{rec(2, 2, 1500, tracker.EventNone)}},
	} {
		tries = tries[:0]
		a.afterRead = func(lock bool) {
			tries = append(tries, lock)
			if len(tries) == 1 {
				apply(b, c.other)
			}
		}
		if err := a.Apply(ctx, c.batch); err != nil {
			t.Fatal(err)
		}
		m.Apply(c.batch)
		if len(tries) != 2 || tries[0] || !tries[1] {
			t.Errorf("%s: tries (whether each locked): %v; want [false true]", c.name, tries)
		}
		checkModel(t, m, a)
	}
	if got := m.Users[1].Uploaded; got != 1800 {
		t.Fatalf("the model credits user 1 with %d bytes up; want 1800", got)
	}
}
