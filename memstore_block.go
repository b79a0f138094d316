// The memory store's blocks: the peers of a swarm that has few of them in
// an address family are kept in a block of the shard's slab, not in the
// tree. This file holds announces on a block, their replies included, the
// operations on blocks, and the moves of a family between its block and the
// tree.

package tracker

import (
	"math/rand/v2"
	"net/netip"
)

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

// announceBlock is announceIn for a family whose peers are in a block. A
// block is small, so a linear pass over it costs less than a tree descent:
// it touches a few consecutive cache lines instead of several nodes.
func announceBlock[P record[P]](s *MemoryStore, sh *shard, f *family[P], fam addrFamily, w *swarm, id uint32, hid uint64, ap netip.AddrPort, req *AnnounceRequest, resp *AnnounceResponse, now uint32) error {
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

// block returns the peers of a family of a swarm whose peers are in a
// block. It is valid until the next alloc.
func (f *family[P]) block(w *swarm, fam addrFamily) []P {
	if w.blk[fam] == noBlock {
		return nil
	}
	return f.slab.span(w.at[fam], w.n[fam][leech]+w.n[fam][seed])
}

// move puts the n first records of a family's block into a new block of
// size class c, or gives the block up when c is negative.
func (f *family[P]) move(swarms []swarm, w *swarm, fam addrFamily, n uint32, c int) {
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
func (f *family[P]) push(swarms []swarm, w *swarm, fam addrFamily, rec P) {
	n := w.n[fam][leech] + w.n[fam][seed]
	if c := int(w.blk[fam]) - 1; c < 0 || int(n) == blockCaps[c] {
		f.move(swarms, w, fam, n, c+1)
	}
	f.slab.span(w.at[fam]+n, 1)[0] = rec
}

// removeAt takes the record at index i out of a family's block, moving the
// last record into its place. The counters still count it.
func (f *family[P]) removeAt(w *swarm, fam addrFamily, i int) {
	blk := f.block(w, fam)
	blk[i] = blk[len(blk)-1]
}

// shrink moves a family's block to the smallest size class that holds its
// peers once they fit in a block two sizes smaller (so that a peer coming
// and going does not move it each time), and gives the block up once it is
// empty.
func (f *family[P]) shrink(swarms []swarm, w *swarm, fam addrFamily) {
	n := w.n[fam][leech] + w.n[fam][seed]
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
func (f *family[P]) toTree(swarms []swarm, w *swarm, fam addrFamily) {
	for _, p := range f.block(w, fam) {
		f.tree.ReplaceOrInsert(p)
	}
	f.move(swarms, w, fam, 0, -1)
	w.blk[fam] = inTree
	f.slab.compactIfFree(swarms, fam, 2)
}

// toBlock moves a family's peers from the tree into a block once few are
// left.
func (f *family[P]) toBlock(swarms []swarm, w *swarm, fam addrFamily, id uint32) {
	n := w.n[fam][leech] + w.n[fam][seed]
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
