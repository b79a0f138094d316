//go:build unix

package redisstore_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/internal/redisserver"
	"github.com/annuaire/tracker/redisstore"
	"github.com/annuaire/tracker/trackertest"
	"github.com/redis/go-redis/v9"
)

// clock is a fake clock that only Add moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestConformance(t *testing.T) {
	testConformance(t, newClient(t))
}

// TestConformanceSkiplists runs the suite on a Redis that keeps only tiny
// sorted sets in listpacks, so that even small swarms are sampled through
// windows rather than ZRANDMEMBER: the store reads the setting.
func TestConformanceSkiplists(t *testing.T) {
	srv := redisserver.ForTest(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	defer client.Close()
	if err := client.ConfigSet(context.Background(), "zset-max-listpack-entries", "4").Err(); err != nil {
		t.Fatal(err)
	}
	testConformance(t, client)
}

// TestSampleMidSizedSkiplist: with a lower zset-max-listpack-entries, a
// swarm of 100 is a skiplist, whose ZRANDMEMBER is biased; the store reads
// the setting and samples it through windows, evenly.
func TestSampleMidSizedSkiplist(t *testing.T) {
	srv := redisserver.ForTest(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	defer client.Close()
	ctx := context.Background()
	if err := client.ConfigSet(ctx, "zset-max-listpack-entries", "16").Err(); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, client, redisstore.Config{})
	h := trackertest.Hash(1)
	const peers, draws = 100, 40000
	for i := range peers + 1 {
		announce(t, s, h, 2*i, 1, tracker.EventStarted) // even: IPv4 leechers
	}
	counts := map[netip.AddrPort]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			local := map[netip.AddrPort]int{}
			for range draws / 8 {
				resp := &tracker.AnnounceResponse{}
				req := &tracker.AnnounceRequest{InfoHash: h, PeerID: trackertest.ID(0), Addr: trackertest.Addr4(0), Left: 1, NumWant: 1}
				if err := s.Announce(ctx, req, resp); err != nil || len(resp.Peers) != 1 {
					t.Errorf("worker %d: %v, %v", w, resp.Peers, err)
					return
				}
				local[resp.Peers[0].Addr]++
			}
			mu.Lock()
			defer mu.Unlock()
			for a, n := range local {
				counts[a] += n
			}
		})
	}
	wg.Wait()
	// Each of the 100 others is drawn 400 times on average, with a
	// standard deviation of 20: a fair sampler stays within 6 of them.
	lo, hi := draws, 0
	for i := 1; i <= peers; i++ {
		c := counts[trackertest.Addr4(2*i)]
		lo, hi = min(lo, c), max(hi, c)
	}
	if lo < 280 || hi > 520 {
		t.Errorf("%d draws among %d peers: counts from %d to %d; want all within 400 ± 120", draws, peers, lo, hi)
	}
}

func testConformance(t *testing.T, client *redis.Client) {
	const ttl = time.Minute
	var clocks sync.Map // *redisstore.Store -> *clock
	newStore := func(t *testing.T, maxPeers int) tracker.Store {
		clk := newClock()
		s, err := redisstore.New(redisstore.Config{
			Client:        client,
			Prefix:        prefix(),
			PeerTTL:       ttl,
			MaxSwarmPeers: maxPeers,
			Now:           clk.Now,
			// Generous: a busy machine may stall a process for longer
			// than the default, and these tests are not about timeouts.
			Timeout: 5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		clocks.Store(s, clk)
		t.Cleanup(func() { s.Close() })
		return s
	}
	trackertest.TestStore(t, trackertest.Harness{
		New: func(t *testing.T) tracker.Store { return newStore(t, tracker.Disabled) },
		Advance: func(t *testing.T, s tracker.Store, d time.Duration) {
			clk, _ := clocks.Load(s)
			clk.(*clock).Add(d)
		},
		PeerTTL: ttl,
		// Scores are whole milliseconds.
		Slack:      time.Millisecond,
		NewBounded: newStore,
	})
}
