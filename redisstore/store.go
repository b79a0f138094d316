// Package redisstore keeps an annuaire tracker's swarms in Redis, so that
// several tracker instances (behind DNS or anycast) share them: a client
// may announce to any instance and get the peers that announced to the
// others.
//
// An announce is one round trip: one Lua script (EVALSHA, and EVAL when
// Redis answers NOSCRIPT, as after a restart) expires the swarm's stale
// peers when one may have expired, inserts, moves or removes the
// announcer, counts a snatch, samples the reply and returns the counts. A
// scrape of N hashes is one round trip too (one script call, or a
// pipeline of N).
//
// A peer is its address and port, its user and its peer id, as the
// [tracker.Store] contract has it: an 8-byte hash of the four (SHA-256, the
// same on every instance) is its identity, so that the same peer id from
// another address or port, or from another user, is another peer, which
// can neither move nor stop the first.
//
// Per swarm and address family, the peers of each class (seeders,
// leechers, partial seeds) are an array of compact records (the identity,
// the packed address and port) in one Redis string, with
// no gap; a sorted set of identities scored by last announce finds the
// stale ones, and a hash maps each identity to its class, port and slot.
// A reply is a window of consecutive records from a uniformly random slot
// in each class (every peer is equally likely), fetched with GETRANGE:
// the script handles one string per class rather than one per peer,
// which is what Lua in Redis spends most on. ZRANDMEMBER would not do:
// past a listpack's size it picks from a hash table and favours some
// members several times over.
//
// Keys expire with PEXPIRE, so idle swarms vanish with no collection job,
// and every key of a swarm carries the swarm's hash tag, so that Redis
// Cluster keeps a swarm in one slot.
//
// A Store follows the [tracker.Store] contract and passes the conformance
// suite of package trackertest. Each call is bounded by [Config.Timeout]
// whatever the caller's context; Redis failures come back as internal
// errors (the tracker logs them and clients read a generic failure) and
// are counted in [Store.Stats]. The store holds no state between calls
// beyond its counters: when Redis returns after an outage, service
// resumes with the next call.
//
// Time comes from [Config.Now] on each instance, not from Redis: the
// instances sharing a Redis should keep their clocks synchronized (NTP).
// A skew of a few seconds only moves expiry by as much.
package redisstore

import (
	"context"
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/annuaire/tracker"
	"github.com/redis/go-redis/v9"
)

// Config configures a [Store]. Zero values mean the defaults each field
// gives.
type Config struct {
	// Client is the connection to Redis: a *redis.Client, a
	// *redis.ClusterClient or any redis.UniversalClient; required unless
	// the store is made with [Open]. New does not take it over: Close
	// leaves it open. For Timeout to bound network waits too, the client
	// must have ContextTimeoutEnabled set, as Open does.
	Client redis.UniversalClient
	// Prefix starts the name of every key the store uses, so that one Redis
	// can serve several trackers, or other programs. If empty,
	// "annuaire:". It may not hold braces, which delimit hash tags.
	Prefix string
	// PeerTTL is how long a peer is kept after its last announce. If zero,
	// 45 minutes. Between 1 second and 24 hours.
	PeerTTL time.Duration
	// SwarmTTL is how long a swarm without peers keeps its snatch count:
	// between SwarmTTL and SwarmTTL+PeerTTL after its last announce. If
	// zero, 24 hours.
	SwarmTTL time.Duration
	// MaxSwarmPeers bounds the peers of one swarm (both address families);
	// a new peer past it gets [tracker.ErrTooManyPeers]. If zero,
	// 1,000,000; [tracker.Disabled] (any negative value) sets no bound.
	// Bound the whole of Redis with its maxmemory setting.
	MaxSwarmPeers int
	// Timeout bounds each call to the store, the round trip to Redis
	// included, whatever the caller's context says. If zero, 250 ms.
	Timeout time.Duration
	// Now returns the current time. If nil, time.Now.
	Now func() time.Time
}

// Store is a [tracker.Store] in Redis. It is safe for concurrent use.
type Store struct {
	client   redis.UniversalClient
	owns     bool // Close closes client
	prefix   string
	ttl      int64 // ms
	swarmTTL int64 // ms: SwarmTTL+PeerTTL
	maxPeers int64 // 0: no bound
	timeout  time.Duration
	now      func() time.Time

	closed atomic.Bool
	stats  struct{ announce, scrape opStats }
}

var _ tracker.ExpiringStore = (*Store)(nil)

// The scripts, each with the functions they share, and their SHA-1
// digests for EVALSHA.
var (
	//go:embed lib.lua
	libSrc string
	//go:embed announce.lua
	announceSrc    string
	announceScript = newScript(libSrc + announceSrc)
	//go:embed scrape.lua
	scrapeSrc    string
	scrapeScript = newScript(libSrc + scrapeSrc)
)

type script struct{ src, sha string }

func newScript(src string) script {
	sum := sha1.Sum([]byte(src))
	return script{src, hex.EncodeToString(sum[:])}
}

// New returns a store over cfg.Client.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil {
		return nil, errors.New("redisstore: Config.Client is nil")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "annuaire:"
	}
	if cfg.PeerTTL == 0 {
		cfg.PeerTTL = 45 * time.Minute
	}
	if cfg.SwarmTTL == 0 {
		cfg.SwarmTTL = 24 * time.Hour
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 250 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case strings.ContainsAny(cfg.Prefix, "{}"):
		return nil, fmt.Errorf("redisstore: Config.Prefix %q holds a brace", cfg.Prefix)
	case cfg.PeerTTL < time.Second || cfg.PeerTTL > 24*time.Hour:
		return nil, fmt.Errorf("redisstore: Config.PeerTTL %v: want between 1s and 24h", cfg.PeerTTL)
	case cfg.SwarmTTL < 0:
		return nil, fmt.Errorf("redisstore: Config.SwarmTTL %v is negative", cfg.SwarmTTL)
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("redisstore: Config.Timeout %v is negative", cfg.Timeout)
	}
	s := &Store{
		client:   cfg.Client,
		prefix:   cfg.Prefix,
		ttl:      cfg.PeerTTL.Milliseconds(),
		swarmTTL: (cfg.SwarmTTL + cfg.PeerTTL).Milliseconds(),
		timeout:  cfg.Timeout,
		now:      cfg.Now,
	}
	switch {
	case cfg.MaxSwarmPeers == 0:
		s.maxPeers = 1_000_000
	case cfg.MaxSwarmPeers > 0:
		s.maxPeers = int64(cfg.MaxSwarmPeers)
	}
	return s, nil
}

// Announce implements [tracker.Store].
func (s *Store) Announce(ctx context.Context, req *tracker.AnnounceRequest, resp *tracker.AnnounceResponse) (err error) {
	if s.closed.Load() {
		return tracker.ErrClosed
	}
	ip := req.Addr.Addr().Unmap().WithZone("")
	if !ip.IsValid() {
		return tracker.ErrInvalidAddress
	}
	start := time.Now()
	defer func() { s.stats.announce.record(time.Since(start), err) }()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	fam := family(ip)
	seeding := 0
	if req.Left == 0 {
		seeding = 1
	}
	v, err := s.run(ctx, announceScript, s.keys(&req.InfoHash),
		s.now().UnixMilli(), s.ttl, s.swarmTTL,
		record(identity(resp.Identity.UserID, netip.AddrPortFrom(ip, req.Addr.Port()), req.PeerID), ip, req.Addr.Port()),
		int(req.Event), seeding, req.NumWant, rand.Int32(), s.maxPeers, fam+1)
	if err != nil {
		return fmt.Errorf("redisstore: announce: %w", err)
	}
	if err := decodeAnnounce(v, fam, resp); err != nil {
		return fmt.Errorf("redisstore: announce: %w", err)
	}
	if req.Left == 0 {
		resp.Outcome |= tracker.OutcomeSeeding
	}
	return nil
}

// Scrape implements [tracker.Store]. A scrape of several hashes is one
// pipeline: one round trip.
func (s *Store) Scrape(ctx context.Context, hashes []tracker.InfoHash, dst []tracker.ScrapeStats) (_ []tracker.ScrapeStats, err error) {
	if s.closed.Load() {
		return dst, tracker.ErrClosed
	}
	start := time.Now()
	defer func() { s.stats.scrape.record(time.Since(start), err) }()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	now := s.now().UnixMilli()
	n := len(dst)
	var v any
	switch len(hashes) {
	case 0:
		return dst, nil
	case 1:
		if v, err = s.run(ctx, scrapeScript, s.keys(&hashes[0]), now, s.ttl); err == nil {
			dst, err = decodeScrape(v, dst)
		}
	default:
		dst, err = s.scrapeMany(ctx, hashes, now, dst)
	}
	if err != nil {
		return dst[:n], fmt.Errorf("redisstore: scrape: %w", err)
	}
	return dst, nil
}

// scrapeMany scrapes several swarms in one pipeline, loading the script
// and running the pipeline again if Redis does not have it.
func (s *Store) scrapeMany(ctx context.Context, hashes []tracker.InfoHash, now int64, dst []tracker.ScrapeStats) ([]tracker.ScrapeStats, error) {
	for try := 0; ; try++ {
		cmds, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range hashes {
				p.EvalSha(ctx, scrapeScript.sha, s.keys(&hashes[i]), now, s.ttl)
			}
			return nil
		})
		if err != nil && try == 0 && noScript(err) {
			if err := s.client.ScriptLoad(ctx, scrapeScript.src).Err(); err != nil {
				return dst, err
			}
			continue
		}
		if err != nil {
			return dst, err
		}
		for _, c := range cmds {
			if dst, err = decodeScrape(c.(*redis.Cmd).Val(), dst); err != nil {
				return dst, err
			}
		}
		return dst, nil
	}
}

// run runs a script by its digest, and by its source when Redis does not
// have it, which loads it for the calls that follow.
func (s *Store) run(ctx context.Context, sc script, keys []string, args ...any) (any, error) {
	v, err := s.client.EvalSha(ctx, sc.sha, keys, args...).Result()
	if err != nil && noScript(err) {
		v, err = s.client.Eval(ctx, sc.src, keys, args...).Result()
	}
	return v, err
}

func noScript(err error) bool { return redis.HasErrorPrefix(err, "NOSCRIPT") }

// Ping checks that Redis answers, waiting as long as ctx allows (not
// Config.Timeout): a server checks its store at start, or in a readiness
// probe.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return tracker.ErrClosed
	}
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	return nil
}

// PeerTTL implements [tracker.ExpiringStore]: how long a peer is kept
// after its last announce ([Config.PeerTTL]).
func (s *Store) PeerTTL() time.Duration {
	return time.Duration(s.ttl) * time.Millisecond
}

// Close implements [tracker.Store]. It closes the client only if the
// store made it ([Open]); later calls of the store fail with
// [tracker.ErrClosed].
func (s *Store) Close() error {
	if s.closed.Swap(true) || !s.owns {
		return nil
	}
	return s.client.Close()
}
