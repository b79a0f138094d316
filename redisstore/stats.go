// The store's own figures: calls, failures by cause, latency.

package redisstore

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/annuaire/tracker"
	"github.com/redis/go-redis/v9"
)

// Stats are a store's figures since it was made. The package publishes
// nothing globally: a program exports them as it likes (the standalone
// server, as Prometheus metrics).
type Stats struct {
	Announce, Scrape OpStats
}

// OpStats are the figures of one operation.
type OpStats struct {
	// Calls counts the calls that reached Redis or tried to, failed ones
	// included (not those refused before, after Close or for a bad
	// address).
	Calls uint64
	// Timeouts, Unavailable and Errors count the calls that failed:
	// Config.Timeout or the caller's context ran out; Redis could not be
	// reached (connection refused, reset or closed); anything else, such
	// as an error reply (out of memory, a read-only replica) or a reply
	// the store does not understand. A swarm at its bound is no failure.
	Timeouts, Unavailable, Errors uint64
	// Latency is the distribution of the calls' durations, failed ones
	// included.
	Latency Histogram
}

// Histogram is a distribution of durations in fixed buckets.
type Histogram struct {
	// Bounds are the upper bounds of the buckets, in increasing order.
	Bounds []time.Duration
	// Counts has one more element than Bounds: Counts[i] counts the
	// durations above Bounds[i-1] and at most Bounds[i], the last one
	// those above every bound.
	Counts []uint64
	// Sum is the sum of the durations.
	Sum time.Duration
}

// latencyBounds are the buckets of the latency histograms: a local Redis
// answers in a few hundred microseconds, and Config.Timeout cuts a call
// at 250 ms by default.
var latencyBounds = []time.Duration{
	100 * time.Microsecond, 200 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second,
}

// opStats are the counters behind an OpStats.
type opStats struct {
	calls, timeouts, unavailable, errors atomic.Uint64
	buckets                              [14]atomic.Uint64 // len(latencyBounds)+1
	sum                                  atomic.Int64      // ns
}

// Stats returns the store's figures.
func (s *Store) Stats() Stats {
	return Stats{Announce: s.stats.announce.snapshot(), Scrape: s.stats.scrape.snapshot()}
}

func (o *opStats) record(d time.Duration, err error) {
	o.calls.Add(1)
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	o.buckets[i].Add(1)
	o.sum.Add(int64(d))
	switch failure(err) {
	case failTimeout:
		o.timeouts.Add(1)
	case failUnavailable:
		o.unavailable.Add(1)
	case failOther:
		o.errors.Add(1)
	}
}

func (o *opStats) snapshot() OpStats {
	h := Histogram{Bounds: latencyBounds, Counts: make([]uint64, len(o.buckets)), Sum: time.Duration(o.sum.Load())}
	for i := range o.buckets {
		h.Counts[i] = o.buckets[i].Load()
	}
	return OpStats{
		Calls:       o.calls.Load(),
		Timeouts:    o.timeouts.Load(),
		Unavailable: o.unavailable.Load(),
		Errors:      o.errors.Load(),
		Latency:     h,
	}
}

// The causes of failure.
const (
	failNone = iota
	failTimeout
	failUnavailable
	failOther
)

// failure sorts an error a call returned by its cause.
func failure(err error) int {
	if err == nil {
		return failNone
	}
	if _, ok := errors.AsType[*tracker.Error](err); ok {
		return failNone // a swarm at its bound
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return failTimeout
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return failTimeout
	}
	if errors.Is(err, redis.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) {
		return failUnavailable
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return failUnavailable
	}
	return failOther
}
