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
	"cmp"
	"context"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"runtime"
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
	// MaxPeersPerSwarmAddr bounds the peers of one address (one /64 for
	// IPv6) in one swarm: past it, an announce that would add a peer is
	// answered, with peers, but its peer is not added, so that an address
	// cannot fill a swarm's replies with peers made up for the purpose. If
	// zero, 32; [Disabled] (any negative value) sets no bound.
	MaxPeersPerSwarmAddr int
	// MaxPeersPerAddr bounds likewise the peers of one address over all
	// swarms: a seedbox may hold tens of thousands, a flood of made-up
	// peers from one address is stopped there. Addresses are counted in a
	// table of 65,536 counters by a keyed hash of the address, so two
	// large holders that share a counter share the bound. If zero,
	// 50,000; [Disabled] (any negative value) sets no bound.
	MaxPeersPerAddr int
	// MaxSwarms bounds the swarms held; announces that would add a swarm past
	// it fail with ErrTooManySwarms. If zero, 10,000,000; [Disabled] (any
	// negative value) sets no bound.
	MaxSwarms int
	// Shards is the number of independently locked parts, rounded up to a
	// power of two. If zero, 64 per processor (runtime.GOMAXPROCS), at
	// least 64 and at most 4096: few enough that each holds a good number
	// of peers, many enough that cores seldom wait for one another.
	Shards int
}

// MemoryStore is the default [Store]: swarms in memory, sharded by info
// hash with one lock per shard.
//
// Peers are small pointer-free records, so the garbage collector never
// scans one. Where they live depends on how many a swarm has in an address
// family:
//
//   - Up to 1,024 (almost every swarm): in one block, an array of 8-byte
//     records for IPv4 (20 for IPv6) sorted by address and port, leechers
//     from its start and seeders from its end. An announcer is found by
//     binary search; a reply walks the eligible peers from a random one by
//     a random step, so each is picked with the same probability and a
//     reply is not a run of neighbouring addresses. Blocks come in sizes 6%
//     to 12% apart; small ones share the chunks of a slab per shard, which
//     is compacted when much of it is free, so a peer costs little more
//     than its record.
//   - Past 1,024: in one of the shard's two B-trees (one per family), in
//     16- or 32-byte records ordered by (swarm, seeder or leecher, keyed
//     hash of the peer), so that a swarm is a key range in a random but
//     stable order: a reply is a window of consecutive peers from a
//     uniformly random rank, found through per-swarm bucket counts (a
//     Fenwick tree over ranges of the hash), so an announce costs
//     O(log n + numwant) and never scans a swarm. A family moves back to a
//     block when 256 peers are left.
//
// A peer is known by its address and port and a byte of a keyed hash of
// its user and peer id (see [Store]), not by its peer id, so replies carry
// no peer ids. A record stores the generation (an eighth of the peer TTL)
// it was last seen in: a peer expires between the TTL and an eighth more
// after its last announce. Stale peers are removed by a background sweeper
// that visits one shard at a time in small batches.
//
// A MemoryStore is safe for concurrent use. Close stops its sweeper.
type MemoryStore struct {
	shards []shard
	mask   uint64
	seed   maphash.Seed

	start     time.Time
	peerTTL   time.Duration
	ttl       uint32 // peer TTL in ticks
	genTicks  uint32 // ticks in a generation: an eighth of ttl
	swarmTTL  uint32 // swarm TTL in ticks
	maxPeers  int64
	maxSwarms int64
	// maxSwarmAddr and maxAddr bound the peers of one address in a swarm
	// and in the store (-1: no bound); perAddr counts the latter, nil
	// without a bound.
	maxSwarmAddr int
	maxAddr      int
	perAddr      *addrCounter
	bounded      bool // either bound is set
	// maxClass is the largest size class of a block: past it, a family
	// moves to the tree, and back to a block at toBlockAt peers.
	maxClass  int
	toBlockAt uint32
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

// A record's meta, one byte, holds the generation it was last seen in and
// two flags. A generation is an eighth of the peer TTL: a record is stale
// once nine generations (more than the TTL, at most an eighth more) have
// begun since it was seen. The sweeper visits every record at least every
// two generations, far within the 64 that a 6-bit generation tells apart.
const (
	// tick is the resolution of the store's clock and of swarm
	// timestamps.
	tick      = 4 * time.Second
	genBits   = 6
	genMask   = 1<<genBits - 1
	staleGens = 9      // generations begun since a record was seen that make it stale
	newerGens = 56     // from this age on, a record's generation is ahead of the sweep's
	flagSnat  = 1 << 6 // the peer's completion was counted
	flagPause = 1 << 7 // the peer is a partial seed (BEP 21)
	maxTTL    = 16 * time.Hour
)

// peer4 and peer6 are the records of the tree: no pointers, 16 and 32
// bytes. Their key orders a tree by swarm, class and hid (see treeHid),
// whose low 8 bits are the peer's identity byte.
type peer4 struct {
	key  uint64
	ip   [4]byte
	port uint16
	meta uint8
}

type peer6 struct {
	key  uint64
	ip   [16]byte
	port uint16
	meta uint8
}

// record is what the tree code needs of a record of the tree.
type record[P any] interface {
	peer4 | peer6
	recKey() uint64
	recMeta() uint8
	addrPort() netip.AddrPort
	with(key uint64, ap netip.AddrPort, meta uint8) P
	probe(key uint64) P // a record with only a key, for lookups
	withMeta(meta uint8) P
}

func (p peer4) recKey() uint64 { return p.key }
func (p peer4) recMeta() uint8 { return p.meta }
func (p peer4) addrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(p.ip), p.port)
}
func (peer4) with(key uint64, ap netip.AddrPort, meta uint8) peer4 {
	return peer4{key: key, ip: ap.Addr().As4(), port: ap.Port(), meta: meta}
}
func (peer4) probe(key uint64) peer4 { return peer4{key: key} }
func (p peer4) withMeta(meta uint8) peer4 {
	p.meta = meta
	return p
}

func (p peer6) recKey() uint64 { return p.key }
func (p peer6) recMeta() uint8 { return p.meta }
func (p peer6) addrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(p.ip), p.port)
}
func (peer6) with(key uint64, ap netip.AddrPort, meta uint8) peer6 {
	return peer6{key: key, ip: ap.Addr().As16(), port: ap.Port(), meta: meta}
}
func (peer6) probe(key uint64) peer6 { return peer6{key: key} }
func (p peer6) withMeta(meta uint8) peer6 {
	p.meta = meta
	return p
}

// slot4 and slot6 are the records of blocks: no pointers, 8 and 20 bytes.
// A block keeps them sorted by address, port and identity byte (see
// MemoryStore.ident), which is how an announcer is found and how the peers
// of one address are counted. A slot4 is one integer:
//
//	| IPv4 address (32 bits) | port (16) | identity (8) | meta (8) |
type slot4 struct{ k uint64 }

type slot6 struct {
	ip   [16]byte
	port uint16
	id   uint8
	meta uint8
}

// slot is what the block code needs of a record of a block.
type slot[S any] interface {
	slot4 | slot6
	made(ap netip.AddrPort, id uint8, meta uint8) S
	recMeta() uint8
	recID() uint8
	withMeta(meta uint8) S
	addrPort() netip.AddrPort
	// cmp orders records by address, port and identity; the meta does
	// not count.
	cmp(o S) int
	// link and linked thread the slab's free lists through the first
	// record of each free block.
	link(next uint32) S
	linked() uint32
}

func (slot4) made(ap netip.AddrPort, id, meta uint8) slot4 {
	ip := ap.Addr().As4()
	return slot4{uint64(binary.BigEndian.Uint32(ip[:]))<<32 | uint64(ap.Port())<<16 | uint64(id)<<8 | uint64(meta)}
}
func (p slot4) recMeta() uint8 { return uint8(p.k) }
func (p slot4) recID() uint8   { return uint8(p.k >> 8) }
func (p slot4) withMeta(meta uint8) slot4 {
	return slot4{p.k&^0xFF | uint64(meta)}
}
func (p slot4) addrPort() netip.AddrPort {
	var ip [4]byte
	binary.BigEndian.PutUint32(ip[:], uint32(p.k>>32))
	return netip.AddrPortFrom(netip.AddrFrom4(ip), uint16(p.k>>16))
}
func (p slot4) cmp(o slot4) int      { return cmp.Compare(p.k>>8, o.k>>8) }
func (slot4) link(next uint32) slot4 { return slot4{uint64(next)} }
func (p slot4) linked() uint32       { return uint32(p.k) }

func (slot6) made(ap netip.AddrPort, id, meta uint8) slot6 {
	return slot6{ip: ap.Addr().As16(), port: ap.Port(), id: id, meta: meta}
}
func (p slot6) recMeta() uint8 { return p.meta }
func (p slot6) recID() uint8   { return p.id }
func (p slot6) withMeta(meta uint8) slot6 {
	p.meta = meta
	return p
}
func (p slot6) addrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(p.ip), p.port)
}
func (p slot6) cmp(o slot6) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(p.ip[:8]), binary.BigEndian.Uint64(o.ip[:8])); c != 0 {
		return c
	}
	if c := cmp.Compare(binary.BigEndian.Uint64(p.ip[8:]), binary.BigEndian.Uint64(o.ip[8:])); c != 0 {
		return c
	}
	return cmp.Compare(uint32(p.port)<<8|uint32(p.id), uint32(o.port)<<8|uint32(o.id))
}
func (slot6) link(next uint32) slot6 {
	var p slot6
	binary.LittleEndian.PutUint32(p.ip[:], next)
	return p
}
func (p slot6) linked() uint32 { return binary.LittleEndian.Uint32(p.ip[:]) }

// family holds one address family's peers of a shard.
type family[S slot[S], P record[P]] struct {
	tree *btree.BTreeG[P]
	// samplers holds the bucket counts of large classes, by classKey.
	samplers map[uint32]*fenwick
	scratch  []P // sweep batch, reused
	moving   []P // records moving from the tree to a block, reused

	// slab holds the small blocks of the swarms whose peers are not in the
	// tree, big the large ones.
	slab slab[S]
	big  bigBlocks[S]
}

// btreeDegree makes nodes of 63 to 127 records (1 to 2 KB). Degrees whose
// half-node rounds up to a size class with room to spare (24, 32, 48, 64)
// pack records densely; 64 measured best.
const btreeDegree = 64

func newFamily[S slot[S], P record[P]](less btree.LessFunc[P]) family[S, P] {
	return family[S, P]{
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
	swarms             swarmTable // by id
	free               []uint32   // ids of free slots in swarms
	idle               []uint32   // ids of swarms found with no peers but snatches: the first to go
	v4                 family[slot4, peer4]
	v6                 family[slot6, peer6]
	treeAddrs          treeAddrs
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
		ttl:          uint32((cfg.PeerTTL+tick-1)/tick) + 1,
		genTicks:     uint32((cfg.PeerTTL+tick-1)/tick+8) / 8,
		swarmTTL:     uint32(min(cfg.SwarmTTL/tick, 1<<31)),
		maxPeers:     bound(cfg.MaxPeers, 50_000_000),
		maxSwarmAddr: int(bound(cfg.MaxPeersPerSwarmAddr, 32)),
		maxAddr:      int(bound(cfg.MaxPeersPerAddr, 50_000)),
		maxSwarms:    bound(cfg.MaxSwarms, 10_000_000),
		maxClass:     len(blockCaps) - 1,
		toBlockAt:    uint32(blockCaps[len(blockCaps)-1] / 4),
		stop:         make(chan struct{}),
	}
	n := cfg.Shards
	if n == 0 {
		n = min(max(64*runtime.GOMAXPROCS(0), 64), 4096)
	}
	n = 1 << bits.Len(uint(n-1))
	s.shards = make([]shard, n)
	s.mask = uint64(n - 1)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.v4 = newFamily[slot4](func(a, b peer4) bool { return a.key < b.key })
		sh.v6 = newFamily[slot6](func(a, b peer6) bool { return a.key < b.key })
	}
	if s.maxAddr >= 0 {
		s.perAddr = newAddrCounter()
	}
	s.bounded = s.maxAddr >= 0 || s.maxSwarmAddr >= 0
	s.advance(s.start)
	// A store dropped without Close gives its chunks back once collected.
	runtime.AddCleanup(s, func(shards []shard) {
		for i := range shards {
			freeShard(&shards[i])
		}
	}, s.shards)
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

// ident returns what tells a peer from the others of its address and port
// in a swarm: a byte of a keyed hash of its user and peer id. With the
// address and port, it is the peer's identity (see [Store]); two peers of
// one address and port (two clients behind a NAT on the default port, say)
// whose bytes meet are taken for one, a chance of 1 in 256 for a pair, and
// one that wants to pass for another needs its address and port first.
func (s *MemoryStore) ident(user uint64, id PeerID) uint8 {
	var b [8 + 20]byte
	binary.LittleEndian.PutUint64(b[:8], user)
	*(*[20]byte)(b[8:]) = id
	return uint8(maphash.Bytes(s.seed, b[:]) >> 56)
}

// treeHid returns the place of a peer in its class of the tree: 31 bits of
// a keyed hash of its address, port and identity, which spread the peers of
// a class evenly over the key space, then the identity, which a record of
// the tree thus keeps.
func (s *MemoryStore) treeHid(ap netip.AddrPort, ident uint8) uint64 {
	var b [19]byte
	*(*[16]byte)(b[:]) = ap.Addr().As16()
	binary.LittleEndian.PutUint16(b[16:], ap.Port())
	b[18] = ident
	return maphash.Bytes(s.seed, b[:])>>(64-hidBits+8)<<8 | uint64(ident)
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
	ident := s.ident(resp.Identity.UserID, req.PeerID)
	ap := netip.AddrPortFrom(addr, req.Addr.Port())
	sh, hv := s.shardOf(&req.InfoHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed // the chunks may be given back
	}
	id, ok := sh.index.find(&sh.swarms, &req.InfoHash, hv)
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
	w := sh.swarms.at(id)
	if w.seen != now {
		// Written once a tick at most: a swarm announced to from several
		// cores stays in each core's cache.
		w.seen = now
	}
	peers, snatches := sh.peers, w.snatches
	var err error
	if addr.Is4() {
		err = announceIn(s, sh, &sh.v4, inet4, w, id, ident, ap, req, resp, now)
	} else {
		err = announceIn(s, sh, &sh.v6, inet6, w, id, ident, ap, req, resp, now)
	}
	resp.Outcome = outcome(sh.peers-peers, w.snatches != snatches, req.Left == 0)
	resp.Complete = int(w.n[inet4][seed] + w.n[inet6][seed])
	resp.Incomplete = int(w.n[inet4][leech] + w.n[inet6][leech])
	resp.Downloaded = int(w.snatches)
	if err == nil {
		sh.announces++
	}
	return err
}

// outcome returns what an announce did, from the change of its shard's
// peer count and whether it counted a snatch.
func outcome(joined int, snatched, seeding bool) Outcome {
	var o Outcome
	switch {
	case joined > 0:
		o = OutcomeJoined
	case joined < 0:
		o = OutcomeLeft
	}
	if snatched {
		o |= OutcomeCompleted
	}
	if seeding {
		o |= OutcomeSeeding
	}
	return o
}

// announceIn does the work of Announce within one address family, under the
// shard lock: on the swarm's block while the family has few peers there,
// on the shard's tree otherwise.
func announceIn[S slot[S], P record[P]](s *MemoryStore, sh *shard, f *family[S, P], fam addrFamily, w *swarm, id uint32, ident uint8, ap netip.AddrPort, req *AnnounceRequest, resp *AnnounceResponse, now uint32) error {
	if w.blk[fam] != inTree {
		return announceBlock(s, sh, f, fam, w, id, ident, ap, req, resp, now)
	}
	return announceTree(s, sh, f, fam, w, id, ident, ap, req, resp, now)
}

func (s *MemoryStore) addSwarm(sh *shard, h InfoHash, hv uint64, now uint32) (uint32, error) {
	if s.maxSwarms >= 0 && s.nswarms.Load() >= s.maxSwarms && !s.evictIdle(sh) {
		return 0, ErrTooManySwarms
	}
	var id uint32
	if n := len(sh.free); n > 0 {
		id = sh.free[n-1]
		sh.free = sh.free[:n-1]
	} else {
		if sh.swarms.len() == reservedID {
			sh.swarms.push() // stays free forever
		}
		if sh.swarms.len() > maxSwarmID {
			return 0, ErrTooManySwarms
		}
		id = sh.swarms.push()
	}
	*sh.swarms.at(id) = swarm{hash: h, seen: now}
	sh.index.insert(id, hv, s.seed, &sh.swarms)
	s.nswarms.Add(1)
	return id, nil
}

func (s *MemoryStore) dropSwarm(sh *shard, id uint32) {
	sh.index.remove(id, maphash.Comparable(s.seed, sh.swarms.at(id).hash), s.seed, &sh.swarms)
	*sh.swarms.at(id) = swarm{}
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
		if id, ok := sh.index.find(&sh.swarms, &hashes[i], hv); ok {
			st = sh.swarms.at(id).stats()
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
		for id := range uint32(sh.swarms.len()) {
			w := sh.swarms.at(id)
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
		// Announces check closed again under the shard lock, so none
		// touches a chunk given back here.
		for i := range s.shards {
			sh := &s.shards[i]
			sh.mu.Lock()
			freeShard(sh)
			sh.mu.Unlock()
		}
	})
	return nil
}

// freeShard gives back the chunks of a shard's swarms and slabs.
func freeShard(sh *shard) {
	sh.v4.slab.giveBack()
	sh.v6.slab.giveBack()
	sh.swarms.giveBack()
}
