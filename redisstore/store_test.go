//go:build unix

package redisstore_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/internal/redisserver"
	"github.com/annuaire/tracker/redisstore"
	"github.com/annuaire/tracker/trackertest"
	"github.com/redis/go-redis/v9"
)

// newStore returns a store over c under a prefix of its own, with a
// timeout generous enough for a busy machine, closed when t ends.
func newStore(t testing.TB, c redis.UniversalClient, cfg redisstore.Config) *redisstore.Store {
	t.Helper()
	cfg.Client = c
	if cfg.Prefix == "" {
		cfg.Prefix = prefix()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	s, err := redisstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func announce(t testing.TB, s tracker.Store, h tracker.InfoHash, n int, left int64, ev tracker.Event) *tracker.AnnounceResponse {
	t.Helper()
	resp := &tracker.AnnounceResponse{}
	req := &tracker.AnnounceRequest{InfoHash: h, PeerID: trackertest.ID(n), Addr: trackertest.Addr4(n), Left: left, Event: ev, NumWant: 50}
	if n%2 == 1 {
		req.Addr = trackertest.Addr6(n)
	}
	if err := s.Announce(context.Background(), req, resp); err != nil {
		t.Fatalf("announce of peer %d: %v", n, err)
	}
	return resp
}

// keysOf returns the keys under prefix.
func keysOf(t testing.TB, c *redis.Client, prefix string) []string {
	t.Helper()
	keys, err := c.Keys(context.Background(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// slot is the Redis Cluster slot of a key: CRC16 (XMODEM) of its hash
// tag, or of the whole key without one, modulo 16384.
func slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}

// TestKeys: every key of a swarm is in the swarm's slot and expires, and
// an idle swarm vanishes from Redis by itself: its peers a little after
// PeerTTL, its snatch count a little after SwarmTTL+PeerTTL.
func TestKeys(t *testing.T) {
	if slot("123456789") != 0x31C3%16384 {
		t.Fatalf("slot(123456789) = %#x: the CRC16 is wrong", slot("123456789"))
	}
	c := newClient(t)
	pre := prefix()
	s := newStore(t, c, redisstore.Config{Prefix: pre, PeerTTL: time.Second, SwarmTTL: 2 * time.Second})
	hashes := []tracker.InfoHash{trackertest.Hash(1), trackertest.Hash(2)}
	for i := range 40 {
		announce(t, s, hashes[i%2], i, int64(i%3), tracker.EventStarted)
	}
	announce(t, s, hashes[0], 100, 0, tracker.EventCompleted)       // a snatch
	announce(t, s, hashes[0], 102, 7, tracker.EventPaused)          // a partial seed
	announce(t, s, hashes[1], 1, 7, tracker.EventStopped)           // a stop
	announce(t, s, trackertest.Hash(3), 5, 0, tracker.EventStopped) // a stop in no swarm
	ctx := context.Background()
	keys := keysOf(t, c, pre)
	slots := map[string]uint16{}
	for _, k := range keys {
		tag := k[strings.IndexByte(k, '{'):strings.IndexByte(k, '}')]
		if s, ok := slots[tag]; ok && s != slot(k) {
			t.Errorf("key %q is in slot %d; its swarm's other keys in %d", k, slot(k), s)
		}
		slots[tag] = slot(k)
		if ttl, err := c.PTTL(ctx, k).Result(); err != nil || ttl <= 0 {
			t.Errorf("key %q: PTTL = %v, %v; every key must expire", k, ttl, err)
		}
	}
	if len(slots) != 2 {
		t.Errorf("keys of %d swarms: %q; want 2 (a stop in an unknown swarm makes none)", len(slots), keys)
	}
	// Peers go after about 2 PeerTTLs (the keys' deadline), the snatch
	// count after about SwarmTTL+PeerTTL.
	deadline := time.Now().Add(10 * time.Second)
	for {
		keys = keysOf(t, c, pre)
		if len(keys) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys still there 10s after the last announce: %q", keys)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNoScript: after Redis loses its scripts (a restart, SCRIPT FLUSH),
// the next calls load them again.
func TestNoScript(t *testing.T) {
	c := newClient(t)
	s := newStore(t, c, redisstore.Config{})
	h := trackertest.Hash(1)
	announce(t, s, h, 2, 0, tracker.EventStarted)
	ctx := context.Background()
	hashes := []tracker.InfoHash{h, trackertest.Hash(2), h}
	for _, what := range []string{"announce", "scrape of one", "scrape of three"} {
		if err := c.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		var err error
		switch what {
		case "announce":
			err = s.Announce(ctx, &tracker.AnnounceRequest{InfoHash: h, PeerID: trackertest.ID(4), Addr: trackertest.Addr4(4), Left: 1, NumWant: 5}, &tracker.AnnounceResponse{})
		case "scrape of one":
			_, err = s.Scrape(ctx, hashes[:1], nil)
		default:
			var st []tracker.ScrapeStats
			st, err = s.Scrape(ctx, hashes, nil)
			if err == nil && (len(st) != 3 || st[0] != st[2] || st[0].Complete != 1 || st[0].Incomplete != 1 || st[1] != (tracker.ScrapeStats{})) {
				t.Errorf("scrape after SCRIPT FLUSH = %+v; want 1 seeder and 1 leecher, zeros, the same again", st)
			}
		}
		if err != nil {
			t.Errorf("%s after SCRIPT FLUSH: %v", what, err)
		}
	}
}

// openOwn starts a redis-server of t's own and opens a store on it, with
// a client of its own, closed when t ends.
func openOwn(t *testing.T, timeout time.Duration) (*redisserver.Server, *redisstore.Store) {
	t.Helper()
	srv := redisserver.ForTest(t)
	s, err := redisstore.Open(srv.URL(), redisstore.Config{Prefix: prefix(), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return srv, s
}

// TestTimeout: a call ends after Config.Timeout whatever the caller's
// context says, with an internal error (not a *tracker.Error), counted.
func TestTimeout(t *testing.T) {
	srv, s := openOwn(t, 200*time.Millisecond)
	ctx := context.Background()
	h := trackertest.Hash(1)
	announce(t, s, h, 2, 1, tracker.EventStarted)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	if err := admin.Do(ctx, "CLIENT", "PAUSE", "1000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	defer admin.Do(ctx, "CLIENT", "UNPAUSE")
	start := time.Now()
	err := s.Announce(ctx, &tracker.AnnounceRequest{InfoHash: h, PeerID: trackertest.ID(4), Addr: trackertest.Addr4(4), Left: 1}, &tracker.AnnounceResponse{})
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("announce to a paused Redis succeeded")
	}
	if _, ok := errors.AsType[*tracker.Error](err); ok {
		t.Errorf("announce to a paused Redis: %v is a *tracker.Error; want an internal error", err)
	}
	if elapsed < 150*time.Millisecond || elapsed > 1500*time.Millisecond {
		t.Errorf("announce to a paused Redis failed after %v; want about the 200ms timeout", elapsed)
	}
	start = time.Now()
	if _, err := s.Scrape(ctx, []tracker.InfoHash{h, h}, nil); err == nil || time.Since(start) > 1500*time.Millisecond {
		t.Errorf("scrape of a paused Redis: %v after %v; want a failure after about 200ms", err, time.Since(start))
	}
	st := s.Stats()
	if st.Announce.Timeouts != 1 || st.Announce.Calls != 2 || st.Scrape.Timeouts != 1 {
		t.Errorf("stats = %+v; want 1 announce timeout in 2 calls, 1 scrape timeout", st)
	}
}

// TestOutage: while Redis is down, calls fail within the timeout, with
// internal errors, and never panic; once it is back (empty, without the
// scripts), service resumes within a second.
func TestOutage(t *testing.T) {
	srv, s := openOwn(t, 100*time.Millisecond)
	ctx := context.Background()
	h := trackertest.Hash(1)
	call := func(n int) error {
		req := &tracker.AnnounceRequest{InfoHash: h, PeerID: trackertest.ID(n), Addr: trackertest.Addr4(n), Left: 1, NumWant: 10}
		return s.Announce(ctx, req, &tracker.AnnounceResponse{})
	}
	// Load from a few goroutines, as a tracker's readers would.
	var (
		stop     atomic.Bool
		mu       sync.Mutex
		lastFail time.Time
		wg       sync.WaitGroup
	)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				start := time.Now()
				err := call(w*1_000_000 + i%1000)
				if d := time.Since(start); d > time.Second {
					t.Errorf("a call took %v; want at most the timeout and a little", d)
				}
				if err != nil {
					if _, ok := errors.AsType[*tracker.Error](err); ok {
						t.Errorf("outage: %v is a *tracker.Error; want an internal error", err)
					}
					mu.Lock()
					lastFail = time.Now()
					mu.Unlock()
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	before := s.Stats().Announce
	if n := before.Timeouts + before.Unavailable + before.Errors; n != 0 {
		t.Errorf("%d failures before the outage", n)
	}
	srv.Kill()
	time.Sleep(1500 * time.Millisecond)
	during := s.Stats().Announce
	if during.Unavailable+during.Timeouts == 0 {
		t.Errorf("no failure counted while Redis was down: %+v", during)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	// Service resumes: a call succeeds within a second of the restart.
	for call(42) != nil {
		if time.Since(back) > time.Second {
			t.Fatalf("no successful announce within 1s of Redis's return")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("first success %v after Redis's return", time.Since(back))
	time.Sleep(500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if lastFail.After(back.Add(time.Second)) {
		t.Errorf("a call failed %v after Redis's return", lastFail.Sub(back))
	}
}

// countHook counts the round trips a client makes: single commands and
// pipelines.
type countHook struct{ single, pipelines, piped atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.single.Add(1)
		return next(ctx, cmd)
	}
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pipelines.Add(1)
		h.piped.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// TestOneRoundTrip: an announce is one command, a scrape of many hashes
// one pipeline.
func TestOneRoundTrip(t *testing.T) {
	c := newClient(t)
	s := newStore(t, c, redisstore.Config{})
	h := trackertest.Hash(1)
	announce(t, s, h, 2, 1, tracker.EventStarted) // the scripts are loaded
	s.Scrape(context.Background(), []tracker.InfoHash{h, h}, nil)
	hook := &countHook{}
	c.AddHook(hook)
	for i := range 10 {
		announce(t, s, h, 10+i, int64(i%2), tracker.EventStarted)
	}
	if got := hook.single.Load(); got != 10 || hook.pipelines.Load() != 0 {
		t.Errorf("10 announces: %d commands and %d pipelines; want 10 commands", got, hook.pipelines.Load())
	}
	hashes := make([]tracker.InfoHash, 50)
	for i := range hashes {
		hashes[i] = trackertest.Hash(i)
	}
	hook.single.Store(0)
	st, err := s.Scrape(context.Background(), hashes, nil)
	if err != nil || len(st) != 50 || st[1].Complete+st[1].Incomplete != 11 {
		t.Fatalf("scrape of 50: %v, %v", st, err)
	}
	if hook.single.Load() != 0 || hook.pipelines.Load() != 1 || hook.piped.Load() != 50 {
		t.Errorf("scrape of 50 hashes: %d commands, %d pipelines of %d commands; want one pipeline of 50",
			hook.single.Load(), hook.pipelines.Load(), hook.piped.Load())
	}
}

func TestPing(t *testing.T) {
	srv, s := openOwn(t, 0)
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping = %v", err)
	}
	srv.Kill()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := s.Ping(short); err == nil {
		t.Error("Ping of a killed Redis succeeded")
	}
	s.Close()
	if err := s.Ping(ctx); !errors.Is(err, tracker.ErrClosed) {
		t.Errorf("Ping after Close = %v; want ErrClosed", err)
	}
}

func TestConfig(t *testing.T) {
	c := newClient(t)
	for _, cfg := range []redisstore.Config{
		{},
		{Client: c, Prefix: "a{b"},
		{Client: c, PeerTTL: time.Millisecond},
		{Client: c, PeerTTL: 25 * time.Hour},
		{Client: c, SwarmTTL: -time.Second},
		{Client: c, Timeout: -time.Second},
	} {
		if _, err := redisstore.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded; want an error", cfg)
		}
	}
	for _, url := range []string{"http://127.0.0.1:6379", "redis://127.0.0.1:6379/notadb", "::"} {
		if s, err := redisstore.Open(url, redisstore.Config{}); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded; want an error", url)
		}
	}
	if _, err := redisstore.Open(redisURL(t), redisstore.Config{Client: c}); err == nil {
		t.Error("Open with a Config.Client succeeded; want an error")
	}
	// Close leaves a client it did not make open.
	s := newStore(t, c, redisstore.Config{})
	s.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Errorf("the client after the store's Close: %v", err)
	}
	// A bad address is refused before Redis is asked.
	err := s.Announce(context.Background(), &tracker.AnnounceRequest{Addr: netip.AddrPort{}}, &tracker.AnnounceResponse{})
	if !errors.Is(err, tracker.ErrClosed) {
		t.Errorf("announce after Close: %v; want ErrClosed", err)
	}
	s = newStore(t, c, redisstore.Config{})
	err = s.Announce(context.Background(), &tracker.AnnounceRequest{Addr: netip.AddrPort{}}, &tracker.AnnounceResponse{})
	if !errors.Is(err, tracker.ErrInvalidAddress) {
		t.Errorf("announce without an address: %v; want ErrInvalidAddress", err)
	}
}

// TestStats: calls and latencies are counted, failures by cause.
func TestStats(t *testing.T) {
	c := newClient(t)
	s := newStore(t, c, redisstore.Config{MaxSwarmPeers: 1})
	h := trackertest.Hash(1)
	announce(t, s, h, 2, 1, tracker.EventStarted)
	if err := s.Announce(context.Background(), &tracker.AnnounceRequest{InfoHash: h, PeerID: trackertest.ID(4), Addr: trackertest.Addr4(4), Left: 1}, &tracker.AnnounceResponse{}); !errors.Is(err, tracker.ErrTooManyPeers) {
		t.Fatalf("a second peer past a bound of 1: %v; want ErrTooManyPeers", err)
	}
	s.Scrape(context.Background(), []tracker.InfoHash{h}, nil)
	st := s.Stats()
	a := st.Announce
	if a.Calls != 2 || a.Timeouts+a.Unavailable+a.Errors != 0 {
		t.Errorf("announce stats %+v; want 2 calls and no failure (a full swarm is none)", a)
	}
	var sum uint64
	for _, n := range a.Latency.Counts {
		sum += n
	}
	if sum != 2 || len(a.Latency.Counts) != len(a.Latency.Bounds)+1 || a.Latency.Sum <= 0 {
		t.Errorf("announce latency %+v; want 2 observations in len(Bounds)+1 buckets", a.Latency)
	}
	if st.Scrape.Calls != 1 {
		t.Errorf("scrape stats %+v; want 1 call", st.Scrape)
	}
}
