package udpwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func hash(b byte) (h [20]byte) {
	for i := range h {
		h[i] = b + byte(i)
	}
	return h
}

// Real packets, as the clients build them.
var (
	connectPacket = AppendConnectRequest(nil, 0x1234)

	// libtorrent: event started, numwant 200, the URL's path in one URL
	// data option and no EndOfOptions.
	libtorrentAnnounce = append(AppendAnnounceRequest(nil, &Announce{
		ConnID: 0x0102030405060708, TxID: 7,
		InfoHash: hash(1), PeerID: [20]byte([]byte("-LT2080-abcdefghijkl")),
		Left: 1 << 20, Event: EventStarted, Key: 0xdeadbeef, NumWant: 200, Port: 6881,
	}), optURLData, 16, '/', 'a', 'n', 'n', 'o', 'u', 'n', 'c', 'e', '/', 'a', 'b', 'c', 'd', 'e', 'f')

	// aria2: 98 bytes and two zero bytes, numwant 50.
	aria2Announce = append(AppendAnnounceRequest(nil, &Announce{
		ConnID: 0x0102030405060708, TxID: 8,
		InfoHash: hash(2), PeerID: [20]byte([]byte("A2-1-36-0-abcdefghij")),
		Left: 1000, Event: EventStarted, Key: 0x6a6b6c6d, NumWant: 50, Port: 6882,
	}), 0, 0)

	// Transmission: exactly 98 bytes, no options, numwant 80.
	transmissionAnnounce = AppendAnnounceRequest(nil, &Announce{
		ConnID: 0x0102030405060708, TxID: 9,
		InfoHash: hash(3), PeerID: [20]byte([]byte("-TR3000-abcdefghijkl")),
		Downloaded: 10, Left: 990, Uploaded: 5, Key: 0x1a2b3c4d, NumWant: 80, Port: 51413,
	})

	scrapePacket = AppendScrapeRequest(nil, 0x0102030405060708, 10, hash(1), hash(2), hash(3))
)

// Replies, as the tracker builds them.
var (
	connectReply  = AppendConnect(nil, 0x1234, 0x0102030405060708)
	announceReply = AppendPeer(AppendPeer(AppendAnnounce(nil, 7, 1800, 5, 2),
		netip.MustParseAddrPort("10.0.0.1:6881")), netip.MustParseAddrPort("10.0.0.2:51413"))
	announce6Reply = AppendPeer(AppendAnnounce(nil, 8, 1800, 1, 0), netip.MustParseAddrPort("[2001:db8::1]:6881"))
	scrapeReply    = AppendScrapeEntry(AppendScrapeEntry(AppendScrape(nil, 10), 3, 7, 2), 0, 0, 1)
	errorReply     = AppendError(nil, 11, "unregistered torrent")
)

func TestHeader(t *testing.T) {
	h, ok := ParseHeader(connectPacket)
	if want := (Header{ProtocolID, ActionConnect, 0x1234}); !ok || h != want {
		t.Errorf("ParseHeader(connect) = %+v, %v; want %+v, true", h, ok, want)
	}
	if _, ok := ParseHeader(connectPacket[:15]); ok {
		t.Error("ParseHeader of 15 bytes succeeded")
	}
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 7, 0, 0, 0x12, 0x34}
	if got := AppendHeader(nil, Header{0x0102030405060708, 7, 0x1234}); !bytes.Equal(got, want) {
		t.Errorf("AppendHeader = %x; want %x", got, want)
	}
}

func TestParseAnnounce(t *testing.T) {
	base := transmissionAnnounce
	withOpts := func(opts ...byte) []byte { return append(bytes.Clone(base), opts...) }
	long := strings.Repeat("x", 300)
	longPacket := AppendAnnounceRequest(nil, &Announce{URLData: []byte("/announce/" + long)})
	tests := []struct {
		name string
		p    []byte
		url  string
		err  error
	}{
		{"transmission, 98 bytes", base, "", nil},
		{"aria2, 100 bytes", aria2Announce, "", nil},
		{"libtorrent, URL data", libtorrentAnnounce, "/announce/abcdef", nil},
		{"97 bytes", base[:97], "", ErrShort},
		{"header only", base[:16], "", ErrShort},
		{"concatenated URL data", withOpts(2, 9, '/', 'a', 'n', 'n', 'o', 'u', 'n', 'c', 'e', 2, 4, '/', 'p', 'k', '1'), "/announce/pk1", nil},
		{"NOP skipped", withOpts(1, 1, 2, 2, '/', 'a', 1, 2, 1, 'b'), "/ab", nil},
		{"EndOfOptions stops", withOpts(2, 2, '/', 'a', 0, 2, 2, '/', 'b'), "/a", nil},
		{"EndOfOptions then garbage", withOpts(0, 2, 200), "", nil},
		{"unknown type skipped", withOpts(7, 3, 'x', 'y', 'z', 2, 2, '/', 'a', 255, 0), "/a", nil},
		{"empty URL data", withOpts(2, 0), "", nil},
		{"option without length", withOpts(2), "", ErrOption},
		{"unknown option without length", withOpts(1, 9), "", ErrOption},
		{"option cut short", withOpts(2, 5, '/', 'a'), "", ErrOption},
		{"more than 255 bytes", longPacket, "/announce/" + long, nil},
	}
	for _, tt := range tests {
		a := Announce{URLData: make([]byte, 0, 8)}
		err := ParseAnnounce(tt.p, &a)
		if err != tt.err || err == nil && string(a.URLData) != tt.url {
			t.Errorf("%s: ParseAnnounce = %v, URL data %q; want %v, %q", tt.name, err, a.URLData, tt.err, tt.url)
		}
	}

	// The fields, and the action check.
	var a Announce
	if err := ParseAnnounce(libtorrentAnnounce, &a); err != nil {
		t.Fatal(err)
	}
	want := Announce{
		ConnID: 0x0102030405060708, TxID: 7, InfoHash: hash(1), PeerID: [20]byte([]byte("-LT2080-abcdefghijkl")),
		Left: 1 << 20, Event: EventStarted, Key: 0xdeadbeef, NumWant: 200, Port: 6881,
	}
	a.URLData = nil
	if !a.equal(&want) {
		t.Errorf("ParseAnnounce(libtorrent) = %+v; want %+v", a, want)
	}
	p := bytes.Clone(transmissionAnnounce)
	binary.BigEndian.PutUint32(p[92:], 0xFFFFFFFF)
	if err := ParseAnnounce(p, &a); err != nil || a.NumWant != -1 {
		t.Errorf("num_want 0xFFFFFFFF: NumWant = %d, %v; want -1", a.NumWant, err)
	}
	p[11] = 2
	if err := ParseAnnounce(p, &a); err != ErrAction {
		t.Errorf("ParseAnnounce(scrape action) = %v; want %v", err, ErrAction)
	}
}

// equal reports whether two announces are the same, URL data included.
func (a *Announce) equal(b *Announce) bool {
	return a.ConnID == b.ConnID && a.TxID == b.TxID && a.InfoHash == b.InfoHash && a.PeerID == b.PeerID &&
		a.Downloaded == b.Downloaded && a.Left == b.Left && a.Uploaded == b.Uploaded &&
		a.Event == b.Event && a.IP == b.IP && a.Key == b.Key && a.NumWant == b.NumWant && a.Port == b.Port &&
		bytes.Equal(a.URLData, b.URLData)
}

func TestParseScrape(t *testing.T) {
	many := make([][20]byte, 80)
	for i := range many {
		many[i] = hash(byte(i))
	}
	tests := []struct {
		name string
		p    []byte
		n    int
		err  error
	}{
		{"three", scrapePacket, 3, nil},
		{"one", AppendScrapeRequest(nil, 1, 2, hash(9)), 1, nil},
		{"74", AppendScrapeRequest(nil, 1, 2, many[:74]...), 74, nil},
		{"80 cut to 74", AppendScrapeRequest(nil, 1, 2, many...), 74, nil},
		{"partial hash ignored", append(AppendScrapeRequest(nil, 1, 2, hash(9)), 1, 2, 3), 1, nil},
		{"no hash", AppendScrapeRequest(nil, 1, 2), 0, ErrNoHash},
		{"19 bytes of hash", append(AppendScrapeRequest(nil, 1, 2), make([]byte, 19)...), 0, ErrNoHash},
		{"short", scrapePacket[:15], 0, ErrShort},
		{"wrong action", transmissionAnnounce, 0, ErrAction},
	}
	for _, tt := range tests {
		s, err := ParseScrape(tt.p)
		if err != tt.err || s.N() != tt.n {
			t.Errorf("%s: ParseScrape = %d hashes, %v; want %d, %v", tt.name, s.N(), err, tt.n, tt.err)
			continue
		}
		for i := range s.N() {
			if want := [20]byte(tt.p[16+20*i:]); s.Hash(i) != want {
				t.Errorf("%s: hash %d = %x; want %x", tt.name, i, s.Hash(i), want)
			}
		}
	}
}

func TestReplies(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"connect", AppendConnect(nil, 0x11223344, 0x0102030405060708),
			[]byte{0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44, 1, 2, 3, 4, 5, 6, 7, 8}},
		{"announce", AppendAnnounce(nil, 5, 1800, 7, 3),
			[]byte{0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0x07, 0x08, 0, 0, 0, 7, 0, 0, 0, 3}},
		{"peer4", AppendPeer(nil, netip.MustParseAddrPort("1.2.3.4:6881")),
			[]byte{1, 2, 3, 4, 0x1a, 0xe1}},
		{"peer4, mapped", AppendPeer(nil, netip.MustParseAddrPort("[::ffff:1.2.3.4]:6881")),
			[]byte{1, 2, 3, 4, 0x1a, 0xe1}},
		{"peer6", AppendPeer(nil, netip.MustParseAddrPort("[2001:db8::1]:6881")),
			[]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x1a, 0xe1}},
		{"scrape", AppendScrapeEntry(AppendScrape(nil, 9), 1, 2, 3),
			[]byte{0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3}},
		{"error", AppendError(nil, 9, "no"),
			[]byte{0, 0, 0, 3, 0, 0, 0, 9, 'n', 'o'}},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s: got %x; want %x", tt.name, tt.got, tt.want)
		}
	}
}

func TestParseReplyHeader(t *testing.T) {
	h, ok := ParseReplyHeader(errorReply)
	if want := (ReplyHeader{ActionError, 11}); !ok || h != want {
		t.Errorf("ParseReplyHeader(error) = %+v, %v; want %+v, true", h, ok, want)
	}
	if _, ok := ParseReplyHeader(errorReply[:7]); ok {
		t.Error("ParseReplyHeader of 7 bytes succeeded")
	}
}

func TestParseConnectReply(t *testing.T) {
	r, err := ParseConnectReply(connectReply)
	if want := (ConnectReply{TxID: 0x1234, ConnID: 0x0102030405060708}); err != nil || r != want {
		t.Errorf("ParseConnectReply = %+v, %v; want %+v", r, err, want)
	}
	for _, tt := range []struct {
		name string
		p    []byte
		err  error
	}{
		{"15 bytes", connectReply[:15], ErrShort},
		{"7 bytes", connectReply[:7], ErrShort},
		{"17 bytes", append(bytes.Clone(connectReply), 0), ErrLength},
		{"an announce", announceReply[:16], ErrAction},
	} {
		if _, err := ParseConnectReply(tt.p); err != tt.err {
			t.Errorf("%s: ParseConnectReply = %v; want %v", tt.name, err, tt.err)
		}
	}
}

func TestParseAnnounceReply(t *testing.T) {
	r, err := ParseAnnounceReply(announceReply, Peer4Len)
	if err != nil || r.TxID != 7 || r.Interval != 1800 || r.Leechers != 5 || r.Seeders != 2 || r.N() != 2 ||
		r.Peer(0) != netip.MustParseAddrPort("10.0.0.1:6881") || r.Peer(1) != netip.MustParseAddrPort("10.0.0.2:51413") {
		t.Errorf("ParseAnnounceReply(IPv4) = %+v, %v", r, err)
	}
	r, err = ParseAnnounceReply(announce6Reply, Peer6Len)
	if err != nil || r.TxID != 8 || r.N() != 1 || r.Peer(0) != netip.MustParseAddrPort("[2001:db8::1]:6881") {
		t.Errorf("ParseAnnounceReply(IPv6) = %+v, %v", r, err)
	}
	for _, tt := range []struct {
		name    string
		p       []byte
		peerLen int
		err     error
	}{
		{"no peers", announceReply[:20], Peer4Len, nil},
		{"19 bytes", announceReply[:19], Peer4Len, ErrShort},
		{"half a peer", announceReply[:23], Peer4Len, ErrLength},
		{"IPv4 peers read as IPv6", announceReply, Peer6Len, ErrLength},
		{"IPv6 with a stray IPv4 peer", append(bytes.Clone(announce6Reply), announceReply[20:26]...), Peer6Len, ErrLength},
		{"a scrape", scrapeReply, Peer4Len, ErrAction},
	} {
		if _, err := ParseAnnounceReply(tt.p, tt.peerLen); err != tt.err {
			t.Errorf("%s: ParseAnnounceReply = %v; want %v", tt.name, err, tt.err)
		}
	}
}

func TestParseScrapeReply(t *testing.T) {
	r, err := ParseScrapeReply(scrapeReply)
	if err != nil || r.TxID != 10 || r.N() != 2 {
		t.Fatalf("ParseScrapeReply = %+v, %v; want 2 entries", r, err)
	}
	for i, want := range [][3]uint32{{3, 7, 2}, {0, 0, 1}} {
		if s, c, l := r.Entry(i); [3]uint32{s, c, l} != want {
			t.Errorf("entry %d = %d, %d, %d; want %v", i, s, c, l, want)
		}
	}
	for _, tt := range []struct {
		name string
		p    []byte
		n    int
		err  error
	}{
		{"no entry", scrapeReply[:8], 0, nil},
		{"one entry", scrapeReply[:20], 1, nil},
		{"7 bytes", scrapeReply[:7], 0, ErrShort},
		{"a partial entry", scrapeReply[:19], 0, ErrLength},
		{"an error", errorReply, 0, ErrAction},
	} {
		if r, err := ParseScrapeReply(tt.p); err != tt.err || r.N() != tt.n {
			t.Errorf("%s: ParseScrapeReply = %d entries, %v; want %d, %v", tt.name, r.N(), err, tt.n, tt.err)
		}
	}
}

func TestParseErrorReply(t *testing.T) {
	r, err := ParseErrorReply(errorReply)
	if err != nil || r.TxID != 11 || string(r.Msg) != "unregistered torrent" {
		t.Errorf("ParseErrorReply = %+v, %v", r, err)
	}
	if r, err := ParseErrorReply(errorReply[:8]); err != nil || len(r.Msg) != 0 {
		t.Errorf("ParseErrorReply(no text) = %+v, %v", r, err)
	}
	if _, err := ParseErrorReply(errorReply[:7]); err != ErrShort {
		t.Errorf("ParseErrorReply(7 bytes) = %v; want %v", err, ErrShort)
	}
	if _, err := ParseErrorReply(connectReply); err != ErrAction {
		t.Errorf("ParseErrorReply(connect) = %v; want %v", err, ErrAction)
	}
}

func TestZeroAllocs(t *testing.T) {
	a := Announce{URLData: make([]byte, 0, 64)}
	buf := make([]byte, 0, 128)
	peer := netip.MustParseAddrPort("[2001:db8::1]:6881")
	n := testing.AllocsPerRun(100, func() {
		ParseHeader(libtorrentAnnounce)
		ParseReplyHeader(announceReply)
		ParseConnectReply(connectReply)
		ParseAnnounceReply(announceReply, Peer4Len)
		ParseScrapeReply(scrapeReply)
		ParseErrorReply(errorReply)
		ParseAnnounce(libtorrentAnnounce, &a)
		ParseAnnounce(libtorrentAnnounce[:50], &a)
		ParseScrape(scrapePacket)
		ParseScrape(scrapePacket[:16])
		b := AppendConnect(buf[:0], 1, 2)
		b = AppendAnnounce(b[:0], 1, 2, 3, 4)
		b = AppendPeer(b, peer)
		b = AppendScrapeEntry(AppendScrape(b[:0], 1), 1, 2, 3)
		AppendError(b[:0], 1, "error")
	})
	if n != 0 {
		t.Errorf("parsing and building: %v allocations; want 0", n)
	}
}

// FuzzParse feeds every parser arbitrary bytes. They must not panic, must
// not read past the end of the packet (the packet's capacity ends where it
// does, and bytes after it do not change the result), and what parses must
// survive a round trip through the builders.
func FuzzParse(f *testing.F) {
	for _, p := range [][]byte{connectPacket, libtorrentAnnounce, aria2Announce, transmissionAnnounce, scrapePacket,
		connectReply, announceReply, announce6Reply, scrapeReply, errorReply} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		exact := p[:len(p):len(p)]
		padded := append(bytes.Clone(p), bytes.Repeat([]byte{2, 0xff}, 64)...)[:len(p)]

		fuzzHeader(t, "ParseHeader", p, exact, padded, HeaderLen, ParseHeader, AppendHeader)
		fuzzHeader(t, "ParseReplyHeader", p, exact, padded, ReplyHeaderLen, ParseReplyHeader, AppendReplyHeader)

		var a1, a2 Announce
		err1, err2 := ParseAnnounce(exact, &a1), ParseAnnounce(padded, &a2)
		if err1 != err2 || err1 == nil && !a1.equal(&a2) {
			t.Fatalf("ParseAnnounce: %+v %v, padded %+v %v", a1, err1, a2, err2)
		}
		if err1 == nil {
			var a3 Announce
			if err := ParseAnnounce(AppendAnnounceRequest(nil, &a1), &a3); err != nil || !a1.equal(&a3) {
				t.Fatalf("announce round trip: %+v, %v; want %+v", a3, err, a1)
			}
			if len(a1.URLData) > len(p)-AnnounceLen {
				t.Fatalf("%d bytes of URL data from a %d-byte packet", len(a1.URLData), len(p))
			}
		} else if !errors.Is(err1, ErrShort) && !errors.Is(err1, ErrAction) && !errors.Is(err1, ErrOption) {
			t.Fatalf("ParseAnnounce: unexpected error %v", err1)
		}

		s1, err1 := ParseScrape(exact)
		s2, err2 := ParseScrape(padded)
		if err1 != err2 || !bytes.Equal(s1.Hashes, s2.Hashes) {
			t.Fatalf("ParseScrape: %v, padded %v", err1, err2)
		}
		if err1 == nil {
			hashes := make([][20]byte, s1.N())
			for i := range hashes {
				hashes[i] = s1.Hash(i)
			}
			s3, err := ParseScrape(AppendScrapeRequest(nil, s1.ConnID, s1.TxID, hashes...))
			if err != nil || s3.ConnID != s1.ConnID || s3.TxID != s1.TxID || !bytes.Equal(s3.Hashes, s1.Hashes) {
				t.Fatalf("scrape round trip: %+v, %v; want %+v", s3, err, s1)
			}
			if n := s1.N(); n < 1 || n > MaxScrapeHashes {
				t.Fatalf("ParseScrape gave %d hashes", n)
			}
		}

		fuzzReplies(t, p, exact, padded)
	})
}

// fuzzHeader checks the header parser parse on p: the same result whatever
// follows the packet, a header exactly when p has size bytes, and a round
// trip through the builder build.
func fuzzHeader[H comparable](t *testing.T, name string, p, exact, padded []byte, size int,
	parse func([]byte) (H, bool), build func([]byte, H) []byte) {
	t.Helper()
	h1, ok1 := parse(exact)
	h2, ok2 := parse(padded)
	if h1 != h2 || ok1 != ok2 || ok1 != (len(p) >= size) {
		t.Fatalf("%s: %v %v, padded %v %v", name, h1, ok1, h2, ok2)
	}
	if ok1 && !bytes.Equal(build(nil, h1), p[:size]) {
		t.Fatalf("%s: round trip differs", name)
	}
}

// fuzzReplies checks the parsers of replies on p as FuzzParse checks those
// of requests; what parses must be rebuilt exactly by the builders.
func fuzzReplies(t *testing.T, p, exact, padded []byte) {
	same := func(name string, err1, err2 error, rebuilt func() []byte) {
		t.Helper()
		if err1 != err2 {
			t.Fatalf("%s: %v, padded %v", name, err1, err2)
		}
		if err1 == nil && !bytes.Equal(rebuilt(), p) {
			t.Fatalf("%s round trip: %x; want %x", name, rebuilt(), p)
		}
		if err1 != nil && !errors.Is(err1, ErrShort) && !errors.Is(err1, ErrAction) && !errors.Is(err1, ErrLength) {
			t.Fatalf("%s: unexpected error %v", name, err1)
		}
	}
	c1, err1 := ParseConnectReply(exact)
	c2, err2 := ParseConnectReply(padded)
	same("ParseConnectReply", err1, err2, func() []byte { return AppendConnect(nil, c1.TxID, c1.ConnID) })
	if err1 == nil && c1 != c2 {
		t.Fatalf("ParseConnectReply: %+v, padded %+v", c1, c2)
	}
	for _, peerLen := range []int{Peer4Len, Peer6Len} {
		a1, err1 := ParseAnnounceReply(exact, peerLen)
		_, err2 := ParseAnnounceReply(padded, peerLen)
		same("ParseAnnounceReply", err1, err2, func() []byte {
			return append(AppendAnnounce(nil, a1.TxID, a1.Interval, a1.Leechers, a1.Seeders), a1.Peers...)
		})
		for i := range a1.N() {
			// AppendPeer would write an IPv4-mapped address in 6 bytes.
			ap := a1.Peer(i)
			b := ap.Addr().AsSlice()
			b = binary.BigEndian.AppendUint16(b, ap.Port())
			if !bytes.Equal(b, a1.Peers[i*peerLen:(i+1)*peerLen]) {
				t.Fatalf("Peer(%d) = %v from %x", i, ap, a1.Peers[i*peerLen:(i+1)*peerLen])
			}
		}
	}
	s1, err1 := ParseScrapeReply(exact)
	_, err2 = ParseScrapeReply(padded)
	same("ParseScrapeReply", err1, err2, func() []byte {
		b := AppendScrape(nil, s1.TxID)
		for i := range s1.N() {
			seeders, completed, leechers := s1.Entry(i)
			b = AppendScrapeEntry(b, seeders, completed, leechers)
		}
		return b
	})
	e1, err1 := ParseErrorReply(exact)
	_, err2 = ParseErrorReply(padded)
	same("ParseErrorReply", err1, err2, func() []byte { return AppendError(nil, e1.TxID, string(e1.Msg)) })
}
