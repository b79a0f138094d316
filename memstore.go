// The in-memory store: MemoryConfig and MemoryStore, the shards, swarms and
// peer records it is made of, and the methods of the Store interfaces. Its
// inner workings have files of their own: memstore_block.go (announces and
// replies on the blocks of small swarms, and moves between a block and the
// tree), memstore_tree.go (announces on the tree), memstore_rules.go
// (snatches, partial seeds and counters), memstore_sample.go (replies from
// the tree, and bucket counts), memstore_expiry.go (the sweeper),
// memstore_slab.go (where blocks live) and memstore_index.go (swarms by info
// hash).

package tracker

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
)

// MemoryConfig configures a [MemoryStore].
type MemoryConfig struct {
	// PeerTTL is how long a peer is kept after its last announce. If zero,
	// 45 minutes. At most 16 hours.
	PeerTTL time.Duration
	// SwarmTTL is how long a swarm without peers keeps its snatch count
	// before it is forgotten. A swarm without peers or snatches is dropped
	// at the next sweep. If zero, 24 hours.
	SwarmTTL time.Duration
	// MaxPeers bounds the peers held; announces that would add a peer past
	// it fail with ErrTooManyPeers. If zero, 50,000,000 (about 2 GB);
	// [Disabled] (any negative value) sets no bound.
	MaxPeers int
	// MaxSwarms bounds the swarms held; announces that would add a swarm past
	// it fail with ErrTooManySwarms. If zero, 10,000,000; [Disabled] (any
	// negative value) sets no bound.
	MaxSwarms int
	// Shards is the number of independently locked parts, rounded up to a
	// power of two. If zero, 512.
	Shards int
}

// MemoryStore is the default [Store]: swarms in memory, sharded by info
// hash with one lock per shard.
//
// Peers are small pointer-free records (16 bytes for IPv4, 32 for IPv6),
// so the garbage collector never scans one. Where they live depends on how
// many a swarm has in an address family:
//
//   - Up to 32 (most swarms): in a block of the shard's slab, one array of
//     records per swarm and family, looked up and sampled by a pass over a
//     few consecutive cache lines. Blocks come in sizes close together and
//     the slab is compacted when much of it is free, so a peer costs little
//     more than its record.
//   - Past 32: in one of the shard's two B-trees (one per family), ordered
//     by (swarm, seeder or leecher, keyed hash of the peer's identity), so that a
//     swarm is a key range. The hash key is secret and random per store, so
//     the order is random but stable: a reply is a window of consecutive
//     peers starting at a uniformly random rank. Ranks in large swarms are
//     found through per-swarm bucket counts (a Fenwick tree over ranges of
//     the hash), so an announce costs O(log n + numwant) and never scans a
//     swarm. A family moves back to a block when 8 peers are left.
//
// A peer is known by a 39-bit keyed hash of its identity (its user, address
// and peer id; see [Store]), not by its peer id, so replies carry no peer
// ids. Stale peers are removed by a
// background sweeper that visits one shard at a time in small batches.
//
// A MemoryStore is safe for concurrent use. Close stops its sweeper.
type MemoryStore struct {
	shards []shard
	mask   uint64
	seed   maphash.Seed

	start     time.Time
	peerTTL   time.Duration
	ttl       uint32 // peer TTL in ticks
	swarmTTL  uint32 // swarm TTL in ticks
	maxPeers  int64
	maxSwarms int64
	npeers    atomic.Int64
	nswarms   atomic.Int64

	clock     atomic.Uint32 // the current tick: only advance moves it
	closed    atomic.Bool
	stop      chan struct{}
	done      chan struct{} // closed when the sweeper returns; nil without one
	closeOnce sync.Once
}

var (
	_ Store         = (*MemoryStore)(nil)
	_ CountingStore = (*MemoryStore)(nil)
	_ FullScraper   = (*MemoryStore)(nil)
	_ ExpiringStore = (*MemoryStore)(nil)
	_ NonBlocker    = (*MemoryStore)(nil)
)

// Record keys: | swarm prefix (24 bits) | seeder (1 bit) | peer hash (39 bits) |.
// The swarm prefix is the swarm's id through a bijection that scatters
// consecutive ids, so that swarms created one after another do not all
// insert at the right edge of the tree (which leaves B-tree nodes half
// full: 42 bytes per peer instead of 33).
const (
	hidBits    = 39
	hidMask    = 1<<hidBits - 1
	seedBit    = 1 << hidBits
	swarmShift = hidBits + 1
	prefixMul  = 0x9E3779 // odd, so multiplying by it permutes 24-bit ids
	prefixInv  = 0xB382C9 // its inverse modulo 2^24
	// reservedID is the id whose prefix is all ones: never handed out, so
	// that the end of every class range fits in 64 bits.
	reservedID = 0x4C7D37
	maxSwarmID = idMask - 1 // id+1 must fit the index's 24 bits
)

// addrFamily is the address family of peers: a shard keeps IPv4 and IPv6
// peers apart, and a reply holds peers of the announcer's family only. It
// indexes a swarm's arrays by family.
//
// addrFamily and peerClass are ints, not bytes: they are never stored, and
// a byte used as an index must be widened first, inside loops too.
type addrFamily int

const (
	inet4 addrFamily = iota
	inet6
)

// peerClass tells leechers from seeders. Its value is the seeder bit of a
// record key, and it indexes a swarm's counts by class.
type peerClass int

const (
	leech peerClass = iota
	seed
)

// classBase is the first key of a class of a swarm.
func classBase(id uint32, class peerClass) uint64 {
	return swarmBase(id) | uint64(class)<<hidBits
}

// swarmBase is the first key of a swarm.
func swarmBase(id uint32) uint64 {
	return uint64(id*prefixMul&idMask) << swarmShift
}

// swarmOf returns the id of the swarm a record key belongs to.
func swarmOf(key uint64) uint32 {
	return uint32(key>>swarmShift) * prefixInv & idMask
}

// A record's meta holds the tick it was last seen at and two flags.
const (
	// tick is the resolution of peer and swarm timestamps. A record holds
	// 14 bits of it, which wrap around after 16,384 ticks (18 h 12 min):
	// a timestamp up to futureTicks ahead of the clock (68 min) counts as
	// fresh, and older ones are told apart by age up to 17 h 4 min.
	tick        = 4 * time.Second
	seenBits    = 14
	seenMask    = 1<<seenBits - 1
	futureTicks = 1 << 10
	// maxTTL is the longest peer TTL. The store keeps a peer two ticks
	// more than its TTL (14,402 ticks at most), so the sweeper has an hour
	// (sweepSlack) to visit a stale record before its age would wrap
	// around and read as fresh; it visits every record at least once a
	// minute.
	maxTTL     = 16 * time.Hour
	sweepSlack = 900 // ticks
	flagSnat   = 1   // the peer's completion was counted
	flagPause  = 2   // the peer is a partial seed (BEP 21)
)

// The longest TTL, its margin and the sweeper's slack fit in the ages a
// record tells apart: this fails to compile if they do not.
const _ = uint(seenMask + 1 - futureTicks - (int(maxTTL/tick) + 2) - sweepSlack)

// peer4 and peer6 are the stored records: no pointers, 16 and 32 bytes.
type peer4 struct {
	key  uint64
	ip   [4]byte
	port uint16
	meta uint16 // seen tick << 2 | flags
}

type peer6 struct {
	key  uint64
	ip   [16]byte
	port uint16
	meta uint16
}

// record is what the family code needs of a stored peer.
type record[P any] interface {
	peer4 | peer6
	recKey() uint64
	recMeta() uint16
	addrPort() netip.AddrPort
	with(key uint64, ap netip.AddrPort, meta uint16) P
	probe(key uint64) P // a record with only a key, for lookups
	withMeta(meta uint16) P
}

func (p peer4) recKey() uint64  { return p.key }
func (p peer4) recMeta() uint16 { return p.meta }
func (p peer4) addrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(p.ip), p.port)
}
func (peer4) with(key uint64, ap netip.AddrPort, meta uint16) peer4 {
	return peer4{key: key, ip: ap.Addr().As4(), port: ap.Port(), meta: meta}
}

func (peer4) probe(key uint64) peer4 { return peer4{key: key} }
func (p peer4) withMeta(meta uint16) peer4 {
	p.meta = meta
	return p
}

func (p peer6) recKey() uint64  { return p.key }
func (p peer6) recMeta() uint16 { return p.meta }
func (p peer6) addrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(p.ip), p.port)
}
func (peer6) with(key uint64, ap netip.AddrPort, meta uint16) peer6 {
	return peer6{key: key, ip: ap.Addr().As16(), port: ap.Port(), meta: meta}
}
func (peer6) probe(key uint64) peer6 { return peer6{key: key} }
func (p peer6) withMeta(meta uint16) peer6 {
	p.meta = meta
	return p
}

// family holds one address family's peers of a shard.
type family[P record[P]] struct {
	tree *btree.BTreeG[P]
	// samplers holds the bucket counts of large classes, by classKey.
	samplers map[uint32]*fenwick
	scratch  []P // sweep batch, reused
	moving   []P // records moving from the tree to a block, reused

	// slab holds the blocks of the swarms whose peers are not in the tree.
	slab slab[P]
}

// btreeDegree makes nodes of 63 to 127 records (1 to 2 KB). Degrees whose
// half-node rounds up to a size class with room to spare (24, 32, 48, 64)
// pack records densely; 64 measured best.
const btreeDegree = 64

func newFamily[P record[P]](less btree.LessFunc[P]) family[P] {
	return family[P]{
		tree:     btree.NewWithFreeListG(btreeDegree, less, btree.NewFreeListG[P](16)),
		samplers: make(map[uint32]*fenwick),
	}
}

// swarm is one torrent's counters. It holds no pointers.
type swarm struct {
	hash     InfoHash
	n        [2][2]uint32 // peers by [addrFamily][peerClass]
	paused   uint32
	snatches uint32
	seen     uint32    // tick of the last announce; 0 marks a free slot
	at       [2]uint32 // by family: offset of the block in the slab
	blk      [2]uint8  // by family: noBlock, a block's size class + 1, or inTree
}

func (w *swarm) peers() uint32 {
	return w.n[inet4][leech] + w.n[inet4][seed] + w.n[inet6][leech] + w.n[inet6][seed]
}

type shard struct {
	mu sync.Mutex
	// Totals kept under mu, for Counts, on the lock's cache line: an
	// announce that changes them dirties no other line of the shard.
	peers, seeders     int
	announces, scrapes uint64
	index              swarmIndex
	swarms             []swarm  // by id
	free               []uint32 // ids of free slots in swarms
	v4                 family[peer4]
	v6                 family[peer6]
	_                  [64]byte // keep neighbouring shards' locks apart
}

// NewMemoryStore returns an empty store and starts its sweeper.
func NewMemoryStore(cfg MemoryConfig) (*MemoryStore, error) {
	s, err := newMemoryStore(cfg)
	if err != nil {
		return nil, err
	}
	s.done = make(chan struct{})
	go s.sweeper(min(cfg.PeerTTL/4, time.Minute))
	return s, nil
}

// newMemoryStore returns a store without its sweeper: tests sweep by hand
// at the times they choose.
func newMemoryStore(cfg MemoryConfig) (*MemoryStore, error) {
	if cfg.PeerTTL == 0 {
		cfg.PeerTTL = 45 * time.Minute
	}
	if cfg.SwarmTTL == 0 {
		cfg.SwarmTTL = 24 * time.Hour
	}
	if cfg.PeerTTL < tick || cfg.PeerTTL > maxTTL {
		return nil, errorf("MemoryConfig.PeerTTL %v: want between %v and %v", cfg.PeerTTL, tick, maxTTL)
	}
	if cfg.SwarmTTL < 0 {
		return nil, errorf("MemoryConfig.SwarmTTL %v is negative", cfg.SwarmTTL)
	}
	if cfg.Shards < 0 || cfg.Shards > 1<<16 {
		return nil, errorf("MemoryConfig.Shards %d: want between 0 and 65536", cfg.Shards)
	}
	s := &MemoryStore{
		seed:    maphash.MakeSeed(),
		start:   time.Now(),
		peerTTL: cfg.PeerTTL,
		// One tick more than the TTL, rounded up: the clock announces read
		// lags by up to a second and a tick, and a peer must be kept at
		// least PeerTTL.
		ttl:       uint32((cfg.PeerTTL+tick-1)/tick) + 1,
		swarmTTL:  uint32(min(cfg.SwarmTTL/tick, 1<<31)),
		maxPeers:  bound(cfg.MaxPeers, 50_000_000),
		maxSwarms: bound(cfg.MaxSwarms, 10_000_000),
		stop:      make(chan struct{}),
	}
	n := cfg.Shards
	if n == 0 {
		n = 512
	}
	n = 1 << bits.Len(uint(n-1))
	s.shards = make([]shard, n)
	s.mask = uint64(n - 1)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.v4 = newFamily(func(a, b peer4) bool { return a.key < b.key })
		sh.v6 = newFamily(func(a, b peer6) bool { return a.key < b.key })
	}
	s.advance(s.start)
	return s, nil
}

func bound(v, def int) int64 {
	switch {
	case v == 0:
		return int64(def)
	case v < 0:
		return -1
	}
	return int64(v)
}

// now returns the tick of t, counted from 1 so that 0 can mark a free
// swarm slot. Announces read the tick from s.clock instead, which the
// sweeper advances: calling time.Now on every announce costs more than the
// 4-second resolution is worth.
func (s *MemoryStore) now(t time.Time) uint32 {
	return uint32(t.Sub(s.start)/tick) + 1
}

// shardOf returns the shard of h and the hash that also places h in the
// shard's index.
func (s *MemoryStore) shardOf(h *InfoHash) (*shard, uint64) {
	hv := maphash.Comparable(s.seed, *h)
	return &s.shards[hv&s.mask], hv
}

// hid is the peer's place in its class: a keyed hash of what tells it from
// the other peers of its swarm, its user, address and peer id (see
// [Store]).
func (s *MemoryStore) hid(user uint64, ip netip.Addr, id PeerID) uint64 {
	var b [8 + 16 + 20]byte
	binary.LittleEndian.PutUint64(b[:8], user)
	*(*[16]byte)(b[8:]) = ip.As16()
	*(*[20]byte)(b[24:]) = id
	return maphash.Bytes(s.seed, b[:]) >> (64 - hidBits)
}

// Announce implements [Store].
func (s *MemoryStore) Announce(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse) error {
	return s.announce(s.clock.Load(), req, resp)
}

func (s *MemoryStore) announce(now uint32, req *AnnounceRequest, resp *AnnounceResponse) error {
	if s.closed.Load() {
		return ErrClosed
	}
	addr := req.Addr.Addr().Unmap().WithZone("")
	if !addr.IsValid() {
		return ErrInvalidAddress
	}
	hid := s.hid(resp.Identity.UserID, addr, req.PeerID)
	ap := netip.AddrPortFrom(addr, req.Addr.Port())
	sh, hv := s.shardOf(&req.InfoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	id, ok := sh.index.find(sh.swarms, &req.InfoHash, hv)
	if !ok {
		if req.Event == EventStopped {
			resp.Complete, resp.Incomplete, resp.Downloaded = 0, 0, 0
			sh.announces++
			return nil
		}
		var err error
		if id, err = s.addSwarm(sh, req.InfoHash, hv, now); err != nil {
			return err
		}
	}
	w := &sh.swarms[id]
	if w.seen != now {
		// Written once a tick at most: a swarm announced to from several
		// cores stays in each core's cache.
		w.seen = now
	}
	var err error
	if addr.Is4() {
		err = announceIn(s, sh, &sh.v4, inet4, w, id, hid, ap, req, resp, now)
	} else {
		err = announceIn(s, sh, &sh.v6, inet6, w, id, hid, ap, req, resp, now)
	}
	resp.Complete = int(w.n[inet4][seed] + w.n[inet6][seed])
	resp.Incomplete = int(w.n[inet4][leech] + w.n[inet6][leech])
	resp.Downloaded = int(w.snatches)
	if err == nil {
		sh.announces++
	}
	return err
}

// announceIn does the work of Announce within one address family, under the
// shard lock: on the swarm's block while the family has few peers there,
// on the shard's tree otherwise.
func announceIn[P record[P]](s *MemoryStore, sh *shard, f *family[P], fam addrFamily, w *swarm, id uint32, hid uint64, ap netip.AddrPort, req *AnnounceRequest, resp *AnnounceResponse, now uint32) error {
	if w.blk[fam] != inTree {
		return announceBlock(s, sh, f, fam, w, id, hid, ap, req, resp, now)
	}
	return announceTree(s, sh, f, fam, w, id, hid, ap, req, resp, now)
}

func (s *MemoryStore) addSwarm(sh *shard, h InfoHash, hv uint64, now uint32) (uint32, error) {
	if s.maxSwarms >= 0 && s.nswarms.Load() >= s.maxSwarms {
		return 0, ErrTooManySwarms
	}
	var id uint32
	if n := len(sh.free); n > 0 {
		id = sh.free[n-1]
		sh.free = sh.free[:n-1]
	} else {
		if len(sh.swarms) == reservedID {
			sh.swarms = append(sh.swarms, swarm{}) // stays free forever
		}
		if len(sh.swarms) > maxSwarmID {
			return 0, ErrTooManySwarms
		}
		id = uint32(len(sh.swarms))
		sh.swarms = append(sh.swarms, swarm{})
	}
	sh.swarms[id] = swarm{hash: h, seen: now}
	sh.index.insert(id, hv, s.seed, sh.swarms)
	s.nswarms.Add(1)
	return id, nil
}

func (s *MemoryStore) dropSwarm(sh *shard, id uint32) {
	sh.index.remove(id, maphash.Comparable(s.seed, sh.swarms[id].hash), s.seed, sh.swarms)
	sh.swarms[id] = swarm{}
	sh.free = append(sh.free, id)
	s.nswarms.Add(-1)
}

// Scrape implements [Store].
func (s *MemoryStore) Scrape(ctx context.Context, hashes []InfoHash, dst []ScrapeStats) ([]ScrapeStats, error) {
	if s.closed.Load() {
		return dst, ErrClosed
	}
	for i := range hashes {
		sh, hv := s.shardOf(&hashes[i])
		var st ScrapeStats
		sh.mu.Lock()
		if id, ok := sh.index.find(sh.swarms, &hashes[i], hv); ok {
			st = sh.swarms[id].stats()
		}
		if i == 0 {
			sh.scrapes++
		}
		sh.mu.Unlock()
		dst = append(dst, st)
	}
	return dst, nil
}

func (w *swarm) stats() ScrapeStats {
	l := int(w.n[inet4][leech] + w.n[inet6][leech])
	return ScrapeStats{
		Complete:    int(w.n[inet4][seed] + w.n[inet6][seed]),
		Incomplete:  l,
		Downloaded:  int(w.snatches),
		Downloaders: l - int(w.paused),
	}
}

// ScrapeAll implements [FullScraper]. It copies one shard at a time and
// calls fn with no lock held.
func (s *MemoryStore) ScrapeAll(ctx context.Context, fn func(InfoHash, ScrapeStats) bool) error {
	type entry struct {
		h  InfoHash
		st ScrapeStats
	}
	var buf []entry
	for i := range s.shards {
		if s.closed.Load() {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		sh := &s.shards[i]
		buf = buf[:0]
		sh.mu.Lock()
		for id := range sh.swarms {
			w := &sh.swarms[id]
			if w.seen != 0 && (w.peers() > 0 || w.snatches > 0) {
				buf = append(buf, entry{w.hash, w.stats()})
			}
		}
		sh.mu.Unlock()
		for _, e := range buf {
			if !fn(e.h, e.st) {
				return nil
			}
		}
	}
	return nil
}

// Counts implements [CountingStore].
func (s *MemoryStore) Counts(ctx context.Context) (StoreCounts, error) {
	var c StoreCounts
	if s.closed.Load() {
		return c, ErrClosed
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		c.Swarms += sh.index.n
		c.Peers += sh.peers
		c.Seeders += sh.seeders
		c.Announces += sh.announces
		c.Scrapes += sh.scrapes
		sh.mu.Unlock()
	}
	return c, nil
}

// PeerTTL returns how long the store keeps a peer after its last announce
// (see [ExpiringStore]).
func (s *MemoryStore) PeerTTL() time.Duration { return s.peerTTL }

// NonBlocking reports true: a MemoryStore answers from memory (see
// [NonBlocker]).
func (s *MemoryStore) NonBlocking() bool { return true }

// Close stops the sweeper. Later calls fail with ErrClosed.
func (s *MemoryStore) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.stop)
		if s.done != nil {
			<-s.done
		}
	})
	return nil
}
