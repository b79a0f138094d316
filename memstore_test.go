package tracker

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"
)

func testPeer(h InfoHash, n int, left int64, ev Event) *AnnounceRequest {
	var id PeerID
	copy(id[:], "-TT0100-")
	id[16], id[17], id[18], id[19] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return &AnnounceRequest{
		InfoHash: h,
		PeerID:   id,
		Addr:     netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), 6881),
		Left:     left,
		Event:    ev,
	}
}

func hashN(n int) InfoHash {
	var h InfoHash
	h[0], h[1], h[2], h[19] = byte(n), byte(n>>8), byte(n>>16), 0xAA
	return h
}

// storeAt is a store without a sweeper, driven with explicit times.
type storeAt struct {
	*MemoryStore
	t *testing.T
}

func newStoreAt(t *testing.T, cfg MemoryConfig) storeAt {
	t.Helper()
	s, err := newMemoryStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return storeAt{s, t}
}

func (s storeAt) announceAt(d time.Duration, req *AnnounceRequest) *AnnounceResponse {
	s.t.Helper()
	resp := &AnnounceResponse{}
	if err := s.announce(s.now(s.start.Add(d)), req, resp); err != nil {
		s.t.Fatalf("announce at %v: %v", d, err)
	}
	return resp
}

func (s storeAt) sweepAt(d time.Duration) {
	for i := range s.shards {
		s.sweep(&s.shards[i], s.start.Add(d))
	}
}

func (s storeAt) counts() StoreCounts {
	c, err := s.Counts(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

func TestExpiry(t *testing.T) {
	const ttl = 10 * time.Minute
	s := newStoreAt(t, MemoryConfig{PeerTTL: ttl, SwarmTTL: time.Hour})
	a, b := hashN(1), hashN(2)
	s.announceAt(0, testPeer(a, 1, 10, EventStarted))
	s.announceAt(0, testPeer(a, 2, 0, EventStarted))
	s.announceAt(5*time.Minute, testPeer(a, 2, 0, EventNone)) // refreshed
	s.announceAt(0, testPeer(b, 3, 10, EventStarted))
	s.announceAt(time.Minute, testPeer(b, 3, 0, EventCompleted)) // a snatch keeps b

	for _, step := range []struct {
		at                   time.Duration
		swarms, peers, seeds int
		downloadedB          int
	}{
		{ttl - 4*time.Second, 2, 3, 2, 1},                     // nothing stale yet
		{ttl + 8*time.Second, 2, 2, 2, 1},                     // peer 1 gone
		{ttl + time.Minute + 8*time.Second, 2, 1, 1, 1},       // peer 3 gone; b kept for its snatch
		{5*time.Minute + ttl + 8*time.Second, 1, 0, 0, 1},     // peer 2 gone; a, empty and never completed, dropped
		{time.Minute + time.Hour + 8*time.Second, 0, 0, 0, 0}, // b's swarm TTL over
	} {
		s.sweepAt(step.at)
		c := s.counts()
		if c.Swarms != step.swarms || c.Peers != step.peers || c.Seeders != step.seeds {
			t.Errorf("after sweep at %v: swarms, peers, seeders = %d, %d, %d; want %d, %d, %d",
				step.at, c.Swarms, c.Peers, c.Seeders, step.swarms, step.peers, step.seeds)
		}
		st, _ := s.Scrape(context.Background(), []InfoHash{b}, nil)
		if st[0].Downloaded != step.downloadedB {
			t.Errorf("after sweep at %v: swarm b downloaded = %d; want %d", step.at, st[0].Downloaded, step.downloadedB)
		}
	}
	if n := s.npeers.Load(); n != 0 {
		t.Errorf("peer total = %d after everything expired; want 0", n)
	}
}

func TestExpiryLargeShard(t *testing.T) {
	// More peers than one sweep batch, in one shard, half of them stale.
	s := newStoreAt(t, MemoryConfig{PeerTTL: time.Minute, Shards: 1})
	const n = 3*sweepBatch + 17
	for i := range n {
		at := time.Duration(0)
		if i%2 == 0 {
			at = 2 * time.Minute
		}
		s.announceAt(at, testPeer(hashN(i%7), i, int64(i%3), EventStarted))
	}
	s.sweepAt(2*time.Minute + 8*time.Second)
	if c := s.counts(); c.Peers != (n+1)/2 {
		t.Errorf("after sweep: %d peers; want %d", c.Peers, (n+1)/2)
	}
	checkStore(t, s.MemoryStore)
}

// TestExpiryPlaces sweeps swarms whose families sit in blocks and in the
// tree, so that the sweep shrinks blocks and moves families from the tree
// back to blocks.
func TestExpiryPlaces(t *testing.T) {
	s := newStoreAt(t, MemoryConfig{PeerTTL: time.Minute, Shards: 1})
	sizes := []int{3, 20, 40, 200}
	for h, n := range sizes {
		for i := range n {
			at := time.Duration(0)
			if i < 3 {
				at = 2 * time.Minute // fresh at the sweep
			}
			s.announceAt(at, testPeer(hashN(h), i, int64(i%2), EventStarted))
		}
	}
	checkStore(t, s.MemoryStore)
	s.sweepAt(2*time.Minute + 8*time.Second)
	checkStore(t, s.MemoryStore)
	if c := s.counts(); c.Peers != 3*len(sizes) {
		t.Errorf("after sweep: %d peers; want %d", c.Peers, 3*len(sizes))
	}
	for h := range sizes {
		w := &s.shards[0].swarms[h]
		if c := classFor(3); int(w.blk[0]) != c+1 {
			t.Errorf("swarm %d: place %d after the sweep; want a block of %d", h, w.blk[0], blockCaps[c])
		}
		req := testPeer(hashN(h), 1000, 1, EventStarted)
		req.NumWant = 50
		if resp := s.announceAt(2*time.Minute+8*time.Second, req); len(resp.Peers) != 3 {
			t.Errorf("swarm %d: %d peers after the sweep; want 3", h, len(resp.Peers))
		}
	}
}

// TestSlabCompaction grows swarms through the block sizes into the tree and
// back, and checks that the slab gives back the room of freed blocks and
// that every swarm keeps its peers through the moves.
func TestSlabCompaction(t *testing.T) {
	s := newStoreAt(t, MemoryConfig{Shards: 1})
	const swarms = 300
	sh := &s.shards[0]
	grow := func(upTo int) {
		for i := range upTo {
			for h := range swarms {
				s.announceAt(0, testPeer(hashN(h), i, 1, EventStarted))
			}
		}
	}
	check := func(what string, peers int) {
		t.Helper()
		checkStore(t, s.MemoryStore)
		for h := range swarms {
			req := testPeer(hashN(h), 0, 1, EventNone)
			req.NumWant = 100
			if resp := s.announceAt(0, req); len(resp.Peers) != peers-1 || resp.Incomplete != peers {
				t.Fatalf("%s: swarm %d: %d peers, %d leechers; want %d and %d", what, h, len(resp.Peers), resp.Incomplete, peers-1, peers)
			}
		}
	}

	grow(20)
	check("in blocks", 20)
	if live := swarms * 20; int(sh.v4.slab.top) > live*5/4 {
		t.Errorf("in blocks: slab of %d records for %d peers", int(sh.v4.slab.top), live)
	}
	grow(40)
	check("in the tree", 40)
	if int(sh.v4.slab.top) > swarms*20/4 {
		t.Errorf("in the tree: slab of %d records kept", int(sh.v4.slab.top))
	}
	for i := 5; i < 40; i++ {
		for h := range swarms {
			s.announceAt(0, testPeer(hashN(h), i, 1, EventStopped))
		}
	}
	check("back in blocks", 5)
	s.sweepAt(0)
	check("swept", 5)
	// Five peers keep a block of six (see shrink), and up to a sixteenth
	// of the slab may stay free.
	if live := swarms * 5; int(sh.v4.slab.top) > live*6/5*17/16 {
		t.Errorf("swept: slab of %d records (%d free) for %d peers", int(sh.v4.slab.top), sh.v4.slab.nfree, live)
	}
}

// TestSlabChurn keeps peers joining and leaving swarms of varying sizes,
// with a sweep now and then, and checks that the slabs stay in proportion
// to the peers they hold: free blocks are reused or compacted away.
func TestSlabChurn(t *testing.T) {
	s := newStoreAt(t, MemoryConfig{Shards: 4})
	r := rand.New(rand.NewPCG(5, 6))
	const swarms, ids = 500, 24
	alive := map[[2]int]bool{}
	for step := range 200_000 {
		h, n := r.IntN(swarms), r.IntN(ids)
		// Each swarm's size drifts: swarms whose number matches the turn
		// lose peers, the others gain.
		ev := EventStarted
		if (h+step/20_000)%3 == 0 {
			ev = EventStopped
		}
		s.announceAt(0, testPeer(hashN(h), n, 1, ev))
		alive[[2]int{h, n}] = ev != EventStopped
		if step%10_000 == 0 {
			s.sweepAt(0)
		}
	}
	s.sweepAt(0)
	checkStore(t, s.MemoryStore)
	peers := 0
	for _, ok := range alive {
		if ok {
			peers++
		}
	}
	if c := s.counts(); c.Peers != peers {
		t.Fatalf("%d peers; want %d", c.Peers, peers)
	}
	records := 0
	for i := range s.shards {
		records += len(s.shards[i].v4.slab.chunks) * chunkLen
	}
	// Blocks round up (a third at most from two sizes of slack), a
	// sixteenth may stay free, and each shard keeps a partial chunk.
	if limit := peers*3/2 + len(s.shards)*chunkLen; records > limit {
		t.Errorf("slabs of %d records for %d peers; want at most %d", records, peers, limit)
	}
	t.Logf("%d peers in slabs of %d records", peers, records)
}

// TestSweeper runs the real sweeper goroutine in a bubble with a fake clock.
func TestSweeper(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := NewMemoryStore(MemoryConfig{PeerTTL: time.Minute, Shards: 4})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()
		for i := range 10 {
			if err := s.Announce(ctx, testPeer(hashN(i), i, 1, EventStarted), &AnnounceResponse{}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(30 * time.Second)
		if c, _ := s.Counts(ctx); c.Peers != 10 {
			t.Fatalf("after 30s: %d peers; want 10", c.Peers)
		}
		// Keep one peer alive.
		if err := s.Announce(ctx, testPeer(hashN(0), 0, 1, EventNone), &AnnounceResponse{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(65 * time.Second)
		if c, _ := s.Counts(ctx); c.Peers != 1 || c.Swarms != 1 {
			t.Fatalf("after 95s: %d peers in %d swarms; want 1 in 1", c.Peers, c.Swarms)
		}
	})
}

func TestMaxPeers(t *testing.T) {
	s := newStoreAt(t, MemoryConfig{MaxPeers: 3, MaxSwarms: 2})
	h := hashN(1)
	for i := range 3 {
		s.announceAt(0, testPeer(h, i, 1, EventStarted))
	}
	resp := &AnnounceResponse{}
	if err := s.announce(1, testPeer(h, 3, 1, EventStarted), resp); !errors.Is(err, ErrTooManyPeers) {
		t.Errorf("fourth peer: err = %v; want ErrTooManyPeers", err)
	}
	var e *Error
	if err := s.announce(1, testPeer(h, 3, 1, EventStarted), resp); !errors.As(err, &e) || e.Kind != KindCapacity {
		t.Errorf("fourth peer: err = %v; want an *Error of KindCapacity", err)
	}
	// Known peers keep announcing, and may change class.
	s.announceAt(0, testPeer(h, 0, 0, EventCompleted))
	s.announceAt(0, testPeer(h, 1, 1, EventStopped))
	s.announceAt(0, testPeer(h, 3, 1, EventStarted)) // room again
	if c := s.counts(); c.Peers != 3 || c.Seeders != 1 {
		t.Errorf("counts = %+v; want 3 peers, 1 seeder", c)
	}
	s.announceAt(0, testPeer(hashN(2), 9, 1, EventStopped)) // a stop creates nothing
	if err := s.announce(1, testPeer(hashN(2), 1, 1, EventStarted), resp); !errors.Is(err, ErrTooManyPeers) {
		t.Errorf("new swarm, peer bound reached: err = %v; want ErrTooManyPeers", err)
	}
	s.announceAt(0, testPeer(h, 3, 1, EventStopped))
	s.announceAt(0, testPeer(hashN(2), 1, 1, EventStarted))
	if err := s.announce(1, testPeer(hashN(3), 5, 1, EventStarted), resp); !errors.Is(err, ErrTooManySwarms) {
		t.Errorf("third swarm: err = %v; want ErrTooManySwarms", err)
	}
}

func TestMemoryConfig(t *testing.T) {
	for _, cfg := range []MemoryConfig{
		{PeerTTL: time.Second},
		{PeerTTL: 9 * time.Hour},
		{SwarmTTL: -1},
		{Shards: -1},
		{Shards: 1 << 20},
	} {
		if s, err := NewMemoryStore(cfg); err == nil {
			s.Close()
			t.Errorf("NewMemoryStore(%+v) succeeded; want an error", cfg)
		}
	}
	s, err := NewMemoryStore(MemoryConfig{Shards: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.shards) != 128 {
		t.Errorf("Shards 100 made %d shards; want 128", len(s.shards))
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v; want nil, Close is idempotent", err)
	}
	if err := s.Announce(context.Background(), testPeer(hashN(1), 1, 1, 0), &AnnounceResponse{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Announce after Close = %v; want ErrClosed", err)
	}
	if _, err := s.Scrape(context.Background(), []InfoHash{hashN(1)}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Scrape after Close = %v; want ErrClosed", err)
	}
}

// modelPeer is what the model knows of one peer.
type modelPeer struct {
	addr     netip.AddrPort
	seed     bool
	paused   bool
	snatched bool
}

// TestModel drives the store with random announces and checks it against a
// plain model after every step: the counters, the scrape, the selection
// rules, and that bucket counts stay in step with the trees.
// TestModel checks the store against a model of the swarms, announce by
// announce. Swarms grow and shrink in turns, so that families move between
// blocks and the tree in both directions.
func TestModel(t *testing.T) {
	for _, tc := range []struct{ swarms, ids int }{
		{3, 400}, // mostly in the tree, with bucket counts
		{3, 60},  // across the block limit both ways
		{5, 12},  // blocks only
		{60, 40}, // blocks over several chunks, compacted
	} {
		t.Run(fmt.Sprintf("%dx%d", tc.swarms, tc.ids), func(t *testing.T) {
			testModel(t, tc.swarms, tc.ids)
		})
	}
}

func testModel(t *testing.T, swarms, ids int) {
	runModel(t, swarms, ids, 30000, rand.New(rand.NewPCG(1, uint64(ids))))
}

// FuzzStore runs the model check of TestModel on announces drawn from the
// fuzzer's bytes.
func FuzzStore(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{16, 200, 2000} {
		seed := make([]byte, n)
		for i := range seed {
			seed[i] = byte(r.Uint32())
		}
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		swarms, ids := 1+int(data[0])%6, 1+int(data[1])%80
		src := &byteSource{data[2:]}
		runModel(t, swarms, ids, len(data)/4, src)
	})
}

// byteSource draws choices from bytes, and zeros once they run out.
type byteSource struct{ b []byte }

func (s *byteSource) IntN(n int) int {
	if len(s.b) == 0 {
		return 0
	}
	v := int(s.b[0])
	s.b = s.b[1:]
	return v % n
}

// runModel drives a store through steps announces, with choices from r,
// and checks every reply, every scrape and the store's inner consistency
// against a model of the swarms. Now and then it sweeps (nothing is stale:
// time stands still), which compacts slabs.
func runModel(t *testing.T, swarms, ids, steps int, r interface{ IntN(int) int }) {
	s := newStoreAt(t, MemoryConfig{Shards: 2})
	type swarmModel struct {
		peers    map[int]*modelPeer
		snatches int
	}
	model := map[InfoHash]*swarmModel{}
	for step := range steps {
		if r.IntN(128) == 0 {
			s.sweepAt(0)
			checkStore(t, s.MemoryStore)
		}
		h := hashN(r.IntN(swarms))
		n := r.IntN(ids)
		v6 := n%5 == 0
		sm := model[h]
		if sm == nil {
			sm = &swarmModel{peers: map[int]*modelPeer{}}
			model[h] = sm
		}
		ev := Event(r.IntN(5))
		if step/1000%2 == 1 && r.IntN(4) != 0 {
			ev = EventStopped // a shrinking turn
		}
		req := testPeer(h, n, int64(r.IntN(3)), ev)
		if v6 {
			req.Addr = netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 15: byte(n)}), uint16(n+1))
		}
		if r.IntN(4) == 0 { // the peer moves
			req.Addr = netip.AddrPortFrom(req.Addr.Addr(), req.Addr.Port()+1)
		}
		req.NumWant = r.IntN(60)
		resp := &AnnounceResponse{}
		if err := s.announce(1, req, resp); err != nil {
			t.Fatal(err)
		}

		// Update the model.
		old := sm.peers[n]
		seed := req.Left == 0
		if req.Event == EventStopped {
			if old != nil && !old.seed && seed && !old.snatched {
				sm.snatches++
			}
			delete(sm.peers, n)
		} else {
			snatched := old != nil && (old.snatched || old.seed)
			completes := req.Event == EventCompleted || (old != nil && !old.seed && seed)
			if completes && !snatched && (old == nil || !old.seed) {
				sm.snatches++
				snatched = true
			}
			sm.peers[n] = &modelPeer{addr: req.Addr, seed: seed, paused: req.Event == EventPaused && !seed, snatched: snatched}
		}

		// Check counters and the reply.
		var complete, incomplete, paused int
		eligible := map[netip.AddrPort]bool{}
		for m, p := range sm.peers {
			if p.seed {
				complete++
			} else {
				incomplete++
				if p.paused {
					paused++
				}
			}
			if m != n && p.addr.Addr().Is4() == !v6 && (!seed || !p.seed) {
				eligible[p.addr] = true
			}
		}
		if resp.Complete != complete || resp.Incomplete != incomplete || resp.Downloaded != sm.snatches {
			t.Fatalf("step %d: counts %d/%d/%d; model %d/%d/%d", step, resp.Complete, resp.Incomplete, resp.Downloaded, complete, incomplete, sm.snatches)
		}
		st, _ := s.Scrape(context.Background(), []InfoHash{h}, nil)
		if want := (ScrapeStats{complete, incomplete, sm.snatches, incomplete - paused}); st[0] != want {
			t.Fatalf("step %d: scrape %+v; model %+v", step, st[0], want)
		}
		wantN := min(req.NumWant, len(eligible))
		if req.Event == EventStopped {
			wantN = 0
		}
		if len(resp.Peers) != wantN {
			t.Fatalf("step %d: %d peers; want %d (numwant %d, %d eligible)", step, len(resp.Peers), wantN, req.NumWant, len(eligible))
		}
		for _, p := range resp.Peers {
			if !eligible[p.Addr] {
				t.Fatalf("step %d: reply holds %v, which is not eligible", step, p.Addr)
			}
			delete(eligible, p.Addr) // also catches duplicates
		}
		if step%1000 == 0 {
			checkStore(t, s.MemoryStore)
		}
	}
	checkStore(t, s.MemoryStore)
}

func checkFamilyPlaces[P record[P]](t *testing.T, sh *shard, f *family[P], fam int) {
	t.Helper()
	var zero P
	used := 0
	// Every slab record below top belongs to exactly one block, in use or
	// free, and no block straddles two chunks.
	owner := make([]int, f.slab.top)
	claim := func(at uint32, size, who int) {
		if int(at&chunkMask)+size > chunkLen {
			t.Fatalf("family %d: block of %d at %d straddles a chunk", fam, size, at)
		}
		for i := range size {
			o := int(at) + i
			if o >= len(owner) || owner[o] != 0 {
				t.Fatalf("family %d: record %d (top %d) claimed twice, by %d and %d", fam, o, f.slab.top, owner[min(o, len(owner)-1)], who)
			}
			owner[o] = who
		}
	}
	for id := range sh.swarms {
		w := &sh.swarms[id]
		var tree [2]int
		f.tree.AscendRange(zero.probe(swarmBase(uint32(id))), zero.probe(swarmBase(uint32(id))+1<<swarmShift), func(p P) bool {
			tree[p.recKey()>>hidBits&1]++
			return true
		})
		n := int(w.n[fam][0] + w.n[fam][1])
		switch w.blk[fam] {
		case inTree:
			if tree != [2]int{int(w.n[fam][0]), int(w.n[fam][1])} || n <= toBlockAt {
				t.Fatalf("swarm %d family %d: tree holds %v; counts %v", id, fam, tree, w.n[fam])
			}
		case noBlock:
			if n != 0 || tree != [2]int{} {
				t.Fatalf("swarm %d family %d: no block, %v in the tree, counts %v", id, fam, tree, w.n[fam])
			}
		default:
			c := int(w.blk[fam]) - 1
			used += blockCaps[c]
			claim(w.at[fam], blockCaps[c], id+1)
			var in [2]int
			for _, p := range f.block(w, fam) {
				if p.recKey()&^(seedBit|hidMask) != swarmBase(uint32(id)) {
					t.Fatalf("swarm %d family %d: block holds a record of swarm %d", id, fam, swarmOf(p.recKey()))
				}
				in[p.recKey()>>hidBits&1]++
			}
			if tree != [2]int{} || in != [2]int{int(w.n[fam][0]), int(w.n[fam][1])} || n > blockCaps[c] {
				t.Fatalf("swarm %d family %d: block of %d holds %v, tree %v; counts %v", id, fam, blockCaps[c], in, tree, w.n[fam])
			}
		}
	}
	free := 0
	for c, h := range f.slab.free {
		for ; h != 0; h = uint32(f.slab.span(h-1, 1)[0].recKey()) {
			claim(h-1, blockCaps[c], -1)
			used += blockCaps[c]
			free += blockCaps[c]
		}
	}
	if used != int(f.slab.top) || free != f.slab.nfree {
		t.Fatalf("family %d: blocks and free blocks cover %d of %d slab records; %d free, counted %d", fam, used, f.slab.top, free, f.slab.nfree)
	}
}

// checkStore checks the inner consistency of a store: every family of every
// swarm keeps its peers in one place, the tree or a block, as its swarm
// says; the blocks and free blocks of a slab cover it exactly; and every
// class with bucket counts recounts to them.
func checkStore(t *testing.T, s *MemoryStore) {
	t.Helper()
	for i := range s.shards {
		sh := &s.shards[i]
		checkFamilyPlaces(t, sh, &sh.v4, 0)
		checkFamilyPlaces(t, sh, &sh.v6, 1)
		checkFamilySamplers(t, sh, &sh.v4, 0)
		checkFamilySamplers(t, sh, &sh.v6, 1)
	}
}

func checkFamilySamplers[P record[P]](t *testing.T, sh *shard, f *family[P], fam int) {
	t.Helper()
	for ck, fw := range f.samplers {
		id, class := ck>>1, int(ck&1)
		n := int(sh.swarms[id].n[fam][class])
		if n <= samplerMin/2 {
			t.Errorf("swarm %d class %d has %d peers and still bucket counts", id, class, n)
		}
		want := rebucket(f, id, class, fw.bits)
		for j := range fw.t {
			if fw.t[j] != want.t[j] {
				t.Fatalf("swarm %d class %d: bucket counts out of step with the tree", id, class)
			}
		}
	}
	for id := range sh.swarms {
		for class := range 2 {
			if n := sh.swarms[id].n[fam][class]; n > samplerMin && f.samplers[classKey(uint32(id), class)] == nil {
				t.Errorf("swarm %d class %d has %d peers and no bucket counts", id, class, n)
			}
		}
	}
}

// rebucket counts a class into 2^bits buckets from the tree.
func rebucket[P record[P]](f *family[P], id uint32, class int, bits uint) *fenwick {
	fw := &fenwick{bits: bits, t: make([]uint32, 1<<bits+1)}
	var zero P
	lo := classBase(id, class)
	f.tree.AscendRange(zero.probe(lo), zero.probe(lo|hidMask+1), func(p P) bool {
		fw.add(int((p.recKey()&hidMask)>>(hidBits-bits)), 1)
		return true
	})
	return fw
}

func TestFenwickFind(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		bits := uint(1 + r.IntN(6))
		counts := make([]int, 1<<bits)
		fw := &fenwick{bits: bits, t: make([]uint32, 1<<bits+1)}
		total := 0
		for b := range counts {
			counts[b] = r.IntN(4)
			total += counts[b]
			fw.add(b, int32(counts[b]))
		}
		rank := 0
		for b, c := range counts {
			for off := range c {
				if gb, goff := fw.find(rank); gb != b || goff != off {
					t.Fatalf("find(%d) = %d, %d; want %d, %d (counts %v)", rank, gb, goff, b, off, counts)
				}
				rank++
			}
		}
		if rank != total {
			t.Fatal("bad total")
		}
	}
}

func TestSwarmIndex(t *testing.T) {
	seed := maphash.MakeSeed()
	r := rand.New(rand.NewPCG(5, 6))
	var x swarmIndex
	var swarms []swarm
	live := map[InfoHash]uint32{}
	var free []uint32
	for step := range 50000 {
		h := hashN(r.IntN(3000))
		hv := maphash.Comparable(seed, h)
		id, found := x.find(swarms, &h, hv)
		wantID, want := live[h]
		if found != want || (found && id != wantID) {
			t.Fatalf("step %d: find(%x) = %d, %v; want %d, %v", step, h[:3], id, found, wantID, want)
		}
		if found {
			x.remove(id, hv, seed, swarms)
			delete(live, h)
			swarms[id] = swarm{}
			free = append(free, id)
			continue
		}
		if n := len(free); n > 0 {
			id, free = free[n-1], free[:n-1]
		} else {
			id = uint32(len(swarms))
			swarms = append(swarms, swarm{})
		}
		swarms[id] = swarm{hash: h, seen: 1}
		x.insert(id, hv, seed, swarms)
		live[h] = id
		if x.n != len(live) {
			t.Fatalf("step %d: index holds %d; want %d", step, x.n, len(live))
		}
	}
	for h, id := range live {
		if got, ok := x.find(swarms, &h, maphash.Comparable(seed, h)); !ok || got != id {
			t.Fatalf("find(%x) = %d, %v at the end; want %d", h[:3], got, ok, id)
		}
	}
}

func TestSwarmPrefix(t *testing.T) {
	if got := swarmBase(reservedID) >> swarmShift; got != idMask {
		t.Errorf("reserved id's prefix = %x; want all ones", got)
	}
	for _, id := range []uint32{0, 1, 2, 12345, reservedID - 1, reservedID + 1, maxSwarmID} {
		if got := swarmOf(classBase(id, seed) | hidMask); got != id {
			t.Errorf("swarmOf(classBase(%d)) = %d", id, got)
		}
	}
	// The first ids created land far apart in the key space.
	seen := map[uint64]bool{}
	for id := range uint32(256) {
		seen[swarmBase(id)>>(64-8)] = true
	}
	if len(seen) < 128 {
		t.Errorf("256 consecutive ids fall in only %d of 256 key-space slices", len(seen))
	}
}

func ExampleMemoryStore() {
	store, err := NewMemoryStore(MemoryConfig{MaxPeers: 10_000_000})
	if err != nil {
		panic(err)
	}
	t, err := New(Config{Store: store})
	if err != nil {
		panic(err)
	}
	defer store.Close() // a store passed in is the caller's to close
	defer t.Close()
	fmt.Println(t.Stats().Peers)
	// Output: 0
}
