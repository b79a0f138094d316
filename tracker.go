// Package tracker is a BitTorrent tracker to embed in a Go program: the
// directory of swarms that clients announce to ("I have, or want, torrent X
// at this address") and that answers with other peers of X.
//
// A [Tracker] is created with [New] and used directly from Go
// ([Tracker.Announce], [Tracker.Scrape]) or through its front-ends: an
// [http.Handler] for HTTP announces and scrapes, and a UDP server over a
// [net.PacketConn]. Swarms live in a [Store]; the default [MemoryStore]
// keeps them in memory. Access is decided by pluggable policies: a
// [PasskeyValidator] for private trackers, a [TorrentFilter] and a
// [ClientFilter]; a public tracker configures none.
//
// Supported protocol extensions:
//
//   - BEP 3: the announce protocol, bencoded replies.
//   - BEP 7: IPv6 peers, answered in their own list (peers6).
//   - BEP 15: the UDP tracker protocol, with stateless connection ids.
//   - BEP 21: partial seeds (event paused), counted apart in scrapes.
//   - BEP 23: compact peer lists.
//   - BEP 24: the external ip field.
//   - BEP 31: retry in, sent with failures.
//   - BEP 41: URL data in UDP announces, which carries the passkey.
//   - BEP 48: scrape, with flags.min_request_interval.
//   - BEP 52: v2 info hashes, truncated to 20 bytes; a hybrid torrent is
//     two swarms.
//
// A minimal embed:
//
//	t, err := tracker.New(tracker.Config{})
//	if err != nil {
//		return err
//	}
//	defer t.Close()
//	h, err := t.NewHTTPHandler(tracker.HTTPConfig{})
//	if err != nil {
//		return err
//	}
//	mux.Handle("/tracker/", http.StripPrefix("/tracker", h)) // every passkey layout
//
// Goroutines: a Tracker runs one goroutine of its own, the default store's
// sweeper of stale peers, which Close stops. Front-ends run on the caller's
// goroutines (net/http's) or on a fixed set of readers per UDP socket, plus
// a fixed pool of workers per UDP server when a policy or store may block
// (see [NonBlocker]), which their Shutdown and Close stop. Every method of
// a Tracker is safe for concurrent use.
package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/annuaire/tracker/internal/ratelimit"
)

// Disabled, given to a numeric setting that says so (such as
// [Config.IntervalJitter], [MemoryConfig.MaxPeers] or
// [HTTPConfig.GzipMinSize]), turns off what it sets: no jitter, no bound,
// no compression. Any negative value does the same. Zero, in every
// setting, means the default its doc gives.
const Disabled = -1

// Config configures a [Tracker]. The zero value is a public tracker with
// an in-memory store and no rate limits.
type Config struct {
	// AnnounceInterval is how long clients are told to wait between
	// announces. If zero, 30 minutes.
	AnnounceInterval time.Duration
	// MinAnnounceInterval is the least time clients may leave between
	// unprompted announces. If zero, half of AnnounceInterval.
	MinAnnounceInterval time.Duration
	// IntervalJitter is the largest random amount added to the interval of
	// each reply, so that clients that all announced at once (after a
	// restart, say) drift apart. If zero, a tenth of AnnounceInterval;
	// [Disabled] (any negative value) adds none.
	IntervalJitter time.Duration
	// MinScrapeInterval is the least time clients should leave between
	// scrapes (BEP 48 flags.min_request_interval). If zero,
	// MinAnnounceInterval.
	MinScrapeInterval time.Duration

	// DefaultNumWant is how many peers a client gets when it does not say.
	// If zero, 50, or MaxNumWant if that is smaller.
	DefaultNumWant int
	// MaxNumWant is the most peers one reply holds. If zero, 200.
	MaxNumWant int
	// MaxScrapeHashes is the most info hashes one scrape may ask for. If
	// zero, 256.
	MaxScrapeHashes int

	// Store keeps the swarms. If nil, the tracker makes a MemoryStore from
	// Memory and closes it on Close; a Store passed in is not closed. If it
	// is an [ExpiringStore], its PeerTTL must be at least AnnounceInterval
	// plus IntervalJitter.
	Store Store
	// Memory configures the default store when Store is nil. If its PeerTTL
	// is zero, it is AnnounceInterval + IntervalJitter + MinAnnounceInterval,
	// at most 16 hours; it must be at least AnnounceInterval plus
	// IntervalJitter, so that peers outlive the wait between two of their
	// announces. The default store thus serves intervals up to about 14.5
	// hours (16 with IntervalJitter [Disabled]).
	Memory MemoryConfig

	// Passkeys validates passkeys. If nil, none is needed (and any given is
	// ignored). If set, every announce and scrape needs a valid one, but
	// see PublicScrape.
	Passkeys PasskeyValidator
	// PublicScrape, with Passkeys set, answers scrapes that carry no
	// passkey instead of refusing them: each hash gets the counters of its
	// swarm if Torrents allows it for the zero [Identity], and zeros if
	// not. A scrape with a passkey still needs a valid one. UDP scrapes
	// never carry a passkey (BEP 41 URL data comes with announces only), so
	// without PublicScrape a private tracker refuses them all; HTTP scrapes
	// without a passkey follow the same rule. The full scrape of the HTTP
	// handler still needs a passkey.
	//
	// The trade-off: anyone can read the seeders, leechers and snatches of
	// any torrent whose info hash they know and Torrents allows, as
	// semi-private sites that show these counts publicly want. The list of
	// torrents is not revealed: an unknown or refused hash reads as an
	// empty swarm.
	PublicScrape bool
	// Torrents decides which torrents are served. If nil, all are.
	Torrents TorrentFilter
	// Clients decides which client programs may announce. If nil, all may.
	Clients ClientFilter

	// Accounting is told about every announce of an identified user (one
	// whose Identity.UserID is not zero), after the store has handled it,
	// for ratio accounting. If nil, nothing is accounted and nothing is
	// spent on it.
	Accounting Accounting

	// RateLimit bounds the request rates per client address and per
	// passkey. The zero value sets no limit.
	RateLimit RateLimitConfig

	// RequestTimeout is the deadline of a request that needs a policy or
	// store that may block (one that does not declare otherwise through
	// [NonBlocker]): the context they get ends this long after the request
	// arrived. A request cut short (by this deadline, by the caller's
	// context, by a UDP server closing) fails with [ErrBusy], unless a
	// policy chose another *Error. Over UDP the time spent waiting for a
	// worker counts: a request that waited past its deadline is answered
	// with ErrBusy without calling the plug-ins. If zero, 5 seconds (UDP
	// clients send again after 15); [Disabled] sets no deadline. Requests
	// that need only plug-ins that never block get no deadline: they
	// cannot wait.
	RequestTimeout time.Duration

	// Logger receives internal errors (never per-request noise). If nil,
	// [slog.Default]; to log nothing, give
	// slog.New(slog.DiscardHandler).
	Logger *slog.Logger
	// Observer is told about every request the front-ends answer, for
	// metrics. If nil, nothing is observed and no time is measured.
	Observer Observer
}

// RateLimitConfig bounds request rates. Requests over a limit fail at once
// with ErrRateLimited (the tracker never waits). Limits are kept per key in
// memory; a key's limiter is dropped once it has been idle long enough to
// be full again, and at most MaxKeys are held: past that, new keys share
// one limiter, so a flood of new addresses is throttled as a whole.
type RateLimitConfig struct {
	// PerIP is the sustained rate of announces and scrapes allowed from one
	// client address (one IPv6 prefix, see IPv6Prefix). Zero means no limit.
	// It is also what bounds passkey guessing: PerPasskey only applies to
	// passkeys that were accepted.
	PerIP float64
	// IPBurst is how many requests from one address may come at once. If
	// zero, 10.
	IPBurst int
	// PerPasskey is the sustained rate allowed for one passkey. Zero means
	// no limit.
	PerPasskey float64
	// PasskeyBurst is how many requests one passkey may make at once. If
	// zero, 10.
	PasskeyBurst int
	// IPv6Prefix is the prefix length IPv6 addresses are grouped by, since
	// one subscriber usually holds a whole /64. If zero, 64.
	IPv6Prefix int
	// MaxKeys is the most addresses (and, apart, passkeys) tracked at once.
	// If zero, 1,000,000.
	MaxKeys int
}

// Tracker answers announces and scrapes. Create one with [New]; it is safe
// for concurrent use.
type Tracker struct {
	cfg       Config // defaults applied
	store     Store
	ownsStore bool
	log       *slog.Logger

	ipLimit *ratelimit.Limiter[netip.Addr]
	pkLimit *ratelimit.Limiter[string]
	v6Bits  int

	blocks blocking // which plug-ins may block

	closed atomic.Bool
	// breaches limits the reports of plug-ins that break their contract.
	breaches rareLog
	// Successful announces and scrapes, counted here only when the store
	// does not count them (storeCounts false).
	storeCounts    bool
	announceFilter AnnounceFilter // Config.Accounting's, if it is one
	announces      counter
	scrapes        counter
	failures       [numKinds]counter
}

// New validates cfg and returns a Tracker. It starts no goroutine but the
// default store's sweeper, which Close stops.
func New(cfg Config) (*Tracker, error) {
	if cfg.AnnounceInterval == 0 {
		cfg.AnnounceInterval = 30 * time.Minute
	}
	if cfg.MinAnnounceInterval == 0 {
		cfg.MinAnnounceInterval = cfg.AnnounceInterval / 2
	}
	switch {
	case cfg.IntervalJitter == 0:
		cfg.IntervalJitter = cfg.AnnounceInterval / 10
	case cfg.IntervalJitter < 0:
		cfg.IntervalJitter = 0
	}
	if cfg.MinScrapeInterval == 0 {
		cfg.MinScrapeInterval = cfg.MinAnnounceInterval
	}
	if cfg.MaxNumWant == 0 {
		cfg.MaxNumWant = 200
	}
	if cfg.DefaultNumWant == 0 {
		cfg.DefaultNumWant = min(50, max(cfg.MaxNumWant, 0))
	}
	if cfg.MaxScrapeHashes == 0 {
		cfg.MaxScrapeHashes = 256
	}
	switch {
	case cfg.RequestTimeout == 0:
		cfg.RequestTimeout = 5 * time.Second
	case cfg.RequestTimeout < 0:
		cfg.RequestTimeout = 0
	}
	switch {
	case cfg.AnnounceInterval < time.Second || cfg.AnnounceInterval > 24*time.Hour:
		return nil, errorf("Config.AnnounceInterval %v: want between 1s and 24h", cfg.AnnounceInterval)
	case cfg.MinAnnounceInterval < 0 || cfg.MinAnnounceInterval > cfg.AnnounceInterval:
		return nil, errorf("Config.MinAnnounceInterval %v: want between 0 and AnnounceInterval", cfg.MinAnnounceInterval)
	case cfg.MinScrapeInterval < 0:
		return nil, errorf("Config.MinScrapeInterval %v is negative", cfg.MinScrapeInterval)
	case cfg.DefaultNumWant < 0 || cfg.MaxNumWant < 0 || cfg.DefaultNumWant > cfg.MaxNumWant:
		return nil, errorf("Config.DefaultNumWant %d and MaxNumWant %d: want 0 <= default <= max", cfg.DefaultNumWant, cfg.MaxNumWant)
	case cfg.MaxScrapeHashes < 0:
		return nil, errorf("Config.MaxScrapeHashes %d is negative", cfg.MaxScrapeHashes)
	}
	rl := &cfg.RateLimit
	if rl.IPBurst == 0 {
		rl.IPBurst = 10
	}
	if rl.PasskeyBurst == 0 {
		rl.PasskeyBurst = 10
	}
	if rl.IPv6Prefix == 0 {
		rl.IPv6Prefix = 64
	}
	if rl.MaxKeys == 0 {
		rl.MaxKeys = 1_000_000
	}
	switch {
	case rl.PerIP < 0 || rl.PerPasskey < 0:
		return nil, errorf("RateLimitConfig rates must not be negative")
	case rl.IPBurst < 1 || rl.PasskeyBurst < 1:
		return nil, errorf("RateLimitConfig bursts must be positive")
	case rl.IPv6Prefix < 8 || rl.IPv6Prefix > 128:
		return nil, errorf("RateLimitConfig.IPv6Prefix %d: want between 8 and 128", rl.IPv6Prefix)
	case rl.MaxKeys < 1:
		return nil, errorf("RateLimitConfig.MaxKeys %d: want at least 1", rl.MaxKeys)
	}

	t := &Tracker{log: cfg.Logger, v6Bits: rl.IPv6Prefix}
	if t.log == nil {
		t.log = slog.Default()
	}
	if rl.PerIP > 0 {
		t.ipLimit = ratelimit.New[netip.Addr](rl.PerIP, rl.IPBurst, rl.MaxKeys)
	}
	if rl.PerPasskey > 0 {
		t.pkLimit = ratelimit.New[string](rl.PerPasskey, rl.PasskeyBurst, rl.MaxKeys)
	}
	// A peer must outlive the longest wait between two of its announces.
	wait := cfg.AnnounceInterval + cfg.IntervalJitter
	t.store = cfg.Store
	if t.store == nil {
		mc := cfg.Memory
		switch {
		case mc.PeerTTL == 0 && wait > maxTTL:
			return nil, errorf("Config.AnnounceInterval %v plus IntervalJitter %v is longer than the memory store can keep peers (%v): lower them, or give a Store that keeps peers longer", cfg.AnnounceInterval, cfg.IntervalJitter, maxTTL)
		case mc.PeerTTL == 0:
			mc.PeerTTL = min(wait+cfg.MinAnnounceInterval, maxTTL)
		case mc.PeerTTL > 0 && mc.PeerTTL < wait:
			return nil, errorf("Config.Memory.PeerTTL %v is shorter than AnnounceInterval %v plus IntervalJitter %v: peers would expire before they announce again", mc.PeerTTL, cfg.AnnounceInterval, cfg.IntervalJitter)
		}
		s, err := NewMemoryStore(mc)
		if err != nil {
			return nil, err
		}
		t.store, t.ownsStore = s, true
	} else if es, ok := t.store.(ExpiringStore); ok && es.PeerTTL() < wait {
		return nil, errorf("Config.AnnounceInterval %v plus IntervalJitter %v is longer than the store keeps peers (PeerTTL %v): peers would expire before they announce again", cfg.AnnounceInterval, cfg.IntervalJitter, es.PeerTTL())
	}
	_, t.storeCounts = t.store.(CountingStore)
	t.announceFilter, _ = cfg.Accounting.(AnnounceFilter)
	t.blocks = blockingOf(&cfg, t.store)
	t.cfg = cfg
	return t, nil
}

func errorf(format string, args ...any) error {
	return fmt.Errorf("tracker: "+format, args...)
}

// Announce handles one announce and returns a new reply. Front-ends use
// [Tracker.AnnounceInto], which reuses the caller's reply; like it,
// Announce normalizes req in place.
//
// A failure the client should read is an [*Error]; any other error is
// internal, has already been logged, and should be shown to clients as a
// generic failure.
func (t *Tracker) Announce(ctx context.Context, req *AnnounceRequest) (*AnnounceResponse, error) {
	resp := new(AnnounceResponse)
	if err := t.AnnounceInto(ctx, req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// AnnounceInto handles one announce and writes the reply into resp,
// appending peers to resp.Peers[:0] so that its capacity is reused. In
// steady state it allocates nothing. It normalizes req in place: the
// address is unmapped (an IPv4-mapped IPv6 address becomes IPv4) and
// NumWant becomes the number of peers wanted (zero for none). Errors are
// as for [Tracker.Announce].
func (t *Tracker) AnnounceInto(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse) error {
	return t.announce(ctx, req, resp, false)
}

// announce is AnnounceInto for front-ends that have already charged the
// client address's rate limit (ipChecked).
func (t *Tracker) announce(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse, ipChecked bool) error {
	var f reqFlags
	if ipChecked {
		f = ipCheckedFlag
	}
	return t.announceFlags(ctx, req, resp, f)
}

// announceFlags is announce with the front-end's flags. With noWait, it
// returns errWouldBlock, having changed nothing, for a request that needs
// a plug-in that may block.
func (t *Tracker) announceFlags(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse, f reqFlags) error {
	*resp = AnnounceResponse{Peers: resp.Peers[:0]}
	if f&noWait == 0 && t.blocks.announce(req) {
		var cancel context.CancelFunc
		if ctx, cancel = t.withDeadline(ctx); cancel != nil {
			defer cancel()
		}
	}
	if err := t.admitAnnounce(ctx, req, resp, f); err != nil {
		if err == errWouldBlock {
			return err
		}
		return t.fail(timedOut(ctx, err), "announce")
	}
	req.Addr = netip.AddrPortFrom(req.Addr.Addr().Unmap().WithZone(""), req.Addr.Port())
	switch {
	case req.Event == EventStopped || req.NumWant < 0:
		req.NumWant = 0
	case req.NumWant == 0:
		req.NumWant = t.cfg.DefaultNumWant
	case req.NumWant > t.cfg.MaxNumWant:
		req.NumWant = t.cfg.MaxNumWant
	}
	if err := t.store.Announce(ctx, req, resp); err != nil {
		resp.Peers = resp.Peers[:0]
		return t.fail(timedOut(ctx, err), "announce: store")
	}
	if err := verifyAnnounce(req, resp); err != nil {
		resp.Peers = resp.Peers[:0]
		return t.breach("announce: store", err)
	}
	if a := t.cfg.Accounting; a != nil && resp.Identity.UserID != 0 {
		if err := a.Account(ctx, req, resp, time.Now()); err != nil {
			resp.Peers = resp.Peers[:0]
			return t.fail(err, "announce: accounting")
		}
	}
	if !t.storeCounts {
		t.announces.add()
	}
	resp.Interval = t.cfg.AnnounceInterval
	if j := t.cfg.IntervalJitter; j >= time.Second {
		// Whole seconds: that is all the wire carries.
		resp.Interval += rand.N(j/time.Second) * time.Second
	}
	resp.MinInterval = t.cfg.MinAnnounceInterval
	resp.Warning = resp.Identity.Warning
	return nil
}

// wireNumWant turns the number of peers a client asks for on the wire,
// where zero means none and a negative number (or none given) the
// default, into [AnnounceRequest.NumWant].
func wireNumWant(n int) int {
	switch {
	case n == 0:
		return -1
	case n < 0:
		return 0
	}
	return n
}

// admitAnnounce checks the request and the policies, cheapest first, and
// sets resp.Identity.
func (t *Tracker) admitAnnounce(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse, f reqFlags) error {
	if t.closed.Load() {
		return ErrClosed
	}
	addr := req.Addr.Addr()
	switch {
	case !addr.IsValid() || addr.Unmap().IsUnspecified():
		return ErrInvalidAddress
	case req.Addr.Port() == 0:
		return ErrInvalidPort
	case req.Uploaded < 0 || req.Downloaded < 0 || req.Left < 0:
		return ErrInvalidCounter
	case req.Event > EventPaused:
		return ErrInvalidEvent
	}
	if f&ipCheckedFlag == 0 && !t.allowIP(addr) {
		return ErrRateLimited
	}
	if f&noWait != 0 && (t.blocks.clients || t.blocks.torrents || t.blocks.store || t.blocks.accounting && req.Passkey != "" && mustPersist(req.Event)) {
		return errWouldBlock
	}
	// The client filter is in memory; a passkey may cost a database query.
	if c := t.cfg.Clients; c != nil {
		if err := c.AllowClient(ctx, req.PeerID, req.UserAgent); err != nil {
			return err
		}
	}
	id, err := t.identifyFlags(ctx, req.Passkey, f)
	if err != nil {
		return err
	}
	resp.Identity = id
	if f := t.cfg.Torrents; f != nil {
		if err := f.AllowTorrent(ctx, req.InfoHash, id); err != nil {
			return err
		}
	}
	if f := t.announceFilter; f != nil && id.UserID != 0 {
		if err := f.AllowAnnounce(ctx, req, id); err != nil {
			return err
		}
	}
	return nil
}

// allowIP charges one request to addr's rate limit.
func (t *Tracker) allowIP(addr netip.Addr) bool {
	if t.ipLimit == nil {
		return true
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		addr = netip.PrefixFrom(addr, t.v6Bits).Masked().Addr()
	}
	return t.ipLimit.Allow(time.Now(), addr)
}

// identify validates the passkey, when passkeys are required, and charges
// its rate limit.
func (t *Tracker) identify(ctx context.Context, passkey string) (Identity, error) {
	return t.identifyFlags(ctx, passkey, 0)
}

// identifyFlags is identify with the front-end's flags: with noWait and a
// validator that may block, only the validators that never block are
// tried, and errWouldBlock is returned if none accepts the passkey.
func (t *Tracker) identifyFlags(ctx context.Context, passkey string, f reqFlags) (Identity, error) {
	v := t.cfg.Passkeys
	if v == nil {
		return Identity{}, nil
	}
	if passkey == "" {
		return Identity{}, ErrPasskeyRequired
	}
	var id Identity
	var err error
	if f&noWait != 0 && t.blocks.passkeys {
		id, err = t.tryPasskey(ctx, passkey)
	} else {
		id, err = v.ValidatePasskey(ctx, passkey)
	}
	if err != nil {
		return Identity{}, err
	}
	if t.pkLimit != nil && !t.pkLimit.Allow(time.Now(), passkey) {
		return Identity{}, ErrRateLimited
	}
	return id, nil
}

// tryPasskey accepts a passkey that one of the validators that never
// block accepts, and returns errWouldBlock otherwise.
func (t *Tracker) tryPasskey(ctx context.Context, passkey string) (Identity, error) {
	for _, v := range t.blocks.fastPasskeys {
		if id, err := v.ValidatePasskey(ctx, passkey); err == nil {
			return id, nil
		}
	}
	return Identity{}, errWouldBlock
}

// fail counts a failure and logs it if it is internal.
func (t *Tracker) fail(err error, what string) error {
	if errors.Is(err, ErrClosed) {
		t.failures[KindInternal].add()
		return err
	}
	e, ok := clientError(err)
	if !ok {
		if _, broken := errors.AsType[*Error](err); broken {
			return t.breach(what, fmt.Errorf("%w: %v", errBadError, err))
		}
		t.failures[KindInternal].add()
		t.log.Error("tracker: "+what+" failed", "err", err)
		return fmt.Errorf("tracker: %s: %w", what, err)
	}
	t.failures[e.Kind].add()
	return err
}

// errBadError is a policy's or store's *Error that the tracker cannot
// show: nil, or of a Kind out of range.
var errBadError = errors.New("tracker: a plug-in returned a nil *Error or one of an unknown Kind")

// breach counts a request failed by a plug-in that broke its contract, as
// an internal error, reports it (at most once a minute, with the number of
// reports held back since the last) and returns the error for the caller.
func (t *Tracker) breach(what string, err error) error {
	t.failures[KindInternal].add()
	if ok, held := t.breaches.allow(time.Now()); ok {
		t.log.Error("tracker: "+what+": a plug-in broke its contract", "err", err, "suppressed", held)
	}
	return fmt.Errorf("tracker: %s: %w", what, err)
}

// Scrape returns the counters of the requested swarms.
func (t *Tracker) Scrape(ctx context.Context, req *ScrapeRequest) (*ScrapeResponse, error) {
	resp := new(ScrapeResponse)
	if err := t.ScrapeInto(ctx, req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// ScrapeInto is [Tracker.Scrape] writing into resp, reusing the capacity
// of resp.Files. A torrent the TorrentFilter refuses gets zero counters, so
// a scrape reveals nothing about it.
func (t *Tracker) ScrapeInto(ctx context.Context, req *ScrapeRequest, resp *ScrapeResponse) error {
	return t.scrape(ctx, req, resp, false)
}

// scrape is ScrapeInto for front-ends that have already charged the
// client address's rate limit (ipChecked).
func (t *Tracker) scrape(ctx context.Context, req *ScrapeRequest, resp *ScrapeResponse, ipChecked bool) error {
	var f reqFlags
	if ipChecked {
		f = ipCheckedFlag
	}
	return t.scrapeFlags(ctx, req, resp, f)
}

// scrapeFlags is scrape with the front-end's flags, as announceFlags is
// announce.
func (t *Tracker) scrapeFlags(ctx context.Context, req *ScrapeRequest, resp *ScrapeResponse, fl reqFlags) error {
	resp.Files = resp.Files[:0]
	resp.MinInterval = t.cfg.MinScrapeInterval
	if fl&noWait == 0 && t.blocks.scrape(req.Passkey != "") {
		var cancel context.CancelFunc
		if ctx, cancel = t.withDeadline(ctx); cancel != nil {
			defer cancel()
		}
	}
	id, err := t.admitScrape(ctx, req, fl)
	if err != nil {
		if err == errWouldBlock {
			return err
		}
		return t.fail(timedOut(ctx, err), "scrape")
	}
	files, err := t.store.Scrape(ctx, req.InfoHashes, resp.Files)
	if err != nil {
		resp.Files = resp.Files[:0]
		return t.fail(timedOut(ctx, err), "scrape: store")
	}
	if err := verifyScrape(req.InfoHashes, files); err != nil {
		resp.Files = files[:0]
		return t.breach("scrape: store", err)
	}
	if f := t.cfg.Torrents; f != nil {
		for i, h := range req.InfoHashes {
			if err := f.AllowTorrent(ctx, h, id); err != nil {
				files[i] = ScrapeStats{}
				if _, ok := clientError(err); ok {
					continue
				}
				if err := timedOut(ctx, err); err == ErrBusy {
					resp.Files = files[:0]
					return t.fail(err, "scrape")
				}
				t.log.Error("tracker: scrape: torrent filter failed", "err", err)
			}
		}
	}
	resp.Files = files
	if !t.storeCounts {
		t.scrapes.add()
	}
	return nil
}

func (t *Tracker) admitScrape(ctx context.Context, req *ScrapeRequest, f reqFlags) (Identity, error) {
	if t.closed.Load() {
		return Identity{}, ErrClosed
	}
	switch n := len(req.InfoHashes); {
	case n == 0:
		return Identity{}, ErrNoInfoHash
	case n > t.cfg.MaxScrapeHashes:
		return Identity{}, ErrTooManyInfoHashes
	}
	if f&ipCheckedFlag == 0 && req.Addr.IsValid() && !t.allowIP(req.Addr) {
		return Identity{}, ErrRateLimited
	}
	if f&noWait != 0 && (t.blocks.torrents || t.blocks.store) {
		return Identity{}, errWouldBlock
	}
	if req.Passkey == "" && t.cfg.PublicScrape {
		return Identity{}, nil
	}
	return t.identifyFlags(ctx, req.Passkey, f)
}

// Stats is a snapshot of a tracker's counters.
type Stats struct {
	// Announces and Scrapes count the requests answered successfully.
	Announces, Scrapes uint64
	// Failures counts failed requests by [Kind] name ("rate_limited", ...).
	Failures map[string]uint64
	// Swarms, Peers and Seeders are the store's totals; they are zero when
	// the store is not a [CountingStore].
	Swarms, Peers, Seeders int
}

// Stats returns the current counters. It is cheap enough to call on every
// metrics scrape, but not per request.
func (t *Tracker) Stats() Stats {
	s := Stats{
		Announces: t.announces.load(),
		Scrapes:   t.scrapes.load(),
		Failures:  make(map[string]uint64, numKinds),
	}
	for k := range numKinds {
		s.Failures[k.String()] = t.failures[k].load()
	}
	if cs, ok := t.store.(CountingStore); ok {
		if c, err := cs.Counts(context.Background()); err == nil {
			s.Swarms, s.Peers, s.Seeders = c.Swarms, c.Peers, c.Seeders
			s.Announces, s.Scrapes = c.Announces, c.Scrapes
		}
	}
	return s
}

// Close stops the tracker: later calls fail with ErrClosed. It closes the
// store if the tracker made it. Close does not stop front-ends; shut those
// down first.
func (t *Tracker) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	if t.ownsStore {
		return t.store.Close()
	}
	return nil
}

// counter is an event counter striped over cache lines, so that cores
// counting at once do not fight over one line.
type counter struct {
	stripes [16]struct {
		n atomic.Uint64
		_ [56]byte
	}
}

func (c *counter) add() { c.stripes[rand.Uint32()&15].n.Add(1) }

func (c *counter) load() uint64 {
	var n uint64
	for i := range c.stripes {
		n += c.stripes[i].n.Load()
	}
	return n
}

// rareLogEvery is the least time between two lines of a rareLog.
const rareLogEvery = time.Minute

// rareLog lets through at most one log line per rareLogEvery for a kind of
// event that may repeat on every request, and counts the lines it holds
// back. It is for failure paths only: it takes a lock.
type rareLog struct {
	mu   sync.Mutex
	next time.Time
	held int
}

// allow reports whether a line may be logged at now and, if so, how many
// were held back since the last one.
func (l *rareLog) allow(now time.Time) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.held++
		return false, 0
	}
	l.next = now.Add(rareLogEvery)
	held, l.held = l.held, 0
	return true, held
}
