package tracker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/annuaire/tracker/internal/udpwire"
)

// The tests of the UDP front-end cover items 27 to 42 of the conformance
// checklist of docs/protocol.md; each test names the items it covers.
// Handler tests call udpHandler.handle directly with a chosen time and
// source address; socket tests run a server on loopback.

var (
	udpT0      = time.Unix(1_700_000_000, 0)
	clientA    = netip.MustParseAddrPort("192.0.2.1:40000")
	clientB    = netip.MustParseAddrPort("192.0.2.2:40000")
	clientA6   = netip.MustParseAddrPort("[2001:db8::1]:40000")
	clientAMap = netip.MustParseAddrPort("[::ffff:192.0.2.1]:40000")
)

func newTestServer(t testing.TB, tr *Tracker, cfg UDPConfig) *UDPServer {
	t.Helper()
	s, err := tr.NewUDPServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testHandler answers packets as one reader of a server would, at a time
// the test sets.
type testHandler struct {
	t   testing.TB
	h   *udpHandler
	now time.Time
}

func newTestHandler(t testing.TB, cfg Config) *testHandler {
	return &testHandler{t: t, h: newTestServer(t, newTestTracker(t, cfg), UDPConfig{}).newHandler(), now: udpT0}
}

func (th *testHandler) send(from netip.AddrPort, p []byte) []byte {
	return bytes.Clone(th.h.handle(context.Background(), th.now, p, from, nil))
}

func (th *testHandler) connect(from netip.AddrPort) uint64 {
	th.t.Helper()
	r := th.send(from, udpwire.AppendConnectRequest(nil, 1))
	cr, err := udpwire.ParseConnectReply(r)
	if err != nil {
		th.t.Fatalf("connect reply %x: %v", r, err)
	}
	return cr.ConnID
}

// announcePacket returns an announce of peer i (a leecher unless seeder)
// of the swarm named by b.
func announcePacket(connID uint64, txID uint32, b byte, i int, seeder bool) *udpwire.Announce {
	a := &udpwire.Announce{
		ConnID: connID, TxID: txID,
		InfoHash: [20]byte{b}, Left: 1000, NumWant: -1, Port: uint16(6881 + i),
		Event: udpwire.EventStarted, Key: uint32(i),
	}
	copy(a.PeerID[:], fmt.Sprintf("-TS0001-%012d", i))
	if seeder {
		a.Left = 0
	}
	return a
}

func announceBytes(a *udpwire.Announce) []byte { return udpwire.AppendAnnounceRequest(nil, a) }

// udpAnnounceReply is a decoded announce reply.
type udpAnnounceReply struct {
	tx, interval, leechers, seeders uint32
	peers                           []netip.AddrPort
}

func parseAnnounceReply(t testing.TB, r []byte, peerLen int) udpAnnounceReply {
	t.Helper()
	wr, err := udpwire.ParseAnnounceReply(r, peerLen)
	if err != nil {
		t.Fatalf("announce reply %x (%q): %v; want action 1 and 20+%dN bytes", r, r, err, peerLen)
	}
	ar := udpAnnounceReply{tx: wr.TxID, interval: wr.Interval, leechers: wr.Leechers, seeders: wr.Seeders}
	for i := range wr.N() {
		ar.peers = append(ar.peers, wr.Peer(i))
	}
	return ar
}

// errorText returns the text of an error reply with transaction id tx.
func errorText(t testing.TB, r []byte, tx uint32) string {
	t.Helper()
	er, err := udpwire.ParseErrorReply(r)
	if err != nil || er.TxID != tx {
		t.Fatalf("reply %x (%q); want an error with transaction id %d", r, r, tx)
	}
	return string(er.Msg)
}

// errorReply reports whether r is an error reply.
func errorReply(r []byte) bool {
	_, err := udpwire.ParseErrorReply(r)
	return err == nil
}

// udpScrapeReply decodes a scrape reply into its triples.
func udpScrapeReply(t testing.TB, r []byte, tx uint32) [][3]uint32 {
	t.Helper()
	sr, err := udpwire.ParseScrapeReply(r)
	if err != nil || sr.TxID != tx {
		t.Fatalf("scrape reply %x (%q); want action 2, transaction id %d and 8+12N bytes", r, r, tx)
	}
	var out [][3]uint32
	for i := range sr.N() {
		seeders, completed, leechers := sr.Entry(i)
		out = append(out, [3]uint32{seeders, completed, leechers})
	}
	return out
}

// Items 29, 31, 32: connection ids and what is answered without one.
func TestUDPHandlerConnectionID(t *testing.T) {
	th := newTestHandler(t, Config{})
	idA := th.connect(clientA)
	good := announceBytes(announcePacket(idA, 5, 1, 0, false))
	scrape := udpwire.AppendScrapeRequest(nil, idA, 6, [20]byte{1})
	wrong := func(p []byte) []byte {
		p = bytes.Clone(p)
		p[7] ^= 0x55
		return p
	}
	unknown := bytes.Clone(good)
	unknown[11] = 4 // the old "announce v6", which is not supported
	tests := []struct {
		name string
		from netip.AddrPort
		p    []byte
		want string // "" for an announce reply, "-" for none, else an error text
	}{
		{"valid", clientA, good, ""},
		{"from an IPv4-mapped address", clientAMap, good, ""},
		{"wrong id, announce", clientA, wrong(good), "invalid connection id"},
		{"wrong id, scrape", clientA, wrong(scrape), "invalid connection id"},
		{"issued to A, used by B", clientB, good, "invalid connection id"},
		{"issued to A, used by A's port neighbour", netip.AddrPortFrom(clientA.Addr(), 1), good, ""},
		{"wrong id, 97-byte announce", clientA, wrong(good)[:97], "-"},
		{"wrong id, scrape without hash", clientA, wrong(scrape)[:16], "-"},
		{"wrong id, unknown action", clientA, wrong(unknown), "-"},
		{"valid id, 97-byte announce", clientA, good[:97], "malformed packet"},
		{"valid id, 16-byte announce", clientA, good[:16], "malformed packet"},
		{"valid id, unknown action", clientA, unknown, "unknown action"},
		{"15 bytes", clientA, good[:15], "-"},
	}
	for _, tt := range tests {
		r := th.send(tt.from, tt.p)
		switch tt.want {
		case "-":
			if len(r) != 0 {
				t.Errorf("%s: reply %x (%q); want none", tt.name, r, r)
			}
		case "":
			parseAnnounceReply(t, r, 6)
		default:
			h, _ := udpwire.ParseHeader(tt.p)
			if got := errorText(t, r, h.TxID); got != tt.want {
				t.Errorf("%s: error %q; want %q", tt.name, got, tt.want)
			}
			if tt.want == "invalid connection id" && len(r) >= len(tt.p) {
				t.Errorf("%s: %d-byte reply to a %d-byte request without a valid id", tt.name, len(r), len(tt.p))
			}
		}
	}
}

// Item 30: an id is accepted at 119 s and refused after 120 s, with the
// clock the server is given.
func TestUDPHandlerConnectionIDExpiry(t *testing.T) {
	for _, tt := range []struct {
		after time.Duration
		ok    bool
	}{
		{0, true},
		{60 * time.Second, true},
		{119 * time.Second, true},
		{120 * time.Second, false},
		{121 * time.Second, false},
		{-5 * time.Second, true},
		{-time.Minute, false},
	} {
		th := newTestHandler(t, Config{})
		id := th.connect(clientA)
		th.now = udpT0.Add(tt.after)
		r := th.send(clientA, announceBytes(announcePacket(id, 9, 1, 0, false)))
		h, _ := udpwire.ParseReplyHeader(r)
		if ok := h.Action == udpwire.ActionAnnounce; ok != tt.ok {
			t.Errorf("announce %v after connect: reply %q, accepted %v; want %v", tt.after, r, ok, tt.ok)
		}
	}
}

// Items 33, 34, 35: reply sizes and layout per address family, leechers
// and seeders at their offsets, num_want -1 as the default.
func TestUDPHandlerAnnounce(t *testing.T) {
	th := newTestHandler(t, Config{DefaultNumWant: 3, MaxNumWant: 8})
	fill := func(from netip.AddrPort, b byte) {
		id := th.connect(from)
		for i := range 12 {
			from := netip.AddrPortFrom(from.Addr(), uint16(5000+i))
			r := th.send(from, announceBytes(announcePacket(id, 1, b, i, i < 2)))
			if h, _ := udpwire.ParseReplyHeader(r); h.Action != udpwire.ActionAnnounce {
				t.Fatalf("fill: %q", r)
			}
		}
	}
	fill(clientB, 1)
	fill(netip.MustParseAddrPort("[2001:db8::2]:1"), 2)

	tests := []struct {
		name    string
		from    netip.AddrPort
		numWant int32
		peers   int
		peerLen int
	}{
		{"IPv4, default", clientA, -1, 3, 6},
		{"IPv4, 0", clientA, 0, 0, 6},
		{"IPv4, 5", clientA, 5, 5, 6},
		{"IPv4, over the cap", clientA, 1000, 8, 6},
		{"IPv4-mapped", clientAMap, 5, 5, 6},
		{"IPv6, default", clientA6, -1, 3, 18},
		{"IPv6, over the cap", clientA6, 100, 8, 18},
	}
	for _, tt := range tests {
		id := th.connect(tt.from)
		swarm := byte(1) // IPv4 peers
		if tt.peerLen == 18 {
			swarm = 2 // IPv6 peers
		}
		a := announcePacket(id, 77, swarm, 100, false)
		a.NumWant = tt.numWant
		r := th.send(tt.from, announceBytes(a))
		ar := parseAnnounceReply(t, r, tt.peerLen)
		if len(r) != 20+tt.peerLen*tt.peers || ar.tx != 77 {
			t.Errorf("%s: %d bytes, transaction %d; want %d, 77", tt.name, len(r), ar.tx, 20+tt.peerLen*tt.peers)
		}
		// 12 peers, 2 of them seeders, and the announcer.
		if ar.leechers != 11 || ar.seeders != 2 {
			t.Errorf("%s: leechers %d, seeders %d; want 11, 2", tt.name, ar.leechers, ar.seeders)
		}
		if ar.interval < 1800 || ar.interval > 1980 {
			t.Errorf("%s: interval %d; want 30 min plus jitter", tt.name, ar.interval)
		}
		for _, p := range ar.peers {
			if p.Addr().Is4() != (tt.peerLen == 6) || p.Port() < 6881 || p.Port() >= 6881+12 {
				t.Errorf("%s: peer %v", tt.name, p)
			}
		}
	}
}

// Item 36: libtorrent's event 4 is a partial seed; larger events are none.
// Item 42: a retransmitted completed announce counts once.
func TestUDPHandlerEvents(t *testing.T) {
	th := newTestHandler(t, Config{})
	id := th.connect(clientA)
	scrape := func() [3]uint32 {
		r := th.send(clientA, udpwire.AppendScrapeRequest(nil, id, 3, [20]byte{1}))
		return udpScrapeReply(t, r, 3)[0]
	}
	steps := []struct {
		name   string
		event  uint32
		left   uint64
		scrape [3]uint32 // seeders, completed, leechers
	}{
		{"started", udpwire.EventStarted, 10, [3]uint32{0, 0, 1}},
		{"paused (4)", 4, 10, [3]uint32{0, 0, 1}},
		{"event 5", 5, 10, [3]uint32{0, 0, 1}},
		{"event 0xFFFFFFFF", 0xFFFFFFFF, 10, [3]uint32{0, 0, 1}},
		{"completed", udpwire.EventCompleted, 0, [3]uint32{1, 1, 0}},
		{"completed, retransmitted", udpwire.EventCompleted, 0, [3]uint32{1, 1, 0}},
		{"stopped", udpwire.EventStopped, 0, [3]uint32{0, 1, 0}},
	}
	for _, st := range steps {
		a := announcePacket(id, 42, 1, 0, false)
		a.Event, a.Left = st.event, st.left
		p := announceBytes(a)
		ar := parseAnnounceReply(t, th.send(clientA, p), 6)
		if ar.tx != 42 {
			t.Errorf("%s: transaction id %d; want 42", st.name, ar.tx)
		}
		if got := scrape(); got != st.scrape {
			t.Errorf("%s: scrape (seeders, completed, leechers) = %v; want %v", st.name, got, st.scrape)
		}
	}
	// The paused peer counts as a partial seed in the tracker's own
	// scrape (BEP 21).
	a := announcePacket(id, 42, 2, 0, false)
	a.Event = 4
	th.send(clientA, announceBytes(a))
	resp, err := th.h.t.Scrape(context.Background(), &ScrapeRequest{InfoHashes: []InfoHash{{2}}})
	if err != nil || resp.Files[0].Incomplete != 1 || resp.Files[0].Downloaders != 0 {
		t.Errorf("after event 4: %+v, %v; want one partial seed", resp, err)
	}
}

// Items 37, 38: scrape replies in request order, 8+12N bytes; no hash is
// an error; past 74 hashes the rest is ignored.
func TestUDPHandlerScrape(t *testing.T) {
	th := newTestHandler(t, Config{})
	id := th.connect(clientA)
	// Swarm k has k seeders and k+1 leechers.
	for k := 1; k <= 3; k++ {
		for i := range 2*k + 1 {
			th.send(netip.AddrPortFrom(clientA.Addr(), uint16(i+1)), announceBytes(announcePacket(id, 1, byte(k), i, i < k)))
		}
	}
	hashes := make([][20]byte, 80)
	for i := range hashes {
		hashes[i] = [20]byte{byte(i%4 + 1)} // 1, 2, 3 and the unknown 4
	}
	tests := []struct {
		name   string
		hashes [][20]byte
		n      int
	}{
		{"one", hashes[:1], 1},
		{"three", hashes[:3], 3},
		{"unknown", hashes[3:4], 1},
		{"74", hashes[:74], 74},
		{"80", hashes, 74},
	}
	for _, tt := range tests {
		r := th.send(clientA, udpwire.AppendScrapeRequest(nil, id, 8, tt.hashes...))
		got := udpScrapeReply(t, r, 8)
		if len(got) != tt.n || len(r) != 8+12*tt.n {
			t.Errorf("%s: %d entries in %d bytes; want %d in %d", tt.name, len(got), len(r), tt.n, 8+12*tt.n)
			continue
		}
		for i, e := range got {
			k := uint32(tt.hashes[i][0])
			want := [3]uint32{k, 0, k + 1}
			if k == 4 {
				want = [3]uint32{}
			}
			if e != want {
				t.Errorf("%s: entry %d = %v; want %v", tt.name, i, e, want)
			}
		}
	}
	r := th.send(clientA, udpwire.AppendScrapeRequest(nil, id, 8))
	if got := errorText(t, r, 8); got != ErrNoInfoHash.Reason {
		t.Errorf("scrape without hash: %q; want %q", got, ErrNoInfoHash.Reason)
	}
}

// Items 39, 40, 41: the passkey travels in BEP 41 URL data and is checked
// as over HTTP; error texts are bytes 8 to the end.
func TestUDPHandlerPasskey(t *testing.T) {
	validator := PasskeyFunc(func(ctx context.Context, pk string) (Identity, error) {
		if pk == "abcdef" || pk == "a/b" {
			return Identity{UserID: 1}, nil
		}
		return Identity{}, ErrInvalidPasskey
	})
	th := newTestHandler(t, Config{Passkeys: validator})
	id := th.connect(clientA)
	announce := func(url string, opts ...byte) []byte {
		a := announcePacket(id, 40, 1, 0, false)
		a.URLData = []byte(url)
		return append(announceBytes(a), opts...)
	}
	split := append(announceBytes(announcePacket(id, 40, 1, 0, false)),
		1, 2, 5, '/', 'a', 'n', 'n', 'o', 7, 1, 'x', 2, 8, 'u', 'n', 'c', 'e', '/', 'a', 'b', 'c', 2, 3, 'd', 'e', 'f', 0, 2, 1, '!')
	tests := []struct {
		name string
		p    []byte
		want string // "" for success
	}{
		{"/announce/<pk>", announce("/announce/abcdef"), ""},
		{"/<pk>/announce", announce("/abcdef/announce?x=y"), ""},
		{"?passkey=", announce("/announce.php?passkey=abcdef"), ""},
		{"escaped", announce("/announce/a%2Fb"), ""},
		{"in four options", split, ""},
		{"after EndOfOptions", append(announceBytes(announcePacket(id, 40, 1, 0, false)), 0, 2, 16, '/', 'a', 'n', 'n', 'o', 'u', 'n', 'c', 'e', '/', 'a', 'b', 'c', 'd', 'e', 'f'), errUDPNoPasskey.Reason},
		{"wrong passkey", announce("/announce/abcdeg"), ErrInvalidPasskey.Reason},
		{"URL without passkey", announce("/announce"), ErrPasskeyRequired.Reason},
		{"no URL data", announce(""), errUDPNoPasskey.Reason},
		{"truncated option", announce("", 2, 10, '/'), errUDPMalformed.Reason},
	}
	for _, tt := range tests {
		r := th.send(clientA, tt.p)
		if tt.want == "" {
			parseAnnounceReply(t, r, 6)
			continue
		}
		if got := errorText(t, r, 40); got != tt.want {
			t.Errorf("%s: error %q; want %q", tt.name, got, tt.want)
		}
	}
	if msg := errUDPNoPasskey.Reason; !strings.Contains(msg, "passkey") || !strings.Contains(msg, "HTTP") {
		t.Errorf("the text for a missing passkey, %q, should name the passkey and HTTP", msg)
	}
	r := th.send(clientA, udpwire.AppendScrapeRequest(nil, id, 41, [20]byte{1}))
	if got := errorText(t, r, 41); got != errUDPScrapeKey.Reason {
		t.Errorf("scrape of a private tracker: %q; want %q", got, errUDPScrapeKey.Reason)
	}
}

func TestUDPHandlerRateLimit(t *testing.T) {
	th := newTestHandler(t, Config{RateLimit: RateLimitConfig{PerIP: 0.001, IPBurst: 2}})
	id := th.connect(clientA)
	p := announceBytes(announcePacket(id, 3, 1, 0, false))
	for i := range 2 {
		parseAnnounceReply(t, th.send(clientA, p), 6)
		_ = i
	}
	if got := errorText(t, th.send(clientA, p), 3); got != ErrRateLimited.Reason {
		t.Errorf("third announce: %q; want %q", got, ErrRateLimited.Reason)
	}
	// Connects are not charged, and another address has its own budget.
	th.connect(clientA)
	parseAnnounceReply(t, th.send(clientB, announceBytes(announcePacket(th.connect(clientB), 3, 1, 1, false))), 6)
	if n := th.h.t.Stats().Failures["rate_limited"]; n != 1 {
		t.Errorf("rate_limited failures: %d; want 1", n)
	}
}

// Steady state: no allocation per packet, whatever the packet, with
// plug-ins that never block (those that may go through the workers, where
// each request's deadline costs allocations).
func TestUDPHandlerAllocs(t *testing.T) {
	validator := NewPasskeySet()
	validator.Set("abcdef", 0)
	for _, private := range []bool{false, true} {
		cfg := Config{}
		if private {
			cfg.Passkeys = validator
		}
		th := newTestHandler(t, cfg)
		id := th.connect(clientA)
		id6 := th.connect(clientA6)
		for i := range 20 {
			th.send(netip.AddrPortFrom(clientA.Addr(), uint16(i+1)), announceBytes(announcePacket(id, 1, 1, i, false)))
		}
		withKey := func(a *udpwire.Announce, url string) []byte {
			a.URLData = []byte(url)
			return announceBytes(a)
		}
		packets := map[string]struct {
			from netip.AddrPort
			p    []byte
		}{
			"connect":           {clientA, udpwire.AppendConnectRequest(nil, 1)},
			"announce":          {clientA, withKey(announcePacket(id, 1, 1, 0, false), "/announce/abcdef")},
			"announce, IPv6":    {clientA6, withKey(announcePacket(id6, 1, 1, 0, false), "/announce/abcdef")},
			"scrape":            {clientA, udpwire.AppendScrapeRequest(nil, id, 1, [20]byte{1}, [20]byte{2})},
			"bad connection id": {clientB, withKey(announcePacket(id, 1, 1, 0, false), "")},
			"malformed":         {clientA, withKey(announcePacket(id, 1, 1, 0, false), "")[:90]},
			"store error":       {clientA, withKey(announcePacket(id, 1, 1, 0, false), "/announce/abcdeg")},
		}
		out := make([]byte, 0, th.h.replyCap())
		ctx := context.Background()
		for name, pk := range packets {
			th.h.handle(ctx, udpT0, pk.p, pk.from, out[:0]) // warm up: interning, swarm creation
			n := testing.AllocsPerRun(100, func() {
				if r := th.h.handle(ctx, udpT0, pk.p, pk.from, out[:0]); len(r) == 0 {
					t.Fatalf("%s: no reply", name)
				}
			})
			if n != 0 {
				t.Errorf("private %v, %s: %v allocations per packet; want 0", private, name, n)
			}
		}
	}
}

// inMemoryStore is a store that declares it never blocks, so that the
// readers call it.
type inMemoryStore struct{ Store }

func (inMemoryStore) NonBlocking() bool { return true }

// A panic while answering a datagram on a reader is recovered: the client
// reads an internal error with its transaction id, the failure is
// counted, the panic logged once a minute at most, and the reader goes on.
func TestUDPPanic(t *testing.T) {
	var logs lockedBuffer
	tr := newTestTracker(t, Config{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Store: inMemoryStore{funcStore{scrape: func(context.Context, []InfoHash, []ScrapeStats) ([]ScrapeStats, error) {
			var m map[string]int
			m["a bug in the store"]++ // a nil map
			return nil, nil
		}}},
	})
	conn := listenLoopback(t, "udp4")
	serve(t, newTestServer(t, tr, UDPConfig{Readers: 1}), conn)
	c := dialServer(t, "udp4", conn.LocalAddr())
	id := c.connect()
	for tx := range uint32(3) {
		r := c.roundTrip(udpwire.AppendScrapeRequest(nil, id, tx, [20]byte{1}))
		if msg := errorText(t, r, tx); msg != errInternal.Reason {
			t.Errorf("scrape %d: %q; want %q", tx, msg, errInternal.Reason)
		}
	}
	parseAnnounceReply(t, c.roundTrip(announceBytes(announcePacket(id, 9, 1, 1, false))), 6)
	if n := tr.Stats().Failures["internal"]; n != 3 {
		t.Errorf("%d internal failures; want 3", n)
	}
	if out := logs.String(); strings.Count(out, "recovered from a panic") != 1 || !strings.Contains(out, "nil map") {
		t.Errorf("log:\n%s\nwant one line about the panic", out)
	}
}

// A store that breaks its contract over UDP: a scrape with too few
// entries is an internal error, not a short reply.
func TestUDPBrokenStore(t *testing.T) {
	th := newTestHandler(t, Config{Store: funcStore{scrape: func(_ context.Context, hashes []InfoHash, dst []ScrapeStats) ([]ScrapeStats, error) {
		return append(dst, make([]ScrapeStats, len(hashes)-1)...), nil
	}}})
	id := th.connect(clientA)
	r := th.send(clientA, udpwire.AppendScrapeRequest(nil, id, 7, [20]byte{1}, [20]byte{2}))
	if msg := errorText(t, r, 7); msg != errInternal.Reason {
		t.Errorf("scrape: %q; want %q", msg, errInternal.Reason)
	}
}

func TestUDPConfig(t *testing.T) {
	tr := newTestTracker(t, Config{})
	for _, cfg := range []UDPConfig{
		{ConnIDKey: []byte("too short")},
		{ConnIDKey: []byte{}},
		{Readers: -1},
		{Sockets: -1},
		{Batch: -1},
		{Workers: -1},
		{Queue: -1},
	} {
		if _, err := tr.NewUDPServer(cfg); err == nil {
			t.Errorf("NewUDPServer(%+v) succeeded; want an error", cfg)
		}
	}
}

// ---- Socket tests ----

// listenLoopback opens a UDP socket on a loopback address, skipping the
// test if the address family is not available.
func listenLoopback(t testing.TB, network string) *net.UDPConn {
	t.Helper()
	host := "127.0.0.1"
	if network == "udp6" {
		host = "::1"
	}
	c, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		if network == "udp6" {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serve runs s on conn until the test ends, then checks that Serve
// returned ErrServerClosed.
func serve(t testing.TB, s *UDPServer, conn net.PacketConn) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(conn) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-errc; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v; want ErrServerClosed", err)
		}
	})
}

type testClient struct {
	t testing.TB
	c *net.UDPConn
}

func dialServer(t testing.TB, network string, server net.Addr) *testClient {
	t.Helper()
	c, err := net.DialUDP(network, nil, server.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &testClient{t, c}
}

// roundTrip sends p and returns the next datagram received.
func (c *testClient) roundTrip(p []byte) []byte {
	c.t.Helper()
	if _, err := c.c.Write(p); err != nil {
		c.t.Fatal(err)
	}
	return c.read()
}

func (c *testClient) read() []byte {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	n, err := c.c.Read(buf)
	if err != nil {
		c.t.Fatalf("no reply: %v", err)
	}
	return buf[:n]
}

func (c *testClient) connect() uint64 {
	c.t.Helper()
	r := c.roundTrip(udpwire.AppendConnectRequest(nil, 0xC0FFEE))
	cr, err := udpwire.ParseConnectReply(r)
	if err != nil || cr.TxID != 0xC0FFEE {
		c.t.Fatalf("connect reply %x; want 16 bytes, action 0, transaction 0xC0FFEE", r)
	}
	return cr.ConnID
}

// noReply checks that p gets no reply. It then sends a connect: with one
// reader, which answers datagrams in order, the next datagram back must be
// the connect's reply.
func (c *testClient) noReply(p []byte) {
	c.t.Helper()
	if _, err := c.c.Write(p); err != nil {
		c.t.Fatal(err)
	}
	r := c.roundTrip(udpwire.AppendConnectRequest(nil, 0xBEEF))
	if cr, err := udpwire.ParseConnectReply(r); err != nil || cr.TxID != 0xBEEF {
		c.t.Errorf("request %x got the reply %x (%q); want none", p, r, r)
	}
}

// Items 27 to 29 and 32 to 34, 37 and 41 over real sockets, IPv4 and IPv6.
func TestUDPSockets(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		for _, batch := range []int{0, 1} {
			t.Run(fmt.Sprintf("%s/batch=%d", network, batch), func(t *testing.T) {
				testSockets(t, network, batch)
			})
		}
	}
}

func testSockets(t *testing.T, network string, batch int) {
	conn := listenLoopback(t, network)
	tr := newTestTracker(t, Config{DefaultNumWant: 50})
	s := newTestServer(t, tr, UDPConfig{Readers: 1, Batch: batch})
	serve(t, s, conn)
	c := dialServer(t, network, conn.LocalAddr())
	id := c.connect()

	// 27: no reply to a bad connect.
	bad := udpwire.AppendConnectRequest(nil, 1)
	bad[0] ^= 1
	c.noReply(bad)
	c.noReply(udpwire.AppendConnectRequest(nil, 1)[:15])
	c.noReply(nil)

	// 29: a wrong connection id.
	wrong := announceBytes(announcePacket(id^1, 0xABCD, 1, 0, false))
	r := c.roundTrip(wrong)
	if errorText(t, r, 0xABCD) != errUDPConnID.Reason || len(r) >= len(wrong) {
		t.Errorf("wrong id: %d-byte reply %q to a %d-byte announce", len(r), r, len(wrong))
	}
	c.noReply(wrong[:97])

	// A datagram larger than any request is dropped unread.
	huge := announceBytes(announcePacket(id, 6, 1, 0, false))
	huge = append(huge, make([]byte, maxRequest+1-len(huge))...)
	c.noReply(huge)
	parseAnnounceReply(t, c.roundTrip(huge[:maxRequest]), 6) // no peers yet

	// 32: a short announce with a valid id.
	if got := errorText(t, c.roundTrip(announceBytes(announcePacket(id, 5, 1, 0, false))[:97]), 5); got != errUDPMalformed.Reason {
		t.Errorf("97-byte announce: %q", got)
	}

	// 33, 34: other peers join through the tracker directly.
	loop := netip.MustParseAddr("127.0.0.1")
	peerLen := 6
	if network == "udp6" {
		loop, peerLen = netip.IPv6Loopback(), 18
	}
	for i := range 5 {
		req := &AnnounceRequest{InfoHash: InfoHash{1}, Addr: netip.AddrPortFrom(loop, uint16(7000+i)), Left: leftOf(i)}
		req.PeerID[0] = byte(i + 1)
		if _, err := tr.Announce(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	// And an IPv4 peer, which an IPv6 client must not get (nor the reverse).
	other := netip.MustParseAddrPort("[2001:db8::9]:7009")
	if network == "udp6" {
		other = netip.MustParseAddrPort("192.0.2.9:7009")
	}
	if _, err := tr.Announce(context.Background(), &AnnounceRequest{InfoHash: InfoHash{1}, PeerID: PeerID{99}, Addr: other, Left: 5}); err != nil {
		t.Fatal(err)
	}
	a := announcePacket(id, 0x1234, 1, 0, false)
	aria2 := append(announceBytes(a), 0, 0) // aria2's 100 bytes
	r = c.roundTrip(aria2)
	ar := parseAnnounceReply(t, r, peerLen)
	// Both families count: 2 seeders, 3 leechers, the other family's
	// leecher and the client.
	if len(r) != 20+5*peerLen || ar.tx != 0x1234 || ar.leechers != 5 || ar.seeders != 2 {
		t.Errorf("announce: %d bytes, tx %#x, leechers %d, seeders %d; want %d, 0x1234, 5, 2", len(r), ar.tx, ar.leechers, ar.seeders, 20+5*peerLen)
	}
	for _, p := range ar.peers {
		if p.Addr() != loop || p.Port() < 7000 || p.Port() > 7004 {
			t.Errorf("peer %v; want %v:7000-7004", p, loop)
		}
	}

	// 37: scrape, in order.
	r = c.roundTrip(udpwire.AppendScrapeRequest(nil, id, 77, [20]byte{9}, [20]byte{1}))
	if got := udpScrapeReply(t, r, 77); len(r) != 8+24 || got[0] != [3]uint32{} || got[1] != [3]uint32{2, 0, 5} {
		t.Errorf("scrape: %v in %d bytes; want [0 0 0] [2 0 5] in 32", got, len(r))
	}
	// 41: an error's text is the rest of the datagram.
	r = c.roundTrip(udpwire.AppendScrapeRequest(nil, id, 78))
	if got := errorText(t, r, 78); got != ErrNoInfoHash.Reason {
		t.Errorf("error text %q; want exactly %q", got, ErrNoInfoHash.Reason)
	}
}

// leftOf makes peers 0 and 1 seeders.
func leftOf(i int) int64 {
	if i < 2 {
		return 0
	}
	return 100
}

// Several servers with one key accept each other's ids.
func TestUDPSharedKey(t *testing.T) {
	key := []byte("a secret shared by the servers")
	tr := newTestTracker(t, Config{})
	var addrs []net.Addr
	for _, k := range [][]byte{key, key, []byte("a different secret of 16+ bytes")} {
		conn := listenLoopback(t, "udp4")
		serve(t, newTestServer(t, tr, UDPConfig{ConnIDKey: k}), conn)
		addrs = append(addrs, conn.LocalAddr())
	}
	// One client socket talks to all three servers.
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchange := func(to net.Addr, p []byte) []byte {
		if _, err := c.WriteTo(p, to); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2048)
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		return buf[:n]
	}
	cr, err := udpwire.ParseConnectReply(exchange(addrs[0], udpwire.AppendConnectRequest(nil, 1)))
	if err != nil {
		t.Fatal(err)
	}
	id := cr.ConnID
	announce := announceBytes(announcePacket(id, 2, 1, 0, false))
	parseAnnounceReply(t, exchange(addrs[1], announce), 6)
	if got := errorText(t, exchange(addrs[2], announce), 2); got != errUDPConnID.Reason {
		t.Errorf("a server with another key: %q; want %q", got, errUDPConnID.Reason)
	}
}

// hiddenConn hides the *net.UDPConn behind the net.PacketConn interface,
// to test the generic path.
type hiddenConn struct{ net.PacketConn }

func TestUDPGenericPacketConn(t *testing.T) {
	conn := listenLoopback(t, "udp4")
	serve(t, newTestServer(t, newTestTracker(t, Config{}), UDPConfig{Readers: 2}), hiddenConn{conn})
	c := dialServer(t, "udp4", conn.LocalAddr())
	parseAnnounceReply(t, c.roundTrip(announceBytes(announcePacket(c.connect(), 1, 1, 0, false))), 6)
}

// Serve returns ErrServerClosed after Shutdown and Close, and at once when
// called after them; Shutdown waits for every reader, leaving no goroutine
// behind.
func TestUDPShutdown(t *testing.T) {
	tr := newTestTracker(t, Config{})
	before := runtime.NumGoroutine()

	s := newTestServer(t, tr, UDPConfig{Readers: 3})
	conns := []*net.UDPConn{listenLoopback(t, "udp4"), listenLoopback(t, "udp4")}
	errc := make(chan error, len(conns))
	for _, conn := range conns {
		go func() { errc <- s.Serve(conn) }()
	}
	// Traffic from several clients at once, on both sockets.
	var clients []*testClient
	var ids []uint64
	for i := range 4 {
		c := dialServer(t, "udp4", conns[i%2].LocalAddr())
		clients = append(clients, c)
		ids = append(ids, c.connect())
	}
	var wg sync.WaitGroup
	replies := make(chan []byte, 4*20)
	for i, c := range clients {
		wg.Go(func() {
			buf := make([]byte, 2048)
			for j := range 20 {
				c.c.Write(announceBytes(announcePacket(ids[i], uint32(j), byte(i), i, false)))
				c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := c.c.Read(buf)
				if err != nil {
					replies <- nil
					return
				}
				replies <- bytes.Clone(buf[:n])
			}
		})
	}
	wg.Wait()
	close(replies)
	n := 0
	for r := range replies {
		parseAnnounceReply(t, r, 6)
		n++
	}
	if n != 4*20 {
		t.Errorf("%d replies; want %d", n, 4*20)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range conns {
		if err := <-errc; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v; want ErrServerClosed", err)
		}
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if err := s.Serve(conns[0]); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v; want ErrServerClosed", err)
	}
	// The caller's sockets stay open.
	if _, err := conns[0].WriteToUDPAddrPort([]byte{0}, conns[1].LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Errorf("socket unusable after Shutdown: %v", err)
	}
	// Client sockets are closed by cleanups later; they start no goroutine.
	waitGoroutines(t, before)

	// Close: Serve ends with ErrServerClosed too.
	s2 := newTestServer(t, tr, UDPConfig{})
	conn := listenLoopback(t, "udp4")
	go func() { errc <- s2.Serve(conn) }()
	c := dialServer(t, "udp4", conn.LocalAddr())
	c.connect()
	s2.Close()
	if err := <-errc; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Close returned %v; want ErrServerClosed", err)
	}
	if err := s2.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	waitGoroutines(t, before)
}

// waitGoroutines waits, boundedly, for the goroutine count to come back
// to n: goroutines that have finished their work take a moment to exit.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	for range 200 {
		if runtime.NumGoroutine() <= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	t.Errorf("%d goroutines; want %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
}

// A socket closed under Serve ends it with an error other than
// ErrServerClosed.
func TestUDPServeSocketClosed(t *testing.T) {
	s := newTestServer(t, newTestTracker(t, Config{}), UDPConfig{Readers: 2})
	conn := listenLoopback(t, "udp4")
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(conn) }()
	c := dialServer(t, "udp4", conn.LocalAddr())
	c.connect() // Serve is running
	conn.Close()
	if err := <-errc; err == nil || errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve on a closed socket returned %v; want the socket's error", err)
	}
	s.Close()
}

// ListenAndServe opens several sockets (SO_REUSEPORT on Linux) and closes
// them when shut down.
func TestUDPListenAndServe(t *testing.T) {
	tr := newTestTracker(t, Config{})
	before := runtime.NumGoroutine()
	s := newTestServer(t, tr, UDPConfig{Sockets: 2, Readers: 1})
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe("udp4", "127.0.0.1:0") }()
	var addr net.Addr
	for range 500 {
		s.mu.Lock()
		if len(s.owned) > 0 {
			addr = s.owned[0].LocalAddr()
		}
		s.mu.Unlock()
		if addr != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if addr == nil {
		t.Fatal("ListenAndServe opened no socket")
	}
	// Clients on different ports land on either socket.
	for i := range 8 {
		c := dialServer(t, "udp4", addr)
		parseAnnounceReply(t, c.roundTrip(announceBytes(announcePacket(c.connect(), 1, 1, i, false))), 6)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrServerClosed) {
		t.Errorf("ListenAndServe returned %v; want ErrServerClosed", err)
	}
	if err := s.ListenAndServe("udp4", "127.0.0.1:0"); !errors.Is(err, ErrServerClosed) {
		t.Errorf("ListenAndServe after Shutdown: %v; want ErrServerClosed", err)
	}
	waitGoroutines(t, before)
}

// A server under a clock it is given: ids expire after 120 s (item 30).
func TestUDPSocketExpiry(t *testing.T) {
	conn := listenLoopback(t, "udp4")
	s := newTestServer(t, newTestTracker(t, Config{}), UDPConfig{Readers: 1})
	var mu sync.Mutex
	now := udpT0
	s.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	serve(t, s, conn)
	c := dialServer(t, "udp4", conn.LocalAddr())
	id := c.connect()
	set := func(d time.Duration) {
		mu.Lock()
		now = udpT0.Add(d)
		mu.Unlock()
	}
	set(119 * time.Second)
	parseAnnounceReply(t, c.roundTrip(announceBytes(announcePacket(id, 1, 1, 0, false))), 6)
	set(120*time.Second + time.Millisecond)
	if got := errorText(t, c.roundTrip(announceBytes(announcePacket(id, 2, 1, 0, false))), 2); got != errUDPConnID.Reason {
		t.Errorf("after 120 s: %q; want %q", got, errUDPConnID.Reason)
	}
}

// Through real sockets too, on both paths (batched or not on Linux), an
// announce costs the server no allocation, nor does the client's
// connected socket: the whole process allocates nothing per round trip.
func TestUDPSocketAllocs(t *testing.T) {
	for _, batch := range []int{0, 1} {
		conn := listenLoopback(t, "udp4")
		serve(t, newTestServer(t, newTestTracker(t, Config{}), UDPConfig{Readers: 1, Batch: batch}), conn)
		c := dialServer(t, "udp4", conn.LocalAddr())
		p := announceBytes(announcePacket(c.connect(), 1, 1, 0, false))
		buf := make([]byte, 4096)
		c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		roundTrip := func() {
			if _, err := c.c.Write(p); err != nil {
				t.Fatal(err)
			}
			if n, err := c.c.Read(buf); err != nil || n < 20 {
				t.Fatalf("reply %q, %v", buf[:n], err)
			}
		}
		for range 100 {
			roundTrip()
		}
		const n = 1000
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for range n {
			roundTrip()
		}
		runtime.ReadMemStats(&m1)
		// A little slack for the runtime's own work in the background.
		if allocs := m1.Mallocs - m0.Mallocs; allocs > n/100 {
			t.Errorf("batch %d: %d allocations in %d round trips; want none", batch, allocs, n)
		}
	}
}

// Datagrams queued before Serve starts arrive in full batches (on Linux);
// every reply still goes to its own client, with its own transaction id.
func TestUDPBatch(t *testing.T) {
	conn := listenLoopback(t, "udp4")
	s := newTestServer(t, newTestTracker(t, Config{}), UDPConfig{Readers: 1, Batch: 8})
	const clients, each = 5, 10
	var cs []*testClient
	for i := range clients {
		c := dialServer(t, "udp4", conn.LocalAddr())
		cs = append(cs, c)
		id := s.ids.Issue(time.Now(), netip.MustParseAddr("127.0.0.1"))
		for j := range each {
			a := announcePacket(id, uint32(i*100+j), byte(i), j, false)
			if _, err := c.c.Write(announceBytes(a)); err != nil {
				t.Fatal(err)
			}
		}
		// And a connect, answered in the same batches.
		if _, err := c.c.Write(udpwire.AppendConnectRequest(nil, uint32(i*100+each))); err != nil {
			t.Fatal(err)
		}
	}
	serve(t, s, conn)
	for i, c := range cs {
		seen := map[uint32]bool{}
		for range each + 1 {
			r := c.read()
			h, _ := udpwire.ParseReplyHeader(r)
			if h.TxID/100 != uint32(i) || seen[h.TxID] {
				t.Errorf("client %d got reply %x", i, r)
			}
			seen[h.TxID] = true
		}
	}
}

func TestUDPObserver(t *testing.T) {
	var got []RequestInfo
	th := newTestHandler(t, Config{Observer: ObserverFunc(func(r RequestInfo) {
		r.Duration = 0
		got = append(got, r)
	})})
	id := th.connect(clientA)
	th.send(clientA, announceBytes(announcePacket(id, 1, 1, 1, false)))
	th.send(clientA, announceBytes(announcePacket(id+1, 2, 1, 1, false))) // bad id
	th.send(clientA, udpwire.AppendScrapeRequest(nil, id, 3, [20]byte{1}))
	a := announcePacket(id, 4, 1, 1, false)
	a.Port = 0
	th.send(clientA, announceBytes(a))
	unknown := udpwire.AppendHeader(nil, udpwire.Header{ConnID: id, Action: 7, TxID: 5}) // no such action
	if r := th.send(clientA, unknown); !errorReply(r) {
		t.Errorf("unknown action: reply %x; want an error", r)
	}
	want := []RequestInfo{
		{Protocol: "udp", Op: "connect"},
		{Protocol: "udp", Op: "announce"},
		{Protocol: "udp", Op: "announce", Failure: "bad_request"},
		{Protocol: "udp", Op: "scrape"},
		{Protocol: "udp", Op: "announce", Failure: "bad_request"},
		{Protocol: "udp", Op: "unknown", Failure: "bad_request"},
	}
	if len(got) != len(want) {
		t.Fatalf("observed %+v; want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d observed as %+v; want %+v", i, got[i], want[i])
		}
	}
}
