//go:build unix

package redisstore_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/redisstore"
	"github.com/annuaire/tracker/trackertest"
	"github.com/redis/go-redis/v9"
)

// modelPeer is what a model of the swarm knows of a peer.
type modelPeer struct {
	addr    netip.AddrPort
	seed    bool
	partial bool
	seen    time.Time
}

// checkLayout checks the keys of swarm h against the live peers of the
// model: in each family, every record of each class's array is a live
// peer of that class, whose state points at its slot; the states and the
// expiry index hold exactly those peers; every key expires.
func checkLayout(t *testing.T, c *redis.Client, prefix string, h tracker.InfoHash, live map[netip.AddrPort]modelPeer) {
	t.Helper()
	ctx := context.Background()
	base := prefix + "{" + base64.RawURLEncoding.EncodeToString(h[:]) + "}"
	counts, err := c.HGetAll(ctx, base+"c").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range []string{"4", "6"} {
		size := 14
		if fam == "6" {
			size = 26
		}
		states, err := c.HGetAll(ctx, base+"h"+fam).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids, err := c.ZRange(ctx, base+"z"+fam, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		want := map[netip.AddrPort]byte{}
		for _, p := range live {
			if p.addr.Addr().Is4() == (fam == "4") {
				class := byte('l')
				switch {
				case p.seed:
					class = 's'
				case p.partial:
					class = 'p'
				}
				want[p.addr] = class
			}
		}
		if len(states) != len(want) || len(ids) != len(want) {
			t.Errorf("IPv%s: %d states, %d in the expiry index; want %d live peers", fam, len(states), len(ids), len(want))
		}
		seen := 0
		for _, class := range "slp" {
			arr, err := c.Get(ctx, base+"a"+fam+string(class)).Result()
			if err != nil && err != redis.Nil {
				t.Fatal(err)
			}
			n := 0
			fmt.Sscan(counts[string(class)+fam], &n)
			if len(arr) < n*size {
				t.Fatalf("IPv%s %c: array of %d bytes for %d peers", fam, class, len(arr), n)
			}
			// drop compacts an array when its class falls to a multiple
			// of 64 and the array holds more than twice that plus 64
			// records: at most 2(n+64)+64 records remain.
			if len(arr) > (2*n+192)*size {
				t.Errorf("IPv%s %c: array of %d bytes for %d peers: not compacted", fam, class, len(arr), n)
			}
			for slot := range n {
				rec := arr[slot*size : (slot+1)*size]
				ip, _ := netip.AddrFromSlice([]byte(rec[8 : size-2]))
				ap := netip.AddrPortFrom(ip, binary.BigEndian.Uint16([]byte(rec[size-2:])))
				if got := want[ap]; got != byte(class) {
					t.Errorf("IPv%s %c slot %d: %v, which the model has in class %q", fam, class, slot, ap, got)
				}
				st := states[rec[:8]]
				if len(st) != 7 || strings.ToLower(st[:1]) != string(class) || int(binary.BigEndian.Uint32([]byte(st[3:]))) != slot || st[1:3] != rec[size-2:] {
					t.Errorf("IPv%s %c slot %d: state %q does not point at it", fam, class, slot, st)
				}
				seen++
			}
		}
		if seen != len(want) {
			t.Errorf("IPv%s: %d records; want %d", fam, seen, len(want))
		}
	}
	keys, err := c.Keys(ctx, base+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if ttl, _ := c.PTTL(ctx, k).Result(); ttl <= 0 {
			t.Errorf("key %q does not expire", k)
		}
	}
}

// TestChurn drives a swarm through random joins, refreshes, peer ids
// announced from another port (another peer), class changes, stops and
// expiries, in both families, and
// checks after every round that counts and replies agree with a model and
// that the keys are laid out as the scripts expect.
func TestChurn(t *testing.T) {
	c := newClient(t)
	clk := newClock()
	const ttl = time.Minute
	pre := prefix()
	s := newStore(t, c, redisstore.Config{Prefix: pre, PeerTTL: ttl, Now: clk.Now})
	rng := rand.New(rand.NewPCG(1, 2))
	h := trackertest.Hash(7)
	live := map[netip.AddrPort]modelPeer{} // a peer is its address and port here: one peer id per address
	ctx := context.Background()
	for round := range 60 {
		// Peers 0 to 299 come and go; odd peers use IPv6. The swarm
		// grows to a few hundred, then shrinks.
		ops := 150
		if round >= 40 {
			ops = 40
		}
		for range ops {
			n := rng.IntN(300)
			if round >= 40 {
				n = rng.IntN(300) | 1 // IPv6 peers only announce: IPv4 ones expire
			}
			req := &tracker.AnnounceRequest{InfoHash: h, PeerID: trackertest.ID(n), Addr: trackertest.Addr4(n), Left: int64(rng.IntN(3)), NumWant: 1000}
			if n%2 == 1 {
				req.Addr = trackertest.Addr6(n)
			}
			if rng.IntN(8) == 0 {
				req.Addr = netip.AddrPortFrom(req.Addr.Addr(), uint16(20000+rng.IntN(100))) // another peer
			}
			switch rng.IntN(10) {
			case 0:
				req.Event = tracker.EventStopped
			case 1:
				req.Event = tracker.EventPaused
			case 2:
				req.Event = tracker.EventCompleted
			}
			resp := &tracker.AnnounceResponse{}
			if err := s.Announce(ctx, req, resp); err != nil {
				t.Fatal(err)
			}
			if req.Event == tracker.EventStopped {
				delete(live, req.Addr)
				continue
			}
			me := modelPeer{addr: req.Addr, seed: req.Left == 0, partial: req.Left > 0 && req.Event == tracker.EventPaused, seen: clk.Now()}
			live[req.Addr] = me
			// The reply holds every other live peer the announcer may get.
			var want []netip.AddrPort
			for m, p := range live {
				if m != req.Addr && p.addr.Addr().Is4() == me.addr.Addr().Is4() && !(me.seed && p.seed) {
					want = append(want, p.addr)
				}
			}
			var got []netip.AddrPort
			for _, p := range resp.Peers {
				got = append(got, p.Addr)
			}
			slices.SortFunc(want, netip.AddrPort.Compare)
			slices.SortFunc(got, netip.AddrPort.Compare)
			if !slices.Equal(got, want) {
				t.Fatalf("round %d, peer %d at %v: reply of %d peers; want %d: %v, want %v", round, n, req.Addr, len(got), len(want), got, want)
			}
			var seeds, leeches int
			for _, p := range live {
				if p.seed {
					seeds++
				} else {
					leeches++
				}
			}
			if resp.Complete != seeds || resp.Incomplete != leeches {
				t.Fatalf("round %d, peer %d: counts %d, %d; want %d, %d", round, n, resp.Complete, resp.Incomplete, seeds, leeches)
			}
		}
		clk.Add(ttl / 7)
		for a, p := range live {
			if clk.Now().Sub(p.seen) > ttl {
				delete(live, a)
			}
		}
		// A scrape removes the expired peers too.
		if _, err := s.Scrape(ctx, []tracker.InfoHash{h}, nil); err != nil {
			t.Fatal(err)
		}
		checkLayout(t, c, pre, h, live)
		if t.Failed() {
			t.Fatalf("after round %d", round)
		}
	}
	t.Logf("%d live peers at the end", len(live))
}

// TestArraysShrink: an array gives its room back once its class has
// shrunk to less than half.
func TestArraysShrink(t *testing.T) {
	c := newClient(t)
	pre := prefix()
	s := newStore(t, c, redisstore.Config{Prefix: pre})
	h := trackertest.Hash(8)
	live := map[netip.AddrPort]modelPeer{}
	for i := range 600 {
		n := 2 * i // IPv4
		announce(t, s, h, n, 1, tracker.EventStarted)
		live[trackertest.Addr4(n)] = modelPeer{addr: trackertest.Addr4(n)}
	}
	for i := 20; i < 600; i++ {
		announce(t, s, h, 2*i, 1, tracker.EventStopped)
		delete(live, trackertest.Addr4(2*i))
	}
	checkLayout(t, c, pre, h, live)
	arr := pre + "{" + base64.RawURLEncoding.EncodeToString(h[:]) + "}a4l"
	if n, err := c.StrLen(context.Background(), arr).Result(); err != nil || n > 64*14 {
		t.Errorf("array of 20 leechers after 600: %d bytes, %v; want at most 64 records", n, err)
	}
}
