// Tests of the memory store's slabs: blocks move, shrink and are compacted
// without losing peers or room, and checkFamilyPlaces, the consistency
// check of blocks and slabs.

package tracker

import (
	"math/rand/v2"
	"testing"
)

// TestSlabCompaction grows swarms through the block sizes into the tree and
// back, and checks that the slab gives back the room of freed blocks and
// that every swarm keeps its peers through the moves.
func TestSlabCompaction(t *testing.T) {
	s := newStoreAt(t, MemoryConfig{Shards: 1}).blockLimit(32)
	const swarms = 300
	sh := &s.shards[0]
	grow := func(upTo int) {
		for i := range upTo {
			for h := range swarms {
				s.announceAt(0, testPeer(hashN(h), i, 1, EventStarted))
			}
		}
	}
	check := func(what string, peers int) {
		t.Helper()
		checkStore(t, s.MemoryStore)
		for h := range swarms {
			req := testPeer(hashN(h), 0, 1, EventNone)
			req.NumWant = 100
			if resp := s.announceAt(0, req); len(resp.Peers) != peers-1 || resp.Incomplete != peers {
				t.Fatalf("%s: swarm %d: %d peers, %d leechers; want %d and %d", what, h, len(resp.Peers), resp.Incomplete, peers-1, peers)
			}
		}
	}

	grow(20)
	check("in blocks", 20)
	if live := swarms * 20; int(sh.v4.slab.top) > live*5/4 {
		t.Errorf("in blocks: slab of %d records for %d peers", int(sh.v4.slab.top), live)
	}
	grow(40)
	check("in the tree", 40)
	if int(sh.v4.slab.top) > swarms*20/4 {
		t.Errorf("in the tree: slab of %d records kept", int(sh.v4.slab.top))
	}
	for i := 5; i < 40; i++ {
		for h := range swarms {
			s.announceAt(0, testPeer(hashN(h), i, 1, EventStopped))
		}
	}
	check("back in blocks", 5)
	s.sweepAt(0)
	check("swept", 5)
	// Five peers keep a block of six (see shrink), and up to a sixteenth
	// of the slab may stay free.
	if live := swarms * 5; int(sh.v4.slab.top) > live*6/5*17/16 {
		t.Errorf("swept: slab of %d records (%d free) for %d peers", int(sh.v4.slab.top), sh.v4.slab.nfree, live)
	}
}

// TestSlabChurn keeps peers joining and leaving swarms of varying sizes,
// with a sweep now and then, and checks that the slabs stay in proportion
// to the peers they hold: free blocks are reused or compacted away.
func TestSlabChurn(t *testing.T) {
	s := newStoreAt(t, MemoryConfig{Shards: 4})
	r := rand.New(rand.NewPCG(5, 6))
	const swarms, ids = 500, 24
	alive := map[[2]int]bool{}
	for step := range 200_000 {
		h, n := r.IntN(swarms), r.IntN(ids)
		// Each swarm's size drifts: swarms whose number matches the turn
		// lose peers, the others gain.
		ev := EventStarted
		if (h+step/20_000)%3 == 0 {
			ev = EventStopped
		}
		s.announceAt(0, testPeer(hashN(h), n, 1, ev))
		alive[[2]int{h, n}] = ev != EventStopped
		if step%10_000 == 0 {
			s.sweepAt(0)
		}
	}
	s.sweepAt(0)
	checkStore(t, s.MemoryStore)
	peers := 0
	for _, ok := range alive {
		if ok {
			peers++
		}
	}
	if c := s.counts(); c.Peers != peers {
		t.Fatalf("%d peers; want %d", c.Peers, peers)
	}
	records := 0
	for i := range s.shards {
		records += len(s.shards[i].v4.slab.chunks) * chunkLen
	}
	// Blocks round up (a third at most from two sizes of slack), a
	// sixteenth may stay free, and each shard keeps a partial chunk.
	if limit := peers*3/2 + len(s.shards)*chunkLen; records > limit {
		t.Errorf("slabs of %d records for %d peers; want at most %d", records, peers, limit)
	}
	t.Logf("%d peers in slabs of %d records", peers, records)
}

func checkFamilyPlaces[S slot[S], P record[P]](t *testing.T, s *MemoryStore, sh *shard, f *family[S, P], fam addrFamily) {
	t.Helper()
	var zero P
	used := 0
	// Every slab record below top belongs to exactly one block, in use or
	// free, and no block straddles two chunks.
	owner := make([]int, f.slab.top)
	claim := func(at uint32, size, who int) {
		if int(at&chunkMask)+size > chunkLen {
			t.Fatalf("family %d: block of %d at %d straddles a chunk", fam, size, at)
		}
		for i := range size {
			o := int(at) + i
			if o >= len(owner) || owner[o] != 0 {
				t.Fatalf("family %d: record %d (top %d) claimed twice, by %d and %d", fam, o, f.slab.top, owner[min(o, len(owner)-1)], who)
			}
			owner[o] = who
		}
	}
	bigUsed := map[uint32]int{}
	for id := range sh.swarms.len() {
		w := sh.swarms.at(uint32(id))
		var tree [2]int
		f.tree.AscendRange(zero.probe(swarmBase(uint32(id))), zero.probe(swarmBase(uint32(id))+1<<swarmShift), func(p P) bool {
			tree[p.recKey()>>hidBits&1]++
			if p.recKey()&hidMask != s.treeHid(p.addrPort(), uint8(p.recKey())) {
				t.Fatalf("swarm %d family %d: tree record %v under a key not of its address and identity", id, fam, p.addrPort())
			}
			return true
		})
		nl, ns := int(w.n[fam][leech]), int(w.n[fam][seed])
		switch w.blk[fam] {
		case inTree:
			if tree != [2]int{nl, ns} || uint32(nl+ns) <= s.toBlockAt {
				t.Fatalf("swarm %d family %d: tree holds %v; counts %v", id, fam, tree, w.n[fam])
			}
		case noBlock:
			if nl+ns != 0 || tree != [2]int{} {
				t.Fatalf("swarm %d family %d: no block, %v in the tree, counts %v", id, fam, tree, w.n[fam])
			}
		default:
			c := int(w.blk[fam]) - 1
			if c > s.maxClass {
				t.Fatalf("swarm %d family %d: block of size class %d past the largest, %d", id, fam, c, s.maxClass)
			}
			if c < slabClasses {
				used += blockCaps[c]
				claim(w.at[fam], blockCaps[c], id+1)
			} else {
				if who, ok := bigUsed[w.at[fam]]; ok {
					t.Fatalf("swarm %d family %d: big block %d also used by swarm %d", id, fam, w.at[fam], who)
				}
				bigUsed[w.at[fam]] = id
			}
			blk := f.block(w, fam)
			if len(blk) != blockCaps[c] || tree != [2]int{} || nl+ns > blockCaps[c] {
				t.Fatalf("swarm %d family %d: block of %d (class %d) for counts %v, tree %v", id, fam, len(blk), c, w.n[fam], tree)
			}
			for class := range peerClass(2) {
				r := region(blk, nl, ns, class)
				for i := 1; i < len(r); i++ {
					if r[i-1].cmp(r[i]) >= 0 {
						t.Fatalf("swarm %d family %d class %d: records %v and %v out of order", id, fam, class, r[i-1].addrPort(), r[i].addrPort())
					}
				}
			}
		}
	}
	for at, blk := range f.big.blocks {
		if _, ok := bigUsed[uint32(at)]; ok != (blk != nil) {
			t.Fatalf("family %d: big block %d in use %v, allocated %v", fam, at, ok, blk != nil)
		}
	}
	free := 0
	for c, h := range f.slab.free {
		for ; h != 0; h = f.slab.span(h-1, 1)[0].linked() {
			claim(h-1, blockCaps[c], -1)
			used += blockCaps[c]
			free += blockCaps[c]
		}
	}
	if used != int(f.slab.top) || free != f.slab.nfree {
		t.Fatalf("family %d: blocks and free blocks cover %d of %d slab records; %d free, counted %d", fam, used, f.slab.top, free, f.slab.nfree)
	}
}

// TestChunkReuse: a chunk given back comes back zeroed, and giving back
// one chunk leaves its neighbours as they were, whatever its size in
// pages.
func TestChunkReuse(t *testing.T) {
	for _, n := range []int{128, 1000, 1024} { // 7,680, 60,000 and 61,440 bytes of swarms
		a, b, c := newChunk[swarm](n), newChunk[swarm](n), newChunk[swarm](n)
		for _, ch := range [][]swarm{a, b, c} {
			for i := range ch {
				ch[i].seen = 7
			}
		}
		freeChunk(b)
		for _, ch := range [][]swarm{a, c} {
			for i := range ch {
				if ch[i].seen != 7 {
					t.Fatalf("%d swarms: a neighbour of a chunk given back changed at %d", n, i)
				}
			}
		}
		d := newChunk[swarm](n)
		for i := range d {
			if d[i] != (swarm{}) {
				t.Fatalf("%d swarms: a chunk handed out again is not zeroed at %d", n, i)
			}
		}
		freeChunk(a)
		freeChunk(c)
		freeChunk(d)
	}
}
