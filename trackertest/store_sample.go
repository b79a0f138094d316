// The sampling checks of the conformance suite. The contract asks for a
// uniform random sample of the eligible peers (the other peers for a
// leecher, the leechers for a seeder). Stores meet it in different ways:
// the memory store takes a window of consecutive peers from a random rank,
// which makes every peer equally likely but not every subset, so the checks
// test what the contract says and no more:
//
//   - per peer: with numwant 1 a reply is one draw, and the counts of many
//     draws must fit equal probabilities (a chi-square test, which fails a
//     sampler that favours half the peers by 10%); with a larger numwant,
//     each peer's count must fit its binomial distribution;
//   - order: the first peers of successive replies must be independent
//     draws: equally likely (chi-square), and a peer's successor must not
//     repeat more often than chance allows, which fails a rotation.

package trackertest

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/annuaire/tracker"
)

// layout is a swarm the sampling checks draw from: seeds seeders, then
// leeches leechers, then partial partial seeds, numbered from 0 in that
// order. The announcer is peer 0, a seeder, or the first leecher.
type layout struct {
	name                    string
	seeds, leeches, partial int
	seeder                  bool // the announcer seeds
	want                    int
}

// fill announces the layout's peers in swarm x, and returns the announcer
// and the addresses of the peers it may get, by peer number.
func (l layout) fill(d *driver, x tracker.InfoHash) (peer, map[netip.AddrPort]int) {
	total := l.seeds + l.leeches + l.partial
	for i := range total {
		p := peer{hash: x, n: i, left: 1, event: started}
		switch {
		case i < l.seeds:
			p.left = 0
		case i >= l.seeds+l.leeches:
			p.event = paused
		}
		d.announce(p)
	}
	me := peer{hash: x, n: l.seeds, left: 1, want: l.want}
	eligible := addrSet(false, seq(0, total)...)
	if l.seeder {
		me = peer{hash: x, n: 0, left: 0, want: l.want}
		eligible = addrSet(false, seq(l.seeds, total)...)
	}
	delete(eligible, me.addr())
	return me, eligible
}

// check returns what is wrong with a reply to the layout's announcer.
func (l layout) check(resp *tracker.AnnounceResponse, eligible map[netip.AddrPort]int) error {
	if n, want := len(resp.Peers), min(l.want, len(eligible)); n != want {
		return fmt.Errorf("reply of %d peers; want %d", n, want)
	}
	for i, q := range resp.Peers {
		if _, ok := eligible[q.Addr]; !ok {
			return fmt.Errorf("reply holds %v, which the announcer may not get", q.Addr)
		}
		for _, r := range resp.Peers[:i] {
			if r.Addr == q.Addr {
				return fmt.Errorf("reply holds %v twice", q.Addr)
			}
		}
	}
	return nil
}

// draws announces rounds times from workers goroutines (replies to one
// announcer in a swarm that does not change are independent draws, in
// whatever order they are made) and returns how often each eligible peer
// was handed out.
func (d *driver) draws(l layout, me peer, eligible map[netip.AddrPort]int, rounds, workers int) (map[netip.AddrPort]int, error) {
	var (
		mu     sync.Mutex
		counts = make(map[netip.AddrPort]int, len(eligible))
		first  error
		wg     sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			local := make(map[netip.AddrPort]int, len(eligible))
			var err error
			for i := w; i < rounds && err == nil; i += workers {
				var resp *tracker.AnnounceResponse
				if resp, err = d.try(me); err == nil {
					err = l.check(resp, eligible)
				}
				for _, q := range resp.Peers {
					local[q.Addr]++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for a, n := range local {
				counts[a] += n
			}
			if first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	return counts, first
}

// sampleWorkers is how many goroutines announce at once in the per-peer
// checks: draws from a remote store then wait on the network in parallel.
const sampleWorkers = 8

// testSampleUniform checks that every eligible peer is equally likely to be
// handed out.
func testSampleUniform(t *testing.T, d *driver) {
	for i, l := range []struct {
		layout
		rounds int
	}{
		// One draw per reply: the counts are multinomial, and a
		// chi-square test has the power to see a 10% bias.
		{layout{"small swarm, numwant 1", 3, 8, 0, false, 1}, 60000},
		{layout{"small swarm, seeder, numwant 1", 3, 8, 2, true, 1}, 20000},
		{layout{"large swarm, numwant 1", 150, 250, 0, false, 1}, 20000},
		// Several draws per reply: each count is binomial, whatever the
		// sampler's correlations between peers.
		{layout{"small swarm, numwant 5", 4, 12, 2, false, 5}, 6000},
		{layout{"small swarm, seeder, numwant 5", 4, 12, 2, true, 5}, 6000},
		{layout{"large swarm, numwant 30", 150, 250, 0, false, 30}, 4000},
		{layout{"large swarm, seeder, numwant 30", 150, 250, 0, true, 30}, 4000},
	} {
		t.Run(l.name, func(t *testing.T) {
			me, eligible := l.fill(d, Hash(100+i))
			counts, err := d.draws(l.layout, me, eligible, l.rounds, sampleWorkers)
			if err != nil {
				t.Fatal(err)
			}
			n := len(eligible)
			p := float64(l.want) / float64(n)
			if l.want == 1 {
				e := evenness(counts, eligible, l.rounds)
				t.Logf("%d draws among %d peers: %v", l.rounds, n, e)
				if e.p < alpha {
					t.Errorf("%d replies of one peer among %d: the peers are not equally likely: %v", l.rounds, n, e)
				}
				return
			}
			mean := float64(l.rounds) * p
			sd := math.Sqrt(float64(l.rounds) * p * (1 - p))
			lo, hi := math.MaxInt, 0
			for a, num := range eligible {
				c := counts[a]
				lo, hi = min(lo, c), max(hi, c)
				z := (float64(c) - mean) / sd
				if pv := normalSF2(z); pv < alpha/float64(n) {
					t.Errorf("peer %d handed out %d times in %d replies of %d among %d; want %.0f ± %.0f (z = %.1f, p = %.2g)",
						num, c, l.rounds, l.want, n, mean, sd, z, pv)
				}
			}
			t.Logf("%d replies of %d peers among %d: counts from %d to %d, expected %.0f ± %.1f", l.rounds, l.want, n, lo, hi, mean, sd)
		})
	}
}

// testSampleOrder checks that successive replies are independent draws:
// the first peer of a reply is uniform over the eligible peers, and after
// a reply led by peer A, the next reply is no more likely to be led by the
// peer that followed A the last time than by any other. A store that
// rotates through its peers, even from a random start, fails the second
// test by far. Only one class is eligible in these layouts, since a
// leecher's reply may list seeders first.
func testSampleOrder(t *testing.T, d *driver) {
	for i, l := range []struct {
		layout
		rounds int
	}{
		{layout{"small swarm, seeder", 2, 10, 0, true, 3}, 3000},
		{layout{"small swarm, leecher", 0, 11, 0, false, 3}, 3000},
		{layout{"large swarm, seeder", 50, 200, 0, true, 20}, 4000},
	} {
		t.Run(l.name, func(t *testing.T) {
			me, eligible := l.fill(d, Hash(200+i))
			n := len(eligible)
			firsts := make([]netip.AddrPort, l.rounds)
			for r := range firsts {
				resp := d.announce(me)
				if err := l.check(resp, eligible); err != nil {
					t.Fatal(err)
				}
				firsts[r] = resp.Peers[0].Addr
			}

			counts := make(map[netip.AddrPort]int, n)
			for _, a := range firsts {
				counts[a]++
			}
			first := evenness(counts, eligible, l.rounds)
			if first.p < alpha {
				t.Errorf("first peers of %d replies among %d peers: not equally likely: %v", l.rounds, n, first)
			}

			next := make(map[netip.AddrPort]netip.AddrPort, n)
			chances, repeats := 0, 0
			for r := 0; r+1 < len(firsts); r++ {
				if prev, ok := next[firsts[r]]; ok {
					chances++
					if prev == firsts[r+1] {
						repeats++
					}
				}
				next[firsts[r]] = firsts[r+1]
			}
			pv := binomialSF(repeats, chances, 1/float64(n))
			t.Logf("first peers: %v; a successor repeated %d times in %d chances, expected %.0f (p %.2g)",
				first, repeats, chances, float64(chances)/float64(n), pv)
			if pv < alpha {
				t.Errorf("after a reply led by a given peer, the next reply was led by the same peer as the time before "+
					"%d times in %d; chance gives %.0f (p = %.2g): successive replies follow each other, as in a rotation",
					repeats, chances, float64(chances)/float64(n), pv)
			}
		})
	}
}

// fit is the result of a chi-square test of counts against equal
// probabilities.
type fit struct {
	x      float64 // the statistic
	df     int
	p      float64
	lo, hi int // the smallest and largest count
	mean   float64
}

func (f fit) String() string {
	return fmt.Sprintf("counts from %d to %d, expected %.0f each; chi-square %.1f with %d degrees of freedom, p = %.2g",
		f.lo, f.hi, f.mean, f.x, f.df, f.p)
}

// evenness tests the counts of the eligible peers over draws draws
// against equal probabilities.
func evenness(counts, eligible map[netip.AddrPort]int, draws int) fit {
	observed := make([]int, 0, len(eligible))
	expected := make([]float64, 0, len(eligible))
	for a := range eligible {
		observed = append(observed, counts[a])
		expected = append(expected, float64(draws)/float64(len(eligible)))
	}
	f := fit{lo: slices.Min(observed), hi: slices.Max(observed), mean: expected[0]}
	f.x, f.df = chiSquare(observed, expected)
	f.p = chiSquareSF(f.x, f.df)
	return f
}
