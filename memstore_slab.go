// The memory store's slabs: the memory that the blocks of small swarms live
// in, one slab for each address family of a shard.

package tracker

import (
	"cmp"
	"slices"
)

// slab holds the blocks of one address family of a shard: the peers of the
// swarms that have few of them there (see [MemoryStore]). A block is a run
// of consecutive records, known by its offset, in one of the slab's
// chunks. Freed blocks go on a free list per size, threaded through their
// first record, and are reused first.
//
// The slab grows a chunk at a time, without copying, and is compacted in
// place: neither leaves old copies for the garbage collector, which would
// make the process hold up to twice the memory its peers need.
type slab[P slot[P]] struct {
	chunks [][]P
	top    uint32              // records below top are in blocks or free blocks
	free   [slabClasses]uint32 // heads of the free lists: offset+1, 0 for none
	nfree  int                 // records in free blocks
	order  []slabRef           // compaction scratch, reused
}

// slabRef is a block in use and its swarm's id.
type slabRef struct{ at, id uint32 }

// Chunks are small, so that a shard with few peers holds little memory
// and a chunk left empty is given back soon, and four times the largest
// block of the slab, so that the end of a chunk too short for the next
// block wastes little.
const (
	chunkBits = 10
	chunkLen  = 1 << chunkBits // records in a chunk
	chunkMask = chunkLen - 1
)

// span returns the n records from offset at, which lie in one chunk.
func (s *slab[P]) span(at, n uint32) []P {
	i := at & chunkMask
	return s.chunks[at>>chunkBits][i : i+n : i+n]
}

// alloc returns the offset of a block of size class c. When it needs a new
// chunk and a thirty-second or more of the slab is free, it compacts the
// slab first, which moves the blocks of swarms.
func (s *slab[P]) alloc(swarms *swarmTable, fam addrFamily, c int) uint32 {
	if at, ok := s.pop(c); ok {
		return at
	}
	n := uint32(blockCaps[c])
	if s.nfree > 0 && s.nfree >= int(s.top)/32 && !s.fits(n) {
		s.compact(swarms, fam, false)
		if at, ok := s.pop(c); ok {
			return at
		}
	}
	if i := s.top & chunkMask; i+n > chunkLen {
		// The block does not fit in the rest of the chunk, which becomes
		// free blocks of smaller sizes.
		s.carve(s.top, chunkLen-i)
		s.top += chunkLen - i
	}
	if int(s.top>>chunkBits) == len(s.chunks) {
		s.chunks = append(s.chunks, newChunk[P](chunkLen))
	}
	at := s.top
	s.top += n
	return at
}

// fits reports whether a block of n records fits above top without a new
// chunk.
func (s *slab[P]) fits(n uint32) bool {
	k := int(s.top >> chunkBits)
	return k < len(s.chunks) && (s.top&chunkMask)+n <= chunkLen || k+1 < len(s.chunks)
}

// pop takes a block off the free list of size class c.
func (s *slab[P]) pop(c int) (uint32, bool) {
	h := s.free[c]
	if h == 0 {
		return 0, false
	}
	s.free[c] = s.span(h-1, 1)[0].linked()
	s.nfree -= blockCaps[c]
	return h - 1, true
}

// release puts the block at offset at, of size class c, on its free list.
func (s *slab[P]) release(at uint32, c int) {
	var zero P
	s.span(at, 1)[0] = zero.link(s.free[c])
	s.free[c] = at + 1
	s.nfree += blockCaps[c]
}

// carve turns the n records from offset at into free blocks, largest
// first.
func (s *slab[P]) carve(at, n uint32) {
	for c := slabClasses - 1; n > 0; {
		if size := uint32(blockCaps[c]); size <= n {
			s.release(at, c)
			at += size
			n -= size
		} else {
			c--
		}
	}
}

// compact moves the blocks in use down over the free ones, in offset order,
// and points their swarms at their new offsets. A block never moves up, so
// each is copied at most once, in place. With release, it drops the chunks
// left empty; without, it keeps them for the blocks to come, so that a
// slab that fills up again makes no garbage.
func (s *slab[P]) compact(swarms *swarmTable, fam addrFamily, release bool) {
	s.order = s.order[:0]
	for i := range uint32(swarms.len()) {
		if w := swarms.at(i); w.blk[fam] != noBlock && w.blk[fam] <= slabClasses {
			s.order = append(s.order, slabRef{w.at[fam], i})
		}
	}
	slices.SortFunc(s.order, func(a, b slabRef) int { return cmp.Compare(a.at, b.at) })
	s.free = [slabClasses]uint32{}
	s.nfree = 0
	dst := uint32(0)
	for _, r := range s.order {
		w := swarms.at(r.id)
		n := uint32(blockCaps[w.blk[fam]-1])
		if i := dst & chunkMask; i+n > chunkLen {
			s.carve(dst, chunkLen-i)
			dst += chunkLen - i
		}
		if dst != r.at {
			copy(s.span(dst, n), s.span(r.at, n))
			w.at[fam] = dst
		}
		dst += n
	}
	s.top = dst
	if release {
		// Keep one chunk even when empty, so that a shard whose last
		// block comes and goes does not make a chunk each time.
		keep := max(int((dst+chunkMask)>>chunkBits), min(len(s.chunks), 1))
		for _, c := range s.chunks[keep:] {
			freeChunk(c)
		}
		clear(s.chunks[keep:])
		s.chunks = s.chunks[:keep]
	}
}

// giveBack gives back every chunk of the slab, which is empty after.
func (s *slab[P]) giveBack() {
	for _, c := range s.chunks {
		freeChunk(c)
	}
	*s = slab[P]{}
}

// compactIfFree compacts the slab and gives back its empty chunks when a
// share of it (1/div) is in free blocks or in chunks above top, and those
// records are at least a quarter as many as the swarms compaction walks.
func (s *slab[P]) compactIfFree(swarms *swarmTable, fam addrFamily, div int) {
	spare := s.nfree + len(s.chunks)*chunkLen - int(s.top)
	if spare >= chunkLen && spare >= len(s.chunks)*chunkLen/div && spare >= swarms.len()/4 {
		s.compact(swarms, fam, true)
	}
}

// bigBlocks holds the blocks too large for a chunk of the slab, an
// allocation each, by index. There are few: one per swarm with hundreds of
// peers in a family.
type bigBlocks[P any] struct {
	blocks [][]P
	free   []uint32 // indexes of blocks given back
}

// alloc returns the index of a new block of n records.
func (b *bigBlocks[P]) alloc(n int) uint32 {
	blk := make([]P, n)
	if k := len(b.free); k > 0 {
		at := b.free[k-1]
		b.free = b.free[:k-1]
		b.blocks[at] = blk
		return at
	}
	b.blocks = append(b.blocks, blk)
	return uint32(len(b.blocks) - 1)
}

// release gives back the block at index at.
func (b *bigBlocks[P]) release(at uint32) {
	b.blocks[at] = nil
	b.free = append(b.free, at)
}
