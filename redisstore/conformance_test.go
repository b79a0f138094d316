//go:build unix

package redisstore_test

import (
	"sync"
	"testing"
	"time"

	"github.com/annuaire/tracker"
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
