// Package trackertest holds tests that any implementation of the tracker's
// interfaces can run against itself, the way testing/slogtest serves
// slog handlers.
//
// A Store implementation runs the suite from its own tests, with a
// [Harness] that makes stores and moves their clocks:
//
//	func TestConformance(t *testing.T) {
//		trackertest.TestStore(t, trackertest.Harness{
//			New: func(t *testing.T) tracker.Store {
//				s := mystore.New(mystore.Config{PeerTTL: time.Minute, Now: clock.Now})
//				t.Cleanup(func() { s.Close() })
//				return s
//			},
//			Advance: func(t *testing.T, s tracker.Store, d time.Duration) { clock.Add(d) },
//			PeerTTL: time.Minute,
//		})
//	}
package trackertest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/annuaire/tracker"
)

// Harness describes a Store implementation to [TestStore].
type Harness struct {
	// New returns an empty store; required. The suite calls it once per
	// subtest, and closes some of the stores it returns (a store must
	// allow Close twice), but not all: New should register Close with
	// t.Cleanup.
	New func(t *testing.T) tracker.Store

	// Advance moves the clock of s, a store that New or NewBounded
	// returned, forward by d; required, since every store must expire
	// peers. When Advance returns, each peer whose last announce is more
	// than PeerTTL+Slack in the past on that clock must be gone from every
	// count, reply and scrape of s, and each peer whose last announce is at
	// most PeerTTL in the past must still be there. A store may expire
	// peers lazily, when a swarm is next used, as long as counts and
	// replies are right.
	Advance func(t *testing.T, s tracker.Store, d time.Duration)

	// PeerTTL is how long the store keeps a peer after its last announce;
	// required.
	PeerTTL time.Duration

	// Slack is how much later than PeerTTL the store may remove a peer:
	// zero for a store that removes it as soon as it is PeerTTL old, two
	// ticks for one whose clock ticks. At most a quarter of PeerTTL.
	Slack time.Duration

	// NewBounded returns an empty store that refuses, with an
	// [*tracker.Error] of kind [tracker.KindCapacity], a new peer in a
	// swarm that holds maxPeers peers (a store bounded in total refuses it
	// then too). Nil skips the capacity check.
	NewBounded func(t *testing.T, maxPeers int) tracker.Store
}

// TestStore runs the conformance suite against the stores h makes. Each
// subtest gets an empty store.
//
// The suite checks the rules of the [tracker.Store] contract:
//
//   - counts: seeders, leechers (partial seeds included), downloaders and
//     snatches, exact under concurrent announces;
//   - selection: never the announcer, seeders get leechers, address
//     families apart, at most NumWant peers, peers appended to
//     resp.Peers;
//   - sampling: every eligible peer equally likely (a chi-square test of
//     many replies), and successive replies independent, not a rotation;
//   - identity: address and port, user and peer id (another port or
//     address can neither move nor stop a peer); a peer announcing over
//     IPv4 and IPv6 is one peer in each family;
//   - snatches counted once, removal on stop, scrape order; the Outcome
//     of each announce (joined, left, completed, seeding);
//   - expiry: peers gone after PeerTTL+Slack with their counts, kept while
//     they announce; an idle swarm scrapes as zeros, except the snatch
//     count, which the store keeps or, after a swarm TTL of its own,
//     drops to zero (never to any other value);
//   - what a store leaves alone: the request, and the reply's Interval,
//     MinInterval, Warning and Identity;
//   - errors: ErrClosed after Close (Close may be called twice), an
//     *Error of KindCapacity at the store's bound.
//
// The statistical checks draw on the store's randomness only (they use
// none of their own), and each fails a correct store with probability
// 1e-6, so a run of the suite fails a correct store about once in 100,000.
func TestStore(t *testing.T, h Harness) {
	t.Helper()
	switch {
	case h.New == nil:
		t.Fatal("trackertest: Harness.New is nil")
	case h.Advance == nil:
		t.Fatal("trackertest: Harness.Advance is nil: every store must expire peers, and the suite checks it")
	case h.PeerTTL <= 0:
		t.Fatalf("trackertest: Harness.PeerTTL %v: want the store's positive peer TTL", h.PeerTTL)
	case h.Slack < 0 || h.Slack > h.PeerTTL/4:
		t.Fatalf("trackertest: Harness.Slack %v: want between 0 and PeerTTL/4 (%v)", h.Slack, h.PeerTTL/4)
	}
	for _, tc := range storeTests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, &driver{t: t, s: h.New(t), h: &h})
		})
	}
}

var storeTests = []struct {
	name string
	run  func(*testing.T, *driver)
}{
	{"CountsFirstPeers", testCountsFirstPeers},
	{"NeverSelf", testNeverSelf},
	{"SeederGetsLeechers", testSeederGetsLeechers},
	{"LeecherGetsEveryone", testLeecherGetsEveryone},
	{"FamiliesApart", testFamiliesApart},
	{"DualStack", testDualStack},
	{"NumWant", testNumWant},
	{"AppendsToPeers", testAppendsToPeers},
	{"LeavesFieldsAlone", testLeavesFieldsAlone},
	{"StoppedRemoves", testStoppedRemoves},
	{"CompletedCountsOnce", testCompletedCountsOnce},
	{"LeftZeroCountsOnce", testLeftZeroCountsOnce},
	{"SeederStartIsNoSnatch", testSeederStartIsNoSnatch},
	{"PausedIsIncomplete", testPausedIsIncomplete},
	{"Outcome", testOutcome},
	{"AddressChange", testAddressChange},
	{"UsersApart", testUsersApart},
	{"SwarmsApart", testSwarmsApart},
	{"Scrape", testScrape},
	{"Expiry", testExpiry},
	{"ExpiryRefresh", testExpiryRefresh},
	{"IdleSwarm", testIdleSwarm},
	{"Close", testClose},
	{"Capacity", testCapacity},
	{"SampleUniform", testSampleUniform},
	{"SampleOrder", testSampleOrder},
	{"Concurrent", testConcurrent},
}

// driver drives one store for one subtest.
type driver struct {
	t *testing.T
	s tracker.Store
	h *Harness
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

// Shorter names for the events, in the tests.
const (
	started   = tracker.EventStarted
	stopped   = tracker.EventStopped
	completed = tracker.EventCompleted
	paused    = tracker.EventPaused
)

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

func (p peer) request() *tracker.AnnounceRequest {
	return &tracker.AnnounceRequest{
		InfoHash: p.hash,
		PeerID:   ID(p.n),
		Addr:     p.addr(),
		Left:     p.left,
		Event:    p.event,
		NumWant:  p.want,
	}
}

func (d *driver) announce(p peer) *tracker.AnnounceResponse {
	d.t.Helper()
	resp, err := d.try(p)
	if err != nil {
		d.t.Fatalf("Announce(peer %d, left %d, %v) = %v", p.n, p.left, p.event, err)
	}
	return resp
}

func (d *driver) try(p peer) (*tracker.AnnounceResponse, error) {
	resp := &tracker.AnnounceResponse{Peers: make([]tracker.Peer, 0, p.want)}
	err := d.s.Announce(context.Background(), p.request(), resp)
	return resp, err
}

func (d *driver) scrape(hashes ...tracker.InfoHash) []tracker.ScrapeStats {
	d.t.Helper()
	st, err := d.s.Scrape(context.Background(), hashes, nil)
	if err != nil {
		d.t.Fatalf("Scrape = %v", err)
	}
	if len(st) != len(hashes) {
		d.t.Fatalf("Scrape of %d hashes returned %d stats", len(hashes), len(st))
	}
	return st
}

// advance moves the store's clock forward by dt.
func (d *driver) advance(dt time.Duration) {
	d.t.Helper()
	d.h.Advance(d.t, d.s, dt)
}

func checkCounts(t *testing.T, what string, resp *tracker.AnnounceResponse, complete, incomplete, downloaded int) {
	t.Helper()
	if resp.Complete != complete || resp.Incomplete != incomplete || resp.Downloaded != downloaded {
		t.Errorf("%s: complete, incomplete, downloaded = %d, %d, %d; want %d, %d, %d",
			what, resp.Complete, resp.Incomplete, resp.Downloaded, complete, incomplete, downloaded)
	}
}

// addrSet maps the addresses of the given peers (of one family) to their
// number.
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

func testCountsFirstPeers(t *testing.T, d *driver) {
	x := Hash(1)
	checkCounts(t, "first leecher", d.announce(peer{hash: x, n: 1, left: 10, event: started, want: 50}), 0, 1, 0)
	checkCounts(t, "first seeder", d.announce(peer{hash: x, n: 2, left: 0, event: started, want: 50}), 1, 1, 0)
	checkCounts(t, "re-announce", d.announce(peer{hash: x, n: 1, left: 5, want: 50}), 1, 1, 0)
}

func testNeverSelf(t *testing.T, d *driver) {
	x := Hash(1)
	for i := range 30 {
		left := int64(100)
		if i%3 == 0 {
			left = 0
		}
		d.announce(peer{hash: x, n: i, left: left, event: started})
	}
	for i := range 30 {
		for _, want := range []int{1, 5, 29, 50} {
			left := int64(100)
			if i%3 == 0 {
				left = 0
			}
			p := peer{hash: x, n: i, left: left, want: want}
			resp := d.announce(p)
			for _, q := range resp.Peers {
				if q.Addr == p.addr() {
					t.Fatalf("peer %d (numwant %d) got itself in its reply", i, want)
				}
			}
		}
	}
}

func testSeederGetsLeechers(t *testing.T, d *driver) {
	x := Hash(1)
	for i := range 10 {
		d.announce(peer{hash: x, n: i, left: 0, event: started})
	}
	for i := 10; i < 15; i++ {
		d.announce(peer{hash: x, n: i, left: 7, event: started})
	}
	leechers := addrSet(false, seq(10, 15)...)
	resp := d.announce(peer{hash: x, n: 0, left: 0, want: 50})
	if len(resp.Peers) != 5 {
		t.Errorf("seeder got %d peers; want the 5 leechers", len(resp.Peers))
	}
	for _, q := range resp.Peers {
		if _, ok := leechers[q.Addr]; !ok {
			t.Errorf("seeder got %v, which is not a leecher", q.Addr)
		}
	}
}

func testLeecherGetsEveryone(t *testing.T, d *driver) {
	x := Hash(1)
	for i := range 20 {
		left := int64(i % 2) // even peers seed
		d.announce(peer{hash: x, n: i, left: left, event: started})
	}
	resp := d.announce(peer{hash: x, n: 1, left: 1, want: 50})
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

func testFamiliesApart(t *testing.T, d *driver) {
	x := Hash(1)
	for i := range 10 {
		d.announce(peer{hash: x, n: i, left: 5, event: started})
		d.announce(peer{hash: x, n: 100 + i, v6: true, left: 5, event: started})
	}
	resp4 := d.announce(peer{hash: x, n: 0, left: 5, want: 50})
	checkCounts(t, "counts include both families", resp4, 0, 20, 0)
	if len(resp4.Peers) != 9 {
		t.Errorf("IPv4 leecher got %d peers; want the 9 other IPv4 peers", len(resp4.Peers))
	}
	for _, q := range resp4.Peers {
		if !q.Addr.Addr().Is4() {
			t.Errorf("IPv4 announcer got IPv6 peer %v", q.Addr)
		}
	}
	resp6 := d.announce(peer{hash: x, n: 100, v6: true, left: 5, want: 50})
	if len(resp6.Peers) != 9 {
		t.Errorf("IPv6 leecher got %d peers; want the 9 other IPv6 peers", len(resp6.Peers))
	}
	for _, q := range resp6.Peers {
		if !q.Addr.Addr().Is6() || q.Addr.Addr().Is4In6() {
			t.Errorf("IPv6 announcer got IPv4 peer %v", q.Addr)
		}
	}
}

func testNumWant(t *testing.T, d *driver) {
	x := Hash(1)
	for i := range 300 {
		d.announce(peer{hash: x, n: i, left: int64(i % 4), event: started})
	}
	// Peer 0 seeds; peer 1 leeches. 75 seeders, 225 leechers.
	for _, want := range []int{0, 1, 2, 50, 200, 224, 225, 299, 300} {
		for _, me := range []peer{{hash: x, n: 0, left: 0}, {hash: x, n: 1, left: 1}} {
			me.want = want
			resp := d.announce(me)
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

func testAppendsToPeers(t *testing.T, d *driver) {
	x := Hash(1)
	d.announce(peer{hash: x, n: 1, left: 1, event: started})
	marker := tracker.Peer{Addr: netip.MustParseAddrPort("192.0.2.1:1")}
	resp := &tracker.AnnounceResponse{Peers: []tracker.Peer{marker}}
	req := &tracker.AnnounceRequest{InfoHash: x, PeerID: ID(2), Addr: Addr4(2), Left: 1, NumWant: 10}
	if err := d.s.Announce(context.Background(), req, resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != 2 || resp.Peers[0] != marker || resp.Peers[1].Addr != Addr4(1) {
		t.Errorf("Announce replaced resp.Peers instead of appending: %v", resp.Peers)
	}
}

func testStoppedRemoves(t *testing.T, d *driver) {
	x := Hash(1)
	d.announce(peer{hash: x, n: 1, left: 0, event: started})
	d.announce(peer{hash: x, n: 2, left: 9, event: started})
	resp := d.announce(peer{hash: x, n: 2, left: 9, event: stopped})
	checkCounts(t, "after stop", resp, 1, 0, 0)
	if len(resp.Peers) != 0 {
		t.Errorf("stopping peer got %d peers; want none", len(resp.Peers))
	}
	if st := d.scrape(x)[0]; st.Complete != 1 || st.Incomplete != 0 {
		t.Errorf("scrape after stop = %+v; want 1 seeder, 0 leechers", st)
	}
	// The seeder no longer gets the stopped leecher.
	if resp := d.announce(peer{hash: x, n: 1, left: 0, want: 50}); len(resp.Peers) != 0 {
		t.Errorf("seeder got %v after the only leecher stopped", resp.Peers)
	}
	// Stopping twice, or a peer never seen, is harmless.
	checkCounts(t, "second stop", d.announce(peer{hash: x, n: 2, left: 9, event: stopped}), 1, 0, 0)
	checkCounts(t, "unknown swarm stop", d.announce(peer{hash: Hash(2), n: 3, event: stopped}), 0, 0, 0)
	if st := d.scrape(Hash(2))[0]; st != (tracker.ScrapeStats{}) {
		t.Errorf("a stop created swarm counters: %+v", st)
	}
	// A seeder that stops is removed from the seeders.
	checkCounts(t, "seeder stop", d.announce(peer{hash: x, n: 1, left: 0, event: stopped}), 0, 0, 0)
}

func testCompletedCountsOnce(t *testing.T, d *driver) {
	x := Hash(1)
	d.announce(peer{hash: x, n: 1, left: 100, event: started})
	checkCounts(t, "completed", d.announce(peer{hash: x, n: 1, left: 0, event: completed}), 1, 0, 1)
	checkCounts(t, "retransmitted completed", d.announce(peer{hash: x, n: 1, left: 0, event: completed}), 1, 0, 1)
	checkCounts(t, "later announce", d.announce(peer{hash: x, n: 1, left: 0}), 1, 0, 1)
	// Back to leeching (a recheck failed) and complete again: not counted twice.
	d.announce(peer{hash: x, n: 1, left: 10})
	checkCounts(t, "completed again", d.announce(peer{hash: x, n: 1, left: 0, event: completed}), 1, 0, 1)
	// Another peer's completion counts.
	d.announce(peer{hash: x, n: 2, left: 100, event: started})
	checkCounts(t, "second peer", d.announce(peer{hash: x, n: 2, left: 0, event: completed}), 2, 0, 2)
	// A completed event from a peer the store never saw (it restarted) counts.
	checkCounts(t, "unknown peer completes", d.announce(peer{hash: x, n: 3, left: 0, event: completed}), 3, 0, 3)
	if st := d.scrape(x)[0]; st.Downloaded != 3 {
		t.Errorf("scrape downloaded = %d; want 3", st.Downloaded)
	}
}

func testLeftZeroCountsOnce(t *testing.T, d *driver) {
	// aria2 never sends completed: a known leecher reaching left 0 is a
	// completion, whatever the event.
	x := Hash(1)
	d.announce(peer{hash: x, n: 1, left: 100, event: started})
	d.announce(peer{hash: x, n: 1, left: 50})
	checkCounts(t, "left reaches 0", d.announce(peer{hash: x, n: 1, left: 0}), 1, 0, 1)
	checkCounts(t, "seeding on", d.announce(peer{hash: x, n: 1, left: 0}), 1, 0, 1)
	checkCounts(t, "stop as seeder", d.announce(peer{hash: x, n: 1, left: 0, event: stopped}), 0, 0, 1)
	// The same at the stop itself: started, then stopped with left 0.
	d.announce(peer{hash: x, n: 2, left: 100, event: started})
	checkCounts(t, "stopped with left 0", d.announce(peer{hash: x, n: 2, left: 0, event: stopped}), 0, 0, 2)
}

func testSeederStartIsNoSnatch(t *testing.T, d *driver) {
	x := Hash(1)
	checkCounts(t, "seeder starts", d.announce(peer{hash: x, n: 1, left: 0, event: started}), 1, 0, 0)
	checkCounts(t, "seeder re-announces", d.announce(peer{hash: x, n: 1, left: 0}), 1, 0, 0)
}

func testPausedIsIncomplete(t *testing.T, d *driver) {
	x := Hash(1)
	d.announce(peer{hash: x, n: 1, left: 100, event: started})
	checkCounts(t, "partial seed", d.announce(peer{hash: x, n: 2, left: 40, event: paused}), 0, 2, 0)
	st := d.scrape(x)[0]
	if st.Incomplete != 2 || st.Downloaders != 1 {
		t.Errorf("scrape with one partial seed = %+v; want incomplete 2, downloaders 1", st)
	}
	d.announce(peer{hash: x, n: 2, left: 40}) // no longer paused
	if st := d.scrape(x)[0]; st.Downloaders != 2 {
		t.Errorf("downloaders = %d after the partial seed resumed; want 2", st.Downloaders)
	}
	d.announce(peer{hash: x, n: 2, left: 40, event: paused})
	d.announce(peer{hash: x, n: 2, left: 40, event: stopped})
	if st := d.scrape(x)[0]; st.Incomplete != 1 || st.Downloaders != 1 {
		t.Errorf("scrape after the partial seed stopped = %+v; want 1 and 1", st)
	}
}

// testOutcome: each announce reports in resp.Outcome what it did to its
// peer, which a tracker's accounting reads.
func testOutcome(t *testing.T, d *driver) {
	const (
		joined  = tracker.OutcomeJoined
		left    = tracker.OutcomeLeft
		snatch  = tracker.OutcomeCompleted
		seeding = tracker.OutcomeSeeding
	)
	x := Hash(1)
	for i, step := range []struct {
		p    peer
		want tracker.Outcome
	}{
		{peer{hash: x, n: 1, left: 10, event: started}, joined},
		{peer{hash: x, n: 1, left: 10}, 0},
		{peer{hash: x, n: 1, left: 10, event: started}, 0}, // a retransmitted start
		{peer{hash: x, n: 1, left: 0, event: completed}, snatch | seeding},
		{peer{hash: x, n: 1, left: 0, event: completed}, seeding}, // counted once
		{peer{hash: x, n: 1, left: 0, event: stopped}, left | seeding},
		{peer{hash: x, n: 1, left: 0, event: stopped}, seeding}, // no longer known
		{peer{hash: x, n: 2, left: 0, event: completed}, joined | snatch | seeding},
		{peer{hash: x, n: 3, left: 10}, joined},
		{peer{hash: x, n: 3, left: 0, event: stopped}, left | snatch | seeding}, // stops with nothing left
		{peer{hash: x, n: 4, left: 10, event: paused}, joined},
		{peer{hash: Hash(2), n: 5, left: 10, event: stopped}, 0}, // an unknown swarm
	} {
		if got := d.announce(step.p).Outcome; got != step.want {
			t.Errorf("announce %d (peer %d, left %d, %v): Outcome %v; want %v", i, step.p.n, step.p.left, step.p.event, got, step.want)
		}
	}
}

// testAddressChange: the same peer id from another port or another address
// is another peer, which can neither move nor stop the first (peer ids
// travel in every handshake, so anyone can learn them); the first stays
// until it stops from its own address and port.
func testAddressChange(t *testing.T, d *driver) {
	ctx := context.Background()
	x := Hash(1)
	d.announce(peer{hash: x, n: 1, left: 0, event: started})
	req := &tracker.AnnounceRequest{InfoHash: x, PeerID: ID(2), Addr: Addr4(2), Left: 5, NumWant: 10, Key: 7}
	if err := d.s.Announce(ctx, req, &tracker.AnnounceResponse{}); err != nil {
		t.Fatal(err)
	}
	// Someone else, with the leecher's peer id and key, from another port
	// of the same address and from another address.
	for _, at := range []netip.AddrPort{netip.AddrPortFrom(Addr4(2).Addr(), 7000), netip.MustParseAddrPort("10.200.0.1:7000")} {
		thief := *req
		thief.Addr = at
		for _, ev := range []tracker.Event{started, stopped} {
			thief.Event = ev
			if err := d.s.Announce(ctx, &thief, &tracker.AnnounceResponse{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := d.announce(peer{hash: x, n: 1, left: 0, want: 10})
	checkCounts(t, "after another port and another address announced the peer id and stopped", got, 1, 1, 0)
	if len(got.Peers) != 1 || got.Peers[0].Addr != Addr4(2) {
		t.Errorf("seeder got %v; want the leecher, still at %v", got.Peers, Addr4(2))
	}
	// The leecher stops from its own address and port.
	req.Event = stopped
	if err := d.s.Announce(ctx, req, &tracker.AnnounceResponse{}); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, "after the leecher stopped", d.announce(peer{hash: x, n: 1, left: 0}), 1, 0, 0)
}

// testUsersApart: on a private tracker, two users' peers are apart even
// with the same peer id and address (a user's announce carries its
// identity in resp.Identity). The users announce different ports: a store
// may tell the users of one address and port apart by a hash only.
func testUsersApart(t *testing.T, d *driver) {
	ctx := context.Background()
	x := Hash(1)
	announce := func(user uint64, ev tracker.Event) *tracker.AnnounceResponse {
		req := &tracker.AnnounceRequest{InfoHash: x, PeerID: ID(1), Addr: netip.AddrPortFrom(Addr4(1).Addr(), uint16(6880+user)), Left: 5, Event: ev, NumWant: 10}
		resp := &tracker.AnnounceResponse{Identity: tracker.Identity{UserID: user}}
		if err := d.s.Announce(ctx, req, resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	announce(1, started)
	checkCounts(t, "a second user, same peer id and address", announce(2, started), 0, 2, 0)
	checkCounts(t, "the second user stops", announce(2, stopped), 0, 1, 0)
	checkCounts(t, "the first user's peer", announce(1, tracker.EventNone), 0, 1, 0)
}

func testSwarmsApart(t *testing.T, d *driver) {
	// A hybrid torrent announces the same peer under its v1 hash and its
	// truncated v2 hash: two swarms.
	v1, v2 := Hash(1), Hash(2)
	d.announce(peer{hash: v1, n: 1, left: 5, event: started})
	d.announce(peer{hash: v2, n: 1, left: 5, event: started})
	d.announce(peer{hash: v2, n: 2, left: 0, event: started})
	checkCounts(t, "v1 swarm", d.announce(peer{hash: v1, n: 1, left: 5}), 0, 1, 0)
	if resp := d.announce(peer{hash: v1, n: 1, left: 5, want: 10}); len(resp.Peers) != 0 {
		t.Errorf("v1 swarm handed out %v from the v2 swarm", resp.Peers)
	}
	checkCounts(t, "v2 swarm", d.announce(peer{hash: v2, n: 1, left: 5}), 1, 1, 0)
}

func testScrape(t *testing.T, d *driver) {
	a, b, unknown := Hash(1), Hash(2), Hash(3)
	d.announce(peer{hash: a, n: 1, left: 0, event: started})
	d.announce(peer{hash: b, n: 2, left: 5, event: started})
	d.announce(peer{hash: b, n: 3, left: 5, event: started})
	got := d.scrape(b, unknown, a, b)
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
	dst, err := d.s.Scrape(context.Background(), []tracker.InfoHash{a}, dst)
	if err != nil || len(dst) != 2 || dst[0].Complete != 99 || dst[1].Complete != 1 {
		t.Errorf("Scrape(dst) = %+v, %v; want the old entry kept and one appended", dst, err)
	}
}

// testDualStack: a client announces once per address family with the same
// peer id and key (BEP 7). Its two announces come from two addresses, so
// they are two peers, one in each family: each counts, each gets peers of
// its own family, and stopping one leaves the other.
func testDualStack(t *testing.T, d *driver) {
	x := Hash(1)
	d.announce(peer{hash: x, n: 2, left: 5, event: started})
	d.announce(peer{hash: x, n: 3, v6: true, left: 5, event: started})
	d.announce(peer{hash: x, n: 1, left: 5, event: started})
	resp6 := d.announce(peer{hash: x, n: 1, v6: true, left: 5, event: started, want: 10})
	checkCounts(t, "peer 1 over both families", resp6, 0, 4, 0)
	if len(resp6.Peers) != 1 || resp6.Peers[0].Addr != Addr6(3) {
		t.Errorf("IPv6 announce of the dual-stack peer got %v; want the other IPv6 peer %v only", resp6.Peers, Addr6(3))
	}
	resp4 := d.announce(peer{hash: x, n: 1, left: 5, want: 10})
	if len(resp4.Peers) != 1 || resp4.Peers[0].Addr != Addr4(2) {
		t.Errorf("IPv4 announce of the dual-stack peer got %v; want the other IPv4 peer %v only", resp4.Peers, Addr4(2))
	}
	// The other peers see the dual-stack peer in their family only.
	if resp := d.announce(peer{hash: x, n: 2, left: 5, want: 10}); len(resp.Peers) != 1 || resp.Peers[0].Addr != Addr4(1) {
		t.Errorf("IPv4 peer got %v; want %v", resp.Peers, Addr4(1))
	}
	// Completing over both families completes two peers.
	checkCounts(t, "completed over IPv4", d.announce(peer{hash: x, n: 1, left: 0, event: completed}), 1, 3, 1)
	checkCounts(t, "completed over IPv6", d.announce(peer{hash: x, n: 1, v6: true, left: 0, event: completed}), 2, 2, 2)
	// Stopping over IPv4 leaves the IPv6 peer.
	checkCounts(t, "stopped over IPv4", d.announce(peer{hash: x, n: 1, left: 0, event: stopped}), 1, 2, 2)
	if st := d.scrape(x)[0]; st != (tracker.ScrapeStats{Complete: 1, Incomplete: 2, Downloaded: 2, Downloaders: 2}) {
		t.Errorf("scrape after the IPv4 stop = %+v; want 1 seeder (over IPv6), 2 leechers, 2 snatches", st)
	}
	if resp := d.announce(peer{hash: x, n: 3, v6: true, left: 5, want: 10}); len(resp.Peers) != 1 || resp.Peers[0].Addr != Addr6(1) {
		t.Errorf("IPv6 peer got %v after the IPv4 stop; want the dual-stack peer's IPv6 address %v", resp.Peers, Addr6(1))
	}
}

// testLeavesFieldsAlone: Announce writes the counters and appends peers,
// nothing else; neither call changes its arguments.
func testLeavesFieldsAlone(t *testing.T, d *driver) {
	ctx := context.Background()
	x := Hash(1)
	marker := new(int)
	sentinel := tracker.AnnounceResponse{
		Interval:    1234 * time.Second,
		MinInterval: 567 * time.Second,
		Warning:     "sentinel warning",
		Identity:    tracker.Identity{UserID: 42, Warning: "identity warning", Value: marker},
	}
	for i, p := range []peer{
		{hash: x, n: 1, left: 0, event: started, want: 50},
		{hash: x, n: 2, left: 9, event: started, want: 50},
		{hash: x, n: 2, left: 5, want: 50},
		{hash: x, n: 3, left: 9, event: paused, want: 50},
		{hash: x, n: 2, left: 0, event: completed, want: 50},
		{hash: x, n: 2, left: 0, event: stopped},
		{hash: Hash(2), n: 4, left: 3, event: stopped},
	} {
		req := p.request()
		req.Key, req.Passkey, req.UserAgent, req.Uploaded, req.Downloaded = 77, "passkey", "agent/1.0", 1000, 2000
		before := *req
		resp := sentinel
		if err := d.s.Announce(ctx, req, &resp); err != nil {
			t.Fatalf("announce %d: %v", i, err)
		}
		if *req != before {
			t.Errorf("announce %d changed the request: %+v; was %+v", i, *req, before)
		}
		if resp.Interval != sentinel.Interval || resp.MinInterval != sentinel.MinInterval {
			t.Errorf("announce %d: Interval, MinInterval = %v, %v; the store must leave them as they were (%v, %v)",
				i, resp.Interval, resp.MinInterval, sentinel.Interval, sentinel.MinInterval)
		}
		if resp.Warning != sentinel.Warning || resp.Identity != sentinel.Identity {
			t.Errorf("announce %d: Warning, Identity = %q, %+v; the store must leave them as they were (%q, %+v)",
				i, resp.Warning, resp.Identity, sentinel.Warning, sentinel.Identity)
		}
	}
	hashes := []tracker.InfoHash{x, Hash(2), x}
	before := append([]tracker.InfoHash(nil), hashes...)
	if _, err := d.s.Scrape(ctx, hashes, nil); err != nil {
		t.Fatal(err)
	}
	for i := range hashes {
		if hashes[i] != before[i] {
			t.Errorf("Scrape changed hashes[%d] to %v", i, hashes[i])
		}
	}
}

// testClose: after Close, Announce and Scrape fail with ErrClosed, and
// Close may be called again.
func testClose(t *testing.T, d *driver) {
	x := Hash(1)
	d.announce(peer{hash: x, n: 1, left: 5, event: started})
	if err := d.s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := d.s.Close(); err != nil {
		t.Errorf("second Close = %v; want nil: Close may be called twice", err)
	}
	if _, err := d.try(peer{hash: x, n: 2, left: 5, event: started, want: 10}); !errors.Is(err, tracker.ErrClosed) {
		t.Errorf("Announce after Close = %v; want ErrClosed", err)
	}
	if _, err := d.s.Scrape(context.Background(), []tracker.InfoHash{x}, nil); !errors.Is(err, tracker.ErrClosed) {
		t.Errorf("Scrape after Close = %v; want ErrClosed", err)
	}
}

// testCapacity: a store at its bound refuses new peers with an *Error of
// KindCapacity, and counts nothing for them; known peers go on announcing,
// and a peer that stops makes room.
func testCapacity(t *testing.T, d *driver) {
	if d.h.NewBounded == nil {
		t.Skip("trackertest: Harness.NewBounded is nil: the store's bound (an *Error of KindCapacity) is not checked")
	}
	const bound = 4
	d = &driver{t: t, s: d.h.NewBounded(t, bound), h: d.h}
	x := Hash(1)
	for i := 1; i <= bound; i++ {
		d.announce(peer{hash: x, n: i, left: int64(i % 2), event: started})
	}
	full := func(what string, p peer) {
		t.Helper()
		_, err := d.try(p)
		e, ok := errors.AsType[*tracker.Error](err)
		if !ok || e.Kind != tracker.KindCapacity {
			t.Errorf("%s: Announce = %v; want an *Error of KindCapacity", what, err)
		}
	}
	full("a new peer past the bound", peer{hash: x, n: bound + 1, left: 5, event: started, want: 10})
	full("a new IPv6 peer past the bound", peer{hash: x, n: bound + 1, v6: true, left: 5, event: started})
	if st := d.scrape(x)[0]; st.Complete+st.Incomplete != bound {
		t.Errorf("scrape after refusals = %+v; want the %d peers admitted", st, bound)
	}
	// Peers 2 and 4 seed, 1 and 3 leech. Known peers go on: a refresh, a
	// completion; the same peer id from another port is a new peer.
	checkCounts(t, "a known peer at the bound", d.announce(peer{hash: x, n: 1, left: 1}), 2, 2, 0)
	checkCounts(t, "a completion at the bound", d.announce(peer{hash: x, n: 3, left: 0, event: completed}), 3, 1, 1)
	req := peer{hash: x, n: 3, left: 0}.request()
	req.Addr = netip.AddrPortFrom(req.Addr.Addr(), 7000)
	err := d.s.Announce(context.Background(), req, &tracker.AnnounceResponse{})
	if e, ok := errors.AsType[*tracker.Error](err); !ok || e.Kind != tracker.KindCapacity {
		t.Errorf("a known peer id on another port at the bound: Announce = %v; want an *Error of KindCapacity", err)
	}
	// A stop of an unknown peer is no new peer.
	checkCounts(t, "an unknown peer stops", d.announce(peer{hash: x, n: 99, left: 5, event: stopped}), 3, 1, 1)
	// A stop makes room for one.
	checkCounts(t, "a leecher stops", d.announce(peer{hash: x, n: 1, left: 1, event: stopped}), 3, 0, 1)
	checkCounts(t, "a new peer after a stop", d.announce(peer{hash: x, n: bound + 2, left: 5, event: started}), 3, 1, 1)
	full("the next one", peer{hash: x, n: bound + 3, left: 5, event: started})
}

// testConcurrent runs announces from many goroutines on a few swarms,
// each peer following a script whose end state is known, and checks every
// count exactly: seeders, leechers, downloaders and snatches, each on its
// own, so that a store that loses an update fails.
func testConcurrent(t *testing.T, d *driver) {
	const workers, swarms, peersPer = 8, 4, 28
	// Each peer follows one of these scripts, by its number.
	type step struct {
		left  int64
		event tracker.Event
	}
	scripts := [][]step{
		{{9, started}, {9, 0}, {5, 0}, {5, 0}},                // a leecher
		{{9, started}, {5, 0}, {0, completed}, {0, 0}},        // completes
		{{0, started}, {0, 0}, {0, 0}, {0, 0}},                // a seeder from the start
		{{9, started}, {4, 0}, {0, 0}, {0, 0}},                // left reaches 0: a snatch
		{{9, started}, {0, completed}, {0, 0}, {0, stopped}},  // completes, then stops
		{{9, started}, {9, paused}, {9, paused}, {9, paused}}, // a partial seed
		{{9, started}, {9, 0}, {9, stopped}, {9, stopped}},    // leaves
	}
	var want [swarms]tracker.ScrapeStats
	for i := range swarms * peersPer {
		w := &want[i%swarms]
		switch i % len(scripts) {
		case 0:
			w.Incomplete++
			w.Downloaders++
		case 1, 3:
			w.Complete++
			w.Downloaded++
		case 2:
			w.Complete++
		case 4:
			w.Downloaded++
		case 5:
			w.Incomplete++
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for wk := range workers {
		wg.Go(func() {
			// A worker runs its peers' scripts side by side, one step of
			// each peer in turn, so that the swarms see every kind of
			// announce from every worker at once.
			for s := range len(scripts[0]) {
				for i := wk; i < swarms*peersPer; i += workers {
					st := scripts[i%len(scripts)][s]
					p := peer{hash: Hash(i % swarms), n: i, left: st.left, event: st.event, want: 30}
					resp, err := d.try(p)
					if err != nil {
						errs <- fmt.Errorf("peer %d, step %d: %w", i, s, err)
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
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for s := range swarms {
		if st := d.scrape(Hash(s))[0]; st != want[s] {
			t.Errorf("swarm %d after concurrent announces: %+v; want %+v", s, st, want[s])
		}
	}
}
