package loadgen

import (
	"math"
	"sync/atomic"
	"time"
)

// Counts are the outcomes of the requests of one phase. A request is
// counted in the phase during which it was sent; after the last one is
// sent, the generator waits for every reply or timeout, so
//
//	Requests = OK + Failures + Malformed + Timeouts + Errors
//
// for announces and scrapes (a malformed reply whose transaction id
// cannot be read also times out, and breaks the identity). UDP connects
// are counted in Connects; their timeouts, error packets and malformed
// replies are counted with the rest.
type Counts struct {
	Requests  uint64 // announces or scrapes sent
	OK        uint64 // valid replies
	Failures  uint64 // valid refusals: UDP error packets, HTTP failure reasons
	Malformed uint64 // replies that break the protocol, HTTP statuses other than 200
	Timeouts  uint64 // requests unanswered within the timeout
	Errors    uint64 // requests that failed locally: refused, reset, unsendable
	Late      uint64 // UDP replies arriving after their request timed out

	Connects   uint64 // UDP connect requests; HTTP connections opened
	Reconnects uint64 // HTTP keep-alive connections opened again after the server closed one (or a timeout or error did)
}

// Replies returns the number of replies received: valid, refusals and
// malformed.
func (c *Counts) Replies() uint64 { return c.OK + c.Failures + c.Malformed }

func (c *Counts) add(o *Counts) {
	c.Requests += o.Requests
	c.OK += o.OK
	c.Failures += o.Failures
	c.Malformed += o.Malformed
	c.Timeouts += o.Timeouts
	c.Errors += o.Errors
	c.Late += o.Late
	c.Connects += o.Connects
	c.Reconnects += o.Reconnects
}

// stats are one worker's counts and latencies for one phase.
type stats struct {
	Counts
	hist histogram
}

func (s *stats) count(o outcome, latency time.Duration) {
	switch o {
	case outOK:
		s.OK++
		s.hist.record(latency)
	case outFailure:
		s.Failures++
	default:
		s.Malformed++
	}
}

// prefillCounter hands each peer to exactly one worker.
type prefillCounter struct {
	next atomic.Int64
	n    int64
}

func (c *prefillCounter) take() (int, bool) {
	i := c.next.Add(1) - 1
	if i >= c.n {
		return 0, false
	}
	return int(i), true
}

// phase is the schedule the workers follow: send until stopAt, and count
// what is sent before measureAt in warm (discarded) and after it in the
// worker's measured stats. Times are nanoseconds since base, on the
// monotonic clock; every phase of a run has the same base.
type phase struct {
	base      time.Time
	measureAt int64
	stopAt    int64 // zero: until the picker runs out
	interval  int64 // when positive, each worker sends one request per interval
	stop      atomic.Bool
}

func (p *phase) now() int64 { return int64(time.Since(p.base)) }

// pacer spaces a worker's requests by the phase's interval.
type pacer struct {
	next int64 // when the next request is due
}

// due reports whether a request may be sent at now, and if so counts it
// sent. A worker that fell behind (its slots were all busy) catches up at
// most a tenth of a second of requests, not in one burst of everything it
// missed.
func (pc *pacer) due(p *phase, now int64) bool {
	if p.interval <= 0 {
		return true
	}
	if pc.next == 0 || now-pc.next > int64(100*time.Millisecond) {
		pc.next = now
	}
	if now < pc.next {
		return false
	}
	pc.next += p.interval
	return true
}

// wake returns when the worker must wake up to send: the next due time
// when paced, else far away.
func (pc *pacer) wake(p *phase) int64 {
	if p.interval <= 0 {
		return math.MaxInt64
	}
	return pc.next
}

// sending reports whether workers may send new requests at now.
func (p *phase) sending(now int64) bool {
	return !p.stop.Load() && (p.stopAt == 0 || now < p.stopAt)
}

// worker holds a worker's stats of the warm-up and of the measured run.
type workerStats struct {
	warm, measured stats
}

func (p *phase) statsAt(ws *workerStats, now int64) *stats {
	if now < p.measureAt {
		return &ws.warm
	}
	return &ws.measured
}
