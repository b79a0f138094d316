package trackertest

// The suite's own tests: a plain map-based store that follows the
// contract passes it, and each of a set of deliberately broken variants of
// that store fails it, in the subtests that check what the variant breaks
// and in no other.
//
// A failing run of the suite fails the test that runs it, so each variant
// runs in a child process (this test binary again, with -test.run and an
// environment variable naming the variant), whose verbose output tells
// which subtests failed.

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/annuaire/tracker"
)

// flaw is what a variant of the reference store gets wrong.
type flaw int

const (
	sound           flaw = iota
	neverExpires         // Advance moves the clock, peers stay forever
	ignoresClose         // Close returns nil and the store goes on
	setsInterval         // Announce overwrites resp.Interval
	roundRobin           // replies rotate through the peers
	biased               // half the peers are 10% more likely
	racyCounts           // counters updated outside the lock: lost updates
	ignoresCapacity      // NewBounded sets no bound
	ignoresPort          // a peer is its user, address and peer id: another port moves it
	noOutcome            // Announce leaves resp.Outcome zero
)

// flaws names the variants, with the subtests each must fail and those it
// may fail too (the biased sampler's first peers are biased as well, which
// SampleOrder sees at times).
var flaws = map[string]struct {
	f         flaw
	fail, may []string
}{
	"sound":            {sound, nil, nil},
	"never-expires":    {neverExpires, []string{"Expiry", "ExpiryRefresh", "IdleSwarm"}, nil},
	"ignores-close":    {ignoresClose, []string{"Close"}, nil},
	"sets-interval":    {setsInterval, []string{"LeavesFieldsAlone"}, nil},
	"round-robin":      {roundRobin, []string{"SampleOrder"}, nil},
	"biased":           {biased, []string{"SampleUniform"}, []string{"SampleOrder"}},
	"racy-counts":      {racyCounts, []string{"Concurrent"}, nil},
	"ignores-capacity": {ignoresCapacity, []string{"Capacity"}, nil},
	"no-outcome":       {noOutcome, []string{"Outcome"}, nil},
	"ignores-port":     {ignoresPort, []string{"AddressChange", "Capacity"}, nil},
}

const childEnv = "TRACKERTEST_VARIANT"

// TestVariant runs the suite against the variant its child process is
// asked for; it does nothing in a plain run.
func TestVariant(t *testing.T) {
	name := os.Getenv(childEnv)
	if name == "" {
		t.Skip("runs in the child processes of TestSuiteCatches")
	}
	v, ok := flaws[name]
	if !ok {
		t.Fatalf("unknown variant %q", name)
	}
	TestStore(t, Harness{
		New: func(t *testing.T) tracker.Store { return newRefStore(v.f, time.Minute, 0) },
		Advance: func(t *testing.T, s tracker.Store, d time.Duration) {
			s.(*refStore).advance(d)
		},
		PeerTTL: time.Minute,
		NewBounded: func(t *testing.T, maxPeers int) tracker.Store {
			if v.f == ignoresCapacity {
				maxPeers = 0
			}
			return newRefStore(v.f, time.Minute, maxPeers)
		},
	})
}

var failLine = regexp.MustCompile(`(?m)^\s*--- FAIL: TestVariant/([^/\s]+)`)

// TestSuiteCatches runs the suite against every variant and checks that
// exactly the expected subtests fail: the sound store passes, and each
// broken one fails for what it breaks. A statistical subtest fails a
// broken sampler with a probability far above 0.9999 and a sound one with
// a probability near 1e-6, so the outcome is the same every run.
func TestSuiteCatches(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole suite once per variant")
	}
	for name, v := range flaws {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestVariant$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), childEnv+"="+name)
			out, err := cmd.CombinedOutput()
			var failed []string
			for _, m := range failLine.FindAllStringSubmatch(string(out), -1) {
				if !slices.Contains(failed, m[1]) {
					failed = append(failed, m[1])
				}
			}
			sort.Strings(failed)
			want := slices.Clone(v.fail)
			for _, name := range v.may {
				if slices.Contains(failed, name) {
					want = append(want, name)
				}
			}
			sort.Strings(want)
			if !slices.Equal(failed, want) {
				t.Errorf("the suite failed %q for the %s store; want %q", failed, name, want)
			}
			if (err == nil) != (len(want) == 0) || (err == nil && !strings.Contains(string(out), "--- PASS: TestVariant")) {
				t.Errorf("child process: %v; want it to fail exactly when subtests should", err)
			}
			if t.Failed() {
				t.Logf("child output:\n%s", tail(string(out), 60))
			}
		})
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// refStore is the reference store: swarms in maps under one lock, a clock
// that only advance moves, and the contract's rules written plainly.
type refStore struct {
	flaw flaw
	ttl  time.Duration
	max  int // peers per swarm; 0 for no bound

	mu     sync.Mutex
	now    time.Duration
	closed bool
	swarms map[tracker.InfoHash]*refSwarm
}

type refSwarm struct {
	peers map[refID]*refPeer
	// lists holds the peers by family (IPv6) and class (seeder), each in
	// the order they joined it.
	lists  [2][2][]*refPeer
	oldest time.Duration // no peer was last seen before
	counts refCounts
	turn   int // where the next rotation starts (roundRobin)
}

// refCounts are a swarm's counters, kept apart from the peers so that the
// racyCounts variant can lose updates of them.
type refCounts struct {
	seeders, leechers, partial, snatches int
}

type refID struct {
	user uint64
	addr netip.AddrPort
	id   tracker.PeerID
}

type refPeer struct {
	addr     netip.AddrPort
	seed     bool
	partial  bool
	snatched bool // a leecher whose completion was counted
	seen     time.Duration
}

func newRefStore(f flaw, ttl time.Duration, max int) *refStore {
	return &refStore{flaw: f, ttl: ttl, max: max, swarms: make(map[tracker.InfoHash]*refSwarm)}
}

func (s *refStore) advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now += d
}

// delta returns the change of counters that adding (sign 1) or removing
// (sign -1) p makes.
func (p *refPeer) delta(sign int) refCounts {
	switch {
	case p.seed:
		return refCounts{seeders: sign}
	case p.partial:
		return refCounts{leechers: sign, partial: sign}
	}
	return refCounts{leechers: sign}
}

func (c refCounts) add(d refCounts) refCounts {
	return refCounts{c.seeders + d.seeders, c.leechers + d.leechers, c.partial + d.partial, c.snatches + d.snatches}
}

// expire removes the peers older than the TTL; it returns the change of
// counters.
func (s *refStore) expire(w *refSwarm) refCounts {
	var d refCounts
	if s.flaw == neverExpires || s.now-w.oldest <= s.ttl {
		return d
	}
	w.oldest = s.now
	for id, p := range w.peers {
		if s.now-p.seen > s.ttl {
			w.remove(id)
			d = d.add(p.delta(-1))
		} else {
			w.oldest = min(w.oldest, p.seen)
		}
	}
	return d
}

func (p *refPeer) list(w *refSwarm) *[]*refPeer {
	return &w.lists[b2i(p.addr.Addr().Is6())][b2i(p.seed)]
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (w *refSwarm) remove(id refID) {
	p := w.peers[id]
	delete(w.peers, id)
	l := p.list(w)
	*l = slices.Delete(*l, slices.Index(*l, p), slices.Index(*l, p)+1)
}

func (s *refStore) Announce(ctx context.Context, req *tracker.AnnounceRequest, resp *tracker.AnnounceResponse) error {
	s.mu.Lock()
	locked := true
	defer func() {
		if locked {
			s.mu.Unlock()
		}
	}()
	if s.closed && s.flaw != ignoresClose {
		return tracker.ErrClosed
	}
	if s.flaw == setsInterval {
		resp.Interval = 30 * time.Minute
	}
	ip := req.Addr.Addr().Unmap()
	id := refID{resp.Identity.UserID, netip.AddrPortFrom(ip, req.Addr.Port()), req.PeerID}
	if s.flaw == ignoresPort {
		id.addr = netip.AddrPortFrom(ip, 0)
	}
	w := s.swarms[req.InfoHash]
	if w == nil {
		if req.Event == tracker.EventStopped {
			resp.Complete, resp.Incomplete, resp.Downloaded = 0, 0, 0
			return nil
		}
		w = &refSwarm{peers: make(map[refID]*refPeer)}
		s.swarms[req.InfoHash] = w
	}
	d := s.expire(w)
	seeding := req.Left == 0
	old := w.peers[id]
	var me *refPeer
	switch {
	case req.Event == tracker.EventStopped:
		if old != nil {
			if seeding && !old.seed && !old.snatched {
				d.snatches++
			}
			w.remove(id)
			d = d.add(old.delta(-1))
		}
	case old == nil:
		if s.max > 0 && len(w.peers) >= s.max {
			w.counts = w.counts.add(d)
			return tracker.ErrTooManyPeers
		}
		me = &refPeer{seed: seeding}
		if req.Event == tracker.EventCompleted {
			d.snatches++
			me.snatched = !seeding
		}
		w.peers[id] = me
	default:
		me = old
		d = d.add(old.delta(-1))
		w.remove(id)
		w.peers[id] = me
		switch {
		case old.seed == seeding:
			if !seeding && req.Event == tracker.EventCompleted && !old.snatched {
				d.snatches++
				old.snatched = true
			}
		case seeding:
			if !old.snatched {
				d.snatches++
			}
		default:
			old.snatched = true // a seeder that leeches again has completed
		}
		old.seed = seeding
	}
	if me != nil {
		me.addr = netip.AddrPortFrom(ip, req.Addr.Port())
		me.partial = !seeding && req.Event == tracker.EventPaused
		me.seen = s.now
		d = d.add(me.delta(1))
		l := me.list(w)
		*l = append(*l, me)
	}

	if s.flaw == racyCounts {
		// Read, let others run, write back: updates made meanwhile are
		// lost. Every access is under the lock, so the race detector has
		// nothing to report; only the counts are wrong.
		c := w.counts
		s.mu.Unlock()
		runtime.Gosched()
		s.mu.Lock()
		w.counts = c.add(d)
	} else {
		w.counts = w.counts.add(d)
	}
	resp.Complete, resp.Incomplete, resp.Downloaded = w.counts.seeders, w.counts.leechers, w.counts.snatches
	resp.Outcome = 0
	if s.flaw != noOutcome {
		if old == nil && me != nil {
			resp.Outcome |= tracker.OutcomeJoined
		}
		if old != nil && me == nil {
			resp.Outcome |= tracker.OutcomeLeft
		}
		if d.snatches > 0 {
			resp.Outcome |= tracker.OutcomeCompleted
		}
		if seeding {
			resp.Outcome |= tracker.OutcomeSeeding
		}
	}
	if me != nil && req.NumWant > 0 {
		resp.Peers = s.sample(w, me, req.NumWant, resp.Peers)
	}
	s.mu.Unlock()
	locked = false
	return nil
}

// sample appends up to want eligible peers for me: in the announcer's
// family, not itself, leechers only for a seeder.
func (s *refStore) sample(w *refSwarm, me *refPeer, want int, out []tracker.Peer) []tracker.Peer {
	lists := &w.lists[b2i(me.addr.Addr().Is6())]
	eligible := slices.Clone(lists[0])
	if !me.seed {
		eligible = append(eligible, lists[1]...)
		i := slices.Index(eligible, me)
		eligible = slices.Delete(eligible, i, i+1)
	}
	m := min(want, len(eligible))
	switch s.flaw {
	case roundRobin:
		for i := range m {
			out = append(out, tracker.Peer{Addr: eligible[(w.turn+i)%len(eligible)].addr})
		}
		w.turn += m
	case biased:
		// Weighted draws without replacement, by rejection: peers on an
		// even port weigh 1.1, the others 1.
		taken := make(map[int]bool, m)
		for len(taken) < m {
			i := rand.IntN(len(eligible))
			if taken[i] || (eligible[i].addr.Port()%2 == 1 && rand.Float64() >= 1/1.1) {
				continue
			}
			taken[i] = true
			out = append(out, tracker.Peer{Addr: eligible[i].addr})
		}
	default:
		// A partial Fisher-Yates shuffle: a uniform sample in random order.
		for i := range m {
			j := i + rand.IntN(len(eligible)-i)
			eligible[i], eligible[j] = eligible[j], eligible[i]
			out = append(out, tracker.Peer{Addr: eligible[i].addr})
		}
	}
	return out
}

func (s *refStore) Scrape(ctx context.Context, hashes []tracker.InfoHash, dst []tracker.ScrapeStats) ([]tracker.ScrapeStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed && s.flaw != ignoresClose {
		return dst, tracker.ErrClosed
	}
	for _, h := range hashes {
		var st tracker.ScrapeStats
		if w := s.swarms[h]; w != nil {
			w.counts = w.counts.add(s.expire(w))
			c := w.counts
			st = tracker.ScrapeStats{Complete: c.seeders, Incomplete: c.leechers, Downloaded: c.snatches, Downloaders: c.leechers - c.partial}
		}
		dst = append(dst, st)
	}
	return dst, nil
}

func (s *refStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
