// Package accountingtest holds the conformance suite that every
// [accounting.Backend] runs against itself, the way trackertest serves
// stores, and a [Flaky] wrapper that makes a backend fail on demand.
//
// A backend runs the suite from its own tests:
//
//	func TestConformance(t *testing.T) {
//		accountingtest.TestBackend(t, func(t *testing.T, rules accounting.Rules) accounting.Backend {
//			b, err := mybackend.Open(t.TempDir(), rules)
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { b.Close() })
//			return b
//		})
//	}
package accountingtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/trackertest"
)

// Rules are the rules the suite makes backends with: a peer counts as
// active for an hour after its last announce, and seed time counts
// between announces at most 45 minutes apart.
var Rules = accounting.Rules{PeerTTL: time.Hour, SeedGap: 45 * time.Minute, ReplayWindow: 2 * time.Minute}

// An Option changes how the suite runs.
type Option func(*options)

type options struct {
	announces int
	reopen    func(*testing.T, accounting.Backend) accounting.Backend
}

// Announces sets how many announces the tests under load make (the
// outage, the concurrent peers). If not given, 20,000; a backend whose
// every transaction costs a network round trip may ask for fewer.
func Announces(n int) Option { return func(o *options) { o.announces = n } }

// Reopen gives the suite a way to restart a backend over the same data,
// as a tracker does after a crash: reopen gets a backend the suite is done
// with (not closed) and returns a new one over its data, made with the
// same rules. Without it, the crash test goes on with the same backend,
// which checks the Ledger and the credit rule but not that the backend
// reads back what it wrote.
func Reopen(reopen func(t *testing.T, b accounting.Backend) accounting.Backend) Option {
	return func(o *options) { o.reopen = reopen }
}

// TestBackend runs the conformance suite against the backends newBackend
// returns. newBackend is called once per subtest with [Rules] and must
// return an empty backend; the suite does not close it (use t.Cleanup).
//
// The suite checks the credit rule (through Apply: every case of
// [accounting.Credit]), the factors, that a batch applied again changes
// nothing, decreases and new sessions, concurrent Apply calls carrying
// batches of one peer, snatches counted once per user and torrent, seed
// time, history rows, active peers, the users and torrents with their
// Changes versions, ErrNotFound, and records of a deleted user. Through a
// [accounting.Ledger] over a [Flaky] wrapper, it checks that a flush that
// fails before or after its transaction commits is retried without loss
// or double count, that announces are answered through an outage and
// everything is applied once when it ends, and that a crash loses nothing
// clients report again.
func TestBackend(t *testing.T, newBackend func(t *testing.T, rules accounting.Rules) accounting.Backend, opts ...Option) {
	o := options{announces: 20_000}
	for _, opt := range opts {
		opt(&o)
	}
	for _, tc := range backendTests {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{t: t, b: newBackend(t, Rules), o: &o, base: time.Now().Add(-100 * time.Minute).Truncate(time.Second).UnixNano()}
			tc.run(t, h)
		})
	}
}

var backendTests = []struct {
	name string
	run  func(*testing.T, *harness)
}{
	{"CreditRule", testCreditRule},
	{"Factors", testFactors},
	{"Replay", testReplay},
	{"ConcurrentPeer", testConcurrentPeer},
	{"SnatchOnce", testSnatchOnce},
	{"SeedTime", testSeedTime},
	{"History", testHistory},
	{"Active", testActive},
	{"Directory", testDirectory},
	{"NotFound", testNotFound},
	{"DeletedUser", testDeletedUser},
	{"FailBeforeCommit", func(t *testing.T, h *harness) { testFlushFailure(t, h, false) }},
	{"FailAfterCommit", func(t *testing.T, h *harness) { testFlushFailure(t, h, true) }},
	{"Outage", testOutage},
	{"Crash", testCrash},
}

// Passkey returns a distinct valid passkey for n.
func Passkey(n uint64) string {
	return fmt.Sprintf("pk%030d", n)
}

// harness drives one backend.
type harness struct {
	t    *testing.T
	b    accounting.Backend
	o    *options
	base int64 // Unix nanoseconds, 100 minutes ago, a whole second
}

// at returns the time min minutes after the harness's base.
func (h *harness) at(min float64) int64 { return h.base + int64(min*float64(time.Minute)) }

func (h *harness) addUser(id uint64) {
	h.t.Helper()
	u := accounting.User{ID: id, Passkey: Passkey(id), CanLeech: true, UpFactor: 100, DownFactor: 100}
	if err := h.b.PutUser(context.Background(), u); err != nil {
		h.t.Fatalf("PutUser(%d): %v", id, err)
	}
}

func (h *harness) addTorrent(n int) tracker.InfoHash {
	h.t.Helper()
	ih := trackertest.Hash(n)
	if err := h.b.PutTorrent(context.Background(), accounting.Torrent{InfoHash: ih, UpFactor: 100, DownFactor: 100}); err != nil {
		h.t.Fatalf("PutTorrent(%v): %v", ih, err)
	}
	return ih
}

func (h *harness) apply(batch ...accounting.Record) {
	h.t.Helper()
	if err := h.b.Apply(context.Background(), batch); err != nil {
		h.t.Fatalf("Apply(%d records): %v", len(batch), err)
	}
}

func (h *harness) user(id uint64) accounting.UserTotals {
	h.t.Helper()
	u, err := h.b.User(context.Background(), id)
	if err != nil {
		h.t.Fatalf("User(%d): %v", id, err)
	}
	return u
}

func (h *harness) torrent(ih tracker.InfoHash) accounting.TorrentTotals {
	h.t.Helper()
	tt, err := h.b.Torrent(context.Background(), ih)
	if err != nil {
		h.t.Fatalf("Torrent(%v): %v", ih, err)
	}
	return tt
}

func (h *harness) history(id uint64) []accounting.History {
	h.t.Helper()
	rows, err := h.b.UserTorrents(context.Background(), id)
	if err != nil {
		h.t.Fatalf("UserTorrents(%d): %v", id, err)
	}
	slices.SortFunc(rows, func(a, b accounting.History) int { return strings.Compare(a.InfoHash.String(), b.InfoHash.String()) })
	return rows
}

func (h *harness) row(id uint64, ih tracker.InfoHash) accounting.History {
	h.t.Helper()
	for _, r := range h.history(id) {
		if r.InfoHash == ih {
			return r
		}
	}
	h.t.Fatalf("UserTorrents(%d) has no row for %v", id, ih)
	return accounting.History{}
}

// ann is an announce in a test's script: counters, event, key, minute.
type ann struct {
	up, down, left int64
	ev             tracker.Event
	key            uint32
	min            float64
}

// rec returns the record of announce a by user on torrent ih from peer n,
// its factors 1.
func (h *harness) rec(user uint64, ih tracker.InfoHash, n int, a ann) accounting.Record {
	return accounting.Record{
		User: user, InfoHash: ih, PeerID: trackertest.ID(n), Key: a.key, Addr: trackertest.Addr4(n),
		Uploaded: a.up, Downloaded: a.down, Left: a.left, Event: a.ev, Time: h.at(a.min),
		UpFactor: 1_000_000, DownFactor: 1_000_000,
	}
}

const (
	none      = tracker.EventNone
	started   = tracker.EventStarted
	stopped   = tracker.EventStopped
	completed = tracker.EventCompleted
)

func testCreditRule(t *testing.T, h *harness) {
	ih := h.addTorrent(1)
	for i, tc := range []struct {
		name               string
		script             []ann
		up, down, snatches int64
	}{
		{"the first announce credits everything", []ann{{300, 100, 50, started, 7, 0}}, 300, 100, 0},
		{"growth credits the difference", []ann{{0, 0, 1000, started, 7, 0}, {500, 200, 800, none, 7, 30}}, 500, 200, 0},
		{"the same announce twice", []ann{{100, 50, 500, started, 7, 0}, {400, 150, 300, none, 7, 30}, {400, 150, 300, none, 7, 30}}, 400, 150, 0},
		{"a late announce credits nothing and moves nothing", []ann{{0, 0, 1000, started, 7, 0}, {500, 200, 800, none, 7, 30}, {300, 100, 900, none, 7, 20}, {600, 300, 700, none, 7, 40}}, 600, 300, 0},
		{"a decrease without started is stale", []ann{{1000, 500, 100, started, 7, 0}, {10, 10, 100, none, 7, 30}, {20, 20, 100, none, 7, 31}, {1100, 600, 0, none, 7, 40}}, 1100, 600, 1},
		{"a decrease with started is a new session", []ann{{1000, 500, 0, started, 1, 0}, {10, 20, 0, started, 2, 30}, {50, 30, 0, none, 2, 40}}, 1050, 530, 0},
		{"a retransmitted started is stale", []ann{{0, 0, 1000, started, 7, 0}, {100, 0, 1000, none, 7, 1}, {0, 0, 1000, started, 7, 1.5}, {150, 0, 1000, none, 7, 2}}, 150, 0, 0},
		{"a replayed started without a key is stale", []ann{{0, 0, 1000, started, 0, 0}, {100, 50, 900, none, 0, 30}, {0, 0, 1000, started, 0, 0}, {120, 60, 880, none, 0, 40}}, 120, 60, 0},
		{"left reaching zero is a snatch", []ann{{0, 0, 1000, started, 7, 0}, {0, 1000, 0, none, 7, 30}}, 0, 1000, 1},
		{"completed on the first announce", []ann{{0, 700, 0, completed, 7, 0}}, 0, 700, 1},
		{"stopped, then a new session", []ann{{0, 0, 100, started, 7, 0}, {200, 100, 0, stopped, 7, 30}, {0, 0, 0, started, 8, 40}, {50, 0, 0, none, 8, 50}}, 250, 100, 1},
	} {
		for mode, name := range []string{"one batch per record", "one batch"} {
			user := uint64(2*i + mode + 1)
			h.addUser(user)
			var recs []accounting.Record
			for _, a := range tc.script {
				recs = append(recs, h.rec(user, ih, 1, a))
			}
			if mode == 0 {
				for _, r := range recs {
					h.apply(r)
				}
			} else {
				h.apply(recs...)
			}
			u := h.user(user)
			if u.Uploaded != tc.up || u.Downloaded != tc.down || u.RawUploaded != tc.up || u.RawDownloaded != tc.down || u.Snatches != tc.snatches {
				t.Errorf("%s (%s): user totals %+v; want %d up, %d down (raw the same), %d snatches", tc.name, name, u, tc.up, tc.down, tc.snatches)
			}
		}
	}
}

func testFactors(t *testing.T, h *harness) {
	ih := h.addTorrent(1)
	const x1 = 1_000_000
	for i, tc := range []struct {
		name        string
		script      []ann
		factors     [][2]uint32 // per record: up, down, in parts per million
		up, down    int64
		raw, rawDwn int64
	}{
		{"double upload", []ann{{1000, 3000, 0, started, 7, 0}}, [][2]uint32{{2 * x1, x1}}, 2000, 3000, 1000, 3000},
		{"freeleech", []ann{{1000, 3000, 0, started, 7, 0}}, [][2]uint32{{x1, 0}}, 1000, 0, 1000, 3000},
		{"neutral", []ann{{1000, 3000, 0, started, 7, 0}}, [][2]uint32{{0, 0}}, 0, 0, 1000, 3000},
		{"each delta rounded down", []ann{{1000, 10, 0, started, 7, 0}, {2000, 20, 0, none, 7, 30}}, [][2]uint32{{330_000, 330_000}, {330_000, 330_000}}, 660, 6, 2000, 20},
		{"the factor in force at each announce", []ann{{1000, 1000, 0, started, 7, 0}, {3000, 2000, 0, none, 7, 30}}, [][2]uint32{{x1, x1}, {2 * x1, 0}}, 5000, 1000, 3000, 2000},
		{"huge counters", []ann{{1 << 40, 1 << 41, 0, started, 7, 0}}, [][2]uint32{{10 * x1, x1 / 2}}, 10 << 40, 1 << 40, 1 << 40, 1 << 41},
	} {
		user := uint64(i + 1)
		h.addUser(user)
		var recs []accounting.Record
		for j, a := range tc.script {
			r := h.rec(user, ih, 1, a)
			r.UpFactor, r.DownFactor = tc.factors[j][0], tc.factors[j][1]
			recs = append(recs, r)
		}
		h.apply(recs...)
		u := h.user(user)
		if u.Uploaded != tc.up || u.Downloaded != tc.down || u.RawUploaded != tc.raw || u.RawDownloaded != tc.rawDwn {
			t.Errorf("%s: user totals %+v; want credited %d up, %d down, raw %d, %d", tc.name, u, tc.up, tc.down, tc.raw, tc.rawDwn)
		}
		if r := h.row(user, ih); r.Uploaded != tc.up || r.Downloaded != tc.down || r.RawUploaded != tc.raw || r.RawDownloaded != tc.rawDwn {
			t.Errorf("%s: history %+v; want credited %d up, %d down, raw %d, %d", tc.name, r, tc.up, tc.down, tc.raw, tc.rawDwn)
		}
	}
	var sum accounting.TorrentTotals
	for i := range 6 {
		u := h.user(uint64(i + 1))
		sum.Uploaded += u.Uploaded
		sum.Downloaded += u.Downloaded
	}
	if tt := h.torrent(ih); tt.Uploaded != sum.Uploaded || tt.Downloaded != sum.Downloaded {
		t.Errorf("torrent totals %+v; want the users' credits, %d up and %d down", tt, sum.Uploaded, sum.Downloaded)
	}
}

// script returns a deterministic mix of announces over users, torrents
// and peers: sessions that start, grow, complete, seed, stop and restart.
func (h *harness) script(users, torrents, peers, steps int) []accounting.Record {
	type state struct {
		up, down, left int64
		key            uint32
		on             bool
	}
	x := uint64(0x9E3779B97F4A7C15)
	rnd := func(n int) int { // xorshift: the same script every run
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return int(x % uint64(n))
	}
	st := map[int]*state{}
	var recs []accounting.Record
	for step := range steps {
		p := rnd(peers)
		s := st[p]
		if s == nil {
			s = &state{}
			st[p] = s
		}
		user := uint64(p%users + 1)
		ih := trackertest.Hash(p%torrents + 1)
		a := ann{min: float64(step) * 90 / float64(steps)}
		switch {
		case !s.on:
			*s = state{left: 10_000, key: uint32(rnd(3)), on: true}
			a.ev = started
		case rnd(10) == 0:
			a.ev = stopped
			s.on = false
		default:
			s.up += int64(rnd(5000))
			d := min(s.left, int64(rnd(4000)))
			s.down += d
			s.left -= d
			if s.left == 0 && d > 0 && rnd(2) == 0 {
				a.ev = completed
			}
		}
		a.up, a.down, a.left, a.key = s.up, s.down, s.left, s.key
		r := h.rec(user, ih, p, a)
		r.UpFactor = uint32(500_000 * (1 + p%3))
		recs = append(recs, r)
	}
	return recs
}

// snapshot is everything a backend reports about some users and
// torrents.
type snapshot struct {
	users    []accounting.UserTotals
	history  [][]accounting.History
	torrents []accounting.TorrentTotals
}

func (h *harness) snapshot(users, torrents int) snapshot {
	h.t.Helper()
	var s snapshot
	for u := range users {
		s.users = append(s.users, h.user(uint64(u+1)))
		s.history = append(s.history, h.history(uint64(u+1)))
	}
	for n := range torrents {
		s.torrents = append(s.torrents, h.torrent(trackertest.Hash(n+1)))
	}
	return s
}

func sameHistory(a, b accounting.History) bool {
	return a.InfoHash == b.InfoHash && a.Uploaded == b.Uploaded && a.Downloaded == b.Downloaded &&
		a.RawUploaded == b.RawUploaded && a.RawDownloaded == b.RawDownloaded && a.SeedTime == b.SeedTime &&
		a.FirstSeen.Equal(b.FirstSeen) && a.LastSeen.Equal(b.LastSeen) && a.CompletedAt.Equal(b.CompletedAt) && a.Active == b.Active
}

// diff describes how b differs from a, or returns "".
func (a snapshot) diff(b snapshot) string {
	for i := range a.users {
		if a.users[i] != b.users[i] {
			return fmt.Sprintf("user totals %+v, then %+v", a.users[i], b.users[i])
		}
		if len(a.history[i]) != len(b.history[i]) {
			return fmt.Sprintf("user %d: %d history rows, then %d", i+1, len(a.history[i]), len(b.history[i]))
		}
		for j := range a.history[i] {
			if !sameHistory(a.history[i][j], b.history[i][j]) {
				return fmt.Sprintf("history %+v, then %+v", a.history[i][j], b.history[i][j])
			}
		}
	}
	for i := range a.torrents {
		if a.torrents[i] != b.torrents[i] {
			return fmt.Sprintf("torrent totals %+v, then %+v", a.torrents[i], b.torrents[i])
		}
	}
	return ""
}

func testReplay(t *testing.T, h *harness) {
	const users, torrents = 3, 4
	for u := range users {
		h.addUser(uint64(u + 1))
	}
	for n := range torrents {
		h.addTorrent(n + 1)
	}
	recs := h.script(users, torrents, 12, 400)
	for i := 0; i < len(recs); i += 50 {
		h.apply(recs[i:min(i+50, len(recs))]...)
	}
	want := h.snapshot(users, torrents)
	if want.users[0].Uploaded == 0 || want.users[0].Snatches == 0 {
		t.Fatalf("after the script, user 1 has %+v; want credits and snatches", want.users[0])
	}
	for _, replay := range []struct {
		name     string
		from, to int
	}{{"the last batch", 350, 400}, {"every record", 0, 400}, {"a window over two batches", 120, 230}, {"the first half", 0, 200}} {
		h.apply(recs[replay.from:replay.to]...)
		if d := want.diff(h.snapshot(users, torrents)); d != "" {
			t.Fatalf("replaying %s changed the ledger: %s", replay.name, d)
		}
	}
	// The same records applied one at a time give the same ledger.
	m := NewModel(Rules)
	m.Apply(recs)
	for u := range users {
		id := uint64(u + 1)
		got, want := h.user(id), accounting.UserTotals{ID: id}
		if w := m.Users[id]; w != nil {
			want = *w
		}
		got.Seeding, got.Leeching = 0, 0
		if got != want {
			t.Errorf("user %d: %+v; want %+v (the records applied in order with accounting.Credit)", id, got, want)
		}
	}
}

func testConcurrentPeer(t *testing.T, h *harness) {
	h.addUser(1)
	ih := h.addTorrent(1)
	const goroutines, per = 4, 3
	rounds := max(h.o.announces/200, 5)
	var want int64
	for round := range rounds {
		// One peer's announces, dealt out to the goroutines in small
		// batches: g applies announces g*per to g*per+per-1, then the
		// same plus goroutines*per, and so on.
		var recs []accounting.Record
		for i := range 40 {
			recs = append(recs, h.rec(1, ih, round, ann{up: int64(i+1) * 1000, down: int64(i+1) * 10, left: 1 << 20, key: 7, min: float64(i) / 4}))
		}
		recs[0].Event = started
		want += recs[len(recs)-1].Uploaded
		errs := make(chan error, goroutines)
		start := make(chan struct{})
		for g := range goroutines {
			go func() {
				<-start
				for i := g * per; i < len(recs); i += goroutines * per {
					if err := h.b.Apply(context.Background(), recs[i:min(i+per, len(recs))]); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		close(start)
		for range goroutines {
			if err := <-errs; err != nil {
				t.Fatalf("Apply: %v", err)
			}
		}
	}
	if u := h.user(1); u.Uploaded != want || u.RawUploaded != want || u.Downloaded != want/100 {
		t.Errorf("after %d rounds of concurrent batches of one peer: %+v; want %d up and %d down, each peer's last counters", rounds, u, want, want/100)
	}
}

func testSnatchOnce(t *testing.T, h *harness) {
	a, b := h.addTorrent(1), h.addTorrent(2)
	h.addUser(1)
	h.addUser(2)
	h.apply(
		h.rec(1, a, 1, ann{0, 0, 100, started, 1, 0}),
		h.rec(1, a, 1, ann{0, 100, 0, completed, 1, 10}),
		h.rec(1, a, 1, ann{0, 100, 0, completed, 1, 11}), // a retransmission
		h.rec(1, a, 2, ann{0, 0, 100, started, 2, 20}),   // a second client
		h.rec(1, a, 2, ann{0, 100, 0, completed, 2, 30}),
		h.rec(1, a, 1, ann{0, 0, 100, started, 3, 40}), // a new session
		h.rec(1, a, 1, ann{0, 100, 0, none, 3, 50}),
		h.rec(2, a, 3, ann{0, 100, 0, completed, 4, 60}),
		h.rec(1, b, 1, ann{0, 0, 100, started, 5, 60}),
	)
	h.apply(h.rec(1, a, 1, ann{0, 100, 0, completed, 1, 10})) // a replay
	if u := h.user(1); u.Snatches != 1 {
		t.Errorf("user 1 completed torrent a three times with two peers, torrent b never: %d snatches; want 1", u.Snatches)
	}
	if u := h.user(2); u.Snatches != 1 {
		t.Errorf("user 2: %d snatches; want 1", u.Snatches)
	}
	if tt := h.torrent(a); tt.Snatches != 2 {
		t.Errorf("torrent a, completed by two users: %d snatches; want 2", tt.Snatches)
	}
	if tt := h.torrent(b); tt.Snatches != 0 {
		t.Errorf("torrent b: %d snatches; want 0", tt.Snatches)
	}
	if r := h.row(1, a); !r.CompletedAt.Equal(time.Unix(0, h.at(10))) {
		t.Errorf("user 1 on a: completed at %v; want the first completion, %v", r.CompletedAt, time.Unix(0, h.at(10)))
	}
}

func testSeedTime(t *testing.T, h *harness) {
	ih := h.addTorrent(1)
	for i, tc := range []struct {
		name   string
		script []ann
		want   time.Duration
	}{
		{"a seeder announcing every 30 minutes", []ann{{0, 0, 0, started, 1, 0}, {10, 0, 0, none, 1, 30}, {20, 0, 0, none, 1, 60}, {30, 0, 0, none, 1, 90}}, 90 * time.Minute},
		{"a gap over SeedGap", []ann{{0, 0, 0, started, 1, 0}, {0, 0, 0, none, 1, 50}, {0, 0, 0, none, 1, 70}}, 20 * time.Minute},
		{"stopped, then started", []ann{{0, 0, 0, started, 1, 0}, {0, 0, 0, stopped, 1, 20}, {0, 0, 0, started, 2, 30}, {0, 0, 0, none, 2, 40}}, 30 * time.Minute},
		{"a leecher that completes", []ann{{0, 0, 100, started, 1, 0}, {0, 50, 50, none, 1, 30}, {0, 100, 0, completed, 1, 40}, {0, 100, 0, none, 1, 60}}, 20 * time.Minute},
		{"a replayed batch", []ann{{0, 0, 0, started, 1, 0}, {10, 0, 0, none, 1, 30}, {0, 0, 0, started, 1, 0}, {10, 0, 0, none, 1, 30}}, 30 * time.Minute},
	} {
		user := uint64(i + 1)
		h.addUser(user)
		var recs []accounting.Record
		for _, a := range tc.script {
			recs = append(recs, h.rec(user, ih, 1, a))
		}
		h.apply(recs...)
		if r := h.row(user, ih); r.SeedTime != tc.want {
			t.Errorf("%s: seed time %v; want %v", tc.name, r.SeedTime, tc.want)
		}
	}
}

func testHistory(t *testing.T, h *harness) {
	a, b := h.addTorrent(1), h.addTorrent(2)
	h.addUser(1)
	r := h.rec(1, a, 1, ann{0, 0, 1000, started, 1, 10})
	r.UpFactor = 2_000_000
	h.apply(r, h.rec(1, b, 2, ann{0, 0, 500, started, 2, 20}))
	r = h.rec(1, a, 1, ann{500, 1000, 0, completed, 1, 40})
	r.UpFactor = 2_000_000
	h.apply(r, h.rec(1, b, 2, ann{100, 200, 300, stopped, 2, 50}))
	r = h.rec(1, a, 1, ann{900, 1000, 0, none, 1, 70})
	r.UpFactor = 2_000_000
	h.apply(r)
	rows := h.history(1)
	if len(rows) != 2 {
		t.Fatalf("UserTorrents: %d rows; want 2, one per torrent", len(rows))
	}
	ts := func(min float64) time.Time { return time.Unix(0, h.at(min)) }
	for _, want := range []accounting.History{
		{InfoHash: a, Uploaded: 1800, Downloaded: 1000, RawUploaded: 900, RawDownloaded: 1000, SeedTime: 30 * time.Minute,
			FirstSeen: ts(10), LastSeen: ts(70), CompletedAt: ts(40), Active: true},
		{InfoHash: b, Uploaded: 100, Downloaded: 200, RawUploaded: 100, RawDownloaded: 200,
			FirstSeen: ts(20), LastSeen: ts(50)},
	} {
		if got := h.row(1, want.InfoHash); !sameHistory(got, want) {
			t.Errorf("history row:\n got %+v\nwant %+v", got, want)
		}
	}
}

func testActive(t *testing.T, h *harness) {
	a, b := h.addTorrent(1), h.addTorrent(2)
	h.addUser(1)
	h.addUser(2)
	h.apply(
		h.rec(1, a, 1, ann{0, 0, 0, started, 1, 90}),      // seeding
		h.rec(1, a, 2, ann{0, 0, 10, started, 2, 90}),     // leeching from a second client
		h.rec(1, b, 3, ann{0, 0, 10, started, 3, -30}),    // gone quiet 130 minutes ago
		h.rec(1, b, 4, ann{0, 0, 0, started, 4, 80}),      // stopped since
		h.rec(1, b, 4, ann{0, 0, 0, stopped, 4, 85}),      //
		h.rec(2, a, 5, ann{0, 0, 10, started, 5, 95}),     // another user's leecher
		h.rec(2, b, 6, ann{0, 0, 10, completed, 6, -100}), // long gone
	)
	if u := h.user(1); u.Seeding != 1 || u.Leeching != 1 {
		t.Errorf("user 1: seeding %d, leeching %d; want 1 and 1 (one peer expired, one stopped)", u.Seeding, u.Leeching)
	}
	if tt := h.torrent(a); tt.Seeders != 1 || tt.Leechers != 2 {
		t.Errorf("torrent a: %d seeders, %d leechers; want 1 and 2", tt.Seeders, tt.Leechers)
	}
	if tt := h.torrent(b); tt.Seeders != 0 || tt.Leechers != 0 {
		t.Errorf("torrent b: %d seeders, %d leechers; want none active", tt.Seeders, tt.Leechers)
	}
	if r := h.row(1, b); r.Active {
		t.Errorf("user 1 on b: active; want not (its peers expired or stopped)")
	}
	if r := h.row(1, a); !r.Active {
		t.Errorf("user 1 on a: not active; want active")
	}
}

func testDirectory(t *testing.T, h *harness) {
	ctx := context.Background()
	changes := func(since uint64) (map[uint64]accounting.User, map[tracker.InfoHash]accounting.Torrent, uint64) {
		t.Helper()
		us, ts, v, err := h.b.Changes(ctx, since)
		if err != nil {
			t.Fatalf("Changes(%d): %v", since, err)
		}
		um := map[uint64]accounting.User{}
		for _, u := range us {
			um[u.ID] = u
		}
		tm := map[tracker.InfoHash]accounting.Torrent{}
		for _, tt := range ts {
			tm[tt.InfoHash] = tt
		}
		return um, tm, v
	}
	users, torrents, v0 := changes(0)
	if len(users) != 0 || len(torrents) != 0 {
		t.Fatalf("a new backend: Changes(0) = %d users, %d torrents; want none", len(users), len(torrents))
	}
	u1 := accounting.User{ID: 1, Passkey: Passkey(1), CanLeech: true, UpFactor: 100, DownFactor: 50}
	u2 := accounting.User{ID: 2, Passkey: Passkey(2), CanLeech: false, UpFactor: 200, DownFactor: 0}
	t1 := accounting.Torrent{InfoHash: trackertest.Hash(1), UpFactor: 200, DownFactor: 0}
	for _, u := range []accounting.User{u1, u2} {
		if err := h.b.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.b.PutTorrent(ctx, t1); err != nil {
		t.Fatal(err)
	}
	users, torrents, v1 := changes(0)
	if users[1] != u1 || users[2] != u2 || len(users) != 2 || torrents[t1.InfoHash] != t1 || len(torrents) != 1 {
		t.Fatalf("Changes(0) = %+v, %+v; want the users and the torrent put", users, torrents)
	}
	if v1 <= v0 {
		t.Fatalf("version %d after three changes; want more than %d", v1, v0)
	}
	if users, torrents, v := changes(v1); len(users) != 0 || len(torrents) != 0 || v != v1 {
		t.Fatalf("Changes(%d) with no change since = %v, %v, version %d; want nothing and the same version", v1, users, torrents, v)
	}

	// Credits, then changes to the users: the totals stay.
	h.apply(h.rec(1, t1.InfoHash, 1, ann{1000, 0, 0, started, 1, 0}))
	u1.Passkey, u1.CanLeech = Passkey(11), false
	if err := h.b.PutUser(ctx, u1); err != nil {
		t.Fatal(err)
	}
	if err := h.b.PutUser(ctx, accounting.User{ID: 2, Deleted: true}); err != nil {
		t.Fatal(err)
	}
	t1d := accounting.Torrent{InfoHash: t1.InfoHash, UpFactor: 200, Deleted: true, Reason: "dupe of a better release"}
	if err := h.b.PutTorrent(ctx, t1d); err != nil {
		t.Fatal(err)
	}
	users, torrents, v2 := changes(v1)
	if v2 <= v1 {
		t.Fatalf("version %d after three more changes; want more than %d", v2, v1)
	}
	if users[1] != u1 || !users[2].Deleted || len(users) != 2 {
		t.Errorf("Changes(%d) users = %+v; want user 1 changed and user 2 deleted", v1, users)
	}
	if torrents[t1.InfoHash] != t1d || len(torrents) != 1 {
		t.Errorf("Changes(%d) torrents = %+v; want %+v", v1, torrents, t1d)
	}
	if u := h.user(1); u.Uploaded != 1000 {
		t.Errorf("user 1 after a new passkey: %d uploaded; want its 1000 kept", u.Uploaded)
	}
	if tt := h.torrent(t1.InfoHash); tt.Uploaded != 1000 {
		t.Errorf("a deleted torrent: %d uploaded; want its 1000 kept", tt.Uploaded)
	}
	users, _, _ = changes(0)
	if u, ok := users[2]; ok && !u.Deleted {
		t.Errorf("Changes(0) after deleting user 2: %+v; want it absent or marked deleted", u)
	}
}

func testNotFound(t *testing.T, h *harness) {
	ctx := context.Background()
	h.addUser(1)
	h.addTorrent(1)
	if err := h.b.PutUser(ctx, accounting.User{ID: 1, Deleted: true}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{1, 2} {
		if _, err := h.b.User(ctx, id); !errors.Is(err, accounting.ErrNotFound) {
			t.Errorf("User(%d), deleted or never put: %v; want ErrNotFound", id, err)
		}
		if _, err := h.b.UserTorrents(ctx, id); !errors.Is(err, accounting.ErrNotFound) {
			t.Errorf("UserTorrents(%d): %v; want ErrNotFound", id, err)
		}
	}
	if _, err := h.b.Torrent(ctx, trackertest.Hash(2)); !errors.Is(err, accounting.ErrNotFound) {
		t.Errorf("Torrent of a hash never put: %v; want ErrNotFound", err)
	}
	if _, err := h.b.Torrent(ctx, trackertest.Hash(1)); err != nil {
		t.Errorf("Torrent of a torrent put: %v", err)
	}
	h.addUser(3)
	if rows := h.history(3); len(rows) != 0 {
		t.Errorf("UserTorrents of a user who never announced: %v; want no rows", rows)
	}
}

// testDeletedUser: a user deleted while its records wait in a buffer
// must not stop the batch that carries them, or the ledger would stall.
func testDeletedUser(t *testing.T, h *harness) {
	ih := h.addTorrent(1)
	h.addUser(1)
	h.addUser(2)
	if err := h.b.PutUser(context.Background(), accounting.User{ID: 2, Deleted: true}); err != nil {
		t.Fatal(err)
	}
	h.apply(h.rec(1, ih, 1, ann{100, 0, 0, started, 1, 0}), h.rec(2, ih, 2, ann{500, 0, 0, started, 2, 0}), h.rec(1, ih, 1, ann{300, 0, 0, none, 1, 30}))
	if u := h.user(1); u.Uploaded != 300 {
		t.Errorf("user 1, in a batch with a deleted user's records: %d uploaded; want 300", u.Uploaded)
	}
	if _, err := h.b.User(context.Background(), 2); !errors.Is(err, accounting.ErrNotFound) {
		t.Errorf("User(2) after deletion: %v; want ErrNotFound", err)
	}
}

// peerOf returns the user, torrent and peer of peer number p in the
// Ledger tests.
func peerOf(p, users, torrents int) (uint64, tracker.InfoHash, tracker.PeerID) {
	id := trackertest.ID(p)
	binary.BigEndian.PutUint32(id[8:], uint32(p)) // distinct across users too
	return uint64(p%users + 1), trackertest.Hash(p%torrents + 1), id
}
