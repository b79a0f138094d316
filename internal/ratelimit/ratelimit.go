// Package ratelimit keeps one token bucket per key (a client address, a
// passkey) in bounded memory.
package ratelimit

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

const (
	numShards      = 64
	overflowFactor = 16
)

// Limiter holds a token bucket per key. Buckets that have refilled
// completely carry no information and are dropped when a shard needs room;
// when a shard is full of busy keys, new keys share one overflow bucket, so
// memory stays bounded under a flood of new keys and that flood is
// throttled as a whole.
//
// A Limiter is safe for concurrent use.
type Limiter[K comparable] struct {
	r      rate.Limit
	burst  int
	perCap int // keys per shard
	seed   maphash.Seed
	shards [numShards]shard[K]
}

type shard[K comparable] struct {
	mu       sync.Mutex
	m        map[K]*rate.Limiter
	overflow *rate.Limiter
	swept    time.Time // last dropIdle, so a full shard is not scanned per request
	_        [32]byte
}

// New returns a Limiter allowing r events per second with the given burst
// per key, holding at most maxKeys keys.
func New[K comparable](r float64, burst, maxKeys int) *Limiter[K] {
	l := &Limiter[K]{
		r:      rate.Limit(r),
		burst:  burst,
		perCap: max(1, (maxKeys+numShards-1)/numShards),
		seed:   maphash.MakeSeed(),
	}
	for i := range l.shards {
		l.shards[i].m = make(map[K]*rate.Limiter)
		// The overflow bucket serves every key a full shard cannot hold.
		l.shards[i].overflow = rate.NewLimiter(l.r*overflowFactor, burst*overflowFactor)
	}
	return l
}

// Allow reports whether one more event for k may happen at now, and
// charges it if so.
func (l *Limiter[K]) Allow(now time.Time, k K) bool {
	sh := &l.shards[maphash.Comparable(l.seed, k)%numShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	lim, ok := sh.m[k]
	if !ok {
		if len(sh.m) >= l.perCap && now.Sub(sh.swept) >= time.Second {
			l.dropIdle(sh, now)
		}
		if len(sh.m) >= l.perCap {
			return sh.overflow.AllowN(now, 1)
		}
		lim = rate.NewLimiter(l.r, l.burst)
		sh.m[clone(k)] = lim
	}
	return lim.AllowN(now, 1)
}

// dropIdle removes the buckets that are full again at now: forgetting them
// changes nothing, since a new bucket starts full.
func (l *Limiter[K]) dropIdle(sh *shard[K], now time.Time) {
	sh.swept = now
	for k, lim := range sh.m {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(sh.m, k)
		}
	}
}

// clone copies a string key so that the map does not pin the larger buffer
// (a request line, a packet) the key was sliced from.
func clone[K comparable](k K) K {
	if s, ok := any(k).(string); ok {
		return any(strings.Clone(s)).(K)
	}
	return k
}
