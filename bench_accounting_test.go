package tracker_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
)

// BenchmarkAnnounceAccounting runs BenchmarkAnnounce's workload (1,000,000
// peers in 100,000 swarms, numwant 50, from every core) through a tracker
// with no policy ("none"), and through one whose accounting.Ledger, over
// the memory backend, checks every passkey (10,000 users) and torrent and
// accounts every announce ("ledger"). cpu-ns/op is the processor time the
// whole process spent per announce, user and system: the flusher's and
// the backend's work is in it, since the timed part ends once every
// record is applied.
func BenchmarkAnnounceAccounting(b *testing.B) {
	const swarms, peers, users = 100_000, 1_000_000, 10_000
	for _, ledger := range []bool{false, true} {
		name := map[bool]string{false: "none", true: "ledger"}[ledger]
		b.Run(name, func(b *testing.B) {
			t, l := accountingTracker(b, ledger, swarms, peers, users)
			per := peers / swarms
			ctx := context.Background()
			b.ReportAllocs()
			cpu := tracker.CPUTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var req tracker.AnnounceRequest
				resp := tracker.AnnounceResponse{Peers: make([]tracker.Peer, 0, 200)}
				for pb.Next() {
					s, i := rand.IntN(swarms), rand.IntN(per)
					tracker.BenchPeer(&req, s+1, i) // swarm 0's hash is zero, which no site registers
					req.Passkey = benchPasskey(s*per+i, users)
					req.Uploaded += 1 << 14
					req.NumWant = 50
					if err := t.AnnounceInto(ctx, &req, &resp); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if l != nil {
				if err := l.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if used := tracker.CPUTime() - cpu; used > 0 {
				b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// benchPasskey returns the passkey of the user who owns peer n (users
// have 100 peers each, spread over the swarms); "" for a tracker
// without passkeys is never asked for, since it ignores them.
func benchPasskey(n, users int) string {
	return benchPasskeys[n%users]
}

var benchPasskeys = func() []string {
	keys := make([]string, 10_000)
	for u := range keys {
		keys[u] = fmt.Sprintf("bench%027d", u+1)
	}
	return keys
}()

// accountingTracker returns a filled tracker, with or without a Ledger,
// made once for every round of the benchmark.
var accountingTracker = func() func(b *testing.B, ledger bool, swarms, peers, users int) (*tracker.Tracker, *accounting.Ledger) {
	type made struct {
		t *tracker.Tracker
		l *accounting.Ledger
	}
	var (
		mu    sync.Mutex
		cache = map[bool]made{}
	)
	return func(b *testing.B, ledger bool, swarms, peers, users int) (*tracker.Tracker, *accounting.Ledger) {
		mu.Lock()
		defer mu.Unlock()
		if m, ok := cache[ledger]; ok {
			return m.t, m.l
		}
		ctx := context.Background()
		var cfg tracker.Config
		var l *accounting.Ledger
		if ledger {
			var err error
			l, err = accounting.Open(ctx, accounting.NewMemoryBackend(accounting.RulesFor(cfg)), accounting.Config{})
			if err != nil {
				b.Fatal(err)
			}
			for u := range users {
				if err := l.PutUser(ctx, accounting.User{ID: uint64(u + 1), Passkey: benchPasskeys[u], CanLeech: true, UpFactor: 100, DownFactor: 100}); err != nil {
					b.Fatal(err)
				}
			}
			var req tracker.AnnounceRequest
			for s := range swarms {
				tracker.BenchPeer(&req, s+1, 0)
				if err := l.PutTorrent(ctx, accounting.Torrent{InfoHash: req.InfoHash, UpFactor: 100, DownFactor: 100}); err != nil {
					b.Fatal(err)
				}
			}
			cfg.Passkeys, cfg.Torrents, cfg.Accounting = l, l, l
		}
		t, err := tracker.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		var req tracker.AnnounceRequest
		var resp tracker.AnnounceResponse
		per := peers / swarms
		for _, j := range rand.Perm(peers) {
			tracker.BenchPeer(&req, j/per+1, j%per)
			req.Passkey = benchPasskey(j, users)
			req.NumWant = -1
			if err := t.AnnounceInto(ctx, &req, &resp); err != nil {
				b.Fatal(err)
			}
		}
		if l != nil {
			if err := l.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
		cache[ledger] = made{t, l}
		return t, l
	}
}()
