package tracker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func newTestTracker(t testing.TB, cfg Config) *Tracker {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{AnnounceInterval: time.Millisecond},
		{AnnounceInterval: 48 * time.Hour},
		{AnnounceInterval: time.Minute, MinAnnounceInterval: 2 * time.Minute},
		{MinAnnounceInterval: -time.Second},
		{MinScrapeInterval: -time.Second},
		{DefaultNumWant: 300},
		{MaxNumWant: -1},
		{MaxScrapeHashes: -1},
		{RateLimit: RateLimitConfig{PerIP: -1}},
		{RateLimit: RateLimitConfig{IPBurst: -1}},
		{RateLimit: RateLimitConfig{IPv6Prefix: 200}},
		{RateLimit: RateLimitConfig{MaxKeys: -5}},
		{Memory: MemoryConfig{PeerTTL: 24 * time.Hour}},
		// Peers would expire before they announce again.
		{AnnounceInterval: 24 * time.Hour},
		{AnnounceInterval: 15 * time.Hour},
		{Memory: MemoryConfig{PeerTTL: 10 * time.Minute}},
		{Store: ttlStore{Store: funcStore{}, ttl: 32 * time.Minute}},
	} {
		if tr, err := New(cfg); err == nil {
			tr.Close()
			t.Errorf("New(%+v) succeeded; want an error", cfg)
		}
	}
}

// funcStore is a Store made of functions, for tests of what the tracker
// does with a store's answers. Without them it keeps nothing: announces
// get no peer, scrapes zeros.
type funcStore struct {
	announce func(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse) error
	scrape   func(ctx context.Context, hashes []InfoHash, dst []ScrapeStats) ([]ScrapeStats, error)
}

func (s funcStore) Announce(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse) error {
	if s.announce == nil {
		return nil
	}
	return s.announce(ctx, req, resp)
}

func (s funcStore) Scrape(ctx context.Context, hashes []InfoHash, dst []ScrapeStats) ([]ScrapeStats, error) {
	if s.scrape == nil {
		return append(dst, make([]ScrapeStats, len(hashes))...), nil
	}
	return s.scrape(ctx, hashes, dst)
}

func (funcStore) Close() error { return nil }

// ttlStore is a store that declares its peer TTL.
type ttlStore struct {
	Store
	ttl time.Duration
}

func (s ttlStore) PeerTTL() time.Duration { return s.ttl }

// TestPeerTTLCoversInterval: with a long interval, a peer is still there
// when it announces again, at the end of the longest wait the tracker may
// have told it (the interval and the whole jitter). The error for an
// interval the memory store cannot serve names the limit.
func TestPeerTTLCoversInterval(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []Config{
		{AnnounceInterval: 12 * time.Hour},
		{AnnounceInterval: 14 * time.Hour},
		{AnnounceInterval: 16 * time.Hour, IntervalJitter: Disabled},
	} {
		tr := newTestTracker(t, cfg)
		s := tr.store.(*MemoryStore)
		req := testPeer(hashN(1), 1, 1, EventStarted)
		if _, err := tr.Announce(ctx, req); err != nil {
			t.Fatal(err)
		}
		// The sweeper visits every peer at least once a minute: sweep
		// every 10 minutes of the wait.
		wait := tr.cfg.AnnounceInterval + tr.cfg.IntervalJitter
		for at := time.Duration(0); ; at = min(at+10*time.Minute, wait) {
			s.advance(s.start.Add(at))
			for i := range s.shards {
				s.sweep(&s.shards[i])
			}
			if at == wait {
				break
			}
		}
		if c, _ := s.Counts(ctx); c.Peers != 1 {
			t.Errorf("interval %v: %d peers %v after the announce; want 1", cfg.AnnounceInterval, c.Peers, wait)
		}
	}
	_, err := New(Config{AnnounceInterval: 24 * time.Hour})
	if err == nil || !strings.Contains(err.Error(), "16h0m0s") {
		t.Errorf("New with a 24h interval: %v; want an error naming the 16h limit", err)
	}
	tr, err := New(Config{Store: ttlStore{Store: funcStore{}, ttl: 33 * time.Minute}})
	if err != nil {
		t.Errorf("New with a store keeping peers 33 minutes, interval 30m plus 3m of jitter: %v", err)
	} else {
		tr.Close()
	}
}

// TestNewDefaults checks the defaults that depend on other settings: a
// MaxNumWant below the default DefaultNumWant lowers it, and a nil Logger
// is slog's default logger, as net/http's is the log package's.
func TestNewDefaults(t *testing.T) {
	tr := newTestTracker(t, Config{MaxNumWant: 30})
	if tr.cfg.DefaultNumWant != 30 {
		t.Errorf("MaxNumWant 30 alone: DefaultNumWant %d; want 30", tr.cfg.DefaultNumWant)
	}
	if tr := newTestTracker(t, Config{MaxNumWant: 500}); tr.cfg.DefaultNumWant != 50 {
		t.Errorf("MaxNumWant 500: DefaultNumWant %d; want 50", tr.cfg.DefaultNumWant)
	}
	if tr.log != slog.Default() {
		t.Errorf("nil Logger: the tracker logs to %v; want slog.Default()", tr.log)
	}
}

func TestAnnounceValidates(t *testing.T) {
	tr := newTestTracker(t, Config{})
	good := func() *AnnounceRequest { return testPeer(hashN(1), 1, 10, EventStarted) }
	for _, tc := range []struct {
		name string
		edit func(*AnnounceRequest)
		want error
	}{
		{"port 0", func(r *AnnounceRequest) { r.Addr = netip.AddrPortFrom(r.Addr.Addr(), 0) }, ErrInvalidPort},
		{"no address", func(r *AnnounceRequest) { r.Addr = netip.AddrPort{} }, ErrInvalidAddress},
		{"unspecified address", func(r *AnnounceRequest) { r.Addr = netip.MustParseAddrPort("0.0.0.0:6881") }, ErrInvalidAddress},
		{"mapped unspecified", func(r *AnnounceRequest) { r.Addr = netip.MustParseAddrPort("[::ffff:0.0.0.0]:6881") }, ErrInvalidAddress},
		{"negative left", func(r *AnnounceRequest) { r.Left = -1 }, ErrInvalidCounter},
		{"negative uploaded", func(r *AnnounceRequest) { r.Uploaded = -1 }, ErrInvalidCounter},
		{"negative downloaded", func(r *AnnounceRequest) { r.Downloaded = -5 }, ErrInvalidCounter},
		{"unknown event", func(r *AnnounceRequest) { r.Event = 9 }, ErrInvalidEvent},
		{"valid", func(*AnnounceRequest) {}, nil},
	} {
		req := good()
		tc.edit(req)
		_, err := tr.Announce(context.Background(), req)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: Announce = %v; want %v", tc.name, err, tc.want)
		}
		if tc.want != nil {
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindBadRequest {
				t.Errorf("%s: error %v is not a client-visible bad request", tc.name, err)
			}
		}
	}
	if got := tr.Stats().Failures["bad_request"]; got != 8 {
		t.Errorf("bad_request failures = %d; want 8", got)
	}
}

func TestNumWant(t *testing.T) {
	tr := newTestTracker(t, Config{DefaultNumWant: 30, MaxNumWant: 100})
	h := hashN(1)
	for i := range 150 {
		if _, err := tr.Announce(context.Background(), testPeer(h, i, 5, EventStarted)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		numwant int
		event   Event
		want    int
	}{
		{0, EventNone, 30},
		{-1, EventNone, 0},
		{7, EventNone, 7},
		{100, EventNone, 100},
		{5000, EventNone, 100},
		{50, EventStopped, 0},
	} {
		req := testPeer(h, 1, 5, tc.event)
		req.NumWant = tc.numwant
		resp, err := tr.Announce(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Peers) != tc.want {
			t.Errorf("numwant %d, event %v: %d peers; want %d", tc.numwant, tc.event, len(resp.Peers), tc.want)
		}
		if tc.event != EventStopped && resp.Incomplete != 150 {
			t.Errorf("numwant %d: incomplete = %d; want 150 (counts come even without peers)", tc.numwant, resp.Incomplete)
		}
	}
}

func TestIntervals(t *testing.T) {
	tr := newTestTracker(t, Config{AnnounceInterval: 20 * time.Minute, IntervalJitter: 2 * time.Minute})
	seen := map[time.Duration]bool{}
	for i := range 200 {
		resp, err := tr.Announce(context.Background(), testPeer(hashN(1), i, 1, EventStarted))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Interval < 20*time.Minute || resp.Interval >= 22*time.Minute {
			t.Fatalf("interval %v outside [20m, 22m)", resp.Interval)
		}
		if resp.MinInterval != 10*time.Minute {
			t.Fatalf("min interval %v; want 10m (half the interval)", resp.MinInterval)
		}
		seen[resp.Interval.Truncate(10*time.Second)] = true
	}
	if len(seen) < 5 {
		t.Errorf("200 replies used only %d distinct intervals: no jitter", len(seen))
	}
	fixed := newTestTracker(t, Config{AnnounceInterval: time.Hour, IntervalJitter: Disabled})
	resp, err := fixed.Announce(context.Background(), testPeer(hashN(1), 1, 1, EventStarted))
	if err != nil || resp.Interval != time.Hour {
		t.Errorf("jitter disabled: interval %v, %v; want exactly 1h", resp.Interval, err)
	}
}

func TestAnnounceNormalizesRequest(t *testing.T) {
	tr := newTestTracker(t, Config{})
	a := testPeer(hashN(1), 1, 0, EventStarted)
	a.Addr = netip.MustParseAddrPort("[::ffff:192.0.2.7]:6881")
	a.NumWant = 0
	if _, err := tr.Announce(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if !a.Addr.Addr().Is4() || a.NumWant != 50 {
		t.Errorf("request after Announce: addr %v, numwant %d; want it unmapped and numwant resolved to 50", a.Addr, a.NumWant)
	}
	b := testPeer(hashN(1), 2, 5, EventStarted)
	resp, err := tr.Announce(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != 1 || resp.Peers[0].Addr != netip.MustParseAddrPort("192.0.2.7:6881") {
		t.Errorf("IPv4 leecher got %v; want the seeder that announced from a mapped address, as IPv4", resp.Peers)
	}
}

func TestAnnounceIntoAllocs(t *testing.T) {
	tr := newTestTracker(t, Config{})
	for i := range 20 {
		if _, err := tr.Announce(context.Background(), testPeer(hashN(1), i, 1, EventStarted)); err != nil {
			t.Fatal(err)
		}
	}
	resp := &AnnounceResponse{Peers: make([]Peer, 0, 200), Warning: "stale"}
	req := testPeer(hashN(1), 0, 1, EventNone)
	allocs := testing.AllocsPerRun(100, func() {
		req.NumWant = 50
		if err := tr.AnnounceInto(context.Background(), req, resp); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AnnounceInto allocates %.1f times per call; want 0", allocs)
	}
	if len(resp.Peers) != 19 || resp.Warning != "" {
		t.Errorf("reused reply: %d peers, warning %q; want 19 and none", len(resp.Peers), resp.Warning)
	}
}

func TestRateLimitPerIP(t *testing.T) {
	tr := newTestTracker(t, Config{RateLimit: RateLimitConfig{PerIP: 0.001, IPBurst: 3}})
	ctx := context.Background()
	try := func(addr string) error {
		req := testPeer(hashN(1), 1, 1, EventNone)
		req.Addr = netip.MustParseAddrPort(addr)
		_, err := tr.Announce(ctx, req)
		return err
	}
	for i := range 3 {
		if err := try("192.0.2.1:6881"); err != nil {
			t.Fatalf("request %d within the burst: %v", i, err)
		}
	}
	if err := try("192.0.2.1:7000"); !errors.Is(err, ErrRateLimited) {
		t.Errorf("request past the burst = %v; want ErrRateLimited", err)
	}
	if err := try("192.0.2.2:6881"); err != nil {
		t.Errorf("another address is limited too: %v", err)
	}
	// IPv6 addresses are limited by /64.
	for i := range 3 {
		if err := try("[2001:db8:1:2::" + string(rune('a'+i)) + "]:6881"); err != nil {
			t.Fatalf("IPv6 request %d: %v", i, err)
		}
	}
	if err := try("[2001:db8:1:2:ffff::1]:6881"); !errors.Is(err, ErrRateLimited) {
		t.Errorf("fourth request from the same /64 = %v; want ErrRateLimited", err)
	}
	if err := try("[2001:db8:1:3::1]:6881"); err != nil {
		t.Errorf("another /64 is limited too: %v", err)
	}
	// Scrapes share the budget.
	_, err := tr.Scrape(ctx, &ScrapeRequest{InfoHashes: []InfoHash{hashN(1)}, Addr: netip.MustParseAddr("192.0.2.1")})
	if !errors.Is(err, ErrRateLimited) {
		t.Errorf("scrape from a limited address = %v; want ErrRateLimited", err)
	}
	if got := tr.Stats().Failures["rate_limited"]; got != 3 {
		t.Errorf("rate_limited failures = %d; want 3", got)
	}
}

func TestRateLimitPerPasskey(t *testing.T) {
	keys := PasskeyFunc(func(_ context.Context, pk string) (Identity, error) {
		if strings.HasPrefix(pk, "good") {
			return Identity{UserID: 7}, nil
		}
		return Identity{}, ErrInvalidPasskey
	})
	tr := newTestTracker(t, Config{Passkeys: keys, RateLimit: RateLimitConfig{PerPasskey: 0.001, PasskeyBurst: 2}})
	try := func(pk string, n int) error {
		req := testPeer(hashN(1), n, 1, EventNone)
		req.Passkey = pk
		_, err := tr.Announce(context.Background(), req)
		return err
	}
	if err := try("good1", 1); err != nil {
		t.Fatal(err)
	}
	if err := try("good1", 2); err != nil {
		t.Fatal(err)
	}
	if err := try("good1", 3); !errors.Is(err, ErrRateLimited) {
		t.Errorf("third use of one passkey from another address = %v; want ErrRateLimited", err)
	}
	if err := try("good2", 1); err != nil {
		t.Errorf("another passkey is limited too: %v", err)
	}
}

func TestPolicies(t *testing.T) {
	outage := errors.New("database unreachable")
	var logs bytes.Buffer
	banned := InfoHash{0xBA}
	tr := newTestTracker(t, Config{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Passkeys: PasskeyFunc(func(_ context.Context, pk string) (Identity, error) {
			switch pk {
			case "alice":
				return Identity{UserID: 1, Warning: "ratio below 0.5"}, nil
			case "outage":
				return Identity{}, outage
			}
			return Identity{}, ErrInvalidPasskey
		}),
		Torrents: TorrentFunc(func(_ context.Context, h InfoHash, id Identity) error {
			if h == banned {
				return ErrUnregisteredTorrent
			}
			return nil
		}),
		Clients: ClientFunc(func(_ context.Context, id PeerID, ua string) error {
			if string(id[:3]) == "-XL" {
				return ErrClientNotAllowed
			}
			return nil
		}),
	})
	ctx := context.Background()
	req := func(pk string, h InfoHash, prefix string) *AnnounceRequest {
		r := testPeer(h, 1, 1, EventStarted)
		r.Passkey = pk
		copy(r.PeerID[:], prefix)
		return r
	}
	for _, tc := range []struct {
		name string
		req  *AnnounceRequest
		want error
		kind Kind
	}{
		{"no passkey", req("", hashN(1), "-qB"), ErrPasskeyRequired, KindPasskey},
		{"bad passkey", req("mallory", hashN(1), "-qB"), ErrInvalidPasskey, KindPasskey},
		{"banned client", req("alice", hashN(1), "-XL"), ErrClientNotAllowed, KindClient},
		{"unregistered", req("alice", banned, "-qB"), ErrUnregisteredTorrent, KindTorrent},
		{"outage", req("outage", hashN(1), "-qB"), outage, KindInternal},
	} {
		before := tr.Stats().Failures[tc.kind.String()]
		_, err := tr.Announce(ctx, tc.req)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Announce = %v; want %v", tc.name, err, tc.want)
		}
		if got := tr.Stats().Failures[tc.kind.String()] - before; got != 1 {
			t.Errorf("%s: %s failures rose by %d; want 1", tc.name, tc.kind, got)
		}
	}
	if !strings.Contains(logs.String(), "database unreachable") {
		t.Errorf("the internal error was not logged; log: %q", logs.String())
	}
	if e, ok := clientError(outage); ok || e.Reason != "internal tracker error" {
		t.Errorf("clientError(outage) = %v, %v; want the generic text", e, ok)
	}
	resp, err := tr.Announce(ctx, req("alice", hashN(1), "-qB"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Identity.UserID != 1 || resp.Warning != "ratio below 0.5" {
		t.Errorf("reply identity %+v, warning %q; want the validator's", resp.Identity, resp.Warning)
	}
	// Scrapes need the passkey too, and hide refused torrents.
	if _, err := tr.Scrape(ctx, &ScrapeRequest{InfoHashes: []InfoHash{hashN(1)}}); !errors.Is(err, ErrPasskeyRequired) {
		t.Errorf("scrape without passkey = %v; want ErrPasskeyRequired", err)
	}
	sr, err := tr.Scrape(ctx, &ScrapeRequest{InfoHashes: []InfoHash{hashN(1), banned}, Passkey: "alice"})
	if err != nil || len(sr.Files) != 2 || sr.Files[0].Incomplete != 1 || sr.Files[1] != (ScrapeStats{}) {
		t.Errorf("scrape = %+v, %v; want one leecher, then zeros for the refused torrent", sr, err)
	}
}

func TestComposition(t *testing.T) {
	ctx := context.Background()
	outage := errors.New("timeout")
	set := PasskeyFunc(func(_ context.Context, pk string) (Identity, error) {
		if pk == "cached" {
			return Identity{UserID: 1}, nil
		}
		return Identity{}, ErrInvalidPasskey
	})
	db := PasskeyFunc(func(_ context.Context, pk string) (Identity, error) {
		switch pk {
		case "fresh":
			return Identity{UserID: 2}, nil
		case "slow":
			return Identity{}, outage
		}
		return Identity{}, ErrInvalidPasskey
	})
	v := AnyPasskey(set, db)
	for _, tc := range []struct {
		pk   string
		user uint64
		err  error
	}{
		{"cached", 1, nil},
		{"fresh", 2, nil},
		{"slow", 0, outage},
		{"nobody", 0, ErrInvalidPasskey},
	} {
		id, err := v.ValidatePasskey(ctx, tc.pk)
		if id.UserID != tc.user || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("AnyPasskey(%q) = %d, %v; want %d, %v", tc.pk, id.UserID, err, tc.user, tc.err)
		}
	}
	allow := TorrentFunc(func(_ context.Context, h InfoHash, _ Identity) error {
		if h[0] < 10 {
			return nil
		}
		return ErrUnregisteredTorrent
	})
	deny := TorrentFunc(func(_ context.Context, h InfoHash, _ Identity) error {
		if h[0] == 5 {
			return &Error{Kind: KindTorrent, Reason: "torrent removed"}
		}
		return nil
	})
	both := AllTorrents(allow, deny)
	for _, tc := range []struct {
		first  byte
		reason string
	}{{1, ""}, {5, "torrent removed"}, {20, "unregistered torrent"}} {
		err := both.AllowTorrent(ctx, InfoHash{tc.first}, Identity{})
		var e *Error
		if (tc.reason == "") != (err == nil) || (err != nil && (!errors.As(err, &e) || e.Reason != tc.reason)) {
			t.Errorf("AllTorrents(%d) = %v; want %q", tc.first, err, tc.reason)
		}
	}
	clients := AllClients(
		ClientFunc(func(_ context.Context, id PeerID, _ string) error { return nil }),
		ClientFunc(func(_ context.Context, id PeerID, ua string) error {
			if ua == "bad" {
				return ErrClientNotAllowed
			}
			return nil
		}),
	)
	if clients.AllowClient(ctx, PeerID{}, "good") != nil || !errors.Is(clients.AllowClient(ctx, PeerID{}, "bad"), ErrClientNotAllowed) {
		t.Error("AllClients does not require every filter")
	}
}

func TestScrape(t *testing.T) {
	tr := newTestTracker(t, Config{MaxScrapeHashes: 3, MinScrapeInterval: 7 * time.Minute})
	ctx := context.Background()
	if _, err := tr.Announce(ctx, testPeer(hashN(1), 1, 0, EventStarted)); err != nil {
		t.Fatal(err)
	}
	resp, err := tr.Scrape(ctx, &ScrapeRequest{InfoHashes: []InfoHash{hashN(2), hashN(1)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Files) != 2 || resp.Files[0] != (ScrapeStats{}) || resp.Files[1].Complete != 1 || resp.MinInterval != 7*time.Minute {
		t.Errorf("Scrape = %+v", resp)
	}
	if _, err := tr.Scrape(ctx, &ScrapeRequest{}); !errors.Is(err, ErrNoInfoHash) {
		t.Errorf("empty scrape = %v; want ErrNoInfoHash", err)
	}
	if _, err := tr.Scrape(ctx, &ScrapeRequest{InfoHashes: make([]InfoHash, 4)}); !errors.Is(err, ErrTooManyInfoHashes) {
		t.Errorf("scrape of 4 = %v; want ErrTooManyInfoHashes", err)
	}
	into := &ScrapeResponse{Files: make([]ScrapeStats, 0, 8)}
	sreq := &ScrapeRequest{InfoHashes: []InfoHash{hashN(1), hashN(3)}}
	allocs := testing.AllocsPerRun(100, func() {
		if err := tr.ScrapeInto(ctx, sreq, into); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ScrapeInto allocates %.1f times; want 0", allocs)
	}
}

func TestStats(t *testing.T) {
	tr := newTestTracker(t, Config{})
	ctx := context.Background()
	for i := range 5 {
		if _, err := tr.Announce(ctx, testPeer(hashN(i%2), i, int64(i%2), EventStarted)); err != nil {
			t.Fatal(err)
		}
	}
	tr.Announce(ctx, &AnnounceRequest{}) // fails
	tr.Scrape(ctx, &ScrapeRequest{InfoHashes: []InfoHash{hashN(0)}})
	s := tr.Stats()
	if s.Announces != 5 || s.Scrapes != 1 || s.Swarms != 2 || s.Peers != 5 || s.Seeders != 3 || s.Failures["bad_request"] != 1 {
		t.Errorf("Stats = %+v; want 5 announces, 1 scrape, 2 swarms, 5 peers, 3 seeders, 1 bad request", s)
	}
	for k := range numKinds {
		if _, ok := s.Failures[k.String()]; !ok {
			t.Errorf("Failures lacks %q", k)
		}
	}
}

// countingless hides the store's counting, so the tracker counts itself.
type countingless struct{ Store }

func TestStatsWithoutCountingStore(t *testing.T) {
	ms, err := NewMemoryStore(MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	tr := newTestTracker(t, Config{Store: countingless{ms}})
	ctx := context.Background()
	tr.Announce(ctx, testPeer(hashN(1), 1, 1, EventStarted))
	tr.Scrape(ctx, &ScrapeRequest{InfoHashes: []InfoHash{hashN(1)}})
	if s := tr.Stats(); s.Announces != 1 || s.Scrapes != 1 || s.Peers != 0 {
		t.Errorf("Stats = %+v; want 1 announce and 1 scrape counted by the tracker, no store totals", s)
	}
}

func TestClose(t *testing.T) {
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := tr.Announce(context.Background(), testPeer(hashN(1), 1, 1, 0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Announce after Close = %v; want ErrClosed", err)
	}
	if _, err := tr.Scrape(context.Background(), &ScrapeRequest{InfoHashes: []InfoHash{{}}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Scrape after Close = %v; want ErrClosed", err)
	}
	// A store passed in stays open.
	ms, _ := NewMemoryStore(MemoryConfig{})
	defer ms.Close()
	tr2, _ := New(Config{Store: ms})
	tr2.Close()
	if err := ms.Announce(context.Background(), testPeer(hashN(1), 1, 1, 0), &AnnounceResponse{}); err != nil {
		t.Errorf("caller's store closed by Tracker.Close: %v", err)
	}
}

func TestEventString(t *testing.T) {
	for e, want := range map[Event]string{EventNone: "none", EventStarted: "started", EventStopped: "stopped", EventCompleted: "completed", EventPaused: "paused", 9: "Event(9)"} {
		if e.String() != want {
			t.Errorf("Event(%d).String() = %q; want %q", e, e.String(), want)
		}
	}
	if KindRateLimited.String() != "rate_limited" || Kind(99).String() != "Kind(99)" {
		t.Error("Kind.String")
	}
}

func TestParseInfoHash(t *testing.T) {
	h, err := ParseInfoHash("0123456789ABCDEFabcdef0123456789abcdef01")
	if err != nil || h.String() != "0123456789abcdefabcdef0123456789abcdef01" {
		t.Errorf("ParseInfoHash = %v, %v", h, err)
	}
	for _, bad := range []string{"", "0123", "0123456789abcdef0123456789abcdef0123456g", "0123456789abcdef0123456789abcdef012345678"} {
		if _, err := ParseInfoHash(bad); err == nil {
			t.Errorf("ParseInfoHash(%q) succeeded", bad)
		}
	}
}

// TestPeerHijack: peer ids travel in every handshake, so another address
// announcing a peer's id, or stopping it, must leave the peer as it is;
// on a private tracker, so must another user from the same address.
func TestPeerHijack(t *testing.T) {
	ctx := context.Background()
	users := PasskeyFunc(func(ctx context.Context, pk string) (Identity, error) {
		return Identity{UserID: uint64(len(pk))}, nil
	})
	for _, tc := range []struct {
		name             string
		cfg              Config
		thiefAddr        string
		victimPK, thiefK string
	}{
		{"public, another address", Config{}, "198.51.100.7:6881", "", ""},
		{"private, another user at the same address", Config{Passkeys: users}, "192.0.2.1:6882", "a", "bb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestTracker(t, tc.cfg)
			h := hashN(1)
			victim := testPeer(h, 1, 100, EventStarted)
			victim.Addr = netip.MustParseAddrPort("192.0.2.1:6881")
			victim.Passkey = tc.victimPK
			if _, err := tr.Announce(ctx, victim); err != nil {
				t.Fatal(err)
			}
			for _, ev := range []Event{EventStarted, EventCompleted, EventStopped} {
				thief := testPeer(h, 1, 0, ev)
				thief.Addr = netip.MustParseAddrPort(tc.thiefAddr)
				thief.Passkey = tc.thiefK
				if _, err := tr.Announce(ctx, thief); err != nil {
					t.Fatal(err)
				}
			}
			seeder := testPeer(h, 2, 0, EventStarted)
			seeder.Passkey = tc.victimPK
			resp, err := tr.Announce(ctx, seeder)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Incomplete != 1 || len(resp.Peers) != 1 || resp.Peers[0].Addr != victim.Addr {
				t.Errorf("after the thief: %d leechers, peers %v; want the victim at %v", resp.Incomplete, resp.Peers, victim.Addr)
			}
		})
	}
}

// accountingFunc adapts a function to Accounting.
type accountingFunc func(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse, now time.Time) error

func (f accountingFunc) Account(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse, now time.Time) error {
	return f(ctx, req, resp, now)
}

// TestAccountingHook: the accounting hears every announce of an identified
// user, after the store, with what the store did; anonymous announces and
// failed ones are not accounted; an accounting error fails the announce.
func TestAccountingHook(t *testing.T) {
	type seen struct {
		user    uint64
		event   Event
		up      int64
		outcome Outcome
	}
	var got []seen
	var fail error
	tr := newTestTracker(t, Config{
		Passkeys: PasskeyFunc(func(ctx context.Context, pk string) (Identity, error) {
			if pk == "anon" {
				return Identity{}, nil
			}
			return Identity{UserID: 7}, nil
		}),
		Accounting: accountingFunc(func(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse, now time.Time) error {
			if now.IsZero() {
				t.Error("Account got the zero time")
			}
			got = append(got, seen{resp.Identity.UserID, req.Event, req.Uploaded, resp.Outcome})
			return fail
		}),
	})
	ctx := context.Background()
	announce := func(pk string, ev Event, left, up int64) error {
		req := testPeer(hashN(1), 1, left, ev)
		req.Passkey, req.Uploaded = pk, up
		_, err := tr.Announce(ctx, req)
		return err
	}
	for _, a := range []struct {
		pk        string
		ev        Event
		left, up  int64
		wantError bool
	}{
		{"k", EventStarted, 10, 0, false},
		{"anon", EventNone, 10, 5, false},
		{"k", EventNone, 0, 7, false},
		{"k", EventStopped, 0, 9, false},
	} {
		if err := announce(a.pk, a.ev, a.left, a.up); (err != nil) != a.wantError {
			t.Fatalf("announce %+v: %v", a, err)
		}
	}
	want := []seen{
		{7, EventStarted, 0, OutcomeJoined},
		{7, EventNone, 7, OutcomeCompleted | OutcomeSeeding},
		{7, EventStopped, 9, OutcomeLeft | OutcomeSeeding},
	}
	if !slices.Equal(got, want) {
		t.Errorf("accounted %+v; want %+v", got, want)
	}
	fail = &Error{Kind: KindInternal, Reason: "ledger full"}
	if err := announce("k", EventStarted, 10, 0); !errors.Is(err, fail) {
		t.Errorf("announce with a failing accounting: %v; want its error", err)
	}
}

// seedOnly is an Accounting that lets identified users seed but not
// download.
type seedOnly struct{ accounted int }

func (s *seedOnly) Account(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse, now time.Time) error {
	s.accounted++
	return nil
}

func (s *seedOnly) AllowAnnounce(ctx context.Context, req *AnnounceRequest, id Identity) error {
	if req.Left > 0 {
		return &Error{Kind: KindPasskey, Reason: "downloading is disabled on your account"}
	}
	return nil
}

// TestAnnounceFilter: an Accounting that is an AnnounceFilter refuses an
// announce before the store sees it.
func TestAnnounceFilter(t *testing.T) {
	acc := &seedOnly{}
	tr := newTestTracker(t, Config{
		Passkeys:   PasskeyFunc(func(ctx context.Context, pk string) (Identity, error) { return Identity{UserID: 3}, nil }),
		Accounting: acc,
	})
	ctx := context.Background()
	leech := testPeer(hashN(1), 1, 10, EventStarted)
	leech.Passkey = "k"
	if _, err := tr.Announce(ctx, leech); err == nil || !strings.Contains(err.Error(), "downloading is disabled") {
		t.Errorf("leecher: %v; want refused", err)
	}
	seed := testPeer(hashN(1), 2, 0, EventStarted)
	seed.Passkey = "k"
	resp, err := tr.Announce(ctx, seed)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Incomplete != 0 || resp.Complete != 1 || acc.accounted != 1 {
		t.Errorf("after a refused leecher and a seeder: %d leechers, %d seeders, %d accounted; want 0, 1, 1", resp.Incomplete, resp.Complete, acc.accounted)
	}
}
