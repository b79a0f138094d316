package tracker

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"testing"
)

// benchPeer fills in a request for peer i of swarm s, deterministically:
// the same (s, i) is always the same peer.
func benchPeer(req *AnnounceRequest, s, i int) {
	binary.BigEndian.PutUint64(req.InfoHash[:], uint64(s)*0x9E3779B97F4A7C15)
	binary.BigEndian.PutUint32(req.InfoHash[8:], uint32(s))
	copy(req.PeerID[:], "-BN0001-")
	binary.BigEndian.PutUint32(req.PeerID[8:], uint32(s))
	binary.BigEndian.PutUint32(req.PeerID[12:], uint32(i))
	req.Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(s >> 8), byte(s), byte(i)}), uint16(6881+i))
	req.Left = 1000
	if i == 0 {
		req.Left = 0 // one seeder in ten
	}
}

func fillTracker(tb testing.TB, t *Tracker, swarms, peers int) {
	ctx := context.Background()
	var req AnnounceRequest
	var resp AnnounceResponse
	per := peers / swarms
	// Peers join in random order, as they do over a tracker's life.
	for _, j := range rand.Perm(peers) {
		benchPeer(&req, j/per, j%per)
		req.Event = EventStarted
		req.NumWant = -1 // none
		if err := t.AnnounceInto(ctx, &req, &resp); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkAnnounce measures a steady-state announce (a known peer
// re-announcing) through Tracker.AnnounceInto, with 1,000,000 peers in
// 100,000 swarms and numwant 50, from every core at once. cpu-ns/op is
// the processor time one announce costs, read from getrusage.
func BenchmarkAnnounce(b *testing.B) {
	benchAnnounce(b, 100_000, 1_000_000)
}

// BenchmarkAnnounceSmall is BenchmarkAnnounce with 10,000 peers in 1,000
// swarms: everything fits in the processor's caches, so the difference
// from BenchmarkAnnounce is the cost of memory latency.
func BenchmarkAnnounceSmall(b *testing.B) {
	benchAnnounce(b, 1_000, 10_000)
}

// BenchmarkAnnounceLarge is BenchmarkAnnounce with 500,000 peers in 50
// swarms of 10,000: every swarm is in the shards' trees and samples through
// bucket counts.
func BenchmarkAnnounceLarge(b *testing.B) {
	benchAnnounce(b, 50, 500_000)
}

func benchAnnounce(b *testing.B, swarms, peers int) {
	t := benchTracker(b, swarms, peers)
	per := peers / swarms
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		var req AnnounceRequest
		resp := AnnounceResponse{Peers: make([]Peer, 0, 200)}
		n := 0
		for pb.Next() {
			benchPeer(&req, rand.IntN(swarms), rand.IntN(per))
			req.NumWant = 50
			if err := t.AnnounceInto(ctx, &req, &resp); err != nil {
				b.Error(err)
				return
			}
			n += len(resp.Peers)
		}
		_ = n
	})
	reportCPU(b, cpu, b.N)
}

// benchTracker returns a tracker filled once for every round of a
// benchmark, so that profiles show the steady state, not the filling.
var benchTracker = func() func(b *testing.B, swarms, peers int) *Tracker {
	var (
		mu       sync.Mutex
		trackers = map[[2]int]*Tracker{}
	)
	return func(b *testing.B, swarms, peers int) *Tracker {
		mu.Lock()
		defer mu.Unlock()
		k := [2]int{swarms, peers}
		if t := trackers[k]; t != nil {
			return t
		}
		t, err := New(Config{})
		if err != nil {
			b.Fatal(err)
		}
		fillTracker(b, t, swarms, peers)
		trackers[k] = t
		return t
	}
}()

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkPeerMemory reports the memory per peer, swarm overhead
// included, after 1,000,000 IPv4 peers join 100,000 swarms: bytes/peer
// counts the Go heap in use and the chunks the store keeps outside it (its
// records and swarm pages, on Unix; elsewhere they are in the heap),
// heap-bytes/peer the heap alone.
func BenchmarkPeerMemory(b *testing.B) {
	benchPeerMemory(b, 100_000, 1_000_000)
}

// BenchmarkPeerMemoryTree is BenchmarkPeerMemory with 500,000 peers in
// swarms of 50, which the store keeps in its trees rather than in blocks.
func BenchmarkPeerMemoryTree(b *testing.B) {
	benchPeerMemory(b, 10_000, 500_000)
}

func benchPeerMemory(b *testing.B, swarms, peers int) {
	for b.Loop() {
		before, chunksBefore := heapInUse(), chunkBytes.Load()
		s, err := NewMemoryStore(MemoryConfig{})
		if err != nil {
			b.Fatal(err)
		}
		t, err := New(Config{Store: s})
		if err != nil {
			b.Fatal(err)
		}
		fillTracker(b, t, swarms, peers)
		heap := float64(heapInUse()) - float64(before)
		chunks := 0.0
		if chunksOutsideHeap { // else the heap holds them
			chunks = float64(chunkBytes.Load() - chunksBefore)
		}
		b.ReportMetric((heap+chunks)/float64(peers), "bytes/peer")
		b.ReportMetric(heap/float64(peers), "heap-bytes/peer")
		runtime.KeepAlive(s)
		s.Close()
	}
}
