// The memory store's blocks: while a swarm has at most a thousand or so
// peers in an address family, they live in one block, an array of small
// records kept sorted by address: leechers from the block's start, seeders
// from its end. This file holds announces on a block and their replies,
// the operations on blocks, and the moves of a family between its block and
// the tree.

package tracker

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"unsafe"
)

// Where a family of a swarm keeps its peers: nowhere (it has none), in a
// block of blockCaps[blk-1] records, or in the shard's tree.
const (
	noBlock = 0
	inTree  = 0xFF
)

// blockCaps are the sizes of blocks, in records: close together (from 6%
// to 12% apart past 16), so that a block wastes little. The first
// slabClasses sizes live in the slab's chunks; larger blocks are
// allocations of their own. A family moves to the tree when a peer joins a full block of the
// largest size the store allows (MemoryStore.maxClass), and back to a block
// when a quarter of that is left: the gap keeps a swarm near the limit from
// moving back and forth.
var blockCaps = [...]int{
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32,
	35, 38, 41, 44, 48, 52, 56, 60, 64, 70, 76, 82, 88, 96, 104, 112, 120, 128,
	144, 160, 176, 192, 208, 224, 256, 288, 320, 352, 384, 448, 512, 576, 640, 704, 768, 896, 1024,
}

const slabClasses = 40 // blockCaps[:slabClasses] fit a chunk

// stepPrimes are primes larger than any block: the step of a reply's walk
// through a block is one of them modulo the number of eligible peers, so
// it is coprime with that number and the walk visits each peer once.
var stepPrimes = [...]int{1031, 1279, 1709, 2027, 2557, 3001, 3571, 4093, 4909, 5683, 6421, 7121, 8191, 9311, 10007, 12343}

// announceBlock is announceIn for a family whose peers are in a block. The
// announcer is found by binary search among the records of its class, then
// of the other class; a reply is a walk through the block from a random
// place by a random step.
func announceBlock[S slot[S], P record[P]](s *MemoryStore, sh *shard, f *family[S, P], fam addrFamily, w *swarm, id uint32, ident uint8, ap netip.AddrPort, req *AnnounceRequest, resp *AnnounceResponse, now uint32) error {
	class := leech
	if req.Left == 0 {
		class = seed
	}
	var zero S
	probe := zero.made(ap, ident, 0)
	blk := f.block(w, fam)
	nl, ns := int(w.n[fam][leech]), int(w.n[fam][seed])
	touch(blk[:nl])
	touch(blk[len(blk)-ns:])
	at, found := search(region(blk, nl, ns, class), probe)
	oldClass := class
	if !found {
		if i, ok := search(region(blk, nl, ns, 1-class), probe); ok {
			at, found, oldClass = i, true, 1-class
		}
	}

	if req.Event == EventStopped {
		if found {
			old := region(blk, nl, ns, oldClass)[at].recMeta()
			countStop(w, old, oldClass != class, class)
			removeSlot(blk, nl, ns, oldClass, at)
			uncountPeer(sh, f, fam, w, id, oldClass, 0, old)
			s.peerLeft(ap.Addr())
			f.shrink(&sh.swarms, w, fam, s.maxClass)
		}
		return nil
	}

	completed := req.Event == EventCompleted
	meta := newMeta(req, class, now/s.genTicks)
	self := -1 // the announcer's place among its class
	switch {
	case found && oldClass == class:
		// A re-announce within a tick from the same address and port
		// leaves its record as it was: it is not written, so that other
		// cores keep their copies of the block's cache lines.
		r := region(blk, nl, ns, class)
		if rec := zero.made(ap, ident, refreshed(w, r[at].recMeta(), meta, class, completed)); r[at] != rec {
			r[at] = rec
		}
		self = at
	case found:
		prev := region(blk, nl, ns, oldClass)[at].recMeta()
		removeSlot(blk, nl, ns, oldClass, at)
		uncountPeer(sh, f, fam, w, id, oldClass, 0, prev)
		meta = reclassed(w, prev, meta, class)
		self = insertSlot(blk, int(w.n[fam][leech]), int(w.n[fam][seed]), class, zero.made(ap, ident, meta))
		countPeer(sh, f, fam, w, id, class, 0, meta)
	case s.maxPeers >= 0 && s.npeers.Load() >= s.maxPeers:
		return ErrTooManyPeers
	case s.bounded && s.full(ap.Addr(), blockAddrPeers(blk, nl, ns, ap.Addr())):
		// The address holds its share: the announce is answered, its
		// peer not added.
	default:
		c := int(w.blk[fam]) - 1
		if c == s.maxClass && nl+ns == blockCaps[c] {
			// Full: the family moves to the tree, and so does this
			// announce.
			f.toTree(s, sh, w, fam, id)
			return announceTree(s, sh, f, fam, w, id, ident, ap, req, resp, now)
		}
		if c < 0 || nl+ns == blockCaps[c] {
			f.move(&sh.swarms, w, fam, c+1)
			blk = f.block(w, fam)
		}
		s.peerJoined(ap.Addr())
		meta = joined(w, meta, class, completed)
		self = insertSlot(blk, nl, ns, class, zero.made(ap, ident, meta))
		countPeer(sh, f, fam, w, id, class, 0, meta)
	}
	if class == seed {
		self = -1
	}
	replyBlock(blk, int(w.n[fam][leech]), int(w.n[fam][seed]), class, self, req.NumWant, resp)
	return nil
}

// region returns the records of one class in a block holding nl leechers
// and ns seeders.
func region[S any](blk []S, nl, ns int, class peerClass) []S {
	if class == leech {
		return blk[:nl]
	}
	return blk[len(blk)-ns:]
}

// touch reads regions of more than touchMin bytes, whose lines a binary
// search would read one after the other (up to two lines, it reads them
// at once anyway), and of at most touchMax: past a kilobyte (128 IPv4
// records), a search and a reply read a fraction of the lines.
const (
	touchMin = 128
	touchMax = 1024
)

// touch reads a word of every cache line of r. A block is seldom in the
// cache when an announce comes (swarms are many, and each is announced to
// now and then), and a binary search reads its lines one after the
// other, each read waiting for the one before: these reads do not depend
// on one another, so the processor has them all in flight at once, and
// the search and the reply that follow find the lines in the cache.
func touch[S any](r []S) {
	var zero S
	size := uintptr(len(r)) * unsafe.Sizeof(zero)
	if size <= touchMin || size > touchMax {
		return
	}
	p := unsafe.Pointer(unsafe.SliceData(r))
	var x byte
	for off := uintptr(0); off < size; off += 64 {
		x |= *(*byte)(unsafe.Add(p, off))
	}
	x |= *(*byte)(unsafe.Add(p, size-1)) // the last line, when r does not start on one
	if int(x) == touchNever {            // never: the reads are used, so the compiler keeps them
		panic("unreachable")
	}
}

// touchNever is a value no byte has.
var touchNever = -1

// search returns where k is, or would go, among the sorted records r, and
// whether the record there is k's (the same address and identity).
func search[S slot[S]](r []S, k S) (int, bool) {
	lo, hi := 0, len(r)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r[m].cmp(k) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(r) && r[lo].cmp(k) == 0
}

// insertSlot puts rec in its place among the records of its class, in a
// block that has room for it, and returns that place.
func insertSlot[S slot[S]](blk []S, nl, ns int, class peerClass, rec S) int {
	i, _ := search(region(blk, nl, ns, class), rec)
	if class == leech {
		copy(blk[i+1:nl+1], blk[i:nl])
		blk[i] = rec
		return i
	}
	// Seeders end at the block's end: the ones before i move down one.
	start := len(blk) - ns
	copy(blk[start-1:start-1+i], blk[start:start+i])
	blk[start-1+i] = rec
	return i
}

// removeSlot takes the record at place i out of the records of its class.
func removeSlot[S any](blk []S, nl, ns int, class peerClass, i int) {
	if class == leech {
		copy(blk[i:nl-1], blk[i+1:nl])
		return
	}
	start := len(blk) - ns
	copy(blk[start+1:start+1+i], blk[start:start+i])
}

// replyBlock appends to resp the reply to an announcer of class, from a
// block holding nl leechers and ns seeders; self is the announcer's place
// among the leechers, or -1. A seeder gets leechers only, a leecher the
// others of both classes. The reply visits the eligible peers from a
// uniformly random one by a random step coprime with their number, so each
// is picked with probability want/eligible, and, unlike a window of
// neighbours, a reply does not hold peers of nearby addresses only.
func replyBlock[S slot[S]](blk []S, nl, ns int, class peerClass, self, want int, resp *AnnounceResponse) {
	n := nl // the eligible peers, self included when it is a leecher
	if class == leech {
		n += ns
	}
	others := n
	if self >= 0 {
		others--
	}
	m := min(want, others)
	if m <= 0 {
		return
	}
	seeds := len(blk) - ns - nl // from place nl, the seeders' offset
	if m == others {
		for i := range n {
			if i != self {
				if i >= nl {
					i += seeds
				}
				resp.Peers = append(resp.Peers, Peer{Addr: blk[i].addrPort()})
			}
		}
		return
	}
	// Start at a uniformly random one of the others: skipping self as
	// the walk goes, the others form a cycle, and every window of m of
	// them is as likely.
	i := rand.IntN(others)
	if self >= 0 && i >= self {
		i++
	}
	step := stepPrimes[rand.IntN(len(stepPrimes))] % n
	for taken := 0; taken < m; i += step {
		if i >= n {
			i -= n
		}
		if i == self {
			continue
		}
		j := i
		if j >= nl {
			j += seeds
		}
		resp.Peers = append(resp.Peers, Peer{Addr: blk[j].addrPort()})
		taken++
	}
}

// block returns the block of a family of a swarm whose peers are in one,
// all of it: its leechers at the start, its seeders at the end. It is
// valid until the next allocation of a block.
func (f *family[S, P]) block(w *swarm, fam addrFamily) []S {
	c := int(w.blk[fam]) - 1
	switch {
	case c < 0 || w.blk[fam] == inTree:
		return nil
	case c < slabClasses:
		return f.slab.span(w.at[fam], uint32(blockCaps[c]))
	}
	return f.big.blocks[w.at[fam]]
}

// move puts a family's peers into a new block of size class c, or gives
// the block up when c is negative: the leechers at its start, the seeders
// at its end.
func (f *family[S, P]) move(swarms *swarmTable, w *swarm, fam addrFamily, c int) {
	nl, ns := int(w.n[fam][leech]), int(w.n[fam][seed])
	at := uint32(0)
	switch {
	case c < 0:
	case c < slabClasses:
		at = f.slab.alloc(swarms, fam, c) // may move the old block
	default:
		at = f.big.alloc(blockCaps[c])
	}
	if oldc := int(w.blk[fam]) - 1; oldc >= 0 {
		if c >= 0 {
			old, blk := f.block(w, fam), f.blockAt(at, c)
			copy(blk, old[:nl])
			copy(blk[len(blk)-ns:], old[len(old)-ns:])
		}
		f.release(w.at[fam], oldc)
	}
	w.at[fam], w.blk[fam] = at, uint8(c+1)
}

// blockAt returns the block of size class c at at.
func (f *family[S, P]) blockAt(at uint32, c int) []S {
	if c < slabClasses {
		return f.slab.span(at, uint32(blockCaps[c]))
	}
	return f.big.blocks[at]
}

// release gives back the block of size class c at at.
func (f *family[S, P]) release(at uint32, c int) {
	if c < slabClasses {
		f.slab.release(at, c)
	} else {
		f.big.release(at)
	}
}

// shrink moves a family's block to the smallest size class that holds its
// peers once they fit in a block two sizes smaller (so that a peer coming
// and going does not move it each time), and gives the block up once it is
// empty.
func (f *family[S, P]) shrink(swarms *swarmTable, w *swarm, fam addrFamily, maxClass int) {
	n := w.n[fam][leech] + w.n[fam][seed]
	c := int(w.blk[fam]) - 1
	switch {
	case c < 0 || w.blk[fam] == inTree:
	case n == 0:
		f.move(swarms, w, fam, -1)
		f.slab.compactIfFree(swarms, fam, 2)
	case c >= 2 && int(n) <= blockCaps[c-2]:
		f.move(swarms, w, fam, min(classFor(n), maxClass))
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

// toTree moves a family's peers from its block into the shard's tree, with
// the bucket counts of its large classes.
func (f *family[S, P]) toTree(s *MemoryStore, sh *shard, w *swarm, fam addrFamily, id uint32) {
	swarms := &sh.swarms
	var zero P
	blk := f.block(w, fam)
	nl, ns := int(w.n[fam][leech]), int(w.n[fam][seed])
	for class := range peerClass(2) {
		for _, r := range region(blk, nl, ns, class) {
			ap := r.addrPort()
			key := classBase(id, class) | s.treeHid(ap, r.recID())
			f.tree.ReplaceOrInsert(zero.with(key, ap, r.recMeta()))
			sh.treeAddrs.add(s, sh, id, fam, ap.Addr(), 1)
		}
	}
	f.move(swarms, w, fam, -1)
	w.blk[fam] = inTree
	for class := range peerClass(2) {
		if n := int(w.n[fam][class]); n > samplerMin {
			f.samplers[classKey(id, class)] = buildFenwick(f, id, class, n)
		}
	}
	f.slab.compactIfFree(swarms, fam, 2)
}

// toBlock moves a family's peers from the tree into a block once few are
// left.
func (f *family[S, P]) toBlock(s *MemoryStore, sh *shard, w *swarm, fam addrFamily, id uint32) {
	swarms := &sh.swarms
	n := w.n[fam][leech] + w.n[fam][seed]
	if w.blk[fam] != inTree || n > s.toBlockAt {
		return
	}
	var zero P
	f.moving = f.moving[:0]
	f.tree.AscendRange(zero.probe(swarmBase(id)), zero.probe(swarmBase(id)+1<<swarmShift), func(p P) bool {
		f.moving = append(f.moving, p)
		return true
	})
	delete(f.samplers, classKey(id, leech))
	delete(f.samplers, classKey(id, seed))
	w.blk[fam] = noBlock
	if n == 0 {
		return
	}
	f.move(swarms, w, fam, min(classFor(n), s.maxClass))
	blk := f.block(w, fam)
	nl, ns := int(w.n[fam][leech]), int(w.n[fam][seed])
	var slot S
	l, r := 0, len(blk)-ns
	for _, p := range f.moving {
		f.tree.Delete(p)
		sh.treeAddrs.add(s, sh, id, fam, p.addrPort().Addr(), -1)
		rec := slot.made(p.addrPort(), uint8(p.recKey()), p.recMeta())
		if p.recKey()&seedBit == 0 {
			blk[l] = rec
			l++
		} else {
			blk[r] = rec
			r++
		}
	}
	cmp := func(a, b S) int { return a.cmp(b) }
	slices.SortFunc(blk[:nl], cmp)
	slices.SortFunc(blk[len(blk)-ns:], cmp)
}
