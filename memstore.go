package tracker

import (
	"context"
	"hash/maphash"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
)

// MemoryConfig configures a [MemoryStore].
type MemoryConfig struct {
	// PeerTTL is how long a peer is kept after its last announce. If zero,
	// 45 minutes. At most 8 hours.
	PeerTTL time.Duration
	// SwarmTTL is how long a swarm without peers keeps its snatch count
	// before it is forgotten. A swarm without peers or snatches is dropped
	// at the next sweep. If zero, 24 hours.
	SwarmTTL time.Duration
	// MaxPeers bounds the peers held; announces that would add a peer past
	// it fail with ErrTooManyPeers. If zero, 50,000,000 (about 2 GB). If
	// negative, unbounded.
	MaxPeers int
	// MaxSwarms bounds the swarms held; announces that would add a swarm past
	// it fail with ErrTooManySwarms. If zero, 10,000,000. If negative,
	// unbounded.
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
//     by (swarm, seeder or leecher, keyed hash of the peer id), so that a
//     swarm is a key range. The hash key is secret and random per store, so
//     the order is random but stable: a reply is a window of consecutive
//     peers starting at a uniformly random rank. Ranks in large swarms are
//     found through per-swarm bucket counts (a Fenwick tree over ranges of
//     the hash), so an announce costs O(log n + numwant) and never scans a
//     swarm. A family moves back to a block when 8 peers are left.
//
// A peer is known by a 39-bit keyed hash of its peer id, not by the id
// itself, so replies carry no peer ids. Stale peers are removed by a
// background sweeper that visits one shard at a time in small batches.
//
// A MemoryStore is safe for concurrent use. Close stops its sweeper.
type MemoryStore struct {
	shards []shard
	mask   uint64
	seed   maphash.Seed

	start     time.Time
	ttl       uint32 // peer TTL in ticks
	swarmTTL  uint32 // swarm TTL in ticks
	maxPeers  int64
	maxSwarms int64
	npeers    atomic.Int64
	nswarms   atomic.Int64

	clock     atomic.Uint32 // the current tick, kept by the sweeper
	closed    atomic.Bool
	stop      chan struct{}
	done      chan struct{} // closed when the sweeper returns; nil without one
	closeOnce sync.Once
}

var (
	_ Store         = (*MemoryStore)(nil)
	_ CountingStore = (*MemoryStore)(nil)
	_ FullScraper   = (*MemoryStore)(nil)
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

	leech = 0
	seed  = 1

	// tick is the resolution of peer and swarm timestamps. A record holds
	// 14 bits of it, 18 hours: ages up to 9 hours are told apart from
	// timestamps slightly in the future, which count as fresh.
	tick      = 4 * time.Second
	seenBits  = 14
	seenMask  = 1<<seenBits - 1
	maxTTL    = 8 * time.Hour
	flagSnat  = 1 // the peer's completion was counted
	flagPause = 2 // the peer is a partial seed (BEP 21)

	// Classes with more peers than this get bucket counts for rank lookup;
	// smaller ones are walked from their start (at most this many steps).
	samplerMin = 64
	// Bucket counts aim at this many peers per bucket and are rebuilt when
	// the average leaves [bucketLow, bucketHigh].
	bucketAim  = 32
	bucketLow  = 8
	bucketHigh = 128

	sweepBatch = 512

	// btreeDegree makes nodes of 63 to 127 records (1 to 2 KB). Degrees
	// whose half-node rounds up to a size class with room to spare (24,
	// 32, 48, 64) pack records densely; 64 measured best.
	btreeDegree = 64
)

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

func newFamily[P record[P]](less btree.LessFunc[P]) family[P] {
	return family[P]{
		tree:     btree.NewWithFreeListG(btreeDegree, less, btree.NewFreeListG[P](16)),
		samplers: make(map[uint32]*fenwick),
	}
}

// swarm is one torrent's counters. It holds no pointers.
type swarm struct {
	hash     InfoHash
	n        [2][2]uint32 // peers by [family][class]
	paused   uint32
	snatches uint32
	seen     uint32    // tick of the last announce; 0 marks a free slot
	at       [2]uint32 // by family: offset of the block in the slab
	blk      [2]uint8  // by family: noBlock, a block's size class + 1, or inTree
}

// Where a family of a swarm keeps its peers: nowhere (it has none), in a
// block of blockCaps[blk-1] records, or in the shard's tree.
const (
	noBlock = 0
	inTree  = 0xFF
)

// blockCaps are the sizes of blocks, in records: close together, so that a
// block wastes little. A family moves to the tree when a peer joins a full
// block of the largest size, and back to a block when it has toBlockAt
// peers left: the gap keeps a swarm near the limit from moving back and
// forth.
var blockCaps = [...]int{1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32}

const toBlockAt = 8

// block returns the peers of a family of a swarm whose peers are in a
// block. It is valid until the next alloc.
func (f *family[P]) block(w *swarm, fam int) []P {
	if w.blk[fam] == noBlock {
		return nil
	}
	return f.slab.span(w.at[fam], w.n[fam][0]+w.n[fam][1])
}

// move puts the n first records of a family's block into a new block of
// size class c, or gives the block up when c is negative.
func (f *family[P]) move(swarms []swarm, w *swarm, fam int, n uint32, c int) {
	at := uint32(0)
	if c >= 0 {
		at = f.slab.alloc(swarms, fam, c) // may move the old block
	}
	old, oldc := w.at[fam], int(w.blk[fam])-1
	if oldc >= 0 {
		copy(f.slab.span(at, n), f.slab.span(old, n))
		f.slab.release(old, oldc)
	}
	w.at[fam], w.blk[fam] = at, uint8(c+1)
}

// push appends rec to a family's block, growing it first when it is full.
// The counters do not count rec yet.
func (f *family[P]) push(swarms []swarm, w *swarm, fam int, rec P) {
	n := w.n[fam][0] + w.n[fam][1]
	if c := int(w.blk[fam]) - 1; c < 0 || int(n) == blockCaps[c] {
		f.move(swarms, w, fam, n, c+1)
	}
	f.slab.span(w.at[fam]+n, 1)[0] = rec
}

// removeAt takes the record at index i out of a family's block, moving the
// last record into its place. The counters still count it.
func (f *family[P]) removeAt(w *swarm, fam int, i int) {
	blk := f.block(w, fam)
	blk[i] = blk[len(blk)-1]
}

// shrink moves a family's block to the smallest size class that holds its
// peers once they fit in a block two sizes smaller (so that a peer coming
// and going does not move it each time), and gives the block up once it is
// empty.
func (f *family[P]) shrink(swarms []swarm, w *swarm, fam int) {
	n := w.n[fam][0] + w.n[fam][1]
	c := int(w.blk[fam]) - 1
	switch {
	case c < 0 || w.blk[fam] == inTree:
	case n == 0:
		f.move(swarms, w, fam, 0, -1)
		f.slab.compactIfFree(swarms, fam, 2)
	case c >= 2 && int(n) <= blockCaps[c-2]:
		f.move(swarms, w, fam, n, classFor(n))
	}
}

// classFor returns the smallest size class that holds n records.
func classFor(n uint32) int {
	c := 0
	for blockCaps[c] < int(n) {
		c++
	}
	return c
}

// toTree moves a family's peers from its block into the shard's tree.
func (f *family[P]) toTree(swarms []swarm, w *swarm, fam int) {
	for _, p := range f.block(w, fam) {
		f.tree.ReplaceOrInsert(p)
	}
	f.move(swarms, w, fam, 0, -1)
	w.blk[fam] = inTree
	f.slab.compactIfFree(swarms, fam, 2)
}

// toBlock moves a family's peers from the tree into a block once few are
// left.
func (f *family[P]) toBlock(swarms []swarm, w *swarm, fam int, id uint32) {
	n := w.n[fam][0] + w.n[fam][1]
	if w.blk[fam] != inTree || n > toBlockAt {
		return
	}
	var zero P
	f.moving = f.moving[:0]
	f.tree.AscendRange(zero.probe(swarmBase(id)), zero.probe(swarmBase(id)+1<<swarmShift), func(p P) bool {
		f.moving = append(f.moving, p)
		return true
	})
	w.blk[fam] = noBlock
	if n == 0 {
		return
	}
	c := classFor(n)
	at := f.slab.alloc(swarms, fam, c)
	blk := f.slab.span(at, n)
	for i, p := range f.moving {
		f.tree.Delete(p)
		blk[i] = p
	}
	w.at[fam], w.blk[fam] = at, uint8(c+1)
}

func (w *swarm) peers() uint32 { return w.n[0][0] + w.n[0][1] + w.n[1][0] + w.n[1][1] }

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
		seed:  maphash.MakeSeed(),
		start: time.Now(),
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
	s.clock.Store(s.now(s.start))
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

// hid is the peer's place in its class: a keyed hash of its id.
func (s *MemoryStore) hid(id PeerID) uint64 {
	return maphash.Bytes(s.seed, id[:]) >> (64 - hidBits)
}

// Announce implements [Store].
func (s *MemoryStore) Announce(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse) error {
	return s.announce(s.clock.Load(), req, resp)
}

func (s *MemoryStore) announce(now uint32, req *AnnounceRequest, resp *AnnounceResponse) error {
	if s.closed.Load() {
		return ErrClosed
	}
	hid := s.hid(req.PeerID)
	addr := req.Addr.Addr().Unmap().WithZone("")
	if !addr.IsValid() {
		return ErrInvalidAddress
	}
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
		err = announceIn(s, sh, &sh.v4, 0, w, id, hid, ap, req, resp, now)
	} else {
		err = announceIn(s, sh, &sh.v6, 1, w, id, hid, ap, req, resp, now)
	}
	resp.Complete = int(w.n[0][seed] + w.n[1][seed])
	resp.Incomplete = int(w.n[0][leech] + w.n[1][leech])
	resp.Downloaded = int(w.snatches)
	if err == nil {
		sh.announces++
	}
	return err
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

// classKey names one class of one swarm in a family's samplers map.
func classKey(id uint32, class int) uint32 { return id<<1 | uint32(class) }

func classBase(id uint32, class int) uint64 {
	return swarmBase(id) | uint64(class)<<hidBits
}

func swarmBase(id uint32) uint64 {
	return uint64(id*prefixMul&idMask) << swarmShift
}

// swarmOf returns the id of the swarm a record key belongs to.
func swarmOf(key uint64) uint32 {
	return uint32(key>>swarmShift) * prefixInv & idMask
}

// announceIn does the work of Announce within one address family, under the
// shard lock: on the swarm's block while the family has few peers there,
// on the shard's tree otherwise.
func announceIn[P record[P]](s *MemoryStore, sh *shard, f *family[P], fam int, w *swarm, id uint32, hid uint64, ap netip.AddrPort, req *AnnounceRequest, resp *AnnounceResponse, now uint32) error {
	if w.blk[fam] != inTree {
		return announceBlock(s, sh, f, fam, w, id, hid, ap, req, resp, now)
	}
	return announceTree(s, sh, f, fam, w, id, hid, ap, req, resp, now)
}

// The rules of an announce, the same wherever a family keeps its peers. A
// snatch is counted once per peer: snatch flags matter on leecher records
// only, since a seeder has completed and never counts a completion again,
// and a leecher that was a seeder keeps the flag, so that completing again
// does not count either.

// newRecord returns the record an announce of class stores, before the
// rules below add the snatch flag.
func newRecord[P record[P]](key uint64, ap netip.AddrPort, req *AnnounceRequest, class int, now uint32) P {
	var zero P
	var flags uint16
	if req.Event == EventPaused && class == leech {
		flags = flagPause
	}
	return zero.with(key, ap, uint16(now&seenMask)<<2|flags)
}

// countStop counts the completion of a leecher that stops with nothing
// left (aria2 never sends completed); old is its record, key the key of
// the class it announces.
func countStop[P record[P]](w *swarm, old P, key uint64, class int) {
	if old.recKey() != key && class == seed && old.recMeta()&flagSnat == 0 {
		w.snatches++
	}
}

// refreshed returns what a peer announcing again in the class of its
// record old stores, counting a completion it reports for the first time.
func refreshed[P record[P]](w *swarm, old, rec P, class int, completed bool) P {
	if class == seed {
		return rec
	}
	snat := old.recMeta() & flagSnat
	if completed && snat == 0 {
		w.snatches++
		snat = flagSnat
	}
	w.paused += uint32(rec.recMeta()&flagPause)>>1 - uint32(old.recMeta()&flagPause)>>1
	return rec.withMeta(rec.recMeta() | snat)
}

// reclassed returns what a peer whose record prev is of the other class
// stores, counting the completion of a leecher that became a seeder.
func reclassed[P record[P]](w *swarm, prev, rec P, class int) P {
	if class == leech {
		return rec.withMeta(rec.recMeta() | flagSnat)
	}
	if prev.recMeta()&flagSnat == 0 {
		w.snatches++
	}
	return rec
}

// joined returns what a new peer stores, counting a completion it reports.
func joined[P record[P]](w *swarm, rec P, class int, completed bool) P {
	if !completed {
		return rec
	}
	w.snatches++
	if class == leech {
		return rec.withMeta(rec.recMeta() | flagSnat)
	}
	return rec
}

// announceBlock is announceIn for a family whose peers are in a block. A
// block is small, so a linear pass over it costs less than a tree descent:
// it touches a few consecutive cache lines instead of several nodes.
func announceBlock[P record[P]](s *MemoryStore, sh *shard, f *family[P], fam int, w *swarm, id uint32, hid uint64, ap netip.AddrPort, req *AnnounceRequest, resp *AnnounceResponse, now uint32) error {
	class := leech
	if req.Left == 0 {
		class = seed
	}
	key := classBase(id, class) | hid
	blk := f.block(w, fam)
	at := -1
	for i := range blk {
		if blk[i].recKey()|seedBit == key|seedBit {
			at = i
			break
		}
	}

	if req.Event == EventStopped {
		if at >= 0 {
			old := blk[at]
			countStop(w, old, key, class)
			f.removeAt(w, fam, at)
			uncountPeer(sh, f, fam, w, id, old)
			s.npeers.Add(-1)
			f.shrink(sh.swarms, w, fam)
		}
		return nil
	}

	completed := req.Event == EventCompleted
	rec := newRecord[P](key, ap, req, class, now)
	switch {
	case at >= 0 && blk[at].recKey() == key:
		// A re-announce within a tick from the same address leaves its
		// record as it was: it is not written, so that other cores keep
		// their copies of the block's cache lines.
		if rec = refreshed(w, blk[at], rec, class, completed); blk[at] != rec {
			blk[at] = rec
		}
	case at >= 0:
		prev := blk[at]
		uncountPeer(sh, f, fam, w, id, prev)
		blk[at] = reclassed(w, prev, rec, class)
		countPeer(sh, f, fam, w, id, class, hid, rec.recMeta())
	case s.maxPeers >= 0 && s.npeers.Load() >= s.maxPeers:
		return ErrTooManyPeers
	default:
		s.npeers.Add(1)
		rec = joined(w, rec, class, completed)
		if len(blk) == blockCaps[len(blockCaps)-1] {
			// Full: the family moves to the tree, and so does this
			// announce.
			f.toTree(sh.swarms, w, fam)
			f.tree.ReplaceOrInsert(rec)
			countPeer(sh, f, fam, w, id, class, hid, rec.recMeta())
			return sampleTree(f, fam, w, id, class, key, req.NumWant, resp)
		}
		f.push(sh.swarms, w, fam, rec)
		countPeer(sh, f, fam, w, id, class, hid, rec.recMeta())
	}

	want := req.NumWant
	if want <= 0 {
		return nil
	}
	// The eligible peers: all others for a leecher, the leechers for a
	// seeder. The reply is a window of them in block order, wrapping
	// around, that starts at a uniformly random one, so each is picked
	// with probability want/eligible.
	eligible := int(w.n[fam][leech])
	if class == leech {
		eligible += int(w.n[fam][seed]) - 1
	}
	m := min(want, eligible)
	if m <= 0 {
		return nil
	}
	skip := 0
	if m < eligible {
		skip = rand.IntN(eligible)
	}
	blk = f.block(w, fam)
	taken := 0
	for pass := 0; pass < 2 && taken < m; pass++ {
		for i := range blk {
			k := blk[i].recKey()
			if k == key || (class == seed && k&seedBit != 0) {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			resp.Peers = append(resp.Peers, Peer{Addr: blk[i].addrPort()})
			if taken++; taken == m {
				break
			}
		}
	}
	return nil
}

// announceTree is announceIn for a family whose peers are in the tree. A
// re-announce in the same class (the steady state) costs one descent of
// the tree to replace the record and one to walk the reply.
func announceTree[P record[P]](s *MemoryStore, sh *shard, f *family[P], fam int, w *swarm, id uint32, hid uint64, ap netip.AddrPort, req *AnnounceRequest, resp *AnnounceResponse, now uint32) error {
	var zero P
	class := leech
	if req.Left == 0 {
		class = seed
	}
	key := classBase(id, class) | hid
	otherKey := classBase(id, 1-class) | hid

	if req.Event == EventStopped {
		old, ok := f.tree.Delete(zero.probe(key))
		if !ok {
			old, ok = f.tree.Delete(zero.probe(otherKey))
		}
		if ok {
			countStop(w, old, key, class)
			uncountPeer(sh, f, fam, w, id, old)
			s.npeers.Add(-1)
			f.toBlock(sh.swarms, w, fam, id)
		}
		return nil
	}

	completed := req.Event == EventCompleted
	rec := newRecord[P](key, ap, req, class, now)
	if old, replaced := f.tree.ReplaceOrInsert(rec); replaced {
		if st := refreshed(w, old, rec, class, completed); st != rec {
			f.tree.ReplaceOrInsert(st)
		}
	} else {
		// The peer is new to this class: it may have changed class.
		prev, moved := f.tree.Delete(zero.probe(otherKey))
		st := rec
		switch {
		case moved:
			uncountPeer(sh, f, fam, w, id, prev)
			st = reclassed(w, prev, rec, class)
		case s.maxPeers >= 0 && s.npeers.Load() >= s.maxPeers:
			f.tree.Delete(rec)
			return ErrTooManyPeers
		default:
			s.npeers.Add(1)
			st = joined(w, rec, class, completed)
		}
		if st != rec {
			f.tree.ReplaceOrInsert(st)
		}
		countPeer(sh, f, fam, w, id, class, hid, rec.recMeta())
	}
	return sampleTree(f, fam, w, id, class, key, req.NumWant, resp)
}

// sampleTree appends to resp the reply to the peer whose key is key, of
// the given class, from a family in the tree.
func sampleTree[P record[P]](f *family[P], fam int, w *swarm, id uint32, class int, key uint64, want int, resp *AnnounceResponse) error {
	if want <= 0 {
		return nil
	}
	if class == seed {
		resp.Peers = sampleClass(f, id, leech, int(w.n[fam][leech]), key, want, resp.Peers)
		return nil
	}
	// A leecher: a uniform sample of seeders and other leechers together,
	// shared between the two classes in proportion to their sizes.
	ns := int(w.n[fam][seed])
	nl := int(w.n[fam][leech]) - 1
	total := ns + nl
	if total <= want {
		// Everyone: one walk over the swarm, leechers then seeders.
		var zero P
		take := func(p P) bool {
			if p.recKey() != key {
				resp.Peers = append(resp.Peers, Peer{Addr: p.addrPort()})
			}
			return true
		}
		f.tree.AscendRange(zero.probe(swarmBase(id)), zero.probe(swarmBase(id)+1<<swarmShift), take)
		return nil
	}
	ks := want * ns / total
	if rand.IntN(total) < want*ns%total {
		ks++
	}
	resp.Peers = sampleClass(f, id, seed, ns, key, ks, resp.Peers)
	resp.Peers = sampleClass(f, id, leech, nl+1, key, want-ks, resp.Peers)
	return nil
}

// countPeer adds a record just stored in class to the counters.
func countPeer[P record[P]](sh *shard, f *family[P], fam int, w *swarm, id uint32, class int, hid uint64, meta uint16) {
	addCount(f, fam, w, id, class, hid, 1)
	if meta&flagPause != 0 {
		w.paused++
	}
	sh.peers++
	if class == seed {
		sh.seeders++
	}
}

// uncountPeer takes a record just deleted off the counters.
func uncountPeer[P record[P]](sh *shard, f *family[P], fam int, w *swarm, id uint32, old P) {
	key := old.recKey()
	class := int(key>>hidBits) & 1
	addCount(f, fam, w, id, class, key&hidMask, -1)
	if old.recMeta()&flagPause != 0 {
		w.paused--
	}
	sh.peers--
	if class == seed {
		sh.seeders--
	}
}

// addCount changes a class's peer count by d after the tree has changed,
// and keeps its bucket counts in step.
func addCount[P record[P]](f *family[P], fam int, w *swarm, id uint32, class int, hid uint64, d int32) {
	w.n[fam][class] += uint32(d)
	if w.blk[fam] != inTree {
		return
	}
	n := int(w.n[fam][class])
	ck := classKey(id, class)
	fw := f.samplers[ck]
	switch {
	case fw == nil:
		if n > samplerMin {
			f.samplers[ck] = buildFenwick(f, id, class, n)
		}
	case n <= samplerMin/2:
		delete(f.samplers, ck)
	default:
		if avg := n >> fw.bits; avg < bucketLow || avg > bucketHigh {
			f.samplers[ck] = buildFenwick(f, id, class, n)
		} else {
			fw.add(int(hid>>(hidBits-fw.bits)), d)
		}
	}
}

// sampleClass appends to out up to m peers of one class of a swarm, never
// the peer whose key is self. The class holds n peers, self included when
// self is of this class. The peers are a window of consecutive records
// (wrapping around) that starts at a uniformly random rank among the
// others, so every other peer is picked with probability m/(n-1) or m/n.
func sampleClass[P record[P]](f *family[P], id uint32, class int, n int, self uint64, m int, out []Peer) []Peer {
	others := n
	if int(self>>hidBits)&1 == class {
		others--
	}
	m = min(m, others)
	if m <= 0 {
		return out
	}
	var zero P
	lo := classBase(id, class)
	end := zero.probe(lo | hidMask + 1)
	taken := 0
	take := func(p P) bool {
		if p.recKey() != self {
			out = append(out, Peer{Addr: p.addrPort()})
			taken++
		}
		return taken < m
	}
	if m == others {
		f.tree.AscendRange(zero.probe(lo), end, take)
		return out
	}

	// Start at a uniformly random rank among the others and take m
	// records from there to the class's end, then from its beginning.
	// walk starts at the record skip records past from (counting self when
	// countSelf), refuses to start at self, and takes from its start on;
	// it reports whether it started.
	var start P
	walk := func(from P, skip int, countSelf bool) (started bool) {
		f.tree.AscendRange(from, end, func(p P) bool {
			if !started {
				isSelf := p.recKey() == self
				switch {
				case isSelf && !countSelf:
					return true
				case skip > 0:
					skip--
					return true
				case isSelf:
					return false
				}
				started, start = true, p
			}
			return take(p)
		})
		return started
	}
	started := false
	if fw := f.samplers[classKey(id, class)]; fw != nil {
		// Bucket counts include self: draw ranks until one is not self.
		for try := 0; try < 16 && !started; try++ {
			b, off := fw.find(rand.IntN(n))
			started = walk(zero.probe(lo|uint64(b)<<(hidBits-fw.bits)), off, true)
		}
	}
	if !started {
		// A small class (or, should sixteen draws all land on self, any
		// class): walk from its first record, skipping self.
		if !walk(zero.probe(lo), rand.IntN(others), false) {
			return out // counts out of step with the tree: a bug
		}
	}
	if taken < m {
		f.tree.AscendRange(zero.probe(lo), start, take)
	}
	return out
}

// fenwick counts the records of one class in 2^bits buckets, a bucket being
// a range of the peer hash, as a Fenwick tree: the bucket holding a given
// rank is found in O(bits).
type fenwick struct {
	bits uint
	t    []uint32 // 1-based
}

func buildFenwick[P record[P]](f *family[P], id uint32, class int, n int) *fenwick {
	b := uint(1)
	for n>>b > bucketAim {
		b++
	}
	fw := &fenwick{bits: b, t: make([]uint32, 1<<b+1)}
	var zero P
	lo := classBase(id, class)
	f.tree.AscendRange(zero.probe(lo), zero.probe(lo|hidMask+1), func(p P) bool {
		fw.t[(p.recKey()&hidMask)>>(hidBits-b)+1]++
		return true
	})
	for i := 1; i < len(fw.t); i++ {
		if j := i + i&-i; j < len(fw.t) {
			fw.t[j] += fw.t[i]
		}
	}
	return fw
}

func (fw *fenwick) add(bucket int, d int32) {
	for i := bucket + 1; i < len(fw.t); i += i & -i {
		fw.t[i] += uint32(d)
	}
}

// find returns the bucket holding the record of rank r (from 0) and r's
// offset within it.
func (fw *fenwick) find(r int) (bucket, off int) {
	pos, rem := 0, uint32(r)
	for step := 1 << fw.bits; step > 0; step >>= 1 {
		if next := pos + step; next < len(fw.t) && fw.t[next] <= rem {
			pos = next
			rem -= fw.t[next]
		}
	}
	return pos, int(rem)
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
	l := int(w.n[0][leech] + w.n[1][leech])
	return ScrapeStats{
		Complete:    int(w.n[0][seed] + w.n[1][seed]),
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

// sweeper visits every shard once per cycle, one shard at a time.
func (s *MemoryStore) sweeper(cycle time.Duration) {
	defer close(s.done)
	tk := time.NewTicker(max(cycle/time.Duration(len(s.shards)), time.Millisecond))
	defer tk.Stop()
	clock := time.NewTicker(time.Second)
	defer clock.Stop()
	i := 0
	for {
		select {
		case <-s.stop:
			return
		case t := <-clock.C:
			s.clock.Store(s.now(t))
		case t := <-tk.C:
			s.clock.Store(s.now(t))
			s.sweep(&s.shards[i], t)
			i = (i + 1) & int(s.mask)
		}
	}
}

// sweep removes a shard's stale peers, and its empty swarms that have
// nothing worth keeping, taking the lock for a bounded batch at a time.
func (s *MemoryStore) sweep(sh *shard, t time.Time) {
	now := s.now(t)
	sweepFamily(s, sh, &sh.v4, 0, now)
	sweepFamily(s, sh, &sh.v6, 1, now)
	for id := 0; ; {
		sh.mu.Lock()
		// A batch visits sweepBatch swarms or records, whichever comes
		// first.
		for work := 0; id < len(sh.swarms) && work < sweepBatch; id++ {
			w := &sh.swarms[id]
			if w.seen == 0 {
				continue
			}
			work++
			if w.blk[0] != inTree {
				work += sweepBlock(s, sh, &sh.v4, 0, w, uint32(id), now)
			}
			if w.blk[1] != inTree {
				work += sweepBlock(s, sh, &sh.v6, 1, w, uint32(id), now)
			}
			if w.peers() == 0 && (w.snatches == 0 || now-w.seen > s.swarmTTL) {
				s.dropSwarm(sh, uint32(id))
			}
		}
		done := id >= len(sh.swarms)
		if done {
			// Give back the room of blocks freed since the swarms shrank.
			sh.v4.slab.compactIfFree(sh.swarms, 0, 16)
			sh.v6.slab.compactIfFree(sh.swarms, 1, 16)
		}
		sh.mu.Unlock()
		if done {
			return
		}
	}
}

// stale reports whether a record last seen at the tick in meta has outlived
// the TTL at tick now.
func (s *MemoryStore) stale(meta uint16, now uint32) bool {
	age := (uint16(now) - meta>>2) & seenMask
	return uint32(age) > s.ttl && age < seenMask/2
}

// sweepBlock removes the stale peers of a family's block and returns the
// number of records it looked at.
func sweepBlock[P record[P]](s *MemoryStore, sh *shard, f *family[P], fam int, w *swarm, id uint32, now uint32) int {
	blk := f.block(w, fam)
	removed := false
	for i := len(blk) - 1; i >= 0; i-- {
		if p := blk[i]; s.stale(p.recMeta(), now) {
			f.removeAt(w, fam, i)
			uncountPeer(sh, f, fam, w, id, p)
			s.npeers.Add(-1)
			blk = blk[:len(blk)-1]
			removed = true
		}
	}
	if removed {
		f.shrink(sh.swarms, w, fam)
	}
	return len(blk)
}

func sweepFamily[P record[P]](s *MemoryStore, sh *shard, f *family[P], fam int, now uint32) {
	var zero P
	cursor := uint64(0)
	for {
		more := false
		sh.mu.Lock()
		f.scratch = f.scratch[:0]
		visited := 0
		f.tree.AscendGreaterOrEqual(zero.probe(cursor), func(p P) bool {
			if visited == sweepBatch {
				cursor, more = p.recKey(), true
				return false
			}
			visited++
			if s.stale(p.recMeta(), now) {
				f.scratch = append(f.scratch, p)
			}
			return true
		})
		for _, p := range f.scratch {
			id := swarmOf(p.recKey())
			f.tree.Delete(p)
			uncountPeer(sh, f, fam, &sh.swarms[id], id, p)
			s.npeers.Add(-1)
		}
		// Only once the whole batch is out of the tree: a swarm's records
		// still in the batch must not move to its block.
		for _, p := range f.scratch {
			id := swarmOf(p.recKey())
			f.toBlock(sh.swarms, &sh.swarms[id], fam, id)
		}
		sh.mu.Unlock()
		if !more {
			return
		}
	}
}
