package accounting

import (
	"math/bits"
	"net/netip"
	"time"

	"github.com/annuaire/tracker"
)

// Record is one announce of an identified user, as the Ledger hands it to
// a Backend: what the client reported, and the factors in force when it
// announced.
type Record struct {
	User     uint64
	InfoHash tracker.InfoHash
	PeerID   tracker.PeerID
	// Key is the client's key parameter; zero if it sent none.
	Key  uint32
	Addr netip.AddrPort
	// Uploaded, Downloaded and Left are the client's counters for its
	// session, in bytes, as it reported them.
	Uploaded, Downloaded, Left int64
	Event                      tracker.Event
	// Time is when the tracker received the announce, in Unix
	// nanoseconds.
	Time int64
	// UpFactor and DownFactor turn reported bytes into credits, in parts
	// per million: the product of the torrent's, the user's and the global
	// factors, each in percent. 1,000,000 credits bytes as they are; 0
	// credits none (a freeleech torrent's DownFactor).
	UpFactor, DownFactor uint32
}

// Baseline is what a backend keeps per (user, torrent, peer id): the
// counters of the last announce it applied, which the next one is credited
// against.
type Baseline struct {
	Uploaded, Downloaded, Left int64
	Key                        uint32
	Time                       int64 // Unix nanoseconds
	// Stopped is true once the session announced stopped.
	Stopped bool
}

// Rules are the settings of the ledger that come from the tracker's
// configuration.
type Rules struct {
	// PeerTTL is how long a peer counts as active after its last announce
	// (the tracker's peer TTL).
	PeerTTL time.Duration
	// SeedGap is the longest time between two announces of a seeder that
	// counts as seed time: one and a half announce intervals, so that a
	// client that missed an announce (or went away without stopping) is
	// not credited for the time it was gone.
	SeedGap time.Duration
	// ReplayWindow is how long after a session's last announce a started
	// announce that carries the session's own key, with smaller counters,
	// is taken for a retransmission of the session's first announce rather
	// than for a new session. If zero, 2 minutes.
	ReplayWindow time.Duration
}

// Delta is what one record adds, as [Credit] computes it.
type Delta struct {
	// RawUp and RawDown are the bytes reported since the baseline.
	RawUp, RawDown int64
	// Up and Down are the credits: the raw bytes times the record's
	// factors, rounded down.
	Up, Down int64
	// SeedTime is the time seeded since the baseline.
	SeedTime time.Duration
	// Snatch is true when the record completes a download: event
	// completed, or Left reaching 0 from a baseline with something left
	// (aria2 never sends completed). A backend counts one snatch per user
	// and torrent, however many records say so.
	Snatch bool
	// Stale is true when the record credits nothing and leaves the
	// baseline as it was: a replay, a retransmission, an announce older
	// than the baseline.
	Stale bool
	// Baseline is the new baseline: the record's counters, or the old
	// baseline for a stale record.
	Baseline Baseline
}

// Credit applies the credit rule to record r, against the baseline b of
// its (user, torrent, peer id), known is false when there is none yet:
//
//   - With no baseline, the record opens a session: everything it reports
//     is credited.
//   - Counters at or above the baseline credit the difference.
//   - A decrease of either counter with event started opens a new session
//     (the client restarted the torrent with the same peer id): everything
//     it reports is credited. Unless it carries the session's own non-zero
//     key within ReplayWindow of the baseline: that is a retransmitted
//     started, and it is stale.
//   - Any other decrease, and any record older than the baseline, is
//     stale: a replay or an announce that arrived late. It credits nothing
//     and leaves the baseline as it was. (A replayed record of an earlier
//     session can carry counters above the baseline of the session after
//     it; a replayed started may carry no key, or a new one: aria2 sends a
//     new key with every UDP announce.)
//
// Seed time counts the time from the baseline to the record when both are
// a seeder's (Left 0, the session not stopped in between) and at most
// SeedGap apart. Credit is the reference for every backend: applying the
// records of a batch in order, each against the baseline the previous ones
// left, is what a backend must do in one transaction, so that a batch
// applied twice changes nothing the second time.
func Credit(b Baseline, known bool, r *Record, rules Rules) Delta {
	window := rules.ReplayWindow
	if window == 0 {
		window = 2 * time.Minute
	}
	var d Delta
	fresh := Baseline{Uploaded: r.Uploaded, Downloaded: r.Downloaded, Left: r.Left, Key: r.Key, Time: r.Time, Stopped: r.Event == tracker.EventStopped}
	switch {
	case !known:
		d.RawUp, d.RawDown = r.Uploaded, r.Downloaded
		d.Snatch = r.Event == tracker.EventCompleted
	case r.Time < b.Time:
		return Delta{Stale: true, Baseline: b}
	case r.Uploaded < b.Uploaded || r.Downloaded < b.Downloaded:
		retransmit := r.Key != 0 && r.Key == b.Key && r.Time-b.Time < int64(window)
		if r.Event != tracker.EventStarted || retransmit {
			return Delta{Stale: true, Baseline: b}
		}
		d.RawUp, d.RawDown = r.Uploaded, r.Downloaded
	default:
		d.RawUp, d.RawDown = r.Uploaded-b.Uploaded, r.Downloaded-b.Downloaded
		d.Snatch = r.Event == tracker.EventCompleted || b.Left > 0 && r.Left == 0
		if gap := r.Time - b.Time; b.Left == 0 && !b.Stopped && r.Left == 0 && gap > 0 && gap <= int64(rules.SeedGap) {
			d.SeedTime = time.Duration(gap)
		}
	}
	d.Up = scale(d.RawUp, r.UpFactor)
	d.Down = scale(d.RawDown, r.DownFactor)
	d.Baseline = fresh
	return d
}

// scale returns n times ppm millionths, rounded down, without overflow for
// any counter and factor a tracker sees.
func scale(n int64, ppm uint32) int64 {
	if n <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(n), uint64(ppm))
	if hi >= 1_000_000 {
		return 1<<63 - 1 // beyond any real total: saturate
	}
	q, _ := bits.Div64(hi, lo, 1_000_000)
	return int64(min(q, 1<<63-1))
}

// Factor returns the factor in parts per million of a torrent's, a user's
// and a global factor, each in percent and at most MaxFactor.
func Factor(torrent, user, global uint16) uint32 {
	return uint32(torrent) * uint32(user) * uint32(global)
}
