// Tests of the memory store's bounds per address.

package tracker

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// TestAddressBounds: one address that announces made-up peers into a swarm
// gets answers, but no more than its share of peers is added, in a block
// and in the tree; other addresses are not affected; a peer that stops
// makes room.
func TestAddressBounds(t *testing.T) {
	for _, limit := range []int{0, 16} { // blocks only; the tree past 16 peers
		t.Run(fmt.Sprintf("block limit %d", limit), func(t *testing.T) {
			s := newStoreAt(t, MemoryConfig{Shards: 1, MaxPeersPerSwarmAddr: 8})
			if limit > 0 {
				s = s.blockLimit(limit)
			}
			h := hashN(1)
			for n := range 40 { // 40 honest peers, one per address
				s.announceAt(0, testPeer(h, 1000+n, 1, EventStarted))
			}
			flood := func(from netip.Addr, ids int) {
				for n := range ids {
					req := testPeer(h, n, 1, EventStarted)
					req.Addr = netip.AddrPortFrom(from, uint16(7000+n))
					req.NumWant = 5
					// IPv4 announcers get the honest peers: an announce past
					// the bound is still answered.
					if resp := s.announceAt(0, req); from.Is4() && len(resp.Peers) != 5 {
						t.Fatalf("flooding peer %d got %d peers; want 5", n, len(resp.Peers))
					}
				}
			}
			// In the tree an address's count may be too high by a peer or
			// two of an address that shares its counter.
			slack := 0
			if limit > 0 {
				slack = 2
			}
			check := func(what string, want int) {
				t.Helper()
				if c := s.counts(); c.Peers > want || c.Peers < want-slack {
					t.Errorf("%s: %d peers; want %d (less at most %d)", what, c.Peers, want, slack)
				}
			}
			flood(netip.MustParseAddr("198.51.100.7"), 30)
			check("after 30 peers from one address", 40+8)
			// A /64 is one address; another /64 is another.
			flood(netip.MustParseAddr("2001:db8:1:2::1"), 5)
			flood(netip.MustParseAddr("2001:db8:1:2::2"), 5)
			flood(netip.MustParseAddr("2001:db8:1:3::1"), 5)
			slack *= 2 // the IPv6 peers too
			check("after IPv6 peers", 40+8+8+5)
			// Room again once one stops.
			stop := testPeer(h, 0, 1, EventStopped)
			stop.Addr = netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), 7000)
			s.announceAt(0, stop)
			more := testPeer(h, 99, 1, EventStarted)
			more.Addr = netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), 9999)
			if resp := s.announceAt(0, more); resp.Outcome&OutcomeJoined == 0 {
				t.Errorf("after one of its peers stopped, an address could not add one: outcome %v", resp.Outcome)
			}
			checkStore(t, s.MemoryStore)
		})
	}
}

// TestAddressBoundOverall: the bound over all swarms counts an address's
// peers wherever they are, and its peers that expire make room.
func TestAddressBoundOverall(t *testing.T) {
	s := newStoreAt(t, MemoryConfig{MaxPeersPerAddr: 20, PeerTTL: time.Minute})
	from := netip.MustParseAddr("203.0.113.5")
	added := 0
	for n := range 50 {
		req := testPeer(hashN(n), n, 1, EventStarted)
		req.Addr = netip.AddrPortFrom(from, 6881)
		if s.announceAt(0, req).Outcome&OutcomeJoined != 0 {
			added++
		}
	}
	if added != 20 {
		t.Errorf("one address in 50 swarms: %d peers added; want 20", added)
	}
	s.sweepAt(3 * time.Minute) // all expire
	req := testPeer(hashN(100), 100, 1, EventStarted)
	req.Addr = netip.AddrPortFrom(from, 6881)
	if s.announceAt(3*time.Minute, req).Outcome&OutcomeJoined == 0 {
		t.Errorf("after its peers expired, the address could not add one")
	}
}

// TestIdleSwarmsGoFirst: with the store full of swarms that hold only a
// snatch count (one completed announce per made-up torrent, its peer long
// gone), a new torrent is served, at the cost of one of them.
func TestIdleSwarmsGoFirst(t *testing.T) {
	s := newStoreAt(t, MemoryConfig{MaxSwarms: 100, PeerTTL: time.Minute, Shards: 4})
	for n := range 100 {
		s.announceAt(0, testPeer(hashN(n), n, 0, EventCompleted))
	}
	if err := s.announce(1, testPeer(hashN(500), 500, 1, EventStarted), &AnnounceResponse{}); err != ErrTooManySwarms {
		t.Fatalf("a new torrent while every swarm has a peer: %v; want ErrTooManySwarms", err)
	}
	s.sweepAt(3 * time.Minute) // the peers expire; the snatch counts stay
	if c := s.counts(); c.Swarms != 100 || c.Peers != 0 {
		t.Fatalf("after the sweep: %d swarms, %d peers; want 100, 0", c.Swarms, c.Peers)
	}
	for n := range 50 {
		resp := s.announceAt(3*time.Minute, testPeer(hashN(1000+n), 1000+n, 1, EventStarted))
		if resp.Outcome&OutcomeJoined == 0 {
			t.Fatalf("new torrent %d not served", n)
		}
	}
	if c := s.counts(); c.Swarms != 100 || c.Peers != 50 {
		t.Errorf("after 50 new torrents: %d swarms, %d peers; want 100, 50", c.Swarms, c.Peers)
	}
	checkStore(t, s.MemoryStore)
}

// TestSwarmTableShrinks: after a flood of torrents that come and go, the
// swarm table gives its room back over a few sweeps, and the swarms left,
// moved to new places, in blocks and in the tree, keep their peers.
func TestSwarmTableShrinks(t *testing.T) {
	s := newStoreAt(t, MemoryConfig{Shards: 1, PeerTTL: time.Minute, MaxPeersPerSwarmAddr: Disabled}).blockLimit(16)
	sh := &s.shards[0]
	const flood = 20_000
	keep := map[int]int{} // swarm -> peers
	for n := range flood {
		peers := 1
		if n%997 == 0 {
			peers = 40 // in the tree
			keep[n] = peers
		} else if n%101 == 0 {
			peers = 3
			keep[n] = peers
		}
		for i := range peers {
			s.announceAt(0, testPeer(hashN(n), i, 1, EventStarted))
		}
	}
	before := sh.swarms.len()
	// The others' peers go quiet and expire; the kept ones announce.
	for n, peers := range keep {
		for i := range peers {
			s.announceAt(2*time.Minute, testPeer(hashN(n), i, 1, EventNone))
		}
	}
	for sweep := range 50 {
		s.sweepAt(2*time.Minute + time.Duration(sweep)*time.Second)
	}
	if after := sh.swarms.len(); after > 2*len(keep)+2*swarmPageLen || after >= before {
		t.Errorf("swarm table of %d (%d before) for %d swarms", after, before, len(keep))
	}
	checkStore(t, s.MemoryStore)
	for n, peers := range keep {
		req := testPeer(hashN(n), 10_000, 1, EventStarted)
		req.NumWant = 100
		if resp := s.announceAt(2*time.Minute+50*time.Second, req); len(resp.Peers) != peers || resp.Incomplete != peers+1 {
			t.Fatalf("swarm %d: %d peers, %d leechers after the table shrank; want %d and %d", n, len(resp.Peers), resp.Incomplete, peers, peers+1)
		}
	}
	checkStore(t, s.MemoryStore)
}
