package tracker

// Tests of what the tracker does with the answers of plug-ins (policies
// and stores) that break their contract, through Go calls and through the
// HTTP handler; the UDP front-end has its own in udp_test.go.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annuaire/tracker/internal/udpwire"
)

// lockedBuffer is a bytes.Buffer safe for concurrent use, for logs
// written by a server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// httpEscape percent-encodes every byte of b.
func httpEscape(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, "%%%02X", c)
	}
	return sb.String()
}

// httpBody sends a GET for target to h from 10.0.0.1 and returns the body.
func httpBody(t *testing.T, h *HTTPHandler, target string) string {
	t.Helper()
	r := httptest.NewRequest("GET", target, nil)
	r.RemoteAddr = "10.0.0.1:40000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Body.String()
}

// httpAnnounceTarget is an HTTP announce of peer n to the swarm of h.
func httpAnnounceTarget(h InfoHash, n int, passkey string) string {
	id := testPeer(h, n, 10, EventStarted).PeerID
	q := "info_hash=" + httpEscape(h[:]) + "&peer_id=" + httpEscape(id[:]) + "&port=6881&uploaded=0&downloaded=0&left=10"
	if passkey != "" {
		q += "&passkey=" + passkey
	}
	return "/announce?" + q
}

// httpScrapeTarget is an HTTP scrape of hashes.
func httpScrapeTarget(passkey string, hashes ...InfoHash) string {
	q := "passkey=" + passkey
	for _, h := range hashes {
		q += "&info_hash=" + httpEscape(h[:])
	}
	return "/scrape?" + q
}

// An announce reply's peers, for stores that return a fixed list.
func peersOf(addrs ...string) []Peer {
	var ps []Peer
	for _, a := range addrs {
		ps = append(ps, Peer{Addr: netip.MustParseAddrPort(a)})
	}
	return ps
}

// TestBrokenPlugins: a policy or store that breaks its contract fails the
// request as an internal error, counted and logged (once a minute), and
// the client reads the generic text: no panic, no wrong reply, no index
// out of range.
func TestBrokenPlugins(t *testing.T) {
	badKind := &Error{Kind: numKinds + 3, Reason: "an unknown kind"}
	var nilError *Error
	storeAnnounce := func(f func(resp *AnnounceResponse)) Store {
		return funcStore{announce: func(_ context.Context, _ *AnnounceRequest, resp *AnnounceResponse) error {
			f(resp)
			return nil
		}}
	}
	storeScrape := func(f func(hashes []InfoHash, dst []ScrapeStats) []ScrapeStats) Store {
		return funcStore{scrape: func(_ context.Context, hashes []InfoHash, dst []ScrapeStats) ([]ScrapeStats, error) {
			return f(hashes, dst), nil
		}}
	}
	allow := TorrentFunc(func(context.Context, InfoHash, Identity) error { return nil })
	for _, tc := range []struct {
		name   string
		cfg    Config
		scrape bool
	}{
		{name: "client filter: Kind out of range", cfg: Config{Clients: ClientFunc(func(context.Context, PeerID, string) error { return badKind })}},
		{name: "passkey validator: nil *Error", cfg: Config{Passkeys: PasskeyFunc(func(context.Context, string) (Identity, error) { return Identity{}, nilError })}},
		{name: "torrent filter: Kind out of range, wrapped", cfg: Config{Torrents: TorrentFunc(func(context.Context, InfoHash, Identity) error {
			return fmt.Errorf("checking: %w", badKind)
		})}},
		{name: "store: Kind out of range", cfg: Config{Store: funcStore{announce: func(context.Context, *AnnounceRequest, *AnnounceResponse) error { return badKind }}}},
		{name: "store: negative counter", cfg: Config{Store: storeAnnounce(func(resp *AnnounceResponse) { resp.Incomplete = -1 })}},
		{name: "store: more peers than numwant", cfg: Config{DefaultNumWant: 2, Store: storeAnnounce(func(resp *AnnounceResponse) {
			resp.Peers = append(resp.Peers, peersOf("10.1.0.1:1", "10.1.0.2:1", "10.1.0.3:1")...)
		})}},
		{name: "store: peer of the other family", cfg: Config{Store: storeAnnounce(func(resp *AnnounceResponse) {
			resp.Peers = append(resp.Peers, peersOf("10.1.0.1:1", "[2001:db8::1]:1")...)
		})}},
		{name: "store: invalid address", cfg: Config{Store: storeAnnounce(func(resp *AnnounceResponse) { resp.Peers = append(resp.Peers, Peer{}) })}},
		{name: "store: unspecified address", cfg: Config{Store: storeAnnounce(func(resp *AnnounceResponse) { resp.Peers = append(resp.Peers, peersOf("0.0.0.0:6881")...) })}},
		{name: "store: port 0", cfg: Config{Store: storeAnnounce(func(resp *AnnounceResponse) { resp.Peers = append(resp.Peers, peersOf("10.1.0.1:0")...) })}},
		{name: "store: fewer scrape entries", scrape: true, cfg: Config{Store: storeScrape(func(hashes []InfoHash, dst []ScrapeStats) []ScrapeStats {
			return append(dst, make([]ScrapeStats, len(hashes)-1)...)
		})}},
		{name: "store: fewer scrape entries, with a torrent filter", scrape: true, cfg: Config{Torrents: allow, Store: storeScrape(func(hashes []InfoHash, dst []ScrapeStats) []ScrapeStats {
			return dst
		})}},
		{name: "store: more scrape entries", scrape: true, cfg: Config{Store: storeScrape(func(hashes []InfoHash, dst []ScrapeStats) []ScrapeStats {
			return append(dst, make([]ScrapeStats, len(hashes)+1)...)
		})}},
		{name: "store: negative scrape counter", scrape: true, cfg: Config{Store: storeScrape(func(hashes []InfoHash, dst []ScrapeStats) []ScrapeStats {
			for range hashes {
				dst = append(dst, ScrapeStats{Downloaded: -5})
			}
			return dst
		})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg := tc.cfg
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			tr := newTestTracker(t, cfg)
			h, err := tr.NewHTTPHandler(HTTPConfig{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			hashes := []InfoHash{hashN(1), hashN(2)}
			const rounds = 3
			for i := range rounds {
				var err error
				var target string
				if tc.scrape {
					_, err = tr.Scrape(ctx, &ScrapeRequest{InfoHashes: hashes, Passkey: "pk"})
					target = httpScrapeTarget("pk", hashes...)
				} else {
					req := testPeer(hashN(1), i, 10, EventStarted)
					req.Passkey = "pk"
					_, err = tr.Announce(ctx, req)
					target = httpAnnounceTarget(hashN(1), i, "pk")
				}
				if e, ok := clientError(err); err == nil || ok || e != errInternal {
					t.Errorf("Go call %d: %v; want an internal error", i, err)
				}
				body := httpBody(t, h, target)
				if !strings.Contains(body, "14:failure reason22:internal tracker error") {
					t.Errorf("HTTP request %d: reply %q; want the generic failure", i, body)
				}
			}
			if n := tr.Stats().Failures["internal"]; n != 2*rounds {
				t.Errorf("%d internal failures counted; want %d", n, 2*rounds)
			}
			if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
				t.Errorf("%d lines logged for %d failures; want 1 (once a minute):\n%s", n, 2*rounds, logs.String())
			}
		})
	}
}

// TestRareLog: one line per minute, and the next tells how many were held
// back.
func TestRareLog(t *testing.T) {
	var l rareLog
	t0 := time.Unix(1_700_000_000, 0)
	for _, step := range []struct {
		at   time.Duration
		ok   bool
		held int
	}{
		{0, true, 0},
		{time.Second, false, 0},
		{59 * time.Second, false, 0},
		{time.Minute, true, 2},
		{time.Minute + time.Second, false, 0},
		{3 * time.Minute, true, 1},
	} {
		if ok, held := l.allow(t0.Add(step.at)); ok != step.ok || held != step.held {
			t.Errorf("allow at %v = %v, %d; want %v, %d", step.at, ok, held, step.ok, step.held)
		}
	}
}

// deadlineClients is a client filter that never blocks and records
// whether its context has a deadline.
type deadlineClients struct{ had atomic.Bool }

func (f *deadlineClients) AllowClient(ctx context.Context, _ PeerID, _ string) error {
	_, ok := ctx.Deadline()
	f.had.Store(ok)
	return nil
}

func (*deadlineClients) NonBlocking() bool { return true }

// TestRequestTimeout: a request that needs a plug-in that may block gets
// the tracker's deadline, over any front-end (here Go calls and HTTP); a
// plug-in cut short by it reads as "tracker busy, retry", counted as
// unavailable and not logged. A caller's earlier deadline stands, and
// requests that need only plug-ins that never block get none.
func TestRequestTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	ctx := context.Background()
	var logs bytes.Buffer
	slow := newHeldValidator()
	defer slow.free()
	clients := new(deadlineClients)
	tr := newTestTracker(t, Config{
		Passkeys:       slow,
		Clients:        clients,
		RequestTimeout: timeout,
		Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
	})
	req := testPeer(hashN(1), 1, 10, EventStarted)
	req.Passkey = "pk"
	start := time.Now()
	if _, err := tr.Announce(ctx, req); !errors.Is(err, ErrBusy) {
		t.Errorf("announce with a slow validator: %v; want ErrBusy", err)
	}
	if d := time.Since(start); d < timeout {
		t.Errorf("failed after %v; want the %v deadline", d, timeout)
	}
	if d := <-slow.deadlines; d <= 0 || d > timeout {
		t.Errorf("the validator's deadline is %v away; want at most %v", d, timeout)
	}
	if !clients.had.Load() {
		t.Error("the client filter's context has no deadline; want the request's")
	}
	h, err := tr.NewHTTPHandler(HTTPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if body := httpBody(t, h, httpAnnounceTarget(hashN(1), 2, "pk")); !strings.Contains(body, "14:failure reason19:tracker busy, retry") {
		t.Errorf("HTTP announce with a slow validator: %q; want tracker busy", body)
	}
	<-slow.deadlines
	short, cancel := context.WithTimeout(ctx, timeout/4)
	defer cancel()
	tr.Announce(short, req)
	if d := <-slow.deadlines; d > timeout/4 {
		t.Errorf("with the caller's deadline %v away, the validator's is %v away", timeout/4, d)
	}
	if n := tr.Stats().Failures["unavailable"]; n != 3 {
		t.Errorf("%d unavailable failures; want 3", n)
	}
	if logs.Len() > 0 {
		t.Errorf("logged %q; want nothing", logs.String())
	}

	// Only plug-ins that never block: no deadline, and no allocation for
	// one.
	fast := newTestTracker(t, Config{Clients: clients, Passkeys: NewPasskeySet()})
	fast.Announce(ctx, req)
	if clients.had.Load() {
		t.Error("with plug-ins that never block, the context has a deadline; want none")
	}
	// RequestTimeout Disabled: no deadline.
	slow.free()
	none := newTestTracker(t, Config{Passkeys: slow, RequestTimeout: Disabled})
	for len(slow.deadlines) > 0 {
		<-slow.deadlines
	}
	none.Announce(ctx, req)
	if d := <-slow.deadlines; d != -1 {
		t.Errorf("RequestTimeout disabled: the validator's deadline is %v away; want none", d)
	}
}

// TestScrapeTimeout: a scrape whose torrent filter runs out of time fails
// as a whole with ErrBusy, rather than reading as zeros.
func TestScrapeTimeout(t *testing.T) {
	tr := newTestTracker(t, Config{
		RequestTimeout: 50 * time.Millisecond,
		Torrents: TorrentFunc(func(ctx context.Context, _ InfoHash, _ Identity) error {
			<-ctx.Done()
			return ctx.Err()
		}),
	})
	if _, err := tr.Scrape(context.Background(), &ScrapeRequest{InfoHashes: []InfoHash{hashN(1), hashN(2)}}); !errors.Is(err, ErrBusy) {
		t.Errorf("scrape with a slow filter: %v; want ErrBusy", err)
	}
}

// TestNonBlocking: the built-in plug-ins say they never block; functions
// and unknown types may; combinations never block when none of their
// parts does, and AnyPasskey's validators before the first that may are
// tried on their own.
func TestNonBlocking(t *testing.T) {
	set, list, clients := NewPasskeySet(), NewTorrentAllowList(), NewClientDenyList()
	mem, err := NewMemoryStore(MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	pkFunc := PasskeyFunc(func(context.Context, string) (Identity, error) { return Identity{}, nil })
	torrentFunc := TorrentFunc(func(context.Context, InfoHash, Identity) error { return nil })
	clientFunc := ClientFunc(func(context.Context, PeerID, string) error { return nil })
	for _, tc := range []struct {
		name string
		v    any
		want bool
	}{
		{"PasskeySet", set, false},
		{"TorrentList", list, false},
		{"ClientList", clients, false},
		{"MemoryStore", mem, false},
		{"PasskeyFunc", pkFunc, true},
		{"TorrentFunc", torrentFunc, true},
		{"ClientFunc", clientFunc, true},
		{"a store of another type", &remoteStore{Store: mem}, true},
		{"AnyPasskey of sets", AnyPasskey(set, NewPasskeySet()), false},
		{"AnyPasskey with a function", AnyPasskey(set, pkFunc), true},
		{"AllTorrents of lists", AllTorrents(list, NewTorrentDenyList()), false},
		{"AllTorrents with a function", AllTorrents(list, torrentFunc), true},
		{"AllClients of lists", AllClients(clients), false},
		{"AllClients with a function", AllClients(clientFunc, clients), true},
	} {
		if got := mayBlock(tc.v); got != tc.want {
			t.Errorf("%s: may block = %v; want %v", tc.name, got, tc.want)
		}
	}
	set.Set("fast", 1)
	tr := newTestTracker(t, Config{Passkeys: AnyPasskey(set, pkFunc, NewPasskeySet())})
	if !tr.blocks.passkeys || len(tr.blocks.fastPasskeys) != 1 {
		t.Fatalf("AnyPasskey(set, func, set): blocks %+v; want one validator tried on its own", tr.blocks)
	}
	for pk, want := range map[string]error{"fast": nil, "slow": errWouldBlock} {
		if _, err := tr.identifyFlags(context.Background(), pk, noWait); err != want {
			t.Errorf("passkey %q on a reader: %v; want %v", pk, err, want)
		}
	}
}

// TestPublicScrape: with PublicScrape, a private tracker answers scrapes
// without a passkey, over Go calls, HTTP and UDP alike: the counters of
// the torrents the filter allows for the zero Identity, zeros for the
// others and for unknown hashes. A scrape with a passkey still needs a
// valid one, and the HTTP full scrape still needs one. Without it, such
// scrapes are refused.
func TestPublicScrape(t *testing.T) {
	ctx := context.Background()
	open, members := hashN(1), hashN(2) // members: listed for logged-in users only
	users := NewPasskeySet()
	users.Set("alice", 7)
	var anonymous atomic.Int32
	filter := TorrentFunc(func(_ context.Context, h InfoHash, id Identity) error {
		if id == (Identity{}) {
			anonymous.Add(1)
		}
		if h == members && id.UserID == 0 {
			return ErrUnregisteredTorrent
		}
		return nil
	})
	for _, public := range []bool{true, false} {
		tr := newTestTracker(t, Config{Passkeys: users, Torrents: filter, PublicScrape: public})
		for _, h := range []InfoHash{open, members} {
			req := testPeer(h, 1, 10, EventStarted)
			req.Passkey = "alice"
			if _, err := tr.Announce(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
		hashes := []InfoHash{open, members, hashN(3)}
		leecher := ScrapeStats{Incomplete: 1, Downloaders: 1}
		anonymous.Store(0)
		resp, err := tr.Scrape(ctx, &ScrapeRequest{InfoHashes: hashes})
		switch {
		case !public && !errors.Is(err, ErrPasskeyRequired):
			t.Errorf("PublicScrape off: scrape without passkey: %v; want ErrPasskeyRequired", err)
		case public && (err != nil || resp.Files[0] != leecher || resp.Files[1] != (ScrapeStats{}) || resp.Files[2] != (ScrapeStats{})):
			t.Errorf("PublicScrape: scrape without passkey: %+v, %v; want a leecher, then zeros, zeros", resp, err)
		case public && anonymous.Load() != 3:
			t.Errorf("PublicScrape: the filter saw the zero identity %d times; want 3", anonymous.Load())
		}
		if _, err := tr.Scrape(ctx, &ScrapeRequest{InfoHashes: hashes, Passkey: "mallory"}); !errors.Is(err, ErrInvalidPasskey) {
			t.Errorf("public %v: scrape with a bad passkey: %v; want ErrInvalidPasskey", public, err)
		}
		resp, err = tr.Scrape(ctx, &ScrapeRequest{InfoHashes: hashes, Passkey: "alice"})
		if err != nil || resp.Files[1] != leecher {
			t.Errorf("public %v: scrape as a member: %+v, %v; want the members' torrent counted", public, resp, err)
		}

		// HTTP.
		h, err := tr.NewHTTPHandler(HTTPConfig{FullScrape: true})
		if err != nil {
			t.Fatal(err)
		}
		body := httpBody(t, h, "/scrape?info_hash="+httpEscape(open[:]))
		counted := strings.Contains(body, "d8:completei0e10:downloadedi0e11:downloadersi1e10:incompletei1ee")
		if counted != public {
			t.Errorf("public %v: HTTP scrape without passkey: %q", public, body)
		}
		if body := httpBody(t, h, "/scrape"); !strings.Contains(body, "failure reason") {
			t.Errorf("public %v: HTTP full scrape without passkey: %q; want a failure", public, body)
		}

		// UDP: scrapes carry no passkey.
		th := &testHandler{t: t, h: newTestServer(t, tr, UDPConfig{}).newHandler(), now: udpT0}
		id := th.connect(clientA)
		r := th.send(clientA, udpwire.AppendScrapeRequest(nil, id, 5, open, members))
		if public {
			if got := udpScrapeReply(t, r, 5); len(got) != 2 || got[0] != [3]uint32{0, 0, 1} || got[1] != [3]uint32{} {
				t.Errorf("PublicScrape: UDP scrape: %v; want [0 0 1] [0 0 0]", got)
			}
		} else if msg := errorText(t, r, 5); msg != errUDPScrapeKey.Reason {
			t.Errorf("PublicScrape off: UDP scrape: %q; want %q", msg, errUDPScrapeKey.Reason)
		}
	}
}
