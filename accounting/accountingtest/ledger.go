package accountingtest

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/trackertest"
)

// The Ledger tests run a tracker whose users and torrents are the
// Ledger's, over the backend under test behind a Flaky wrapper.

const (
	loadUsers    = 7
	loadTorrents = 5
)

// ledger opens a Ledger over f and a tracker that uses it; both are
// closed at the end of the test.
func (h *harness) ledger(f *Flaky, cfg accounting.Config) (*accounting.Ledger, *tracker.Tracker) {
	h.t.Helper()
	ctx := context.Background()
	for u := range loadUsers {
		// Users and torrents go straight to the backend: the Ledger
		// reads them at Open.
		if _, err := f.User(ctx, uint64(u+1)); errors.Is(err, accounting.ErrNotFound) {
			h.addUser(uint64(u + 1))
		}
	}
	for n := range loadTorrents {
		if _, err := f.Torrent(ctx, trackertest.Hash(n+1)); errors.Is(err, accounting.ErrNotFound) {
			h.addTorrent(n + 1)
		}
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = 5 * time.Millisecond
	}
	cfg.MaxRetryDelay = 20 * time.Millisecond
	cfg.PollInterval = tracker.Disabled
	cfg.Logger = slog.New(slog.DiscardHandler)
	l, err := accounting.Open(ctx, f, cfg)
	if err != nil {
		h.t.Fatalf("accounting.Open: %v", err)
	}
	tr, err := tracker.New(tracker.Config{Passkeys: l, Torrents: l, Accounting: l, Logger: cfg.Logger})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		tr.Close()
		l.Close(ctx)
	})
	return l, tr
}

// load is what a run of announces left: each peer's last counters.
type load struct {
	mu    sync.Mutex
	peers map[int]ann
	done  atomic.Int64
}

// run makes peers announce steps times each from four goroutines, each
// peer in order: started, growing counters, completed when nothing is
// left, then seeding; stopped at the last step when stop is set. first is
// the step to start from (a run that goes on after a restart). progress,
// if not nil, is called after every announce with how many were made.
func (ld *load) run(t *testing.T, tr *tracker.Tracker, peers, first, steps int, stop bool, progress func(int)) {
	if ld.peers == nil {
		ld.peers = map[int]ann{}
	}
	const goroutines = 4
	var wg sync.WaitGroup
	var failures atomic.Int64
	for g := range goroutines {
		wg.Go(func() {
			for s := first; s < first+steps; s++ {
				for p := g; p < peers; p += goroutines {
					a := peerStep(p, s)
					if stop && s == first+steps-1 {
						a.ev = stopped
					}
					user, ih, id := peerOf(p, loadUsers, loadTorrents)
					req := tracker.AnnounceRequest{
						InfoHash: ih, PeerID: id, Addr: trackertest.Addr4(p), Key: a.key,
						Uploaded: a.up, Downloaded: a.down, Left: a.left, Event: a.ev,
						NumWant: -1, Passkey: Passkey(user),
					}
					if _, err := tr.Announce(context.Background(), &req); err != nil {
						if failures.Add(1) <= 3 {
							t.Errorf("announce %d of peer %d: %v", s, p, err)
						}
						continue
					}
					ld.mu.Lock()
					ld.peers[p] = a
					ld.mu.Unlock()
					if n := ld.done.Add(1); progress != nil {
						progress(int(n))
					}
				}
			}
		})
	}
	wg.Wait()
}

// peerStep returns what peer p announces at step s.
func peerStep(p, s int) ann {
	const size = 40_000
	a := ann{up: int64(s*1000 + p), down: min(int64(s)*3000, size), key: uint32(p + 1)}
	a.left = size - a.down
	switch {
	case s == 0:
		a.ev = started
	case a.left == 0 && int64(s-1)*3000 < size:
		a.ev = completed
	}
	return a
}

// check compares the backend's totals with what the peers reported last:
// every byte counted once.
func (ld *load) check(t *testing.T, b accounting.Reports, what string) {
	t.Helper()
	want := map[uint64]accounting.UserTotals{}
	type snatch struct {
		user uint64
		ih   tracker.InfoHash
	}
	snatched := map[snatch]bool{}
	for p, a := range ld.peers {
		user, ih, _ := peerOf(p, loadUsers, loadTorrents)
		u := want[user]
		u.Uploaded += a.up
		u.Downloaded += a.down
		if a.left == 0 && !snatched[snatch{user, ih}] {
			snatched[snatch{user, ih}] = true
			u.Snatches++
		}
		want[user] = u
	}
	for user, w := range want {
		got, err := b.User(context.Background(), user)
		if err != nil {
			t.Fatalf("%s: User(%d): %v", what, user, err)
		}
		if got.Uploaded != w.Uploaded || got.RawUploaded != w.Uploaded || got.Downloaded != w.Downloaded || got.Snatches != w.Snatches {
			t.Errorf("%s: user %d has %d up, %d down (raw %d, %d), %d snatches; want %d, %d, %d: what its peers reported last",
				what, user, got.Uploaded, got.Downloaded, got.RawUploaded, got.RawDownloaded, got.Snatches, w.Uploaded, w.Downloaded, w.Snatches)
		}
	}
}

func flush(t *testing.T, l *accounting.Ledger) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v (stats %+v)", err, l.Stats())
	}
}

// testFlushFailure: flushes fail before their transaction commits, or
// after (the backend applied the batch, the Ledger hears an error); the
// Ledger tries again, and nothing is lost or counted twice.
func testFlushFailure(t *testing.T, h *harness, afterCommit bool) {
	f := NewFlaky(h.b)
	f.KeepOpen()
	l, tr := h.ledger(f, accounting.Config{Spool: filepath.Join(t.TempDir(), "spool"), BufferSize: 4096})
	var ld load
	peers := 40
	steps := max(h.o.announces/4/peers, 16)
	ld.run(t, tr, peers, 0, steps/2, false, nil)
	if afterCommit {
		f.FailAfter(6)
	} else {
		f.FailBefore(6)
	}
	ld.run(t, tr, peers, steps/2, steps-steps/2, true, nil)
	flush(t, l)
	if _, failed := f.Calls(); failed != 6 {
		t.Fatalf("%d Apply calls failed; want the 6 injected", failed)
	}
	if st := l.Stats(); st.FlushErrors < 6 || st.Backlog != 0 || st.LastError != nil {
		t.Errorf("Stats after recovery: %+v; want at least 6 flush errors, no backlog, no last error", st)
	}
	ld.check(t, f, "after failed flushes")
}

// testOutage: the backend fails every Apply for a while under load.
// Announces are all answered (the small buffer spills to the spool), the
// backlog shows in Stats, and once the backend is back every record is
// applied once.
func testOutage(t *testing.T, h *harness) {
	f := NewFlaky(h.b)
	f.KeepOpen()
	spool := filepath.Join(t.TempDir(), "spool")
	l, tr := h.ledger(f, accounting.Config{Spool: spool, BufferSize: 256, BatchSize: 128})
	var ld load
	const peers = 200
	steps := max(h.o.announces/peers, 20)
	total := peers * steps
	var during accounting.Stats
	ld.run(t, tr, peers, 0, steps, true, func(n int) {
		switch n {
		case total / 10:
			f.SetDown(true)
		case total * 6 / 10:
			during = l.Stats()
			f.SetDown(false)
		}
	})
	if during.Backlog == 0 || during.Spooled == 0 || during.FlushErrors == 0 || during.LastError == nil {
		t.Errorf("Stats during the outage: %+v; want a backlog, spooled records, flush errors and the last one", during)
	}
	flush(t, l)
	if st := l.Stats(); st.Backlog != 0 || st.Spooled != 0 {
		t.Errorf("Stats after the outage: %+v; want no backlog", st)
	}
	ld.check(t, f, "after the outage")
}

// testCrash: a tracker crashes with records in memory that the backend
// never got; after a restart, clients' next announces carry cumulative
// counters, and the totals come out exact.
func testCrash(t *testing.T, h *harness) {
	f := NewFlaky(h.b)
	f.KeepOpen()
	l, tr := h.ledger(f, accounting.Config{FlushInterval: time.Hour})
	var ld load
	const peers = 24
	ld.run(t, tr, peers, 0, 4, false, nil)
	flush(t, l)
	f.SetDown(true)
	ld.run(t, tr, peers, 4, 4, false, nil) // in memory only
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Close(ctx); err == nil {
		t.Errorf("Close with records neither applied nor spooled: nil error; want one")
	}
	tr.Close()

	b := h.b
	if h.o.reopen != nil {
		b = h.o.reopen(t, h.b)
		h.b = b
	}
	f = NewFlaky(b)
	f.KeepOpen()
	l, tr = h.ledger(f, accounting.Config{})
	ld.run(t, tr, peers, 8, 6, true, nil)
	flush(t, l)
	ld.check(t, f, "after a crash and a restart")
}
