package loadgen

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestAppendUDPConnect(t *testing.T) {
	got := appendUDPConnect(nil, 0xdeadbeef)
	want := []byte{0, 0, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef}
	if !bytes.Equal(got, want) {
		t.Errorf("appendUDPConnect = %x; want %x", got, want)
	}
}

func TestAppendUDPAnnounce(t *testing.T) {
	w := mustWorkload(t, Workload{Swarms: 10, Peers: 100})
	be := binary.BigEndian
	for _, r := range []request{
		{peer: 42, event: eventStarted, swarm: 2},
		{peer: 7, event: eventCompleted, swarm: 7},
		{peer: 0, event: eventNone, swarm: 0},
	} {
		b := w.appendUDPAnnounce(nil, 0x0102030405060708, 99, r)
		if len(b) != udpAnnounceLen {
			t.Fatalf("announce of %+v is %d bytes; want 98", r, len(b))
		}
		h, id := w.InfoHash(r.swarm), w.PeerID(r.peer)
		down, left, up := w.transfer(r.peer, r.event)
		for _, f := range []struct {
			name      string
			got, want uint64
		}{
			{"connection id", be.Uint64(b[0:]), 0x0102030405060708},
			{"action", uint64(be.Uint32(b[8:])), 1},
			{"transaction id", uint64(be.Uint32(b[12:])), 99},
			{"downloaded", be.Uint64(b[56:]), uint64(down)},
			{"left", be.Uint64(b[64:]), uint64(left)},
			{"uploaded", be.Uint64(b[72:]), uint64(up)},
			{"event", uint64(be.Uint32(b[80:])), uint64(r.event)},
			{"ip", uint64(be.Uint32(b[84:])), 0},
			{"key", uint64(be.Uint32(b[88:])), uint64(w.Key(r.peer))},
			{"numwant", uint64(be.Uint32(b[92:])), 50},
			{"port", uint64(be.Uint16(b[96:])), uint64(w.Port(r.peer))},
		} {
			if f.got != f.want {
				t.Errorf("announce of %+v: %s = %d; want %d", r, f.name, f.got, f.want)
			}
		}
		if !bytes.Equal(b[16:36], h[:]) || !bytes.Equal(b[36:56], id[:]) {
			t.Errorf("announce of %+v: wrong info hash or peer id", r)
		}
	}

	w.NumWant = -1
	b := w.appendUDPAnnounce(nil, 1, 1, request{})
	if got := int32(be.Uint32(b[92:])); got != -1 {
		t.Errorf("numwant with NumWant -1 = %d; want -1", got)
	}
}

func TestAppendUDPScrape(t *testing.T) {
	w := mustWorkload(t, Workload{Swarms: 10, ScrapeHashes: 3})
	b := w.appendUDPScrape(nil, 5, 6, request{swarm: 9})
	if len(b) != 16+3*20 {
		t.Fatalf("scrape is %d bytes; want 76", len(b))
	}
	if binary.BigEndian.Uint32(b[8:]) != actionScrape {
		t.Errorf("action = %d; want 2", binary.BigEndian.Uint32(b[8:]))
	}
	for k, s := range []int{9, 0, 1} { // consecutive swarms, wrapping
		h := w.InfoHash(s)
		if !bytes.Equal(b[16+20*k:36+20*k], h[:]) {
			t.Errorf("hash %d is not swarm %d's", k, s)
		}
	}
}

// udpReply builds a reply: action, transaction id, then n zero bytes.
func udpReply(action uint32, n int) []byte {
	b := binary.BigEndian.AppendUint32(nil, action)
	b = binary.BigEndian.AppendUint32(b, 1)
	return append(b, make([]byte, n)...)
}

func TestCheckUDPReply(t *testing.T) {
	for _, tc := range []struct {
		name     string
		p        []byte
		action   uint32
		peerSize int
		hashes   int
		want     outcome
	}{
		{"connect", udpReply(0, 8), actionConnect, 6, 1, outOK},
		{"connect short", udpReply(0, 7), actionConnect, 6, 1, outMalformed},
		{"connect long", udpReply(0, 9), actionConnect, 6, 1, outMalformed},
		{"announce no peers", udpReply(1, 12), actionAnnounce, 6, 1, outOK},
		{"announce 50 v4 peers", udpReply(1, 12+6*50), actionAnnounce, 6, 1, outOK},
		{"announce 3 v6 peers", udpReply(1, 12+18*3), actionAnnounce, 18, 1, outOK},
		{"announce v6 with a stray v4 entry", udpReply(1, 12+18+6), actionAnnounce, 18, 1, outMalformed},
		{"announce half a peer", udpReply(1, 12+5), actionAnnounce, 6, 1, outMalformed},
		{"announce short", udpReply(1, 11), actionAnnounce, 6, 1, outMalformed},
		{"opentracker unlisted", udpReply(1, 0), actionAnnounce, 6, 1, outMalformed},
		{"scrape 1", udpReply(2, 12), actionScrape, 6, 1, outOK},
		{"scrape 5", udpReply(2, 60), actionScrape, 6, 5, outOK},
		{"scrape too few", udpReply(2, 48), actionScrape, 6, 5, outMalformed},
		{"scrape too many", udpReply(2, 24), actionScrape, 6, 1, outMalformed},
		{"error", append(udpReply(3, 0), "not allowed\x00"...), actionAnnounce, 6, 1, outFailure},
		{"bare error", udpReply(3, 0), actionScrape, 6, 1, outFailure},
		{"wrong action", udpReply(2, 12), actionAnnounce, 6, 1, outMalformed},
		{"unknown action", udpReply(9, 12), actionAnnounce, 6, 1, outMalformed},
		{"7 bytes", udpReply(1, 0)[:7], actionAnnounce, 6, 1, outMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkUDPReply(tc.p, tc.action, tc.peerSize, tc.hashes); got != tc.want {
				t.Errorf("checkUDPReply(%x, %d) = %d; want %d", tc.p, tc.action, got, tc.want)
			}
		})
	}
}
