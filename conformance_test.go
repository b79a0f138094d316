package tracker_test

import (
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/trackertest"
)

func TestMemoryStoreConformance(t *testing.T) {
	const ttl = time.Minute
	newStore := func(t *testing.T, cfg tracker.MemoryConfig) tracker.Store {
		cfg.PeerTTL = ttl
		s, err := tracker.NewManualMemoryStore(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	trackertest.TestStore(t, trackertest.Harness{
		New: func(t *testing.T) tracker.Store { return newStore(t, tracker.MemoryConfig{}) },
		Advance: func(t *testing.T, s tracker.Store, d time.Duration) {
			s.(*tracker.ManualMemoryStore).Advance(d)
		},
		PeerTTL: ttl,
		// A peer is kept at least PeerTTL and removed at most two ticks
		// later: its timestamp and the sweep's clock each lag by up to a
		// tick.
		Slack: 2 * tracker.MemoryTick,
		NewBounded: func(t *testing.T, maxPeers int) tracker.Store {
			return newStore(t, tracker.MemoryConfig{MaxPeers: maxPeers})
		},
	})
}
