package accounting

import (
	"testing"
	"time"

	"github.com/annuaire/tracker"
)

func TestCredit(t *testing.T) {
	const min = int64(time.Minute)
	rules := Rules{SeedGap: 45 * time.Minute}
	base := Baseline{Uploaded: 1000, Downloaded: 500, Left: 200, Key: 7, Time: 100 * min}
	seeding := Baseline{Uploaded: 1000, Downloaded: 500, Left: 0, Key: 7, Time: 100 * min}
	rec := func(up, down, left int64, ev tracker.Event, key uint32, at int64) *Record {
		return &Record{Uploaded: up, Downloaded: down, Left: left, Event: ev, Key: key, Time: at, UpFactor: 1_000_000, DownFactor: 1_000_000}
	}
	for _, tc := range []struct {
		name  string
		b     Baseline
		known bool
		r     *Record
		want  Delta // Baseline is checked apart
		moved bool  // the baseline becomes the record's
	}{
		{"first announce", Baseline{}, false, rec(300, 100, 50, tracker.EventStarted, 7, 100*min),
			Delta{RawUp: 300, RawDown: 100, Up: 300, Down: 100}, true},
		{"first announce completes", Baseline{}, false, rec(0, 100, 0, tracker.EventCompleted, 7, 100*min),
			Delta{RawDown: 100, Down: 100, Snatch: true}, true},
		{"growth", base, true, rec(1500, 700, 0, tracker.EventNone, 7, 130*min),
			Delta{RawUp: 500, RawDown: 200, Up: 500, Down: 200, Snatch: true}, true},
		{"same counters later", base, true, rec(1000, 500, 200, tracker.EventNone, 7, 130*min),
			Delta{}, true},
		{"exact replay", base, true, rec(1000, 500, 200, tracker.EventNone, 7, 100*min),
			Delta{}, true},
		{"older, same counters", base, true, rec(1000, 500, 200, tracker.EventNone, 7, 90*min),
			Delta{Stale: true}, false},
		{"late announce, smaller counters", base, true, rec(900, 500, 300, tracker.EventNone, 7, 99*min),
			Delta{Stale: true}, false},
		{"decrease without started", base, true, rec(10, 10, 0, tracker.EventNone, 7, 130*min),
			Delta{Stale: true}, false},
		{"new session", base, true, rec(10, 20, 200, tracker.EventStarted, 8, 130*min),
			Delta{RawUp: 10, RawDown: 20, Up: 10, Down: 20}, true},
		{"new session, same key, much later", base, true, rec(10, 20, 200, tracker.EventStarted, 7, 130*min),
			Delta{RawUp: 10, RawDown: 20, Up: 10, Down: 20}, true},
		{"retransmitted started", base, true, rec(0, 0, 700, tracker.EventStarted, 7, 101*min),
			Delta{Stale: true}, false},
		{"older, higher counters (an earlier session's)", base, true, rec(5000, 900, 0, tracker.EventStopped, 7, 90*min),
			Delta{Stale: true}, false},
		{"replayed started, no key", base, true, rec(0, 0, 700, tracker.EventStarted, 0, 90*min),
			Delta{Stale: true}, false},
		{"replayed started, another key, long before", base, true, rec(0, 0, 700, tracker.EventStarted, 9, 10*min),
			Delta{Stale: true}, false},
		{"started without a key", base, true, rec(0, 0, 700, tracker.EventStarted, 0, 101*min),
			Delta{}, true},
		{"seeding 30 min", seeding, true, rec(1100, 500, 0, tracker.EventNone, 7, 130*min),
			Delta{RawUp: 100, Up: 100, SeedTime: 30 * time.Minute}, true},
		{"seeding, back after too long", seeding, true, rec(1100, 500, 0, tracker.EventNone, 7, 150*min),
			Delta{RawUp: 100, Up: 100}, true},
		{"seeder stops", seeding, true, rec(1100, 500, 0, tracker.EventStopped, 7, 110*min),
			Delta{RawUp: 100, Up: 100, SeedTime: 10 * time.Minute}, true},
		{"after a stop, no seed time", Baseline{Uploaded: 1000, Left: 0, Time: 100 * min, Stopped: true}, true, rec(1000, 0, 0, tracker.EventStarted, 7, 110*min),
			Delta{}, true},
		{"leecher completes", base, true, rec(1000, 700, 0, tracker.EventCompleted, 7, 110*min),
			Delta{RawDown: 200, Down: 200, Snatch: true}, true},
	} {
		got := Credit(tc.b, tc.known, tc.r, rules)
		wantBase := tc.b
		if tc.moved {
			wantBase = Baseline{Uploaded: tc.r.Uploaded, Downloaded: tc.r.Downloaded, Left: tc.r.Left, Key: tc.r.Key, Time: tc.r.Time, Stopped: tc.r.Event == tracker.EventStopped}
		}
		if got.Baseline != wantBase {
			t.Errorf("%s: baseline %+v; want %+v", tc.name, got.Baseline, wantBase)
		}
		got.Baseline = Baseline{}
		if got != tc.want {
			t.Errorf("%s: %+v; want %+v", tc.name, got, tc.want)
		}
	}
}

func TestCreditFactors(t *testing.T) {
	for _, tc := range []struct {
		torrent, user, global [2]uint16 // up, down
		up, down              int64
	}{
		{[2]uint16{100, 100}, [2]uint16{100, 100}, [2]uint16{100, 100}, 1000, 3000},
		{[2]uint16{100, 0}, [2]uint16{100, 100}, [2]uint16{100, 100}, 1000, 0},      // freeleech
		{[2]uint16{0, 0}, [2]uint16{100, 100}, [2]uint16{100, 100}, 0, 0},           // neutral
		{[2]uint16{200, 100}, [2]uint16{100, 100}, [2]uint16{100, 100}, 2000, 3000}, // double upload
		{[2]uint16{200, 100}, [2]uint16{200, 50}, [2]uint16{100, 100}, 4000, 1500},
		{[2]uint16{100, 100}, [2]uint16{100, 100}, [2]uint16{150, 0}, 1500, 0}, // a site-wide event
		{[2]uint16{33, 100}, [2]uint16{100, 100}, [2]uint16{100, 100}, 330, 3000},
	} {
		r := &Record{Uploaded: 1000, Downloaded: 3000,
			UpFactor:   Factor(tc.torrent[0], tc.user[0], tc.global[0]),
			DownFactor: Factor(tc.torrent[1], tc.user[1], tc.global[1])}
		d := Credit(Baseline{}, false, r, Rules{})
		if d.Up != tc.up || d.Down != tc.down || d.RawUp != 1000 || d.RawDown != 3000 {
			t.Errorf("factors %v %v %v: credited %d up, %d down (raw %d, %d); want %d, %d", tc.torrent, tc.user, tc.global, d.Up, d.Down, d.RawUp, d.RawDown, tc.up, tc.down)
		}
	}
	// Huge counters neither overflow nor lose their low bytes.
	r := &Record{Uploaded: 1<<50 + 1, Downloaded: 1 << 60, UpFactor: Factor(200, 100, 100), DownFactor: Factor(MaxFactor, MaxFactor, 100)}
	if d := Credit(Baseline{}, false, r, Rules{}); d.Up != 1<<51+2 || d.Down != 1<<63-1 {
		t.Errorf("2^50+1 bytes at 2x, 2^60 at 100x: credited %d, %d; want %d and saturated", d.Up, d.Down, int64(1<<51+2))
	}
}

// TestCreditReplay: a batch of records applied twice, each against the
// baseline the previous left, credits nothing the second time.
func TestCreditReplay(t *testing.T) {
	const min = int64(time.Minute)
	rules := Rules{SeedGap: 45 * time.Minute}
	batch := []*Record{
		{Uploaded: 0, Downloaded: 0, Left: 1000, Event: tracker.EventStarted, Key: 1, Time: 1 * min},
		{Uploaded: 40, Downloaded: 300, Left: 700, Event: tracker.EventStarted, Key: 0, Time: 20 * min}, // a restart, no key
		{Uploaded: 50, Downloaded: 400, Left: 600, Time: 31 * min},
		{Uploaded: 90, Downloaded: 1000, Left: 0, Event: tracker.EventCompleted, Key: 1, Time: 40 * min},
		{Uploaded: 500, Downloaded: 1000, Left: 0, Key: 1, Time: 70 * min},
		{Uploaded: 600, Downloaded: 1000, Left: 0, Event: tracker.EventStopped, Key: 1, Time: 80 * min},
	}
	for _, r := range batch {
		r.UpFactor, r.DownFactor = 1_000_000, 1_000_000
	}
	var b Baseline
	known := false
	var total Delta
	for pass := range 2 {
		for _, r := range batch {
			d := Credit(b, known, r, rules)
			b, known = d.Baseline, true
			if pass == 1 && (d.RawUp != 0 || d.RawDown != 0 || d.SeedTime != 0 || d.Snatch) {
				t.Errorf("replayed %+v: %+v; want nothing", *r, d)
			}
			total.Up += d.Up
			total.Down += d.Down
			total.SeedTime += d.SeedTime
		}
	}
	if total.Up != 600 || total.Down != 1000 || total.SeedTime != 40*time.Minute {
		t.Errorf("total %+v; want 600 up, 1000 down, 40m seeding", total)
	}
}
