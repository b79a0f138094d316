// Package trackertest holds tests that any implementation of the tracker's
// interfaces can run against itself, the way testing/slogtest serves
// slog handlers.
//
// A Store implementation runs the suite from its own tests:
//
//	func TestConformance(t *testing.T) {
//		trackertest.TestStore(t, func(t *testing.T) tracker.Store {
//			s := mystore.New(...)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
package trackertest

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"testing"

	"github.com/annuaire/tracker"
)

// TestStore runs the conformance suite against the stores newStore
// returns. newStore is called once per subtest and must return an empty
// store; the suite does not close it (use t.Cleanup).
//
// The suite checks the rules of the [tracker.Store] contract: the counters,
// the selection rules (never the announcer, seeders get leechers, address
// families apart, at most NumWant, a uniform sample), snatch counting,
// removal on stop, scrape order, and consistency under concurrent use. It
// does not check expiry, which depends on the store's clock.
func TestStore(t *testing.T, newStore func(t *testing.T) tracker.Store) {
	for _, tc := range storeTests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, &harness{t: t, s: newStore(t)})
		})
	}
}

var storeTests = []struct {
	name string
	run  func(*testing.T, *harness)
}{
	{"CountsFirstPeers", testCountsFirstPeers},
	{"NeverSelf", testNeverSelf},
	{"SeederGetsLeechers", testSeederGetsLeechers},
	{"LeecherGetsEveryone", testLeecherGetsEveryone},
	{"FamiliesApart", testFamiliesApart},
	{"NumWant", testNumWant},
	{"AppendsToPeers", testAppendsToPeers},
	{"StoppedRemoves", testStoppedRemoves},
	{"CompletedCountsOnce", testCompletedCountsOnce},
	{"LeftZeroCountsOnce", testLeftZeroCountsOnce},
	{"SeederStartIsNoSnatch", testSeederStartIsNoSnatch},
	{"PausedIsIncomplete", testPausedIsIncomplete},
	{"AddressChange", testAddressChange},
	{"UsersApart", testUsersApart},
	{"SwarmsApart", testSwarmsApart},
	{"Scrape", testScrape},
	{"UniformSample", testUniformSample},
	{"Concurrent", testConcurrent},
}

// harness drives one store.
type harness struct {
	t *testing.T
	s tracker.Store
}

// Hash returns a distinct info hash for n.
func Hash(n int) tracker.InfoHash {
	var h tracker.InfoHash
	copy(h[:], "annuaire-test-hash")
	binary.BigEndian.PutUint16(h[18:], uint16(n))
	h[0] ^= byte(n >> 16)
	return h
}

// ID returns a distinct peer id for n, with an Azureus-style prefix.
func ID(n int) tracker.PeerID {
	var id tracker.PeerID
	copy(id[:], "-TT0100-")
	binary.BigEndian.PutUint64(id[12:], uint64(n))
	return id
}

// Addr4 returns a distinct IPv4 address and port for n.
func Addr4(n int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), uint16(10000+n%50000))
}

// Addr6 returns a distinct IPv6 address and port for n.
func Addr6(n int) netip.AddrPort {
	a := [16]byte{0x20, 0x01, 0x0d, 0xb8}
	binary.BigEndian.PutUint32(a[12:], uint32(n))
	return netip.AddrPortFrom(netip.AddrFrom16(a), uint16(10000+n%50000))
}

type peer struct {
	hash  tracker.InfoHash
	n     int // peer number: id and address derive from it
	v6    bool
	left  int64
	event tracker.Event
	want  int
}

func (p peer) addr() netip.AddrPort {
	if p.v6 {
		return Addr6(p.n)
	}
	return Addr4(p.n)
}

func (h *harness) announce(p peer) *tracker.AnnounceResponse {
	h.t.Helper()
	resp, err := h.try(p)
	if err != nil {
		h.t.Fatalf("Announce(peer %d, left %d, %v) = %v", p.n, p.left, p.event, err)
	}
	return resp
}

func (h *harness) try(p peer) (*tracker.AnnounceResponse, error) {
	req := &tracker.AnnounceRequest{
		InfoHash: p.hash,
		PeerID:   ID(p.n),
		Addr:     p.addr(),
		Left:     p.left,
		Event:    p.event,
		NumWant:  p.want,
	}
	resp := &tracker.AnnounceResponse{Peers: make([]tracker.Peer, 0, p.want)}
	err := h.s.Announce(context.Background(), req, resp)
	return resp, err
}

func (h *harness) scrape(hashes ...tracker.InfoHash) []tracker.ScrapeStats {
	h.t.Helper()
	st, err := h.s.Scrape(context.Background(), hashes, nil)
	if err != nil {
		h.t.Fatalf("Scrape = %v", err)
	}
	if len(st) != len(hashes) {
		h.t.Fatalf("Scrape of %d hashes returned %d stats", len(hashes), len(st))
	}
	return st
}

func checkCounts(t *testing.T, what string, resp *tracker.AnnounceResponse, complete, incomplete, downloaded int) {
	t.Helper()
	if resp.Complete != complete || resp.Incomplete != incomplete || resp.Downloaded != downloaded {
		t.Errorf("%s: complete, incomplete, downloaded = %d, %d, %d; want %d, %d, %d",
			what, resp.Complete, resp.Incomplete, resp.Downloaded, complete, incomplete, downloaded)
	}
}

// addrSet maps the addresses of peers 0..n-1 (of one family) to their number.
func addrSet(v6 bool, nums ...int) map[netip.AddrPort]int {
	m := make(map[netip.AddrPort]int)
	for _, n := range nums {
		m[peer{n: n, v6: v6}.addr()] = n
	}
	return m
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func testCountsFirstPeers(t *testing.T, h *harness) {
	x := Hash(1)
	checkCounts(t, "first leecher", h.announce(peer{hash: x, n: 1, left: 10, event: tracker.EventStarted, want: 50}), 0, 1, 0)
	checkCounts(t, "first seeder", h.announce(peer{hash: x, n: 2, left: 0, event: tracker.EventStarted, want: 50}), 1, 1, 0)
	checkCounts(t, "re-announce", h.announce(peer{hash: x, n: 1, left: 5, want: 50}), 1, 1, 0)
}

func testNeverSelf(t *testing.T, h *harness) {
	x := Hash(1)
	for i := range 30 {
		left := int64(100)
		if i%3 == 0 {
			left = 0
		}
		h.announce(peer{hash: x, n: i, left: left, event: tracker.EventStarted})
	}
	for i := range 30 {
		for _, want := range []int{1, 5, 29, 50} {
			left := int64(100)
			if i%3 == 0 {
				left = 0
			}
			p := peer{hash: x, n: i, left: left, want: want}
			resp := h.announce(p)
			for _, q := range resp.Peers {
				if q.Addr == p.addr() {
					t.Fatalf("peer %d (numwant %d) got itself in its reply", i, want)
				}
			}
		}
	}
}

func testSeederGetsLeechers(t *testing.T, h *harness) {
	x := Hash(1)
	for i := range 10 {
		h.announce(peer{hash: x, n: i, left: 0, event: tracker.EventStarted})
	}
	for i := 10; i < 15; i++ {
		h.announce(peer{hash: x, n: i, left: 7, event: tracker.EventStarted})
	}
	leechers := addrSet(false, seq(10, 15)...)
	resp := h.announce(peer{hash: x, n: 0, left: 0, want: 50})
	if len(resp.Peers) != 5 {
		t.Errorf("seeder got %d peers; want the 5 leechers", len(resp.Peers))
	}
	for _, q := range resp.Peers {
		if _, ok := leechers[q.Addr]; !ok {
			t.Errorf("seeder got %v, which is not a leecher", q.Addr)
		}
	}
}

func testLeecherGetsEveryone(t *testing.T, h *harness) {
	x := Hash(1)
	for i := range 20 {
		left := int64(i % 2) // even peers seed
		h.announce(peer{hash: x, n: i, left: left, event: tracker.EventStarted})
	}
	resp := h.announce(peer{hash: x, n: 1, left: 1, want: 50})
	got := map[netip.AddrPort]bool{}
	for _, q := range resp.Peers {
		if got[q.Addr] {
			t.Errorf("peer %v appears twice", q.Addr)
		}
		got[q.Addr] = true
	}
	for i := range 20 {
		if i != 1 && !got[Addr4(i)] {
			t.Errorf("leecher's reply lacks peer %d; want all 19 others", i)
		}
	}
}

func testFamiliesApart(t *testing.T, h *harness) {
	x := Hash(1)
	for i := range 10 {
		h.announce(peer{hash: x, n: i, left: 5, event: tracker.EventStarted})
		h.announce(peer{hash: x, n: 100 + i, v6: true, left: 5, event: tracker.EventStarted})
	}
	resp4 := h.announce(peer{hash: x, n: 0, left: 5, want: 50})
	checkCounts(t, "counts include both families", resp4, 0, 20, 0)
	if len(resp4.Peers) != 9 {
		t.Errorf("IPv4 leecher got %d peers; want the 9 other IPv4 peers", len(resp4.Peers))
	}
	for _, q := range resp4.Peers {
		if !q.Addr.Addr().Is4() {
			t.Errorf("IPv4 announcer got IPv6 peer %v", q.Addr)
		}
	}
	resp6 := h.announce(peer{hash: x, n: 100, v6: true, left: 5, want: 50})
	if len(resp6.Peers) != 9 {
		t.Errorf("IPv6 leecher got %d peers; want the 9 other IPv6 peers", len(resp6.Peers))
	}
	for _, q := range resp6.Peers {
		if !q.Addr.Addr().Is6() || q.Addr.Addr().Is4In6() {
			t.Errorf("IPv6 announcer got IPv4 peer %v", q.Addr)
		}
	}
}

func testNumWant(t *testing.T, h *harness) {
	x := Hash(1)
	for i := range 300 {
		h.announce(peer{hash: x, n: i, left: int64(i % 4), event: tracker.EventStarted})
	}
	// Peer 0 seeds; peer 1 leeches. 75 seeders, 225 leechers.
	for _, want := range []int{0, 1, 2, 50, 200, 224, 225, 299, 300} {
		for _, me := range []peer{{hash: x, n: 0, left: 0}, {hash: x, n: 1, left: 1}} {
			me.want = want
			resp := h.announce(me)
			others := 299
			if me.left == 0 {
				others = 225 // the leechers
			}
			if n := len(resp.Peers); n != min(want, others) {
				t.Errorf("numwant %d, left %d: got %d peers; want %d", want, me.left, n, min(want, others))
			}
			checkCounts(t, fmt.Sprintf("numwant %d", want), resp, 75, 225, 0)
			seen := map[netip.AddrPort]bool{}
			for _, q := range resp.Peers {
				if seen[q.Addr] {
					t.Errorf("numwant %d: %v twice in one reply", want, q.Addr)
				}
				seen[q.Addr] = true
			}
		}
	}
}

func testAppendsToPeers(t *testing.T, h *harness) {
	x := Hash(1)
	h.announce(peer{hash: x, n: 1, left: 1, event: tracker.EventStarted})
	marker := tracker.Peer{Addr: netip.MustParseAddrPort("192.0.2.1:1")}
	resp := &tracker.AnnounceResponse{Peers: []tracker.Peer{marker}}
	req := &tracker.AnnounceRequest{InfoHash: x, PeerID: ID(2), Addr: Addr4(2), Left: 1, NumWant: 10}
	if err := h.s.Announce(context.Background(), req, resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != 2 || resp.Peers[0] != marker || resp.Peers[1].Addr != Addr4(1) {
		t.Errorf("Announce replaced resp.Peers instead of appending: %v", resp.Peers)
	}
}

func testStoppedRemoves(t *testing.T, h *harness) {
	x := Hash(1)
	h.announce(peer{hash: x, n: 1, left: 0, event: tracker.EventStarted})
	h.announce(peer{hash: x, n: 2, left: 9, event: tracker.EventStarted})
	resp := h.announce(peer{hash: x, n: 2, left: 9, event: tracker.EventStopped})
	checkCounts(t, "after stop", resp, 1, 0, 0)
	if len(resp.Peers) != 0 {
		t.Errorf("stopping peer got %d peers; want none", len(resp.Peers))
	}
	if st := h.scrape(x)[0]; st.Complete != 1 || st.Incomplete != 0 {
		t.Errorf("scrape after stop = %+v; want 1 seeder, 0 leechers", st)
	}
	// The seeder no longer gets the stopped leecher.
	if resp := h.announce(peer{hash: x, n: 1, left: 0, want: 50}); len(resp.Peers) != 0 {
		t.Errorf("seeder got %v after the only leecher stopped", resp.Peers)
	}
	// Stopping twice, or a peer never seen, is harmless.
	checkCounts(t, "second stop", h.announce(peer{hash: x, n: 2, left: 9, event: tracker.EventStopped}), 1, 0, 0)
	checkCounts(t, "unknown swarm stop", h.announce(peer{hash: Hash(2), n: 3, event: tracker.EventStopped}), 0, 0, 0)
	if st := h.scrape(Hash(2))[0]; st != (tracker.ScrapeStats{}) {
		t.Errorf("a stop created swarm counters: %+v", st)
	}
	// A seeder that stops is removed from the seeders.
	checkCounts(t, "seeder stop", h.announce(peer{hash: x, n: 1, left: 0, event: tracker.EventStopped}), 0, 0, 0)
}

func testCompletedCountsOnce(t *testing.T, h *harness) {
	x := Hash(1)
	h.announce(peer{hash: x, n: 1, left: 100, event: tracker.EventStarted})
	checkCounts(t, "completed", h.announce(peer{hash: x, n: 1, left: 0, event: tracker.EventCompleted}), 1, 0, 1)
	checkCounts(t, "retransmitted completed", h.announce(peer{hash: x, n: 1, left: 0, event: tracker.EventCompleted}), 1, 0, 1)
	checkCounts(t, "later announce", h.announce(peer{hash: x, n: 1, left: 0}), 1, 0, 1)
	// Back to leeching (a recheck failed) and complete again: not counted twice.
	h.announce(peer{hash: x, n: 1, left: 10})
	checkCounts(t, "completed again", h.announce(peer{hash: x, n: 1, left: 0, event: tracker.EventCompleted}), 1, 0, 1)
	// Another peer's completion counts.
	h.announce(peer{hash: x, n: 2, left: 100, event: tracker.EventStarted})
	checkCounts(t, "second peer", h.announce(peer{hash: x, n: 2, left: 0, event: tracker.EventCompleted}), 2, 0, 2)
	// A completed event from a peer the store never saw (it restarted) counts.
	checkCounts(t, "unknown peer completes", h.announce(peer{hash: x, n: 3, left: 0, event: tracker.EventCompleted}), 3, 0, 3)
	if st := h.scrape(x)[0]; st.Downloaded != 3 {
		t.Errorf("scrape downloaded = %d; want 3", st.Downloaded)
	}
}

func testLeftZeroCountsOnce(t *testing.T, h *harness) {
	// aria2 never sends completed: a known leecher reaching left 0 is a
	// completion, whatever the event.
	x := Hash(1)
	h.announce(peer{hash: x, n: 1, left: 100, event: tracker.EventStarted})
	h.announce(peer{hash: x, n: 1, left: 50})
	checkCounts(t, "left reaches 0", h.announce(peer{hash: x, n: 1, left: 0}), 1, 0, 1)
	checkCounts(t, "seeding on", h.announce(peer{hash: x, n: 1, left: 0}), 1, 0, 1)
	checkCounts(t, "stop as seeder", h.announce(peer{hash: x, n: 1, left: 0, event: tracker.EventStopped}), 0, 0, 1)
	// The same at the stop itself: started, then stopped with left 0.
	h.announce(peer{hash: x, n: 2, left: 100, event: tracker.EventStarted})
	checkCounts(t, "stopped with left 0", h.announce(peer{hash: x, n: 2, left: 0, event: tracker.EventStopped}), 0, 0, 2)
}

func testSeederStartIsNoSnatch(t *testing.T, h *harness) {
	x := Hash(1)
	checkCounts(t, "seeder starts", h.announce(peer{hash: x, n: 1, left: 0, event: tracker.EventStarted}), 1, 0, 0)
	checkCounts(t, "seeder re-announces", h.announce(peer{hash: x, n: 1, left: 0}), 1, 0, 0)
}

func testPausedIsIncomplete(t *testing.T, h *harness) {
	x := Hash(1)
	h.announce(peer{hash: x, n: 1, left: 100, event: tracker.EventStarted})
	checkCounts(t, "partial seed", h.announce(peer{hash: x, n: 2, left: 40, event: tracker.EventPaused}), 0, 2, 0)
	st := h.scrape(x)[0]
	if st.Incomplete != 2 || st.Downloaders != 1 {
		t.Errorf("scrape with one partial seed = %+v; want incomplete 2, downloaders 1", st)
	}
	h.announce(peer{hash: x, n: 2, left: 40}) // no longer paused
	if st := h.scrape(x)[0]; st.Downloaders != 2 {
		t.Errorf("downloaders = %d after the partial seed resumed; want 2", st.Downloaders)
	}
	h.announce(peer{hash: x, n: 2, left: 40, event: tracker.EventPaused})
	h.announce(peer{hash: x, n: 2, left: 40, event: tracker.EventStopped})
	if st := h.scrape(x)[0]; st.Incomplete != 1 || st.Downloaders != 1 {
		t.Errorf("scrape after the partial seed stopped = %+v; want 1 and 1", st)
	}
}

// testAddressChange: the same peer id from another port or another address
// is another peer, which can neither move nor stop the first (peer ids
// travel in every handshake, so anyone can learn them); the first stays
// until it stops from its own address and port.
func testAddressChange(t *testing.T, h *harness) {
	ctx := context.Background()
	x := Hash(1)
	h.announce(peer{hash: x, n: 1, left: 0, event: tracker.EventStarted})
	req := &tracker.AnnounceRequest{InfoHash: x, PeerID: ID(2), Addr: Addr4(2), Left: 5, NumWant: 10, Key: 7}
	if err := h.s.Announce(ctx, req, &tracker.AnnounceResponse{}); err != nil {
		t.Fatal(err)
	}
	// Someone else, with the leecher's peer id and key, from another port
	// of the same address and from another address.
	for _, at := range []netip.AddrPort{netip.AddrPortFrom(Addr4(2).Addr(), 7000), netip.MustParseAddrPort("10.200.0.1:7000")} {
		thief := *req
		thief.Addr = at
		for _, ev := range []tracker.Event{tracker.EventStarted, tracker.EventStopped} {
			thief.Event = ev
			if err := h.s.Announce(ctx, &thief, &tracker.AnnounceResponse{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := h.announce(peer{hash: x, n: 1, left: 0, want: 10})
	checkCounts(t, "after another port and another address announced the peer id and stopped", got, 1, 1, 0)
	if len(got.Peers) != 1 || got.Peers[0].Addr != Addr4(2) {
		t.Errorf("seeder got %v; want the leecher, still at %v", got.Peers, Addr4(2))
	}
	// The leecher stops from its own address and port.
	req.Event = tracker.EventStopped
	if err := h.s.Announce(ctx, req, &tracker.AnnounceResponse{}); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, "after the leecher stopped", h.announce(peer{hash: x, n: 1, left: 0}), 1, 0, 0)
}

// testUsersApart: on a private tracker, two users' peers are apart even
// with the same peer id and address (a user's announce carries its
// identity in resp.Identity). The users announce different ports: a store
// may tell the users of one address and port apart by a hash only.
func testUsersApart(t *testing.T, h *harness) {
	ctx := context.Background()
	x := Hash(1)
	announce := func(user uint64, ev tracker.Event) *tracker.AnnounceResponse {
		req := &tracker.AnnounceRequest{InfoHash: x, PeerID: ID(1), Addr: netip.AddrPortFrom(Addr4(1).Addr(), uint16(6880+user)), Left: 5, Event: ev, NumWant: 10}
		resp := &tracker.AnnounceResponse{Identity: tracker.Identity{UserID: user}}
		if err := h.s.Announce(ctx, req, resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	announce(1, tracker.EventStarted)
	checkCounts(t, "a second user, same peer id and address", announce(2, tracker.EventStarted), 0, 2, 0)
	checkCounts(t, "the second user stops", announce(2, tracker.EventStopped), 0, 1, 0)
	checkCounts(t, "the first user's peer", announce(1, tracker.EventNone), 0, 1, 0)
}

func testSwarmsApart(t *testing.T, h *harness) {
	// A hybrid torrent announces the same peer under its v1 hash and its
	// truncated v2 hash: two swarms.
	v1, v2 := Hash(1), Hash(2)
	h.announce(peer{hash: v1, n: 1, left: 5, event: tracker.EventStarted})
	h.announce(peer{hash: v2, n: 1, left: 5, event: tracker.EventStarted})
	h.announce(peer{hash: v2, n: 2, left: 0, event: tracker.EventStarted})
	checkCounts(t, "v1 swarm", h.announce(peer{hash: v1, n: 1, left: 5}), 0, 1, 0)
	if resp := h.announce(peer{hash: v1, n: 1, left: 5, want: 10}); len(resp.Peers) != 0 {
		t.Errorf("v1 swarm handed out %v from the v2 swarm", resp.Peers)
	}
	checkCounts(t, "v2 swarm", h.announce(peer{hash: v2, n: 1, left: 5}), 1, 1, 0)
}

func testScrape(t *testing.T, h *harness) {
	a, b, unknown := Hash(1), Hash(2), Hash(3)
	h.announce(peer{hash: a, n: 1, left: 0, event: tracker.EventStarted})
	h.announce(peer{hash: b, n: 2, left: 5, event: tracker.EventStarted})
	h.announce(peer{hash: b, n: 3, left: 5, event: tracker.EventStarted})
	got := h.scrape(b, unknown, a, b)
	want := []tracker.ScrapeStats{
		{Incomplete: 2, Downloaders: 2},
		{},
		{Complete: 1},
		{Incomplete: 2, Downloaders: 2},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Scrape(b, unknown, a, b)[%d] = %+v; want %+v", i, got[i], want[i])
		}
	}
	// Scrape appends to dst.
	dst := []tracker.ScrapeStats{{Complete: 99}}
	dst, err := h.s.Scrape(context.Background(), []tracker.InfoHash{a}, dst)
	if err != nil || len(dst) != 2 || dst[0].Complete != 99 || dst[1].Complete != 1 {
		t.Errorf("Scrape(dst) = %+v, %v; want the old entry kept and one appended", dst, err)
	}
}

// testUniformSample checks that repeated announces hand out every other
// peer with the same frequency: for each layout, each other peer's count
// over many replies must be within six standard deviations of the
// binomial expectation, which a store that favours some peers (for
// instance by picking a random point in hash space, which weights each
// peer by the gap before it) fails by far.
func testUniformSample(t *testing.T, h *harness) {
	for _, tc := range []struct {
		name           string
		seeds, leeches int
		announcerSeeds bool
		want, rounds   int
	}{
		{"small swarm, leecher", 8, 12, false, 5, 8000},
		{"small swarm, numwant 1", 8, 12, false, 1, 20000},
		{"small swarm, seeder", 8, 12, true, 5, 8000},
		{"large swarm, leecher", 150, 250, false, 20, 8000},
		{"large swarm, seeder", 150, 250, true, 20, 8000},
		{"large swarm, numwant 1", 100, 100, false, 1, 40000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := Hash(1000 + len(tc.name) + tc.want)
			for i := range tc.seeds + tc.leeches {
				left := int64(0)
				if i >= tc.seeds {
					left = 1
				}
				h.announce(peer{hash: x, n: i, left: left, event: tracker.EventStarted})
			}
			me := peer{hash: x, n: tc.seeds, left: 1, want: tc.want} // a leecher
			others := tc.seeds + tc.leeches - 1
			eligible := seq(0, tc.seeds+tc.leeches)
			if tc.announcerSeeds {
				me = peer{hash: x, n: 0, left: 0, want: tc.want}
				others = tc.leeches
				eligible = seq(tc.seeds, tc.seeds+tc.leeches)
			}
			counts := map[netip.AddrPort]int{}
			for range tc.rounds {
				for _, q := range h.announce(me).Peers {
					counts[q.Addr]++
				}
			}
			p := float64(tc.want) / float64(others)
			mean := float64(tc.rounds) * p
			sd := math.Sqrt(float64(tc.rounds) * p * (1 - p))
			lo, hi := math.MaxInt, 0
			for _, n := range eligible {
				if n == me.n {
					continue
				}
				c := counts[Addr4(n)]
				lo, hi = min(lo, c), max(hi, c)
				if math.Abs(float64(c)-mean) > 6*sd {
					t.Errorf("peer %d handed out %d times in %d replies; want %.0f ± %.0f", n, c, tc.rounds, mean, 6*sd)
				}
			}
			if len(counts) > others {
				t.Errorf("%d distinct peers handed out; only %d are eligible", len(counts), others)
			}
			t.Logf("%d replies of %d peers among %d: counts from %d to %d, expected %.0f ± %.1f", tc.rounds, tc.want, others, lo, hi, mean, sd)
		})
	}
}

func testConcurrent(t *testing.T, h *harness) {
	const workers, swarms, peersPer = 8, 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 20 {
				for i := w; i < swarms*peersPer; i += workers {
					p := peer{hash: Hash(i % swarms), n: i, left: int64(i % 3), want: 30}
					if round == 0 {
						p.event = tracker.EventStarted
					}
					resp, err := h.try(p)
					if err != nil {
						errs <- err
						return
					}
					for _, q := range resp.Peers {
						if q.Addr == p.addr() {
							errs <- fmt.Errorf("peer %d got itself", i)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for s := range swarms {
		st := h.scrape(Hash(s))[0]
		if st.Complete+st.Incomplete != peersPer {
			t.Errorf("swarm %d holds %d peers after concurrent announces; want %d", s, st.Complete+st.Incomplete, peersPer)
		}
	}
}
