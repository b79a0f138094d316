package postgres

import (
	"context"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/accountingtest"
	"github.com/annuaire/tracker/accounting/postgres/pgtest"
	"github.com/annuaire/tracker/trackertest"
)

// outageEnv sets how long TestServerOutage keeps the server down:
// ANNUAIRE_PG_OUTAGE=1m for the full minute.
const outageEnv = "ANNUAIRE_PG_OUTAGE"

// TestServerOutage stops the PostgreSQL server (a fast shutdown, as
// pg_ctl stop -m fast) while a tracker answers announces through a Ledger
// over it, keeps it down for a while (3 s, or ANNUAIRE_PG_OUTAGE), and
// starts it again. Every announce is answered; the backlog shows in
// Stats while the server is down; at the end the totals are exactly what
// the peers reported last.
func TestServerOutage(t *testing.T) {
	requireServer(t)
	outage := 3 * time.Second
	if v := os.Getenv(outageEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", outageEnv, v, err)
		}
		outage = d
	}
	srv, err := pgtest.Start(pgtest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx := context.Background()
	b := openBackend(t, srv.DSN("postgres"), DefaultSchema, accountingtest.Rules)
	const users, torrents, peers = 50, 20, 2000
	for u := range users {
		if err := b.PutUser(ctx, accounting.User{ID: uint64(u + 1), Passkey: accountingtest.Passkey(uint64(u + 1)), CanLeech: true, UpFactor: 100, DownFactor: 100}); err != nil {
			t.Fatal(err)
		}
	}
	for n := range torrents {
		if err := b.PutTorrent(ctx, accounting.Torrent{InfoHash: trackertest.Hash(n + 1), UpFactor: 100, DownFactor: 100}); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	l, err := accounting.Open(ctx, b, accounting.Config{
		Spool: filepath.Join(t.TempDir(), "spool"), BufferSize: 8192, BatchSize: 2000,
		FlushInterval: 100 * time.Millisecond, MaxRetryDelay: time.Second, ApplyTimeout: 5 * time.Second,
		PollInterval: tracker.Disabled, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tracker.New(tracker.Config{Passkeys: l, Torrents: l, Accounting: l, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		tr.Close()
		l.Close(ctx)
	}()

	// The load: each goroutine announces its peers in turn, paced at
	// rate announces a second in all, until stop; then each peer stops.
	const goroutines, rate = 4, 4000
	var (
		mu      sync.Mutex
		last    = map[int]outagePeer{}
		done    atomic.Int64
		failed  atomic.Int64
		stop    = make(chan struct{})
		loadEnd sync.WaitGroup
	)
	announce := func(p int, st outagePeer) {
		user, ih, id := uint64(p%users+1), trackertest.Hash(p%torrents+1), trackertest.ID(p)
		binary.BigEndian.PutUint32(id[8:], uint32(p))
		req := tracker.AnnounceRequest{
			InfoHash: ih, PeerID: id, Addr: trackertest.Addr4(p), Key: uint32(p + 1),
			Uploaded: st.up, Downloaded: st.down, Left: st.left, Event: st.ev,
			NumWant: -1, Passkey: accountingtest.Passkey(user),
		}
		if _, err := tr.Announce(ctx, &req); err != nil {
			if failed.Add(1) <= 3 {
				t.Errorf("announce of peer %d: %v", p, err)
			}
			return
		}
		mu.Lock()
		last[p] = st
		mu.Unlock()
		done.Add(1)
	}
	for g := range goroutines {
		loadEnd.Go(func() {
			tick := time.NewTicker(time.Second / (rate / goroutines / 10))
			defer tick.Stop()
			var st []outagePeer
			for p := g; p < peers; p += goroutines {
				st = append(st, outagePeer{left: 4 << 20})
			}
			for next := 0; ; {
				select {
				case <-stop:
					for i, s := range st {
						s.ev = tracker.EventStopped
						announce(g+i*goroutines, s)
					}
					return
				case <-tick.C:
				}
				for range 10 {
					i := next % len(st)
					next++
					s := &st[i]
					if !s.started {
						s.started, s.ev = true, tracker.EventStarted
					} else {
						s.ev = tracker.EventNone
						s.up += 1000 + int64(i)
						d := min(s.left, 1<<20)
						s.down += d
						s.left -= d
						if d > 0 && s.left == 0 {
							s.ev = tracker.EventCompleted
						}
					}
					announce(g+i*goroutines, *s)
				}
			}
		})
	}

	time.Sleep(time.Second)
	before := done.Load()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(outage)
	during := l.Stats()
	answered := done.Load() - before
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	close(stop)
	loadEnd.Wait()
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := l.Flush(fctx); err != nil {
		t.Fatalf("Flush after the outage: %v (%+v)", err, l.Stats())
	}
	after := l.Stats()
	t.Logf("%v outage: %d announces answered while the server was down; Stats then %+v; after %+v", outage, answered, during, after)
	if answered < int64(outage.Seconds()*rate/2) {
		t.Errorf("%d announces answered during the outage; want about %v worth at %d/s", answered, outage, rate)
	}
	if during.Backlog == 0 || during.FlushErrors == 0 || during.LastError == nil {
		t.Errorf("Stats during the outage: %+v; want a backlog, flush errors and the last one", during)
	}
	if after.Backlog != 0 || after.LastError != nil {
		t.Errorf("Stats after: %+v; want no backlog and no error", after)
	}
	if failed.Load() > 0 {
		t.Fatalf("%d announces failed", failed.Load())
	}

	// Every peer's last counters, credited once.
	want := map[uint64]accounting.UserTotals{}
	type pair struct {
		user uint64
		ih   tracker.InfoHash
	}
	snatched := map[pair]bool{}
	for p, st := range last {
		u := uint64(p%users + 1)
		w := want[u]
		w.Uploaded += st.up
		w.Downloaded += st.down
		if st.left == 0 && !snatched[pair{u, trackertest.Hash(p%torrents + 1)}] {
			snatched[pair{u, trackertest.Hash(p%torrents + 1)}] = true
			w.Snatches++
		}
		want[u] = w
	}
	for u, w := range want {
		got, err := b.User(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if got.Uploaded != w.Uploaded || got.Downloaded != w.Downloaded || got.RawUploaded != w.Uploaded || got.Snatches != w.Snatches || got.Seeding+got.Leeching != 0 {
			t.Errorf("user %d: %+v; want %d up, %d down, %d snatches, no active peer", u, got, w.Uploaded, w.Downloaded, w.Snatches)
		}
	}
}

type outagePeer struct {
	up, down, left int64
	ev             tracker.Event
	started        bool
}
