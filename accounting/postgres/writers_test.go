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
	dsn := requireServer(t).DSN("postgres")
	rules := accountingtest.Rules
	schema := newSchema()
	const users, torrents, peers, steps = 7, 5, 300, 30
	backends := []*Backend{openBackend(t, dsn, schema, rules), openBackend(t, dsn, schema, rules), openBackend(t, dsn, schema, rules)}
	ctx := context.Background()
	for u := range users {
		if err := backends[0].PutUser(ctx, accounting.User{ID: uint64(u + 1), Passkey: accountingtest.Passkey(uint64(u + 1)), CanLeech: true, UpFactor: 100, DownFactor: 100}); err != nil {
			t.Fatal(err)
		}
	}
	for n := range torrents {
		if err := backends[1].PutTorrent(ctx, accounting.Torrent{InfoHash: trackertest.Hash(n + 1), UpFactor: 100, DownFactor: 100}); err != nil {
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
		size := 40 + 17*i
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
	checkModel(t, m, backends[2])
	if m.Users[1].Snatches == 0 || m.Users[1].Uploaded == 0 {
		t.Fatalf("the model credits user 1 with %+v; want bytes and snatches", *m.Users[1])
	}
}
