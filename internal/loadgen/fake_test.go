package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annuaire/tracker/internal/udpwire"
)

// fakeRules say which requests a fake tracker mistreats, by their rank
// (1, 2, ...): every Nth is dropped (or stalled past the timeout), answered
// with a malformed reply, answered late, or refused. Zero disables a rule;
// the first matching rule applies.
type fakeRules struct {
	drop, malformed, late, refuse int64
}

func (r fakeRules) pick(n int64) string {
	for _, rule := range []struct {
		every int64
		name  string
	}{{r.drop, "drop"}, {r.malformed, "malformed"}, {r.late, "late"}, {r.refuse, "refuse"}} {
		if rule.every > 0 && n%rule.every == 0 {
			return rule.name
		}
	}
	return "ok"
}

// fakeCounts are what a fake tracker saw and did.
type fakeCounts struct {
	connects, requests                atomic.Int64
	dropped, malformed, late, refused atomic.Int64
	badRequests                       atomic.Int64
	closeHeaders                      atomic.Int64
	lastBad                           atomic.Value // string
	peersMu                           sync.Mutex
	peers                             map[[20]byte]netip.Addr // peer ids seen, and the address each came from
	twoAddrs                          int                     // peer ids seen from a second address
	events                            [4]int                  // announces by event
	// flood makes the fake take announces of any info hash, and stopped
	// ones, as a flood sends.
	flood atomic.Bool
}

func (c *fakeCounts) bad(format string, a ...any) {
	c.badRequests.Add(1)
	c.lastBad.Store(fmt.Sprintf(format, a...))
}

func (c *fakeCounts) sawPeer(id [20]byte, from netip.Addr, event uint32) {
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	if c.peers == nil {
		c.peers = map[[20]byte]netip.Addr{}
	}
	if a, ok := c.peers[id]; ok && a != from {
		c.twoAddrs++
	}
	c.peers[id] = from
	c.events[event&3]++
}

// addrs returns the addresses the peers came from.
func (c *fakeCounts) addrs() map[netip.Addr]int {
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	m := map[netip.Addr]int{}
	for _, a := range c.peers {
		m[a]++
	}
	return m
}

func (c *fakeCounts) distinctPeers() int {
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	return len(c.peers)
}

func (c *fakeCounts) checkClean(t *testing.T) {
	t.Helper()
	if n := c.badRequests.Load(); n > 0 {
		t.Errorf("the fake tracker got %d bad requests, the last: %v", n, c.lastBad.Load())
	}
}

// fakeUDP is a BEP 15 tracker that checks the requests it gets.
type fakeUDP struct {
	fakeCounts
	conn   *net.UDPConn
	w      Workload
	hashes map[[20]byte]bool
	rules  fakeRules
	delay  time.Duration // of late replies

	mu  sync.Mutex
	ids map[uint64]bool // connection ids issued
}

func startFakeUDP(t *testing.T, w Workload, rules fakeRules, delay time.Duration) *fakeUDP {
	t.Helper()
	return startFakeUDPOn(t, "127.0.0.1:0", w, rules, delay)
}

func startFakeUDPOn(t *testing.T, addr string, w Workload, rules fakeRules, delay time.Duration) *fakeUDP {
	t.Helper()
	la, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", la)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	_ = conn.SetReadBuffer(1 << 20)
	f := &fakeUDP{conn: conn, w: mustWorkload(t, w), rules: rules, delay: delay,
		hashes: map[[20]byte]bool{}, ids: map[uint64]bool{}}
	for s := range f.w.Swarms {
		f.hashes[f.w.InfoHash(s)] = true
	}
	var wg sync.WaitGroup
	wg.Go(f.serve)
	t.Cleanup(func() {
		conn.Close()
		wg.Wait()
	})
	return f
}

func (f *fakeUDP) addr() string { return f.conn.LocalAddr().String() }

func (f *fakeUDP) serve() {
	buf := make([]byte, 2048)
	var next uint64 = 0x1122334455667788
	var timers sync.WaitGroup
	defer timers.Wait()
	for {
		n, from, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		p := buf[:n]
		h, ok := udpwire.ParseHeader(p)
		if ok && h.ConnID == udpwire.ProtocolID && h.Action == udpwire.ActionConnect {
			f.connects.Add(1)
			next = mix(next)
			f.mu.Lock()
			f.ids[next] = true
			f.mu.Unlock()
			f.conn.WriteToUDPAddrPort(udpwire.AppendConnect(nil, h.TxID, next), from)
			continue
		}
		if !ok {
			f.bad("%d-byte packet", n)
			continue
		}
		f.mu.Lock()
		known := f.ids[h.ConnID]
		f.mu.Unlock()
		if !known {
			f.bad("unknown connection id %x", h.ConnID)
			continue
		}
		var reply []byte
		switch h.Action {
		case udpwire.ActionAnnounce:
			if !f.checkAnnounce(p, from.Addr()) {
				continue
			}
			reply = udpwire.AppendAnnounce(nil, h.TxID, 1800, 7, 1)
			peer, peers := netip.MustParseAddrPort("127.0.0.1:1025"), 3
			if !from.Addr().Is4() {
				peer, peers = netip.MustParseAddrPort("[::1]:1025"), 2
			}
			for range peers {
				reply = udpwire.AppendPeer(reply, peer)
			}
		case udpwire.ActionScrape:
			sc, err := udpwire.ParseScrape(p)
			if err != nil || sc.N() != f.w.ScrapeHashes || n != udpwire.HeaderLen+len(sc.Hashes) {
				f.bad("scrape of %d bytes", n)
				continue
			}
			reply = udpwire.AppendScrape(nil, h.TxID)
			for k := range sc.N() {
				if !f.hashes[sc.Hash(k)] {
					f.bad("scrape of an unknown hash")
				}
				reply = udpwire.AppendScrapeEntry(reply, 0, 0, 0)
			}
		default:
			f.bad("action %d", h.Action)
			continue
		}
		switch f.rules.pick(f.requests.Add(1)) {
		case "drop":
			f.dropped.Add(1)
			continue
		case "malformed":
			f.malformed.Add(1)
			if h.Action == udpwire.ActionAnnounce && !from.Addr().Is4() {
				// An IPv4 entry in an IPv6 reply: the right length for IPv4.
				reply = append(reply, 127, 0, 0, 1, 4, 1)
			} else {
				reply = reply[:len(reply)-1]
			}
		case "refuse":
			f.refused.Add(1)
			reply = udpwire.AppendError(reply[:0], h.TxID, "refused\x00")
		case "late":
			f.late.Add(1)
			late := bytes.Clone(reply)
			timers.Add(1)
			time.AfterFunc(f.delay, func() {
				defer timers.Done()
				f.conn.WriteToUDPAddrPort(late, from)
			})
			continue
		}
		f.conn.WriteToUDPAddrPort(reply, from)
	}
}

func (f *fakeUDP) checkAnnounce(p []byte, from netip.Addr) bool {
	var a udpwire.Announce
	if err := udpwire.ParseAnnounce(p, &a); err != nil || len(p) != udpwire.AnnounceLen {
		f.bad("announce of %d bytes", len(p))
		return false
	}
	last := udpwire.EventStarted
	flood := f.flood.Load()
	if flood {
		last = udpwire.EventStopped
	}
	switch {
	case !f.hashes[a.InfoHash] && !flood:
		f.bad("announce of an unknown hash")
	case !bytes.HasPrefix(a.PeerID[:], []byte(f.w.PeerIDPrefix)):
		f.bad("peer id %q", a.PeerID)
	case a.Event > last || a.Event == udpwire.EventCompleted && a.Left != 0:
		f.bad("event %d with left %d", a.Event, a.Left)
	case a.NumWant != int32(f.w.NumWant) || a.Port < firstPort:
		f.bad("numwant %d, port %d", a.NumWant, a.Port)
	default:
		f.sawPeer(a.PeerID, from, a.Event)
		return true
	}
	return false
}

// checkAccounting asserts that every request the generator sent is
// accounted for exactly as the fake tracker treated it.
func checkAccounting(t *testing.T, res *Result, f *fakeCounts, lateIsTimeout bool) Counts {
	t.Helper()
	var all Counts
	all.add(&res.Prefill)
	all.add(&res.Counts)
	timeouts := f.dropped.Load()
	if lateIsTimeout {
		timeouts += f.late.Load()
	}
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"requests", int64(all.Requests), f.requests.Load()},
		{"timeouts", int64(all.Timeouts), timeouts},
		{"malformed", int64(all.Malformed), f.malformed.Load()},
		{"failures", int64(all.Failures), f.refused.Load()},
		{"errors", int64(all.Errors), 0},
		{"ok", int64(all.OK), f.requests.Load() - timeouts - f.malformed.Load() - f.refused.Load()},
	} {
		if c.got != c.want {
			t.Errorf("%s: the generator counted %d; the fake tracker says %d", c.name, c.got, c.want)
		}
	}
	if res.Rate <= 0 || res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.P999 || res.P999 > res.Max {
		t.Errorf("rate %v, latencies %v %v %v %v: want a positive rate and ordered percentiles",
			res.Rate, res.P50, res.P99, res.P999, res.Max)
	}
	f.checkClean(t)
	return all
}

func runGenerator(t *testing.T, cfg Config) *Result {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := g.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Log(res)
	return res
}

func TestUDPAgainstFake(t *testing.T) {
	w := Workload{Swarms: 50, Peers: 400, PrefillPeers: 500}
	f := startFakeUDP(t, w, fakeRules{drop: 97, malformed: 89, late: 101, refuse: 83}, 300*time.Millisecond)
	res := runGenerator(t, Config{
		Workload: w, UDP: f.addr(), Prefill: true,
		Sockets: 2, InFlight: 16, Timeout: 200 * time.Millisecond, Duration: time.Second,
	})
	all := checkAccounting(t, res, &f.fakeCounts, true)
	if res.Prefill.Requests != 500 {
		t.Errorf("prefill sent %d announces; want 500", res.Prefill.Requests)
	}
	if got := f.distinctPeers(); got != 500 {
		t.Errorf("the tracker saw %d distinct peers; want 500", got)
	}
	if f.dropped.Load() == 0 || f.malformed.Load() == 0 || f.refused.Load() == 0 || f.late.Load() == 0 {
		t.Errorf("the run was too short to exercise every rule: %d requests", f.requests.Load())
	}
	if all.Late == 0 || int64(all.Late) > f.late.Load() {
		t.Errorf("late replies counted: %d; %d were sent late", all.Late, f.late.Load())
	}
	// One connect per socket, and a new one at most once a second per
	// socket after an error packet.
	if c := f.connects.Load(); c < 2 || c > 6 || uint64(c) != all.Connects {
		t.Errorf("connects: the fake saw %d, the generator sent %d; want 2 to 6", c, all.Connects)
	}
	if want := float64(all.Malformed) / float64(all.Replies()); res.MalformedShare() != want {
		t.Errorf("MalformedShare = %v; want %v", res.MalformedShare(), want)
	}
}

func TestUDPOverIPv6AgainstFake(t *testing.T) {
	w := Workload{Swarms: 10, Peers: 100}
	f := startFakeUDPOn(t, "[::1]:0", w, fakeRules{malformed: 40}, 0)
	res := runGenerator(t, Config{
		Workload: w, UDP: f.addr(), Sockets: 1, InFlight: 8, Duration: 300 * time.Millisecond,
	})
	// Two 18-byte peers are valid over IPv6; a reply with a 6-byte entry
	// more is malformed there, though its length would do for IPv4.
	checkAccounting(t, res, &f.fakeCounts, false)
}

func TestUDPScrapeAgainstFake(t *testing.T) {
	w := Workload{Swarms: 50, Peers: 100, ScrapeHashes: 5}
	f := startFakeUDP(t, w, fakeRules{malformed: 50}, 0)
	res := runGenerator(t, Config{
		Workload: w, UDP: f.addr(), Mode: Scrape, Prefill: true,
		Sockets: 1, InFlight: 8, Duration: 500 * time.Millisecond,
	})
	checkAccounting(t, res, &f.fakeCounts, false)
	// The prefill announces, whatever the mode.
	if got := f.distinctPeers(); got != 100 || res.Prefill.Requests != 100 {
		t.Errorf("the prefill sent %d requests and the tracker saw %d peers; want 100 announces", res.Prefill.Requests, got)
	}
}

func TestUDPRenewsConnectionID(t *testing.T) {
	w := Workload{Swarms: 10, Peers: 100}
	f := startFakeUDP(t, w, fakeRules{}, 0)
	res := runGenerator(t, Config{
		Workload: w, UDP: f.addr(),
		Sockets: 2, InFlight: 4, Duration: time.Second, connTTL: 100 * time.Millisecond,
	})
	checkAccounting(t, res, &f.fakeCounts, false)
	// One connect per socket and per 100 ms at least, give or take one.
	if c := f.connects.Load(); c < 2*9 || uint64(c) != res.Connects {
		t.Errorf("connects: the fake saw %d, the generator counted %d; want about 20", c, res.Connects)
	}
}

func TestUDPSilentTarget(t *testing.T) {
	// A socket that nobody reads: connects go unanswered.
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	g, err := New(Config{UDP: conn.LocalAddr().String(), Prefill: true, Timeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = g.Run(context.Background())
	if !errors.Is(err, errNoConnect) {
		t.Errorf("Run against a silent target = %v; want %v", err, errNoConnect)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v to give up", d)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	w := Workload{Swarms: 10, Peers: 100}
	f := startFakeUDP(t, w, fakeRules{}, 0)
	g, err := New(Config{Workload: w, UDP: f.addr(), Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := g.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v; want %v", err, context.DeadlineExceeded)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run took %v to stop", d)
	}
}

// fakeHTTP is an HTTP tracker that checks the requests it gets. With
// closeAfter it answers like opentracker: HTTP/1.1, no Connection header,
// and the connection closed after the reply.
type fakeHTTP struct {
	fakeCounts
	srv        *httptest.Server
	w          Workload
	hashes     map[[20]byte]bool
	rules      fakeRules
	stall      time.Duration
	closeAfter bool
	chunked    int64        // every Nth reply is chunked
	resumed    atomic.Int64 // TLS connections that resumed a session
}

func startFakeHTTP(t *testing.T, w Workload, rules fakeRules, stall time.Duration, closeAfter bool) *fakeHTTP {
	t.Helper()
	return startFakeHTTPOn(t, w, rules, stall, closeAfter, false)
}

// startFakeHTTPOn is startFakeHTTP, over TLS if overTLS.
func startFakeHTTPOn(t *testing.T, w Workload, rules fakeRules, stall time.Duration, closeAfter, overTLS bool) *fakeHTTP {
	t.Helper()
	f := &fakeHTTP{w: mustWorkload(t, w), rules: rules, stall: stall, closeAfter: closeAfter,
		chunked: 3, hashes: map[[20]byte]bool{}}
	for s := range f.w.Swarms {
		f.hashes[f.w.InfoHash(s)] = true
	}
	f.srv = httptest.NewUnstartedServer(f)
	f.srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.connects.Add(1)
		}
		if tc, ok := c.(*tls.Conn); ok && s == http.StateActive && tc.ConnectionState().DidResume {
			f.resumed.Add(1)
		}
	}
	if overTLS {
		f.srv.StartTLS()
	} else {
		f.srv.Start()
	}
	t.Cleanup(f.srv.Close)
	return f
}

var announceKeys = []string{"info_hash", "peer_id", "port", "uploaded", "downloaded", "left", "corrupt", "key",
	"event", "numwant", "compact", "no_peer_id", "supportcrypto", "redundant"}

func (f *fakeHTTP) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Close {
		f.closeHeaders.Add(1)
	}
	var body []byte
	switch {
	case strings.HasPrefix(r.URL.Path, "/announce/PK"):
		ap, _ := netip.ParseAddrPort(r.RemoteAddr)
		body = f.announce(r.URL.RawQuery, ap.Addr())
	case strings.HasPrefix(r.URL.Path, "/scrape/PK"):
		body = f.scrape(r.URL.RawQuery)
	default:
		f.bad("path %q", r.URL.Path)
	}
	if body == nil {
		http.Error(rw, "bad request", http.StatusBadRequest)
		return
	}
	switch f.rules.pick(f.requests.Add(1)) {
	case "drop":
		f.dropped.Add(1)
		time.Sleep(f.stall)
		return
	case "malformed":
		f.malformed.Add(1)
		body = body[:len(body)-1]
	case "refuse":
		f.refused.Add(1)
		body = []byte("d14:failure reason7:refused8:intervali1800ee")
	}
	n := f.requests.Load()
	switch {
	case f.closeAfter:
		c, buf, err := http.NewResponseController(rw).Hijack()
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		buf.Flush()
		c.Close()
	case f.chunked > 0 && n%f.chunked == 0:
		rw.(http.Flusher).Flush() // no Content-Length: the body goes in chunks
		rw.Write(body[:len(body)/2])
		rw.(http.Flusher).Flush()
		rw.Write(body[len(body)/2:])
	default:
		rw.Header().Set("Content-Length", strconv.Itoa(len(body)))
		rw.Write(body)
	}
}

func (f *fakeHTTP) announce(rawQuery string, from netip.Addr) []byte {
	var keys []string
	params := map[string]string{}
	for kv := range strings.SplitSeq(rawQuery, "&") {
		k, v, _ := strings.Cut(kv, "=")
		dv, err := url.QueryUnescape(v)
		if err != nil {
			f.bad("%s=%s: %v", k, v, err)
			return nil
		}
		keys, params[k] = append(keys, k), dv
	}
	// The parameters come in libtorrent's order; event only on events.
	want := announceKeys
	if _, ok := params["event"]; !ok {
		want = append(append([]string{}, announceKeys[:8]...), announceKeys[9:]...)
	}
	id := params["peer_id"]
	switch {
	case strings.Join(keys, ",") != strings.Join(want, ","):
		f.bad("query keys %v", keys)
	case len(params["info_hash"]) != 20 || !f.hashes[[20]byte([]byte(params["info_hash"]))] && !f.flood.Load():
		f.bad("info_hash %q", params["info_hash"])
	case len(id) != 20 || !strings.HasPrefix(id, f.w.PeerIDPrefix):
		f.bad("peer_id %q", id)
	case params["compact"] != "1" || params["numwant"] != strconv.Itoa(f.w.NumWant) || len(params["key"]) != 8:
		f.bad("compact %q, numwant %q, key %q", params["compact"], params["numwant"], params["key"])
	case params["event"] == "completed" && params["left"] != "0":
		f.bad("completed with left=%s", params["left"])
	default:
		ev := map[string]uint32{"": udpwire.EventNone, "completed": udpwire.EventCompleted, "started": udpwire.EventStarted, "stopped": udpwire.EventStopped}
		f.sawPeer([20]byte([]byte(id)), from, ev[params["event"]])
		return []byte("d8:completei1e10:downloadedi0e10:incompletei2e8:intervali1800e12:min intervali900e5:peers12:" + peers(2) + "e")
	}
	return nil
}

func (f *fakeHTTP) scrape(rawQuery string) []byte {
	// Entries in the order of the request, as opentracker lists them.
	b := []byte("d5:filesd")
	seen := map[string]bool{}
	for kv := range strings.SplitSeq(rawQuery, "&") {
		k, v, _ := strings.Cut(kv, "=")
		h, err := url.QueryUnescape(v)
		if k != "info_hash" || err != nil || len(h) != 20 || !f.hashes[[20]byte([]byte(h))] || seen[h] {
			f.bad("scrape parameter %s=%s", k, v)
			return nil
		}
		seen[h] = true
		b = append(b, "20:"+h+"d8:completei1e10:downloadedi0e10:incompletei2ee"...)
	}
	if len(seen) != f.w.ScrapeHashes {
		f.bad("scrape of %d hashes", len(seen))
		return nil
	}
	return append(b, "ee"...)
}

func TestHTTPAgainstFake(t *testing.T) {
	w := Workload{Swarms: 20, Peers: 200, ScrapeHashes: 3}
	const conns = 8
	for _, tc := range []struct {
		name       string
		mode       Mode
		closeAfter bool // the server closes every connection, like opentracker
		httpClose  bool // a new connection per request
		rules      fakeRules
	}{
		{name: "keep-alive", rules: fakeRules{drop: 101, malformed: 53, refuse: 37}},
		{name: "server closes", closeAfter: true, rules: fakeRules{malformed: 53, refuse: 37}},
		{name: "connection per request", httpClose: true, rules: fakeRules{drop: 101, malformed: 53}},
		{name: "scrape", mode: Scrape, rules: fakeRules{malformed: 31}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const timeout = 200 * time.Millisecond
			f := startFakeHTTP(t, w, tc.rules, timeout+100*time.Millisecond, tc.closeAfter)
			res := runGenerator(t, Config{
				Workload: w, HTTP: f.srv.URL + "/announce/PK", Mode: tc.mode, HTTPClose: tc.httpClose,
				Prefill: true, Conns: conns, Timeout: timeout, Duration: time.Second,
			})
			all := checkAccounting(t, res, &f.fakeCounts, false)
			if f.distinctPeers() != 200 {
				t.Errorf("the tracker saw %d distinct peers; want 200", f.distinctPeers())
			}
			if int64(all.Connects) != f.connects.Load() {
				t.Errorf("connects: the generator counted %d, the server accepted %d", all.Connects, f.connects.Load())
			}
			switch {
			case tc.httpClose:
				if all.Connects != all.Requests || all.Reconnects != 0 || f.closeHeaders.Load() != int64(all.Requests) {
					t.Errorf("connection per request: %d connects, %d reconnects, %d Connection: close for %d requests",
						all.Connects, all.Reconnects, f.closeHeaders.Load(), all.Requests)
				}
			case tc.closeAfter:
				if all.Connects != all.Requests || all.Reconnects != all.Connects-conns {
					t.Errorf("server closes: %d connects, %d reconnects for %d requests over %d connections",
						all.Connects, all.Reconnects, all.Requests, conns)
				}
			default:
				// Only a timeout closes a keep-alive connection here, and the
				// worker's next request, if any, opens a new one.
				if all.Reconnects > all.Timeouts || all.Reconnects+conns < all.Timeouts ||
					all.Connects != conns+all.Reconnects || f.closeHeaders.Load() != 0 {
					t.Errorf("keep-alive: %d connects, %d reconnects, %d timeouts over %d connections",
						all.Connects, all.Reconnects, all.Timeouts, conns)
				}
			}
		})
	}
}

// TestHTTPSAgainstFake runs the generator over TLS, a new connection per
// request, with and without session resumption.
func TestHTTPSAgainstFake(t *testing.T) {
	w := Workload{Swarms: 20, Peers: 200}
	for _, resume := range []bool{false, true} {
		t.Run(fmt.Sprint("resume=", resume), func(t *testing.T) {
			f := startFakeHTTPOn(t, w, fakeRules{}, 0, false, true)
			res := runGenerator(t, Config{
				Workload: w, HTTP: f.srv.URL + "/announce/PK", HTTPClose: true, TLSResume: resume,
				Prefill: true, Conns: 4, Timeout: time.Second, Duration: 500 * time.Millisecond,
			})
			if res.Proto != "https" || res.OK == 0 || res.Errors != 0 {
				t.Fatalf("result %v; want https requests answered", res)
			}
			resumed, connects := f.resumed.Load(), f.connects.Load()
			if resume && resumed < connects/2 || !resume && resumed != 0 {
				t.Errorf("%d of %d connections resumed their session; want resumption %v", resumed, connects, resume)
			}
		})
	}
}

func TestHTTPRefusedConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	g, err := New(Config{HTTP: "http://" + addr + "/announce", Workload: Workload{Swarms: 10, Peers: 20}, Prefill: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := g.Run(context.Background())
	if err == nil || res == nil || res.Prefill.Errors != 20 {
		t.Errorf("Run against a closed port = %v, %v; want an error after 20 failed announces", res, err)
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no target", Config{}},
		{"two targets", Config{UDP: "127.0.0.1:1", HTTP: "http://127.0.0.1:1/announce"}},
		{"fewer in flight than sockets", Config{UDP: "127.0.0.1:1", Sockets: 4, InFlight: 2}},
		{"scrape too large", Config{UDP: "127.0.0.1:1", Workload: Workload{ScrapeHashes: 75}}},
		{"ftp", Config{HTTP: "ftp://127.0.0.1:1/announce"}},
		{"resumption without TLS", Config{HTTP: "http://127.0.0.1:1/announce", TLSResume: true}},
		{"no scrape url", Config{HTTP: "http://127.0.0.1:1/tracker", Mode: Scrape}},
		{"scrape elsewhere", Config{HTTP: "http://127.0.0.1:1/announce", ScrapeURL: "http://127.0.0.1:2/scrape"}},
		{"negative duration", Config{UDP: "127.0.0.1:1", Duration: -1}},
		{"bad mode", Config{UDP: "127.0.0.1:1", Mode: 7}},
		{"bad workload", Config{UDP: "127.0.0.1:1", Workload: Workload{SeederPct: 200}}},
	} {
		if _, err := New(tc.cfg); err == nil {
			t.Errorf("New(%s) succeeded; want an error", tc.name)
		}
	}
}
