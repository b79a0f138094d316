package loadgen

import (
	"bytes"
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
	Requests  uint64 // announces or scrapes sent, or due and never sent (see Config.Rate)
	OK        uint64 // valid replies
	Failures  uint64 // valid refusals: UDP error packets, HTTP failure reasons
	Malformed uint64 // replies that break the protocol, HTTP statuses other than 200
	Timeouts  uint64 // requests unanswered within the timeout, or due and never sent
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

// Reason is a refusal's text and the number of refusals that gave it.
type Reason struct {
	Text string
	N    uint64
}

// maxReasons is how many distinct refusal texts are kept apart; the
// others are counted under otherReasons.
const (
	maxReasons   = 16
	otherReasons = "(other reasons)"
)

// reasons counts refusals by their text. A tracker gives a handful of
// texts at most, so they are kept in a short slice searched in order,
// which costs no allocation for a text already seen.
type reasons []Reason

func (r *reasons) add(text []byte, n uint64) {
	text = bytes.TrimRight(text, "\x00") // some trackers end the text of UDP errors with a NUL
	for i := range *r {
		if (*r)[i].Text == string(text) {
			(*r)[i].N += n
			return
		}
	}
	if len(*r) >= maxReasons-1 {
		text = []byte(otherReasons)
		for i := range *r {
			if (*r)[i].Text == otherReasons {
				(*r)[i].N += n
				return
			}
		}
	}
	*r = append(*r, Reason{string(text), n})
}

func (r *reasons) merge(o reasons) {
	for _, x := range o {
		r.add([]byte(x.Text), x.N)
	}
}

// stats are one worker's counts and latencies for one window of a phase.
// The histogram is made on the first latency recorded: a generator with
// many workers and windows would otherwise hold many empty ones.
type stats struct {
	Counts
	hist    *histogram
	reasons reasons
}

func (s *stats) count(o outcome, latency time.Duration) {
	switch o {
	case outOK:
		s.OK++
		if s.hist == nil {
			s.hist = new(histogram)
		}
		s.hist.record(latency)
	case outFailure:
		s.Failures++
	default:
		s.Malformed++
	}
}

// refused counts a refusal and its text.
func (s *stats) refused(text []byte) {
	s.count(outFailure, 0)
	s.reasons.add(text, 1)
}

func (s *stats) merge(o *stats) {
	s.Counts.add(&o.Counts)
	if o.hist != nil {
		if s.hist == nil {
			s.hist = new(histogram)
		}
		s.hist.merge(o.hist)
	}
	s.reasons.merge(o.reasons)
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
// worker's stats of the window it falls in: windows begin at measureAt
// and at each of splits. Times are nanoseconds since base, on the
// monotonic clock; every phase of a run has the same base.
type phase struct {
	base      time.Time
	measureAt int64
	splits    []int64 // where windows after the first begin, ascending
	stopAt    int64   // zero: until the picker runs out
	stop      atomic.Bool
	// gap is the time between two requests of one worker when the phase
	// is paced (Config.Rate), zero when workers send as fast as they can.
	gap int64
}

func (p *phase) now() int64 { return int64(time.Since(p.base)) }

// sending reports whether workers may send new requests at now.
func (p *phase) sending(now int64) bool {
	return !p.stop.Load() && (p.stopAt == 0 || now < p.stopAt)
}

// windows returns the number of measured windows.
func (p *phase) windows() int { return len(p.splits) + 1 }

// workerStats holds a worker's stats of the warm-up and of each measured
// window.
type workerStats struct {
	warm stats
	win  []stats
}

func (p *phase) statsAt(ws *workerStats, now int64) *stats {
	if now < p.measureAt {
		return &ws.warm
	}
	k := 0
	for k < len(p.splits) && now >= p.splits[k] {
		k++
	}
	return &ws.win[k]
}

// reset readies ws for phase p.
func (ws *workerStats) reset(p *phase) {
	*ws = workerStats{win: make([]stats, p.windows())}
}

// pacer spaces a worker's requests gap apart (phase.gap) and says when the
// next one is due. Workers start staggered, so that their requests do not
// leave together.
type pacer struct {
	gap, due int64
}

// start readies the pacer for phase p, for worker k of n.
func (pc *pacer) start(p *phase, k, n int) {
	pc.gap, pc.due = p.gap, 0
	if pc.gap > 0 {
		pc.due = p.now() + pc.gap*int64(k)/int64(max(n, 1))
	}
}

// take reports whether a request is due at now, and when it was due; a
// worker that is not paced always has one due, now. The requests due more
// than behind ago are skipped: take returns how many.
func (pc *pacer) take(now, behind int64) (due int64, ok bool, skipped uint64) {
	if pc.gap == 0 {
		return now, true, 0
	}
	if pc.due > now {
		return 0, false, 0
	}
	if lag := now - pc.due; lag > behind {
		skipped = uint64((lag - behind + pc.gap - 1) / pc.gap)
		pc.due += int64(skipped) * pc.gap
	}
	due = pc.due
	pc.due += pc.gap
	return due, true, skipped
}
