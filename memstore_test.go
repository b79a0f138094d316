// Tests of the memory store as a whole: helpers that drive a store at
// chosen times, its limits and configuration, the model check that every
// announce is answered as a plain model of the swarms says, and checkStore,
// the check of its inner consistency.

package tracker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
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
	t.Cleanup(func() { s.Close() })
	return storeAt{s, t}
}

// blockLimit makes the store move a family to the tree past n peers (a
// size of block), so that tests reach the tree with small swarms.
func (s storeAt) blockLimit(n int) storeAt {
	s.maxClass = classFor(uint32(n))
	s.toBlockAt = uint32(blockCaps[s.maxClass] / 4)
	return s
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
	s.advance(s.start.Add(d))
	for i := range s.shards {
		s.sweep(&s.shards[i])
	}
}

func (s storeAt) counts() StoreCounts {
	c, err := s.Counts(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	return c
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
		{PeerTTL: 17 * time.Hour},
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
// rules, and that bucket counts stay in step with the trees. Swarms grow
// and shrink in turns, so that families move between blocks and the tree in
// both directions.
func TestModel(t *testing.T) {
	for _, tc := range []struct{ swarms, ids, limit int }{
		{3, 400, 32}, // mostly in the tree, with bucket counts
		{3, 60, 32},  // across the block limit both ways
		{3, 400, 0},  // large blocks
		{5, 12, 0},   // small blocks
		{60, 40, 0},  // blocks over several chunks, compacted
		{2, 1500, 0}, // across the largest block both ways
		{60, 200, 0}, // blocks of the slab and of their own
	} {
		t.Run(fmt.Sprintf("%dx%d/%d", tc.swarms, tc.ids, tc.limit), func(t *testing.T) {
			runModel(t, tc.swarms, tc.ids, tc.limit, 30000, rand.New(rand.NewPCG(1, uint64(tc.ids))))
		})
	}
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
		runModel(t, swarms, ids, 16, len(data)/4, src)
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
// against a model of the swarms; blockLimit, if not zero, sets the size
// past which a family moves to the tree. Now and then it sweeps (nothing is stale:
// time stands still), which compacts slabs.
func runModel(t *testing.T, swarms, ids, blockLimit, steps int, r interface{ IntN(int) int }) {
	// The IPv6 peers share a /64: no bound per address.
	s := newStoreAt(t, MemoryConfig{Shards: 2, MaxPeersPerSwarmAddr: Disabled, MaxPeersPerAddr: 1 << 20})
	if blockLimit > 0 {
		s = s.blockLimit(blockLimit)
	}
	type swarmModel struct {
		peers    map[netip.AddrPort]*modelPeer // by address and port: the identity of a peer whose id is its number
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
			sm = &swarmModel{peers: map[netip.AddrPort]*modelPeer{}}
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
		if r.IntN(4) == 0 { // the peer's other port: another peer
			req.Addr = netip.AddrPortFrom(req.Addr.Addr(), req.Addr.Port()+1)
		}
		req.NumWant = r.IntN(60)
		resp := &AnnounceResponse{}
		if err := s.announce(1, req, resp); err != nil {
			t.Fatal(err)
		}

		// Update the model.
		old := sm.peers[req.Addr]
		seed := req.Left == 0
		if req.Event == EventStopped {
			if old != nil && !old.seed && seed && !old.snatched {
				sm.snatches++
			}
			delete(sm.peers, req.Addr)
		} else {
			snatched := old != nil && (old.snatched || old.seed)
			completes := req.Event == EventCompleted || (old != nil && !old.seed && seed)
			if completes && !snatched && (old == nil || !old.seed) {
				sm.snatches++
				snatched = true
			}
			sm.peers[req.Addr] = &modelPeer{addr: req.Addr, seed: seed, paused: req.Event == EventPaused && !seed, snatched: snatched}
		}

		// Check counters and the reply.
		var complete, incomplete, paused int
		eligible := map[netip.AddrPort]bool{}
		for a, p := range sm.peers {
			if p.seed {
				complete++
			} else {
				incomplete++
				if p.paused {
					paused++
				}
			}
			if a != req.Addr && p.addr.Addr().Is4() == !v6 && (!seed || !p.seed) {
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

// checkStore checks the inner consistency of a store: every family of every
// swarm keeps its peers in one place, the tree or a block, as its swarm
// says; the blocks and free blocks of a slab cover it exactly; and every
// class with bucket counts recounts to them.
func checkStore(t *testing.T, s *MemoryStore) {
	t.Helper()
	if s.perAddr != nil {
		sum := 0
		for i := range s.perAddr.n {
			sum += int(s.perAddr.n[i].Load())
		}
		if sum != int(s.npeers.Load()) {
			t.Fatalf("the counters by address add up to %d peers; the store holds %d", sum, s.npeers.Load())
		}
	}
	for i := range s.shards {
		sh := &s.shards[i]
		if ta := &sh.treeAddrs; ta.n != nil {
			want := treeAddrs{n: make([]uint8, len(ta.n)), peers: ta.peers}
			countTree(s, &want, &sh.v4, inet4)
			countTree(s, &want, &sh.v6, inet6)
			for j := range want.n {
				if ta.n[j] != want.n[j] && ta.n[j] != 255 {
					t.Fatalf("shard %d: tree counter %d of an address is %d; the trees hold %d", i, j, ta.n[j], want.n[j])
				}
			}
		}
		checkFamilyPlaces(t, s, sh, &sh.v4, inet4)
		checkFamilyPlaces(t, s, sh, &sh.v6, inet6)
		checkFamilySamplers(t, sh, &sh.v4, inet4)
		checkFamilySamplers(t, sh, &sh.v6, inet6)
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
