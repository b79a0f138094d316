// The expiry checks of the conformance suite: they move the store's clock
// with Harness.Advance.

package trackertest

import (
	"net/netip"
	"testing"
	"time"

	"github.com/annuaire/tracker"
)

// checkScrape fails t unless a scrape of x reports want.
func (d *driver) checkScrape(what string, x tracker.InfoHash, want tracker.ScrapeStats) {
	d.t.Helper()
	if st := d.scrape(x)[0]; st != want {
		d.t.Errorf("%s: scrape = %+v; want %+v", what, st, want)
	}
}

// past is a little more than the time after which a store must have
// dropped a peer.
func (d *driver) past() time.Duration {
	return d.h.PeerTTL + d.h.Slack + time.Millisecond
}

// testExpiry: peers not heard from for the TTL disappear with their
// counts, in both families and both classes; the snatch count stays; a
// peer that announces again after it expired is a new peer.
func testExpiry(t *testing.T, d *driver) {
	ttl := d.h.PeerTTL
	x := Hash(1)
	d.announce(peer{hash: x, n: 1, left: 10, event: started})           // kept alive below
	d.announce(peer{hash: x, n: 2, left: 0, event: started})            // a seeder
	d.announce(peer{hash: x, n: 3, left: 10, event: started})           // completes: a snatch
	d.announce(peer{hash: x, n: 3, left: 0, event: completed})          //
	d.announce(peer{hash: x, n: 4, left: 10, event: paused})            // a partial seed
	d.announce(peer{hash: x, n: 5, v6: true, left: 10, event: started}) // an IPv6 leecher
	all := tracker.ScrapeStats{Complete: 2, Incomplete: 3, Downloaded: 1, Downloaders: 2}
	d.checkScrape("before expiry", x, all)

	d.advance(ttl / 2)
	d.announce(peer{hash: x, n: 1, left: 10})
	d.advance(ttl - ttl/2)
	d.checkScrape("peers PeerTTL old", x, all)

	d.advance(d.past() - ttl)
	d.checkScrape("past PeerTTL+Slack", x, tracker.ScrapeStats{Incomplete: 1, Downloaded: 1, Downloaders: 1})
	resp := d.announce(peer{hash: x, n: 1, left: 10, want: 50})
	checkCounts(t, "the peer that announced", resp, 0, 1, 1)
	if len(resp.Peers) != 0 {
		t.Errorf("the only live peer got %v; the others expired", resp.Peers)
	}
	resp = d.announce(peer{hash: x, n: 6, v6: true, left: 10, event: started, want: 50})
	checkCounts(t, "a new IPv6 peer", resp, 0, 2, 1)
	if len(resp.Peers) != 0 {
		t.Errorf("a new IPv6 peer got %v; the only other IPv6 peer expired", resp.Peers)
	}
	// The expired seeder comes back: a new peer, and no snatch.
	resp = d.announce(peer{hash: x, n: 2, left: 0, want: 50})
	checkCounts(t, "the expired seeder again", resp, 1, 2, 1)
	if len(resp.Peers) != 1 || resp.Peers[0].Addr != Addr4(1) {
		t.Errorf("the returning seeder got %v; want the one IPv4 leecher %v", resp.Peers, Addr4(1))
	}
}

// testExpiryRefresh: a peer that announces just before its TTL is over is
// kept for another TTL, in a small swarm and in a large one, while the
// peers that did not announce go.
func testExpiryRefresh(t *testing.T, d *driver) {
	ttl := d.h.PeerTTL
	for _, size := range []int{2, 300} {
		x := Hash(size)
		for i := range size {
			d.announce(peer{hash: x, n: i, left: int64(i % 3), event: started})
		}
		d.advance(ttl - time.Millisecond)
		kept := map[netip.AddrPort]bool{}
		for i := 0; i < size; i += 2 {
			d.announce(peer{hash: x, n: i, left: int64(i % 3)})
			kept[Addr4(i)] = true
		}
		if st := d.scrape(x)[0]; st.Complete+st.Incomplete != size {
			t.Errorf("swarm of %d: scrape just before the TTL = %+v; want all %d peers", size, st, size)
		}
		d.advance(d.past() - ttl + time.Millisecond)
		var want tracker.ScrapeStats
		for i := 0; i < size; i += 2 {
			if i%3 == 0 {
				want.Complete++
			} else {
				want.Incomplete++
			}
		}
		want.Downloaders = want.Incomplete
		d.checkScrape("after the TTL of the peers that did not announce again", x, want)
		// A leecher that asks for everyone gets exactly the peers kept.
		resp := d.announce(peer{hash: x, n: 1, left: 1, want: 1000})
		got := map[netip.AddrPort]bool{}
		for _, q := range resp.Peers {
			got[q.Addr] = true
			if !kept[q.Addr] {
				t.Errorf("swarm of %d: reply holds %v, which expired", size, q.Addr)
			}
		}
		if len(got) != len(kept) {
			t.Errorf("swarm of %d: reply holds %d peers; want the %d kept", size, len(got), len(kept))
		}
		d.advance(d.past()) // empty the swarm for the next size
	}
}

// testIdleSwarm: once every peer of a swarm has expired, a scrape reports
// no peers. The snatch count is either kept or, after the store's own swarm
// TTL, dropped to zero, and an announce then reports the same.
func testIdleSwarm(t *testing.T, d *driver) {
	x, y := Hash(1), Hash(2)
	d.announce(peer{hash: x, n: 1, left: 10, event: started})
	d.announce(peer{hash: x, n: 1, left: 0, event: completed})
	d.announce(peer{hash: x, n: 2, left: 10, event: started})
	d.announce(peer{hash: x, n: 3, left: 10, event: paused})
	d.announce(peer{hash: y, n: 4, left: 10, event: started})
	d.advance(d.past())
	st := d.scrape(x, y)
	if st[0].Complete != 0 || st[0].Incomplete != 0 || st[0].Downloaders != 0 {
		t.Errorf("idle swarm: scrape = %+v; want no peers", st[0])
	}
	if st[0].Downloaded != 1 && st[0].Downloaded != 0 {
		t.Errorf("idle swarm: downloaded = %d; want the snatch count kept (1) or dropped (0)", st[0].Downloaded)
	}
	if st[1] != (tracker.ScrapeStats{}) {
		t.Errorf("idle swarm without snatches: scrape = %+v; want zeros", st[1])
	}
	resp := d.announce(peer{hash: x, n: 5, left: 10, event: started, want: 50})
	checkCounts(t, "a new peer in the idle swarm", resp, 0, 1, st[0].Downloaded)
	if len(resp.Peers) != 0 {
		t.Errorf("a new peer in an idle swarm got %v", resp.Peers)
	}
}
