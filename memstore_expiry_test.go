// Tests of the memory store's expiry: sweeps at chosen times, and the
// sweeper goroutine under a fake clock.

package tracker

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestExpiry(t *testing.T) {
	// A TTL of 8 minutes makes generations of 64 s: a peer seen in
	// generation g is stale from generation g+9 on.
	const ttl = 8 * time.Minute
	const gen = 64 * time.Second
	s := newStoreAt(t, MemoryConfig{PeerTTL: ttl, SwarmTTL: time.Hour})
	if time.Duration(s.genTicks)*tick != gen {
		t.Fatalf("generations of %d ticks; want %v", s.genTicks, gen)
	}
	a, b := hashN(1), hashN(2)
	s.announceAt(0, testPeer(a, 1, 10, EventStarted))              // generation 0
	s.announceAt(0, testPeer(a, 2, 0, EventStarted))               //
	s.announceAt(5*time.Minute, testPeer(a, 2, 0, EventNone))      // refreshed in generation 4
	s.announceAt(0, testPeer(b, 3, 10, EventStarted))              //
	s.announceAt(2*time.Minute, testPeer(b, 3, 0, EventCompleted)) // generation 1; a snatch keeps b
	for _, step := range []struct {
		at                   time.Duration
		swarms, peers, seeds int
		downloadedB          int
	}{
		{ttl - 4*time.Second, 2, 3, 2, 1},                       // nothing stale yet
		{9*gen + 8*time.Second, 2, 2, 2, 1},                     // peer 1 gone
		{10*gen + 8*time.Second, 2, 1, 1, 1},                    // peer 3 gone; b kept for its snatch
		{13*gen + 8*time.Second, 1, 0, 0, 1},                    // peer 2 gone; a, empty and never completed, dropped
		{2*time.Minute + time.Hour + 8*time.Second, 0, 0, 0, 0}, // b's swarm TTL over
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

// TestExpiryLongTTL: the longest TTL holds; its timestamps, 14 bits of
// 4-second ticks, tell 16 hours and a minute apart from fresh.
func TestExpiryLongTTL(t *testing.T) {
	const ttl = 16 * time.Hour
	s := newStoreAt(t, MemoryConfig{PeerTTL: ttl})
	h := hashN(1)
	s.announceAt(0, testPeer(h, 1, 10, EventStarted))
	s.announceAt(0, testPeer(h, 2, 10, EventStarted))
	s.announceAt(15*time.Hour, testPeer(h, 2, 10, EventNone)) // refreshed
	// A peer expires between the TTL and an eighth more.
	late := ttl/8 + time.Minute
	for _, step := range []struct {
		at    time.Duration
		peers int
	}{
		{ttl, 2},
		{ttl + late, 1},
		{15*time.Hour + ttl, 1},
		{15*time.Hour + ttl + late, 0},
	} {
		s.sweepAt(step.at)
		if c := s.counts(); c.Peers != step.peers {
			t.Errorf("after a sweep at %v: %d peers; want %d", step.at, c.Peers, step.peers)
		}
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
		w := s.shards[0].swarms.at(uint32(h))
		if c := classFor(3); int(w.blk[inet4]) != c+1 {
			t.Errorf("swarm %d: place %d after the sweep; want a block of %d", h, w.blk[inet4], blockCaps[c])
		}
		req := testPeer(hashN(h), 1000, 1, EventStarted)
		req.NumWant = 50
		if resp := s.announceAt(2*time.Minute+8*time.Second, req); len(resp.Peers) != 3 {
			t.Errorf("swarm %d: %d peers after the sweep; want 3", h, len(resp.Peers))
		}
	}
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

// TestClockNeverGoesBack: a tick delivered late leaves the clock where it
// is, and a sweep that reads a clock older than a swarm's last announce
// keeps the swarm's snatch count.
func TestClockNeverGoesBack(t *testing.T) {
	s := newStoreAt(t, MemoryConfig{Shards: 1})
	now := s.advance(s.start.Add(time.Hour))
	if late := s.advance(s.start.Add(time.Hour - 10*time.Second)); late != now || s.clock.Load() != now {
		t.Fatalf("a late tick moved the clock from %d to %d", now, s.clock.Load())
	}
	// A peer completes and stops at a tick ahead of the clock, as an
	// announce that read the clock just after a sweep began would.
	h := hashN(1)
	s.announceAt(time.Hour+8*time.Second, testPeer(h, 1, 0, EventCompleted))
	s.announceAt(time.Hour+8*time.Second, testPeer(h, 1, 0, EventStopped))
	s.sweep(&s.shards[0])
	files, err := s.Scrape(context.Background(), []InfoHash{h}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st := files[0]; st.Downloaded != 1 {
		t.Errorf("after a sweep at an older tick: %d snatches; want 1 (the swarm is kept)", st.Downloaded)
	}
}
