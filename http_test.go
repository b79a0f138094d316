package tracker

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	strict "github.com/annuaire/tracker/internal/bencode"
	"github.com/annuaire/tracker/internal/httpwire"
	zeebo "github.com/zeebo/bencode"
)

// httpLT escapes b as libtorrent does.
func httpLT(b []byte) string { return httpwire.EscapeLibtorrent.String(b) }

// httpTestHash returns a hash holding the bytes clients escape, so that
// decoding is exercised: '+', the specials and high bytes.
func httpTestHash(n int) InfoHash {
	h := InfoHash(sha1.Sum([]byte(strconv.Itoa(n))))
	h[0], h[1], h[2], h[3] = '+', '!', '~', byte(n)
	return h
}

// httpTestPeerID returns the peer id of test peer n, ASCII like
// Transmission's.
func httpTestPeerID(n int) PeerID {
	var id PeerID
	copy(id[:], fmt.Sprintf("-TR4060-%012d", n))
	return id
}

// httpQuery is an announce query in libtorrent's order and escaping.
func httpQuery(h InfoHash, id PeerID, port int, left int64, extra string) string {
	q := fmt.Sprintf("info_hash=%s&peer_id=%s&port=%d&uploaded=0&downloaded=0&left=%d&corrupt=0&key=1A2B3C4D&compact=1",
		httpLT(h[:]), httpLT(id[:]), port, left)
	if extra != "" {
		q += "&" + extra
	}
	return q
}

// httpRecStore is a MemoryStore that records the last announce it saw and,
// when ids is set, gives the peers of its replies ids (the memory store
// keeps none), so that dictionary replies carry them.
type httpRecStore struct {
	*MemoryStore
	ids  bool
	mu   sync.Mutex
	last AnnounceRequest
	err  error // returned by Announce when set
}

func (s *httpRecStore) Announce(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse) error {
	s.mu.Lock()
	s.last = *req
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := s.MemoryStore.Announce(ctx, req, resp); err != nil {
		return err
	}
	if s.ids {
		for i := range resp.Peers {
			resp.Peers[i].ID = httpPeerIDOf(resp.Peers[i].Addr)
		}
	}
	return nil
}

func (s *httpRecStore) lastRequest() AnnounceRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// httpPeerIDOf is the id httpRecStore gives the peer at ap.
func httpPeerIDOf(ap netip.AddrPort) PeerID {
	var id PeerID
	copy(id[:], "-ID0000-")
	b := ap.Addr().As16()
	copy(id[8:], b[12:])
	binary.BigEndian.PutUint16(id[12:], ap.Port())
	return id
}

// httpVia is a way requests reach the handler: through net/http, or read
// from their raw bytes by a FastListener's server, which hands the
// requests it does not answer to net/http.
type httpVia struct {
	name string
	fast bool
}

var (
	httpNetHTTP = httpVia{name: "net-http"}
	httpFast    = httpVia{name: "fast", fast: true}
)

// httpEachVia runs test once for each way requests reach the handler.
func httpEachVia(t *testing.T, test func(t *testing.T, via httpVia)) {
	for _, via := range []httpVia{httpNetHTTP, httpFast} {
		t.Run(via.name, func(t *testing.T) { test(t, via) })
	}
}

// httpFixture is a tracker and its HTTP handler, driven without sockets.
type httpFixture struct {
	tb    testing.TB
	via   httpVia
	tr    *Tracker
	h     *HTTPHandler
	store *httpRecStore
	// fast is the server of a FastListener, for requests sent via
	// httpFast; handedOver counts the requests it left to net/http.
	// fastMu serves them one at a time, as a FastListener does.
	fastMu     sync.Mutex
	fast       *fastServer
	handedOver int
}

func httpNewFixture(tb testing.TB, via httpVia, cfg Config, hcfg HTTPConfig) *httpFixture {
	tb.Helper()
	ms, err := NewMemoryStore(MemoryConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	f := &httpFixture{tb: tb, via: via, store: &httpRecStore{MemoryStore: ms}}
	if cfg.Store == nil {
		cfg.Store = f.store
	}
	f.tr, err = New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		f.tr.Close()
		ms.Close()
	})
	f.h, err = f.tr.NewHTTPHandler(hcfg)
	if err != nil {
		tb.Fatal(err)
	}
	if via.fast {
		f.fast = newFastServer(f.h)
	}
	return f
}

// do serves one request for target from the client at remote, with header
// lines given as name, value pairs.
func (f *httpFixture) do(method, target, remote string, header ...string) *httptest.ResponseRecorder {
	f.tb.Helper()
	if f.via.fast {
		if w := f.doFast(method, target, remote, header...); w != nil {
			return w
		}
	}
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

// doFast sends the request, as a client that asks to close the
// connection after it, to the fixture's fast server, and returns the
// reply it writes, or nil if it leaves the request to net/http.
func (f *httpFixture) doFast(method, target, remote string, header ...string) *httptest.ResponseRecorder {
	f.tb.Helper()
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: tracker.test\r\n")
	for i := 0; i+1 < len(header); i += 2 {
		b.WriteString(header[i] + ": " + header[i+1] + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	from, _ := netip.ParseAddrPort(remote)
	f.fastMu.Lock()
	defer f.fastMu.Unlock()
	reply, ok := f.fast.answer([]byte(b.String()), from)
	if !ok {
		f.handedOver++
		return nil
	}
	f.fast.done()
	rd := bufio.NewReader(bytes.NewReader(reply))
	resp, err := http.ReadResponse(rd, &http.Request{Method: method})
	if err != nil {
		f.tb.Fatalf("%s %q: fast reply %q: %v", method, target, reply, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || rd.Buffered() > 0 || resp.Proto != "HTTP/1.1" || !resp.Close {
		f.tb.Fatalf("%s %q: fast reply %q: %v; want HTTP/1.1, Connection: close, and nothing after the body", method, target, reply, err)
	}
	w := httptest.NewRecorder()
	maps.Copy(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	w.Body.Write(body)
	return w
}

// get serves a GET and returns its body decoded, after checking that the
// reply is HTTP 200 text/plain with a correct Content-Length and a
// canonical bencoded body that zeebo/bencode decodes to the same value.
func (f *httpFixture) get(target, remote string, header ...string) map[string]any {
	f.tb.Helper()
	w := f.do(http.MethodGet, target, remote, header...)
	return httpCheckReply(f.tb, target, w)
}

func httpCheckReply(tb testing.TB, target string, w *httptest.ResponseRecorder) map[string]any {
	tb.Helper()
	if w.Code != http.StatusOK {
		tb.Fatalf("GET %q: status %d; want 200", target, w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/plain" {
		tb.Errorf("GET %q: Content-Type %q; want text/plain", target, ct)
	}
	body := w.Body.Bytes()
	if cl := w.Header().Get("Content-Length"); cl != strconv.Itoa(len(body)) {
		tb.Errorf("GET %q: Content-Length %q for a body of %d bytes", target, cl, len(body))
	}
	if w.Header().Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			tb.Fatalf("GET %q: gzip: %v", target, err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			tb.Fatalf("GET %q: gzip: %v", target, err)
		}
	}
	return httpDecode(tb, target, body)
}

// httpDecode checks body with the strict decoder and zeebo/bencode and
// returns the dictionary it holds.
func httpDecode(tb testing.TB, what string, body []byte) map[string]any {
	tb.Helper()
	if err := strict.Valid(body); err != nil {
		tb.Fatalf("%s: body %q: %v", what, body, err)
	}
	mine, err := strict.Decode(body)
	if err != nil {
		tb.Fatalf("%s: body %q: %v", what, body, err)
	}
	var oracle any
	if err := zeebo.DecodeBytes(body, &oracle); err != nil {
		tb.Fatalf("%s: body %q: zeebo/bencode: %v", what, body, err)
	}
	if !reflect.DeepEqual(mine, oracle) {
		tb.Fatalf("%s: body %q: strict decoder gives %v, zeebo/bencode %v", what, body, mine, oracle)
	}
	m, ok := mine.(map[string]any)
	if !ok {
		tb.Fatalf("%s: body %q is not a dictionary", what, body)
	}
	return m
}

// announce serves an announce that must succeed and returns its reply.
func (f *httpFixture) announce(remote, query string) map[string]any {
	f.tb.Helper()
	handedOver := f.handedOver
	m := f.get("/announce?"+query, remote)
	if f.via.fast && !f.tr.blocks.any() && f.handedOver != handedOver {
		f.tb.Errorf("announce %q was left to net/http; want it answered by the fast server", query)
	}
	if r, ok := m["failure reason"]; ok {
		f.tb.Fatalf("announce %q from %s failed: %q", query, remote, r)
	}
	for _, k := range []string{"complete", "incomplete", "downloaded", "interval", "min interval", "peers"} {
		if _, ok := m[k]; !ok {
			f.tb.Fatalf("announce %q: reply %v has no %q", query, m, k)
		}
	}
	if _, ok := m["retry in"]; ok {
		f.tb.Errorf("announce %q: a successful reply has retry in", query)
	}
	return m
}

// failure serves a GET that must fail and returns its failure reason,
// after checking that the failure dict carries the intervals.
func (f *httpFixture) failure(target, remote string, header ...string) string {
	f.tb.Helper()
	m := f.get(target, remote, header...)
	reason, ok := m["failure reason"].(string)
	if !ok {
		f.tb.Fatalf("GET %q: reply %v has no failure reason", target, m)
	}
	if m["interval"] != seconds(f.tr.cfg.AnnounceInterval) || m["min interval"] != seconds(f.tr.cfg.MinAnnounceInterval) {
		f.tb.Errorf("GET %q: failure %v: want interval %d and min interval %d", target, m,
			seconds(f.tr.cfg.AnnounceInterval), seconds(f.tr.cfg.MinAnnounceInterval))
	}
	for k := range m {
		switch k {
		case "failure reason", "interval", "min interval", "retry in":
		default:
			f.tb.Errorf("GET %q: failure %v has key %q", target, m, k)
		}
	}
	return reason
}

// scrape serves a scrape of hashes and returns the files dictionary.
func (f *httpFixture) scrape(remote string, hashes ...InfoHash) map[string]any {
	f.tb.Helper()
	var q []string
	for _, h := range hashes {
		q = append(q, "info_hash="+httpLT(h[:]))
	}
	target := "/scrape?" + strings.Join(q, "&")
	m := f.get(target, remote)
	files, ok := m["files"].(map[string]any)
	if !ok {
		f.tb.Fatalf("GET %q: reply %v has no files", target, m)
	}
	if fl, _ := m["flags"].(map[string]any); fl["min_request_interval"] != seconds(f.tr.cfg.MinScrapeInterval) {
		f.tb.Errorf("GET %q: flags %v; want min_request_interval %d", target, m["flags"], seconds(f.tr.cfg.MinScrapeInterval))
	}
	return files
}

// httpStats returns the counters of h in a files dictionary.
func httpStats(tb testing.TB, files map[string]any, h InfoHash) ScrapeStats {
	tb.Helper()
	e, ok := files[string(h[:])].(map[string]any)
	if !ok {
		tb.Fatalf("files %v has no entry for %x", files, h)
	}
	get := func(k string) int {
		v, ok := e[k].(int64)
		if !ok {
			tb.Fatalf("files entry %v has no %q", e, k)
		}
		return int(v)
	}
	return ScrapeStats{Complete: get("complete"), Incomplete: get("incomplete"), Downloaded: get("downloaded"), Downloaders: get("downloaders")}
}

// httpPeers reads the compact peers and peers6 of an announce reply.
func httpPeers(tb testing.TB, m map[string]any) (v4, v6 []netip.AddrPort) {
	tb.Helper()
	s, ok := m["peers"].(string)
	if !ok {
		tb.Fatalf("reply %v: peers is not a compact string", m)
	}
	v4, err := parseCompact(s, 6)
	if err != nil {
		tb.Fatalf("peers: %v", err)
	}
	if s6, ok := m["peers6"]; ok {
		if v6, err = parseCompact(s6.(string), 18); err != nil {
			tb.Fatalf("peers6: %v", err)
		}
		if len(v6) == 0 {
			tb.Errorf("reply %v: empty peers6 should be left out", m)
		}
	}
	return v4, v6
}

func httpAddr(n int) string { return fmt.Sprintf("10.0.%d.%d", n>>8&255, n&255) }

// httpRemote is the address test peer n connects from.
func httpRemote(n int) string { return httpAddr(n) + ":40000" }

// httpJoin has peers first..last announce to h with the given left.
func (f *httpFixture) join(h InfoHash, first, last int, left int64) {
	f.tb.Helper()
	for n := first; n <= last; n++ {
		f.announce(httpRemote(n), httpQuery(h, httpTestPeerID(n), 6881, left, "event=started&numwant=0"))
	}
}

func TestHTTPAnnounceFailures(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		f := httpNewFixture(t, via, Config{AnnounceInterval: 20 * time.Minute, MinAnnounceInterval: 5 * time.Minute}, HTTPConfig{})
		h, id := httpTestHash(1), httpTestPeerID(1)
		hash, peer := httpLT(h[:]), httpLT(id[:])
		rest := "&port=6881&uploaded=0&downloaded=0&left=10"
		for _, tc := range []struct {
			name, query, reason string
		}{
			{"no query", "", "missing info_hash"},
			{"missing info_hash", "peer_id=" + peer + rest, "missing info_hash"},
			{"empty info_hash", "info_hash=&peer_id=" + peer + rest, ErrInvalidInfoHash.Reason},
			{"19-byte info_hash", "info_hash=" + httpLT(h[:19]) + "&peer_id=" + peer + rest, ErrInvalidInfoHash.Reason},
			{"21-byte info_hash", "info_hash=" + hash + "%00&peer_id=" + peer + rest, ErrInvalidInfoHash.Reason},
			{"hex info_hash", "info_hash=" + h.String() + "&peer_id=" + peer + rest, ErrInvalidInfoHash.Reason},
			{"last info_hash bad", "info_hash=" + hash + "&info_hash=abc&peer_id=" + peer + rest, ErrInvalidInfoHash.Reason},
			{"missing peer_id", "info_hash=" + hash + rest, "missing peer_id"},
			{"short peer_id", "info_hash=" + hash + "&peer_id=-TR4060-" + rest, ErrInvalidPeerID.Reason},
			{"missing port", "info_hash=" + hash + "&peer_id=" + peer + "&uploaded=0&downloaded=0&left=10", "missing port"},
			{"port 0", "info_hash=" + hash + "&peer_id=" + peer + "&port=0&left=10", ErrInvalidPort.Reason},
			{"port 65536", "info_hash=" + hash + "&peer_id=" + peer + "&port=65536&left=10", ErrInvalidPort.Reason},
			{"port -1", "info_hash=" + hash + "&peer_id=" + peer + "&port=-1&left=10", ErrInvalidPort.Reason},
			{"port word", "info_hash=" + hash + "&peer_id=" + peer + "&port=http&left=10", ErrInvalidPort.Reason},
			{"missing left", "info_hash=" + hash + "&peer_id=" + peer + "&port=6881&uploaded=0&downloaded=0", "missing left"},
			{"negative left", "info_hash=" + hash + "&peer_id=" + peer + "&port=6881&left=-1", ErrInvalidCounter.Reason},
			{"left over int64", "info_hash=" + hash + "&peer_id=" + peer + "&port=6881&left=9223372036854775808", ErrInvalidCounter.Reason},
			{"left of 21 digits", "info_hash=" + hash + "&peer_id=" + peer + "&port=6881&left=000000000000000000001", ErrInvalidCounter.Reason},
			{"uploaded word", "info_hash=" + hash + "&peer_id=" + peer + "&port=6881&left=1&uploaded=lots", ErrInvalidCounter.Reason},
			{"downloaded empty", "info_hash=" + hash + "&peer_id=" + peer + "&port=6881&left=1&downloaded=", ErrInvalidCounter.Reason},
			{"unknown event", "info_hash=" + hash + "&peer_id=" + peer + rest + "&event=finished", ErrInvalidEvent.Reason},
			{"event in capitals", "info_hash=" + hash + "&peer_id=" + peer + rest + "&event=STARTED", ErrInvalidEvent.Reason},
			{"overlong passkey", "info_hash=" + hash + "&peer_id=" + peer + rest + "&passkey=" + strings.Repeat("k", 129), ErrInvalidPasskey.Reason},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := f.failure("/announce?"+tc.query, "203.0.113.5:1234")
				if got != tc.reason {
					t.Errorf("announce %q: failure reason %q; want %q", tc.query, got, tc.reason)
				}
			})
		}
		if got := f.tr.Stats().Failures["bad_request"]; got == 0 {
			t.Errorf("bad requests were not counted in Stats")
		}
	})
}

// TestHTTPPercentDecoding checks that every escaping clients use reaches
// the same swarm: '+', %2b and %2B are all 0x2B, hex digits may be in
// either case, and the bytes libtorrent leaves raw decode as themselves.
func TestHTTPPercentDecoding(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		f := httpNewFixture(t, via, Config{}, HTTPConfig{})
		var h InfoHash
		copy(h[:], "+!*()~-._\x00\xff\xab+Zz09\x2b\x7f ")
		for n, escaped := range []string{
			httpwire.NewEscaper("-_!.~*()+", false).String(h[:]), // libtorrent's, with a raw '+'
			httpwire.EscapeLibtorrent.String(h[:]),               // %2b
			httpwire.EscapeRFC3986.String(h[:]),                  // %2B, %21...
			httpwire.NewEscaper("", false).String(h[:]),          // everything but letters and digits
			strings.ReplaceAll(httpwire.NewEscaper("", true).String(h[:]), "Z", "%5a"),
		} {
			q := "info_hash=" + escaped + "&peer_id=" + httpLT(func() []byte { id := httpTestPeerID(n); return id[:] }()) + "&port=6881&left=5"
			m := f.announce(httpRemote(n), q)
			if m["incomplete"] != int64(n+1) {
				t.Errorf("announce with info_hash=%s: incomplete %v; want %d (all in one swarm)", escaped, m["incomplete"], n+1)
			}
		}
		if st := httpStats(t, f.scrape("10.9.9.9:1", h), h); st.Incomplete != 5 {
			t.Errorf("scrape: %+v; want 5 leechers", st)
		}
		if got := f.store.lastRequest().InfoHash; got != h {
			t.Errorf("store saw info hash %x; want %x", got, h)
		}
	})
}

func TestHTTPRawPeerID(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		f := httpNewFixture(t, via, Config{}, HTTPConfig{})
		h := httpTestHash(1)
		q := "info_hash=" + httpwire.EscapeRFC3986.String(h[:]) + "&peer_id=-TR4060-abc.def~ghi_&port=51413&uploaded=0&downloaded=0&left=0&numwant=80&key=6F3A1B2C&compact=1&supportcrypto=1&event=started"
		f.announce(httpRemote(1), q)
		req := f.store.lastRequest()
		if string(req.PeerID[:]) != "-TR4060-abc.def~ghi_" {
			t.Errorf("peer id %q; want -TR4060-abc.def~ghi_", req.PeerID[:])
		}
		if req.Key != 0x6F3A1B2C || req.NumWant != 80 || req.Addr != netip.MustParseAddrPort("10.0.0.1:51413") || req.Event != EventStarted {
			t.Errorf("request %+v: want key 6F3A1B2C, numwant 80, address 10.0.0.1:51413, event started", req)
		}
	})
}

func TestHTTPCompactPeers(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		f := httpNewFixture(t, via, Config{}, HTTPConfig{})
		h := httpTestHash(2)
		f.join(h, 1, 5, 100)
		for n := 1; n <= 6; n++ {
			m := f.announce(httpRemote(n), httpQuery(h, httpTestPeerID(n), 6881, 100, "numwant=50"))
			if s := m["peers"].(string); len(s)%6 != 0 {
				t.Fatalf("peers of %d bytes: not a multiple of 6", len(s))
			}
			v4, v6 := httpPeers(t, m)
			want := 5
			if n == 6 {
				want = 5 // a newcomer sees all five
			} else {
				want = 4
			}
			if len(v4) != want || len(v6) != 0 {
				t.Errorf("peer %d: got %d IPv4 and %d IPv6 peers; want %d IPv4", n, len(v4), len(v6), want)
			}
			self := netip.MustParseAddrPort(httpAddr(n) + ":6881")
			if slices.Contains(v4, self) {
				t.Errorf("peer %d got itself in %v", n, v4)
			}
			if ext := m["external ip"]; ext != string(netip.MustParseAddr(httpAddr(n)).AsSlice()) {
				t.Errorf("peer %d: external ip %q", n, ext)
			}
		}
	})
}

func TestHTTPIPv6Peers(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		f := httpNewFixture(t, via, Config{}, HTTPConfig{})
		h := httpTestHash(3)
		f.join(h, 1, 3, 100) // IPv4 peers
		for n := 1; n <= 3; n++ {
			f.announce(fmt.Sprintf("[2001:db8::%d]:40000", n), httpQuery(h, httpTestPeerID(100+n), 6881, 100, "numwant=0"))
		}
		// An IPv6 announcer gets IPv6 peers, in peers6 only.
		m := f.announce("[2001:db8::99]:40000", httpQuery(h, httpTestPeerID(199), 6881, 100, ""))
		v4, v6 := httpPeers(t, m)
		if len(v4) != 0 || len(v6) != 3 {
			t.Fatalf("IPv6 announcer: %d IPv4 and %d IPv6 peers; want 0 and 3", len(v4), len(v6))
		}
		for _, p := range v6 {
			if !p.Addr().Is6() || p.Addr().Is4In6() {
				t.Errorf("peers6 holds %v", p)
			}
		}
		if len(m["peers6"].(string))%18 != 0 {
			t.Errorf("peers6 of %d bytes", len(m["peers6"].(string)))
		}
		if ext := m["external ip"].(string); len(ext) != 16 {
			t.Errorf("external ip of an IPv6 client is %d bytes", len(ext))
		}
		// An IPv4 announcer never sees them, nor does a dual-stack socket's
		// IPv4-mapped client, which counts as IPv4.
		for _, remote := range []string{"10.0.9.1:40000", "[::ffff:10.0.9.1]:40000"} {
			m := f.announce(remote, httpQuery(h, httpTestPeerID(200), 6881, 100, ""))
			v4, v6 := httpPeers(t, m)
			if len(v4) != 3 || len(v6) != 0 {
				t.Errorf("IPv4 announcer %s: %d IPv4 and %d IPv6 peers; want 3 and 0", remote, len(v4), len(v6))
			}
			if ext := m["external ip"].(string); len(ext) != 4 {
				t.Errorf("external ip of %s is %d bytes", remote, len(ext))
			}
		}
		if st := httpStats(t, f.scrape("10.9.9.9:1", h), h); st.Incomplete != 8 {
			t.Errorf("scrape %+v; want 8 leechers", st)
		}
	})
}

func TestHTTPDictPeers(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		f := httpNewFixture(t, via, Config{}, HTTPConfig{})
		f.store.ids = true
		h := httpTestHash(4)
		f.join(h, 1, 3, 100)
		for _, tc := range []struct {
			extra   string
			compact bool
			ids     bool
		}{
			{"compact=0", false, true},
			{"compact=0&no_peer_id=1", false, false},
			{"compact=%30&no_peer_id=1", false, false},
			{"compact=0&no_peer_id=0", false, true},
			{"compact=1&no_peer_id=1", true, false},
			{"", true, false},
		} {
			m := f.announce(httpRemote(9), httpQuery(h, httpTestPeerID(9), 6881, 100, tc.extra))
			if tc.compact {
				if _, ok := m["peers"].(string); !ok {
					t.Errorf("%s: peers %v; want compact", tc.extra, m["peers"])
				}
				continue
			}
			list, ok := m["peers"].([]any)
			if !ok || len(list) != 3 {
				t.Fatalf("%s: peers %v; want a list of 3", tc.extra, m["peers"])
			}
			for _, p := range list {
				d := p.(map[string]any)
				ip, _ := d["ip"].(string)
				port, _ := d["port"].(int64)
				ap := netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port))
				id, hasID := d["peer id"]
				if hasID != tc.ids {
					t.Errorf("%s: peer %v: has peer id %v; want %v", tc.extra, d, hasID, tc.ids)
				}
				if hasID && id != string(func() []byte { id := httpPeerIDOf(ap); return id[:] }()) {
					t.Errorf("%s: peer %v: wrong peer id", tc.extra, d)
				}
			}
		}
	})
}

func TestHTTPNumWant(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		f := httpNewFixture(t, via, Config{DefaultNumWant: 5, MaxNumWant: 8}, HTTPConfig{})
		h := httpTestHash(5)
		f.join(h, 1, 20, 100)
		for _, tc := range []struct {
			extra string
			want  int
		}{
			{"numwant=0", 0},
			{"", 5},
			{"numwant=3", 3},
			{"numwant=8", 8},
			{"numwant=200", 8},
			{"numwant=99999999999999999999999999", 8},
			{"numwant=-1", 5},
			{"numwant=many", 5},
			{"numwant=", 5},
		} {
			m := f.announce(httpRemote(30), httpQuery(h, httpTestPeerID(30), 6881, 100, tc.extra))
			v4, _ := httpPeers(t, m)
			if len(v4) != tc.want {
				t.Errorf("%q: %d peers; want %d", tc.extra, len(v4), tc.want)
			}
			if m["incomplete"] != int64(21) {
				t.Errorf("%q: incomplete %v; want 21 (counts come whatever numwant)", tc.extra, m["incomplete"])
			}
		}
	})
}

func TestHTTPEvents(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		f := httpNewFixture(t, via, Config{}, HTTPConfig{})
		h := httpTestHash(6)
		f.join(h, 1, 3, 100)
		scrape := func() ScrapeStats { return httpStats(t, f.scrape("10.9.9.9:1", h), h) }

		// stopped removes the peer, with a valid reply, and the next scrape
		// shows it.
		m := f.announce(httpRemote(1), httpQuery(h, httpTestPeerID(1), 6881, 100, "event=stopped&numwant=0"))
		if v4, _ := httpPeers(t, m); len(v4) != 0 {
			t.Errorf("stopped: got %d peers", len(v4))
		}
		if st := scrape(); st.Incomplete != 2 {
			t.Errorf("after stopped: %+v; want 2 leechers", st)
		}

		// completed counts once per peer, and left=0 is a seeder.
		for range 2 {
			f.announce(httpRemote(2), httpQuery(h, httpTestPeerID(2), 6881, 0, "event=completed"))
		}
		if st := scrape(); st.Downloaded != 1 || st.Complete != 1 || st.Incomplete != 1 {
			t.Errorf("after completed twice: %+v; want 1 snatch, 1 seeder, 1 leecher", st)
		}
		f.announce(httpRemote(4), httpQuery(h, httpTestPeerID(4), 6881, 0, "event=started"))
		if st := scrape(); st.Complete != 2 {
			t.Errorf("after a seeder started: %+v; want 2 seeders", st)
		}

		// paused counts in incomplete, not in downloaders.
		f.announce(httpRemote(5), httpQuery(h, httpTestPeerID(5), 6881, 100, "event=paused"))
		if st := scrape(); st.Incomplete != 2 || st.Downloaders != 1 {
			t.Errorf("after paused: %+v; want 2 leechers, 1 downloader", st)
		}
		// An empty event is a regular announce.
		f.announce(httpRemote(3), httpQuery(h, httpTestPeerID(3), 6881, 100, "event="))
	})
}

// TestHTTPExtraParams checks that the parameters the tracker does not use
// never fail an announce, whatever their value.
func TestHTTPExtraParams(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		f := httpNewFixture(t, via, Config{}, HTTPConfig{})
		h := httpTestHash(7)
		for n, extra := range []string{
			"corrupt=0&redundant=0&supportcrypto=1&requirecrypto=1",
			"corrupt=-5&redundant=x&supportcrypto=&requirecrypto=yes",
			"ipv4=10.1.2.3&ipv6=2001:db8::1",
			"ipv6=%5B2001%3Adb8%3A%3A1%5D%3A6881&ipv4=10.1.2.3:6881",
			"ipv4=not-an-address&ipv6=%zz",
			"trackerid=abc&trackerid=&key=&key=-12&key=%ff%00",
			"ip=tracker.example&ip=",
			"azudp=6881&hide=1&x&=&==&&&",
			"compact=&no_peer_id=&numwant=1e9",
			"passkey=",
		} {
			m := f.announce(httpRemote(n+1), httpQuery(h, httpTestPeerID(n), 6881, 100, extra))
			if m["incomplete"] != int64(n+1) {
				t.Errorf("%q: incomplete %v; want %d", extra, m["incomplete"], n+1)
			}
			if got := f.store.lastRequest().Addr.Addr().String(); got != httpAddr(n+1) {
				t.Errorf("%q: announced at %s; want the source address %s", extra, got, httpAddr(n+1))
			}
		}
	})
}

func TestHTTPTrackerID(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		f := httpNewFixture(t, via, Config{}, HTTPConfig{TrackerID: "annuaire-1"})
		h := httpTestHash(9)
		m := f.announce(httpRemote(1), httpQuery(h, httpTestPeerID(1), 6881, 100, "event=started"))
		tid, _ := m["tracker id"].(string)
		if tid != "annuaire-1" {
			t.Fatalf("tracker id %q; want annuaire-1", tid)
		}
		m = f.announce(httpRemote(1), httpQuery(h, httpTestPeerID(1), 6881, 100, "trackerid="+httpLT([]byte(tid))))
		if m["tracker id"] != tid {
			t.Errorf("echoed trackerid: reply tracker id %v", m["tracker id"])
		}
		// Without TrackerID, none is sent.
		g := httpNewFixture(t, via, Config{}, HTTPConfig{})
		if m := g.announce(httpRemote(1), httpQuery(h, httpTestPeerID(1), 6881, 100, "trackerid=foo")); m["tracker id"] != nil {
			t.Errorf("tracker id %v sent without TrackerID", m["tracker id"])
		}
	})
}

// TestHTTPPasskeyLayouts runs announces and scrapes through every passkey
// layout, with a good, a bad and a missing passkey.
func TestHTTPPasskeyLayouts(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		var mu sync.Mutex
		var seen []string
		f := httpNewFixture(t, via, Config{Passkeys: PasskeyFunc(func(ctx context.Context, pk string) (Identity, error) {
			mu.Lock()
			seen = append(seen, pk)
			mu.Unlock()
			if pk == "good/pk+1" {
				return Identity{UserID: 7, Warning: "ratio low"}, nil
			}
			return Identity{}, ErrInvalidPasskey
		})}, HTTPConfig{})
		h := httpTestHash(10)
		const good, bad = "good%2Fpk+1", "bad%2fpk"
		aq := httpQuery(h, httpTestPeerID(1), 6881, 100, "")
		sq := "info_hash=" + httpLT(h[:])
		for _, layout := range []struct {
			name             string
			announce, scrape func(pk string) string
		}{
			{"/announce/<pk>",
				func(pk string) string { return "/announce/" + pk + "?" + aq },
				func(pk string) string { return "/scrape/" + pk + "?" + sq }},
			{"/<pk>/announce",
				func(pk string) string { return "/" + pk + "/announce?" + aq },
				func(pk string) string { return "/" + pk + "/scrape?" + sq }},
			{"announce.php?passkey=<pk>",
				func(pk string) string { return "/announce.php?passkey=" + pk + "&" + aq },
				func(pk string) string { return "/scrape.php?passkey=" + pk + "&" + sq }},
			{"announce?<query>&passkey=<pk>",
				func(pk string) string { return "/announce?" + aq + "&passkey=" + pk },
				func(pk string) string { return "/scrape?" + sq + "&passkey=" + pk }},
		} {
			t.Run(layout.name, func(t *testing.T) {
				m := f.get(layout.announce(good), httpRemote(1))
				if m["failure reason"] != nil || m["warning message"] != "ratio low" {
					t.Errorf("announce with a good passkey: %v", m)
				}
				m = f.get(layout.scrape(good), httpRemote(1))
				if files, _ := m["files"].(map[string]any); len(files) != 1 || httpStats(t, files, h).Incomplete != 1 {
					t.Errorf("scrape with a good passkey: %v", m)
				}
				if r := f.failure(layout.announce(bad), httpRemote(1)); r != ErrInvalidPasskey.Reason {
					t.Errorf("announce with a bad passkey: failure %q", r)
				}
				if r := f.failure(layout.scrape(bad), httpRemote(1)); r != ErrInvalidPasskey.Reason {
					t.Errorf("scrape with a bad passkey: failure %q", r)
				}
			})
		}
		for _, target := range []string{"/announce?" + aq, "/announce.php?" + aq, "/scrape?" + sq, "/scrape.php?" + sq} {
			if r := f.failure(target, httpRemote(1)); r != ErrPasskeyRequired.Reason {
				t.Errorf("GET %q without a passkey: failure %q; want %q", target, r, ErrPasskeyRequired.Reason)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, pk := range seen {
			if pk != "good/pk+1" && pk != "bad/pk" {
				t.Errorf("validator saw passkey %q", pk)
			}
		}
	})
}

func TestHTTPScrape(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		f := httpNewFixture(t, via, Config{MaxScrapeHashes: 4, MinScrapeInterval: 7 * time.Minute}, HTTPConfig{})
		h1, h2, unknown := httpTestHash(11), httpTestHash(12), httpTestHash(13)
		f.join(h1, 1, 2, 0)
		f.join(h1, 3, 3, 100)
		f.join(h2, 4, 4, 100)

		files := f.scrape("10.9.9.9:1", h2, h1)
		if len(files) != 2 {
			t.Fatalf("two info_hash: files %v; want two entries", files)
		}
		for k := range files {
			if len(k) != 20 {
				t.Errorf("files key %q is not a raw 20-byte hash", k)
			}
		}
		if st := httpStats(t, files, h1); st != (ScrapeStats{Complete: 2, Incomplete: 1, Downloaders: 1}) {
			t.Errorf("h1: %+v", st)
		}
		if st := httpStats(t, files, h2); st != (ScrapeStats{Incomplete: 1, Downloaders: 1}) {
			t.Errorf("h2: %+v", st)
		}
		// A repeated hash is listed once; an unknown one has zeros.
		files = f.scrape("10.9.9.9:1", h1, unknown, h1)
		if len(files) != 2 || httpStats(t, files, unknown) != (ScrapeStats{}) {
			t.Errorf("scrape h1, unknown, h1: %v", files)
		}
		q := strings.Repeat("info_hash="+httpLT(h1[:])+"&", 5)
		if r := f.failure("/scrape?"+q, "10.9.9.9:1"); r != ErrTooManyInfoHashes.Reason {
			t.Errorf("5 hashes over a limit of 4: failure %q", r)
		}
		if r := f.failure("/scrape?info_hash=short", "10.9.9.9:1"); r != ErrInvalidInfoHash.Reason {
			t.Errorf("short hash: failure %q", r)
		}
		if r := f.failure("/scrape", "10.9.9.9:1"); r != httpErrFullScrape.Reason {
			t.Errorf("full scrape: failure %q", r)
		}
	})
}

func TestHTTPRetryIn(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		f := httpNewFixture(t, via, Config{
			RateLimit: RateLimitConfig{PerIP: 0.001, IPBurst: 2},
			Torrents: TorrentFunc(func(ctx context.Context, h InfoHash, id Identity) error {
				if h[0] == 0xEE {
					return &Error{Kind: KindTorrent, Reason: "banned torrent", RetryIn: RetryNever}
				}
				if h[0] == 0xDD {
					return ErrUnregisteredTorrent
				}
				return nil
			}),
		}, HTTPConfig{})
		var banned, unregistered InfoHash
		banned[0], unregistered[0] = 0xEE, 0xDD
		h := httpTestHash(14)

		m := f.announce("10.0.0.1:1", httpQuery(h, httpTestPeerID(1), 6881, 100, ""))
		if _, ok := m["retry in"]; ok {
			t.Errorf("success with retry in: %v", m)
		}
		f.announce("10.0.0.1:1", httpQuery(h, httpTestPeerID(1), 6881, 100, ""))
		target := "/announce?" + httpQuery(h, httpTestPeerID(1), 6881, 100, "")
		if r := f.failure(target, "10.0.0.1:1"); r != ErrRateLimited.Reason {
			t.Fatalf("third request: failure %q; want rate limited", r)
		}
		if m := f.get(target, "10.0.0.1:1"); m["retry in"] != int64(1) {
			t.Errorf("rate limited: retry in %v; want 1 (minute)", m["retry in"])
		}
		// The limit is charged once per request: another address still has
		// its whole burst.
		f.announce("10.0.0.2:1", httpQuery(h, httpTestPeerID(2), 6881, 100, ""))
		m = f.get("/announce?"+httpQuery(banned, httpTestPeerID(2), 6881, 100, ""), "10.0.0.2:1")
		if m["failure reason"] != "banned torrent" || m["retry in"] != "never" {
			t.Errorf("RetryNever: %v", m)
		}
		m = f.get("/announce?"+httpQuery(unregistered, httpTestPeerID(3), 6881, 100, ""), "10.0.0.3:1")
		if m["failure reason"] != "unregistered torrent" || m["retry in"] != nil {
			t.Errorf("unregistered: %v", m)
		}
	})
}

func TestHTTPInternalError(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		f := httpNewFixture(t, via, Config{}, HTTPConfig{})
		f.store.err = errors.New("disk on fire")
		r := f.failure("/announce?"+httpQuery(httpTestHash(1), httpTestPeerID(1), 6881, 100, ""), httpRemote(1))
		if r != errInternal.Reason {
			t.Errorf("internal error: failure %q; want %q", r, errInternal.Reason)
		}
		f.tr.Close()
		r = f.failure("/scrape?info_hash="+httpLT(make([]byte, 20)), httpRemote(1))
		if r != errInternal.Reason {
			t.Errorf("closed tracker: failure %q; want %q", r, errInternal.Reason)
		}
	})
}

// TestHTTPV2Hashes checks BEP 52: a truncated SHA-256 is a hash like any
// other, and a hybrid torrent's two hashes are two swarms.
func TestHTTPV2Hashes(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		f := httpNewFixture(t, via, Config{}, HTTPConfig{})
		info := []byte("d4:name4:test12:piece lengthi16384ee")
		v1 := InfoHash(sha1.Sum(info))
		sum := sha256.Sum256(info)
		v2 := InfoHash(sum[:20])
		// One client announces the hybrid under both hashes, with the same
		// peer id, port and key, as libtorrent does.
		for _, h := range []InfoHash{v1, v2} {
			f.announce(httpRemote(1), httpQuery(h, httpTestPeerID(1), 6881, 0, "event=started"))
		}
		f.announce(httpRemote(2), httpQuery(v2, httpTestPeerID(2), 6881, 100, "event=started"))
		files := f.scrape("10.9.9.9:1", v1, v2)
		if st := httpStats(t, files, v1); st.Complete != 1 || st.Incomplete != 0 {
			t.Errorf("v1 swarm: %+v; want the seeder alone", st)
		}
		if st := httpStats(t, files, v2); st.Complete != 1 || st.Incomplete != 1 {
			t.Errorf("v2 swarm: %+v; want a seeder and a leecher", st)
		}
		m := f.announce(httpRemote(2), httpQuery(v2, httpTestPeerID(2), 6881, 100, ""))
		if v4, _ := httpPeers(t, m); len(v4) != 1 {
			t.Errorf("leecher of the v2 swarm got %v", v4)
		}
	})
}

func TestHTTPNotFoundAndMethods(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		f := httpNewFixture(t, via, Config{}, HTTPConfig{})
		for _, target := range []string{
			"/", "/announce/", "/scrape/", "/announcex", "/announce/a/b", "/a/b/announce", "//announce",
			"/Announce", "/announce.php/x", "/favicon.ico", "/scrape.phpx", "/x/scrapes",
		} {
			w := f.do(http.MethodGet, target, httpRemote(1))
			if w.Code != http.StatusNotFound {
				t.Errorf("GET %q: status %d; want 404", target, w.Code)
			}
			if strict.Valid(w.Body.Bytes()) == nil {
				t.Errorf("GET %q: 404 body %q is bencoded", target, w.Body.Bytes())
			}
		}
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, "BREW"} {
			w := f.do(method, "/announce", httpRemote(1))
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s /announce: status %d, Allow %q; want 405 and GET, HEAD", method, w.Code, w.Header().Get("Allow"))
			}
			if m := httpDecode(t, method+" /announce", w.Body.Bytes()); m["failure reason"] != "method not allowed: use GET" {
				t.Errorf("%s /announce: reply %v; want failure reason method not allowed: use GET", method, m)
			}
		}
		q := httpQuery(httpTestHash(1), httpTestPeerID(1), 6881, 100, "")
		get := f.do(http.MethodGet, "/announce?"+q, httpRemote(1))
		head := f.do(http.MethodHead, "/announce?"+q, httpRemote(1))
		if head.Code != 200 || head.Header().Get("Content-Type") != "text/plain" ||
			head.Header().Get("Content-Length") != get.Header().Get("Content-Length") {
			t.Errorf("HEAD: status %d, headers %v; GET headers %v", head.Code, head.Header(), get.Header())
		}
	})
}

func TestHTTPConfigValidates(t *testing.T) {
	tr := newTestTracker(t, Config{})
	for _, cfg := range []HTTPConfig{
		{MaxFullScrape: -1},
		{FullScrapeCache: -time.Second},
		{FastWorkers: -1},
		{TrustedProxies: []netip.Prefix{{}}},
		{ClientIPHeader: "Forwarded"},
		{ClientIPHeader: "X Real IP"},
	} {
		if _, err := tr.NewHTTPHandler(cfg); err == nil {
			t.Errorf("NewHTTPHandler(%+v) succeeded; want an error", cfg)
		}
	}
	h, err := tr.NewHTTPHandler(HTTPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if h.cfg.MaxFullScrape != 100_000 || h.cfg.FullScrapeCache != time.Minute || h.gzipMin != 1024 || h.ipHeader != "X-Forwarded-For" {
		t.Errorf("defaults: %+v", h.cfg)
	}
}

// httpNullWriter is the least ResponseWriter: it keeps its header map and
// counts what is written.
type httpNullWriter struct {
	hdr  http.Header
	code int
	n    int
}

func (w *httpNullWriter) Header() http.Header         { return w.hdr }
func (w *httpNullWriter) WriteHeader(code int)        { w.code = code }
func (w *httpNullWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// TestHTTPAllocs checks that announces, scrapes and failures allocate
// nothing in the handler once warm.
func TestHTTPAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	f := httpNewFixture(t, httpNetHTTP, Config{}, HTTPConfig{TrackerID: "t1"})
	h := httpTestHash(20)
	f.join(h, 1, 60, 100)
	q := httpQuery(h, httpTestPeerID(1), 6881, 100, "event=&numwant=50&no_peer_id=1&supportcrypto=1&redundant=0")
	for _, tc := range []struct {
		name, target string
		header       []string
	}{
		{"announce", "/announce?" + q, nil},
		{"announce dict", "/announce?" + q + "&compact=0", nil},
		{"announce via proxy", "/announce?" + q, []string{"X-Forwarded-For", "198.51.100.1"}},
		{"scrape", "/scrape?info_hash=" + httpLT(h[:]) + "&info_hash=" + httpLT(h[:]), nil},
		{"scrape gzip", "/scrape?" + strings.Repeat("info_hash="+httpLT(h[:])+"&", 30), []string{"Accept-Encoding", "gzip"}},
		{"failure", "/announce?info_hash=x", nil},
	} {
		r := httptest.NewRequest(http.MethodGet, tc.target, nil)
		r.RemoteAddr = "192.168.1.1:5555"
		for i := 0; i+1 < len(tc.header); i += 2 {
			r.Header.Add(tc.header[i], tc.header[i+1])
		}
		f.h.cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}
		w := &httpNullWriter{hdr: http.Header{}}
		allocs := testing.AllocsPerRun(200, func() { f.h.ServeHTTP(w, r) })
		if w.code != http.StatusOK || w.n == 0 {
			t.Errorf("%s: status %d, %d bytes", tc.name, w.code, w.n)
		}
		if allocs != 0 {
			t.Errorf("%s: %v allocations per request; want 0", tc.name, allocs)
		}
	}
}

func TestHTTPObserver(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		var got []RequestInfo
		f := httpNewFixture(t, via, Config{Observer: ObserverFunc(func(r RequestInfo) {
			r.Duration = 0
			got = append(got, r)
		})}, HTTPConfig{})
		h := httpTestHash(1)
		f.get("/announce?"+httpQuery(h, httpTestPeerID(1), 6881, 5, ""), "192.0.2.1:5000")
		f.get("/scrape?info_hash="+httpLT(h[:]), "192.0.2.1:5000")
		f.get("/announce?"+httpQuery(h, httpTestPeerID(2), 0, 5, ""), "192.0.2.1:5000")
		f.do(http.MethodGet, "/favicon.ico", "192.0.2.1:5000")
		want := []RequestInfo{
			{Protocol: "http", Op: "announce"},
			{Protocol: "http", Op: "scrape"},
			{Protocol: "http", Op: "announce", Failure: "bad_request"},
		}
		if len(got) != len(want) {
			t.Fatalf("observed %+v; want %+v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("request %d observed as %+v; want %+v", i, got[i], want[i])
			}
		}
	})
}
