//go:build unix

package redisstore_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/redisstore"
	"github.com/annuaire/tracker/trackertest"
)

// TestPeerHijack: a peer is its address and port, its user and its peer
// id. Whoever sends its peer id from another address or port, or as
// another user, is another peer and can neither move nor stop it; two
// peers of one address and port with different users or peer ids are
// two peers.
func TestPeerHijack(t *testing.T) {
	ctx := context.Background()
	victimAddr := netip.MustParseAddrPort("192.0.2.1:6881")
	for _, tc := range []struct {
		name       string
		thiefAddr  string
		victimUser uint64
		thiefUser  uint64
		thiefID    int // the thief's peer id; the victim's is 1
	}{
		{"public, another address", "198.51.100.7:6881", 0, 0, 1},
		{"public, another port of the address", "192.0.2.1:6882", 0, 0, 1},
		{"private, another user at another port", "192.0.2.1:6882", 1, 2, 1},
		{"private, another user at the same address and port", "192.0.2.1:6881", 1, 2, 1},
		{"public, another peer id at the same address and port", "192.0.2.1:6881", 0, 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, newClient(t), redisstore.Config{})
			h := trackertest.Hash(1)
			do := func(addr netip.AddrPort, user uint64, id int, left int64, ev tracker.Event) *tracker.AnnounceResponse {
				t.Helper()
				req := &tracker.AnnounceRequest{InfoHash: h, PeerID: trackertest.ID(id), Addr: addr, Left: left, Event: ev, NumWant: 50}
				resp := &tracker.AnnounceResponse{Identity: tracker.Identity{UserID: user}}
				if err := s.Announce(ctx, req, resp); err != nil {
					t.Fatal(err)
				}
				return resp
			}
			do(victimAddr, tc.victimUser, 1, 100, tracker.EventStarted)
			thief := netip.MustParseAddrPort(tc.thiefAddr)
			// The thief joins: another peer, whatever it claims.
			if r := do(thief, tc.thiefUser, tc.thiefID, 0, tracker.EventStarted); r.Complete != 1 || r.Incomplete != 1 ||
				len(r.Peers) != 1 || r.Peers[0].Addr != victimAddr || r.Outcome&tracker.OutcomeJoined == 0 {
				t.Errorf("the thief's start: %+v; want a new seeder beside the victim", r)
			}
			do(thief, tc.thiefUser, tc.thiefID, 0, tracker.EventCompleted)
			if r := do(thief, tc.thiefUser, tc.thiefID, 0, tracker.EventStopped); r.Outcome&tracker.OutcomeLeft == 0 {
				t.Errorf("the thief's stop: outcome %v; want it to leave", r.Outcome)
			}
			r := do(netip.MustParseAddrPort("203.0.113.9:7000"), 0, 9, 0, tracker.EventStarted)
			if r.Incomplete != 1 || r.Downloaded != 0 || len(r.Peers) != 1 || r.Peers[0].Addr != victimAddr {
				t.Errorf("after the thief: %d leechers, %d snatches, peers %v; want the victim at %v, no snatch",
					r.Incomplete, r.Downloaded, r.Peers, victimAddr)
			}
			// The victim stops from its own address and port.
			if r := do(victimAddr, tc.victimUser, 1, 100, tracker.EventStopped); r.Incomplete != 0 || r.Outcome != tracker.OutcomeLeft {
				t.Errorf("the victim's stop: %+v; want it gone", r)
			}
		})
	}
}

// TestOutcome: each announce reports what it did to its peer, as the
// tracker's accounting reads it.
func TestOutcome(t *testing.T) {
	s := newStore(t, newClient(t), redisstore.Config{})
	h := trackertest.Hash(1)
	const (
		joined    = tracker.OutcomeJoined
		left      = tracker.OutcomeLeft
		completed = tracker.OutcomeCompleted
		seeding   = tracker.OutcomeSeeding
	)
	for i, step := range []struct {
		peer int
		left int64
		ev   tracker.Event
		want tracker.Outcome
	}{
		{1, 10, tracker.EventStarted, joined},
		{1, 10, tracker.EventNone, 0},
		{1, 10, tracker.EventStarted, 0}, // a retransmitted start
		{1, 0, tracker.EventCompleted, completed | seeding},
		{1, 0, tracker.EventCompleted, seeding}, // counted once
		{1, 0, tracker.EventStopped, left | seeding},
		{1, 0, tracker.EventStopped, seeding}, // an unknown peer stops
		{2, 0, tracker.EventCompleted, joined | completed | seeding},
		{3, 10, tracker.EventNone, joined},
		{3, 0, tracker.EventStopped, left | completed | seeding}, // a leecher that stops with nothing left
		{4, 10, tracker.EventPaused, joined},
	} {
		resp := announce(t, s, h, step.peer, step.left, step.ev)
		if resp.Outcome != step.want {
			t.Errorf("step %d (peer %d, left %d, event %v): outcome %v; want %v", i, step.peer, step.left, step.ev, resp.Outcome, step.want)
		}
	}
}
