package tracker

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/annuaire/tracker/internal/udpwire"
)

// udpBench holds announces of peers already in a tracker, ready to send.
type udpBench struct {
	h       *udpHandler
	now     time.Time
	packets [][]byte
	from    []netip.AddrPort
	out     []byte
}

// newUDPBench returns a handler of a tracker holding peers in swarms of
// equal size, and n announces of random known peers asking for numWant
// peers.
func newUDPBench(b *testing.B, swarms, peers, n, numWant int) *udpBench {
	tr := benchTracker(b, swarms, peers)
	s, err := tr.NewUDPServer(UDPConfig{})
	if err != nil {
		b.Fatal(err)
	}
	ub := &udpBench{h: s.newHandler(), now: time.Now()}
	ub.out = make([]byte, 0, ub.h.replyCap())
	var req AnnounceRequest
	for range n {
		benchPeer(&req, rand.IntN(swarms), rand.IntN(peers/swarms))
		a := udpwire.Announce{
			ConnID:   ub.h.ids.Issue(ub.now, req.Addr.Addr()),
			TxID:     rand.Uint32(),
			InfoHash: req.InfoHash, PeerID: req.PeerID,
			Left: uint64(req.Left), NumWant: int32(numWant), Port: req.Addr.Port(),
		}
		ub.packets = append(ub.packets, udpwire.AppendAnnounceRequest(nil, &a))
		ub.from = append(ub.from, netip.AddrPortFrom(req.Addr.Addr(), 40000))
	}
	return ub
}

// BenchmarkUDPAnnounce measures one announce datagram in, one reply out,
// through the UDP handler without sockets: a known peer re-announcing to
// a tracker holding 1,000,000 peers in 100,000 swarms, numwant 50. It
// includes the connection id check; the difference from
// BenchmarkAnnounce (per core) is the cost of the UDP front-end.
func BenchmarkUDPAnnounce(b *testing.B) {
	benchUDPAnnounce(b, 100_000, 1_000_000)
}

// BenchmarkUDPAnnounceFull is BenchmarkUDPAnnounce with 200,000 peers in
// swarms of 100, so that every reply holds 50 peers.
func BenchmarkUDPAnnounceFull(b *testing.B) {
	benchUDPAnnounce(b, 2_000, 200_000)
}

func benchUDPAnnounce(b *testing.B, swarms, peers int) {
	ub := newUDPBench(b, swarms, peers, 1<<14, 50)
	ctx := context.Background()
	got := 0
	i := 0
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		j := i & (len(ub.packets) - 1)
		i++
		r := ub.h.handle(ctx, ub.now, ub.packets[j], ub.from[j], ub.out[:0])
		if len(r) < udpwire.AnnounceReplyLen || r[3] != byte(udpwire.ActionAnnounce) {
			b.Fatalf("reply %q", r)
		}
		got += (len(r) - udpwire.AnnounceReplyLen) / udpwire.Peer4Len
	}
	b.ReportMetric(float64(got)/float64(i), "peers/reply")
	reportCPU(b, cpu, i)
}

// BenchmarkUDPConnect measures a connect: the id is a MAC of the address.
func BenchmarkUDPConnect(b *testing.B) {
	tr := newTestTracker(b, Config{})
	s, err := tr.NewUDPServer(UDPConfig{})
	if err != nil {
		b.Fatal(err)
	}
	h := s.newHandler()
	p := udpwire.AppendConnectRequest(nil, 1)
	out := make([]byte, 0, 64)
	now := time.Now()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r := h.handle(ctx, now, p, clientA, out[:0]); len(r) != udpwire.ConnectLen {
			b.Fatalf("reply %q", r)
		}
	}
}

// BenchmarkUDPScrape measures a scrape of one swarm (what libtorrent
// sends) in the tracker of BenchmarkUDPAnnounce.
func BenchmarkUDPScrape(b *testing.B) {
	ub := newUDPBench(b, 100_000, 1_000_000, 1<<14, 0)
	for j, p := range ub.packets {
		var a udpwire.Announce
		if err := udpwire.ParseAnnounce(p, &a); err != nil {
			b.Fatal(err)
		}
		ub.packets[j] = udpwire.AppendScrapeRequest(nil, a.ConnID, 1, a.InfoHash)
	}
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		j := i & (len(ub.packets) - 1)
		i++
		if r := ub.h.handle(ctx, ub.now, ub.packets[j], ub.from[j], ub.out[:0]); len(r) != udpwire.ScrapeReplyLen+udpwire.ScrapeEntryLen {
			b.Fatalf("reply %q", r)
		}
	}
}
