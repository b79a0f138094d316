// The memory store's bounds on what one address may hold: peers per swarm
// and peers over all swarms. An announce past a bound is answered, so the
// client still gets peers, but its peer is not added: an address cannot
// fill a swarm's replies, or the store, with peers made up for the purpose
// (random peer ids cost nothing).

package tracker

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync/atomic"
)

// addrKey is what an address is bounded by: itself for IPv4, its /64
// prefix for IPv6 (one subscriber usually holds a whole /64).
type addrKey struct {
	v6 bool
	k  uint64
}

func keyOf(a netip.Addr) addrKey {
	if a.Is4() {
		b := a.As4()
		return addrKey{k: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return addrKey{true, binary.BigEndian.Uint64(b[:8])}
}

// addrCounter counts the peers of each address over all swarms, in a table
// of counters by a keyed hash of the address: addresses that share a
// counter share a bound, which with 65,536 counters only matters for two
// large holders that meet.
type addrCounter struct {
	seed maphash.Seed
	n    []atomic.Int32
}

const addrCounters = 1 << 16

func newAddrCounter() *addrCounter {
	return &addrCounter{seed: maphash.MakeSeed(), n: make([]atomic.Int32, addrCounters)}
}

func (c *addrCounter) at(a netip.Addr) *atomic.Int32 {
	return &c.n[maphash.Comparable(c.seed, keyOf(a))&(addrCounters-1)]
}

// treeAddrs counts, in a shard, the peers of each address in each swarm
// whose family is in the tree, where records are in hash order and cannot
// be counted by address. The counters, bytes that stop at 255, are indexed
// by a keyed hash of the swarm, the family and the address, in a table
// kept at two to four times the peers of the shard's trees: a count may be
// too high by the peers of an address that shares its counter, rarely more
// than one or two.
type treeAddrs struct {
	n     []uint8
	peers int // peers in the shard's trees
}

func (t *treeAddrs) slot(seed maphash.Seed, id uint32, fam addrFamily, a netip.Addr) *uint8 {
	if len(t.n) == 0 {
		return nil
	}
	var b [13]byte
	binary.LittleEndian.PutUint32(b[:], id)
	b[4] = byte(fam)
	binary.LittleEndian.PutUint64(b[5:], keyOf(a).k)
	return &t.n[maphash.Bytes(seed, b[:])&uint64(len(t.n)-1)]
}

// add counts a peer of address a joining (d 1) or leaving (d -1) the tree
// of a swarm's family, growing the table as the trees' peers grow.
func (t *treeAddrs) add(s *MemoryStore, sh *shard, id uint32, fam addrFamily, a netip.Addr, d int) {
	if s.maxSwarmAddr < 0 {
		return // nothing to bound
	}
	t.peers += d
	if t.peers*2 > len(t.n) {
		t.rebuild(s, sh, max(1024, 4*t.peers))
		return // counted by the rebuild
	}
	if p := t.slot(s.seed, id, fam, a); p != nil {
		switch {
		case d > 0 && *p < 255:
			*p++
		case d < 0 && *p > 0 && *p < 255:
			*p-- // a counter that reached 255 stays: it no longer knows
		}
	}
}

// count returns the peers of address a in the tree of a swarm's family,
// or more.
func (t *treeAddrs) count(s *MemoryStore, id uint32, fam addrFamily, a netip.Addr) int {
	if p := t.slot(s.seed, id, fam, a); p != nil {
		return int(*p)
	}
	return 0
}

// shrink makes the table smaller once the trees hold far fewer peers than
// it was made for.
func (t *treeAddrs) shrink(s *MemoryStore, sh *shard) {
	if len(t.n) > 1024 && t.peers*16 < len(t.n) {
		t.rebuild(s, sh, max(1024, 4*t.peers))
	}
}

// rebuild makes a table of the power of two at least size and counts the
// shard's trees into it, or drops the table when the trees are empty.
func (t *treeAddrs) rebuild(s *MemoryStore, sh *shard, size int) {
	if t.peers == 0 {
		t.n = nil
		return
	}
	n := 1
	for n < size {
		n <<= 1
	}
	t.n = make([]uint8, n)
	countTree(s, t, &sh.v4, inet4)
	countTree(s, t, &sh.v6, inet6)
}

func countTree[S slot[S], P record[P]](s *MemoryStore, t *treeAddrs, f *family[S, P], fam addrFamily) {
	f.tree.Ascend(func(p P) bool {
		if c := t.slot(s.seed, swarmOf(p.recKey()), fam, p.addrPort().Addr()); *c < 255 {
			*c++
		}
		return true
	})
}

// peerJoined counts a peer of address a joining the store; peerLeft, one
// leaving it.
func (s *MemoryStore) peerJoined(a netip.Addr) {
	s.npeers.Add(1)
	if s.perAddr != nil {
		s.perAddr.at(a).Add(1)
	}
}

func (s *MemoryStore) peerLeft(a netip.Addr) {
	s.npeers.Add(-1)
	if s.perAddr != nil {
		s.perAddr.at(a).Add(-1)
	}
}

// full reports whether address a holds as many peers as it may, over all
// swarms (n is how many it holds in the swarm it announces to).
func (s *MemoryStore) full(a netip.Addr, n int) bool {
	return s.maxSwarmAddr >= 0 && n >= s.maxSwarmAddr ||
		s.perAddr != nil && int(s.perAddr.at(a).Load()) >= s.maxAddr
}

// blockAddrPeers returns the peers of address a (its /64 for IPv6) in a
// block, by binary search for the first of them in each class.
func blockAddrPeers[S slot[S]](blk []S, nl, ns int, a netip.Addr) int {
	var zero S
	first := zero.made(netip.AddrPortFrom(firstOf(a), 0), 0, 0)
	n := 0
	for class := range peerClass(2) {
		r := region(blk, nl, ns, class)
		i, _ := search(r, first)
		for ; i < len(r) && keyOf(r[i].addrPort().Addr()) == keyOf(a); i++ {
			n++
		}
	}
	return n
}

// firstOf returns the first address of what a is bounded by.
func firstOf(a netip.Addr) netip.Addr {
	if a.Is4() {
		return a
	}
	return netip.PrefixFrom(a, 64).Masked().Addr()
}

// evictIdle makes room for a swarm when the store holds as many as it may:
// it drops a swarm that holds nothing but a snatch count, from sh (whose
// lock the caller holds) or, failing that, from another shard whose lock is
// free. It reports whether it dropped one. A new torrent is never refused
// for swarms that only remember their downloads.
func (s *MemoryStore) evictIdle(sh *shard) bool {
	if s.dropIdle(sh) {
		return true
	}
	for i := range s.shards {
		o := &s.shards[i]
		if o == sh || len(o.idle) == 0 || !o.mu.TryLock() {
			continue
		}
		ok := s.dropIdle(o)
		o.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}

// dropIdle drops the most recently listed swarm of sh that still holds
// no peer, if any, under sh's lock.
func (s *MemoryStore) dropIdle(sh *shard) bool {
	for n := len(sh.idle); n > 0; n = len(sh.idle) {
		id := sh.idle[n-1]
		sh.idle = sh.idle[:n-1]
		if int(id) < sh.swarms.len() {
			if w := sh.swarms.at(id); w.seen != 0 && w.peers() == 0 {
				s.dropSwarm(sh, id)
				return true
			}
		}
	}
	return false
}
