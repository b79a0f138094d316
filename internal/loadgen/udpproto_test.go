package loadgen

import (
	"reflect"
	"testing"

	"github.com/annuaire/tracker/internal/udpwire"
)

func TestAppendUDPAnnounce(t *testing.T) {
	w := mustWorkload(t, Workload{Swarms: 10, Peers: 100})
	for _, r := range []request{
		{peer: 42, event: udpwire.EventStarted, swarm: 2},
		{peer: 7, event: udpwire.EventCompleted, swarm: 7},
		{peer: 0, event: udpwire.EventNone, swarm: 0},
	} {
		b := w.appendUDPAnnounce(nil, 0x0102030405060708, 99, r)
		if len(b) != udpwire.AnnounceLen {
			t.Fatalf("announce of %+v is %d bytes; want %d", r, len(b), udpwire.AnnounceLen)
		}
		var got udpwire.Announce
		if err := udpwire.ParseAnnounce(b, &got); err != nil {
			t.Fatalf("announce of %+v: %v", r, err)
		}
		down, left, up := w.transfer(r)
		want := udpwire.Announce{
			ConnID: 0x0102030405060708, TxID: 99,
			InfoHash: w.InfoHash(r.swarm), PeerID: w.PeerID(r.peer),
			Downloaded: uint64(down), Left: uint64(left), Uploaded: uint64(up),
			Event: r.event, Key: w.Key(r.peer), NumWant: 50, Port: w.Port(r.peer),
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("announce of %+v = %+v; want %+v", r, got, want)
		}
	}

	w.NumWant = -1
	var a udpwire.Announce
	if err := udpwire.ParseAnnounce(w.appendUDPAnnounce(nil, 1, 1, request{}), &a); err != nil || a.NumWant != -1 {
		t.Errorf("numwant with NumWant -1 = %d, %v; want -1", a.NumWant, err)
	}
}

func TestAppendUDPScrape(t *testing.T) {
	w := mustWorkload(t, Workload{Swarms: 10, ScrapeHashes: 3})
	b := w.appendUDPScrape(nil, 5, 6, request{swarm: 9})
	if len(b) != udpwire.HeaderLen+3*udpwire.HashLen {
		t.Fatalf("scrape is %d bytes; want 76", len(b))
	}
	s, err := udpwire.ParseScrape(b)
	if err != nil || s.ConnID != 5 || s.TxID != 6 || s.N() != 3 {
		t.Fatalf("scrape = %+v, %v; want connection id 5, transaction id 6, 3 hashes", s, err)
	}
	for k, sw := range []int{9, 0, 1} { // consecutive swarms, wrapping
		if s.Hash(k) != w.InfoHash(sw) {
			t.Errorf("hash %d is not swarm %d's", k, sw)
		}
	}
}

// udpReply builds a reply: action, transaction id, then n zero bytes.
func udpReply(action uint32, n int) []byte {
	b := udpwire.AppendReplyHeader(nil, udpwire.ReplyHeader{Action: action, TxID: 1})
	return append(b, make([]byte, n)...)
}

func TestCheckUDPReply(t *testing.T) {
	const (
		connect  = udpwire.ActionConnect
		announce = udpwire.ActionAnnounce
		scrape   = udpwire.ActionScrape
		refusal  = udpwire.ActionError
	)
	for _, tc := range []struct {
		name     string
		p        []byte
		action   uint32
		peerSize int
		hashes   int
		want     outcome
	}{
		{"connect", udpReply(connect, 8), connect, 6, 1, outOK},
		{"connect short", udpReply(connect, 7), connect, 6, 1, outMalformed},
		{"connect long", udpReply(connect, 9), connect, 6, 1, outMalformed},
		{"announce no peers", udpReply(announce, 12), announce, 6, 1, outOK},
		{"announce 50 v4 peers", udpReply(announce, 12+6*50), announce, 6, 1, outOK},
		{"announce 3 v6 peers", udpReply(announce, 12+18*3), announce, 18, 1, outOK},
		{"announce v6 with a stray v4 entry", udpReply(announce, 12+18+6), announce, 18, 1, outMalformed},
		{"announce half a peer", udpReply(announce, 12+5), announce, 6, 1, outMalformed},
		{"announce short", udpReply(announce, 11), announce, 6, 1, outMalformed},
		{"opentracker unlisted", udpReply(announce, 0), announce, 6, 1, outMalformed},
		{"scrape 1", udpReply(scrape, 12), scrape, 6, 1, outOK},
		{"scrape 5", udpReply(scrape, 60), scrape, 6, 5, outOK},
		{"scrape too few", udpReply(scrape, 48), scrape, 6, 5, outMalformed},
		{"scrape too many", udpReply(scrape, 24), scrape, 6, 1, outMalformed},
		{"scrape half an entry", udpReply(scrape, 18), scrape, 6, 1, outMalformed},
		{"error", append(udpReply(refusal, 0), "not allowed\x00"...), announce, 6, 1, outFailure},
		{"bare error", udpReply(refusal, 0), scrape, 6, 1, outFailure},
		{"wrong action", udpReply(scrape, 12), announce, 6, 1, outMalformed},
		{"unknown action", udpReply(9, 12), announce, 6, 1, outMalformed},
		{"7 bytes", udpReply(announce, 0)[:7], announce, 6, 1, outMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkUDPReply(tc.p, tc.action, tc.peerSize, tc.hashes); got != tc.want {
				t.Errorf("checkUDPReply(%x, %d) = %d; want %d", tc.p, tc.action, got, tc.want)
			}
		})
	}
}
