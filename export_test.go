package tracker

import "time"

// ManualMemoryStore is a MemoryStore without its sweeper, whose clock only
// Advance moves, for the conformance suite (package tracker_test, since
// trackertest imports this package).
type ManualMemoryStore struct {
	*MemoryStore
	now time.Time
}

// NewManualMemoryStore returns an empty store at the start of its clock.
func NewManualMemoryStore(cfg MemoryConfig) (*ManualMemoryStore, error) {
	s, err := newMemoryStore(cfg)
	if err != nil {
		return nil, err
	}
	return &ManualMemoryStore{s, s.start}, nil
}

// Advance moves the store's clock forward by d and sweeps every shard, as
// the sweeper does in the course of a cycle.
func (s *ManualMemoryStore) Advance(d time.Duration) {
	s.now = s.now.Add(d)
	s.advance(s.now)
	for i := range s.shards {
		s.sweep(&s.shards[i])
	}
}

// MemoryTick is the resolution of the memory store's clock.
const MemoryTick = tick

// Helpers of the package's tests, for its external tests (package
// tracker_test), which may import packages that import this one.
var (
	BenchPeer = benchPeer
	CPUTime   = processCPU
)
