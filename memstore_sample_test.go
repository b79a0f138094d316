// Tests of the memory store's bucket counts: checkFamilySamplers, their
// consistency check, and the Fenwick tree's rank lookup.

package tracker

import (
	"math/rand/v2"
	"testing"
)

func checkFamilySamplers[S slot[S], P record[P]](t *testing.T, sh *shard, f *family[S, P], fam addrFamily) {
	t.Helper()
	for ck, fw := range f.samplers {
		id, class := ck>>1, peerClass(ck&1)
		n := int(sh.swarms.at(uint32(id)).n[fam][class])
		if n <= samplerMin/2 || sh.swarms.at(uint32(id)).blk[fam] != inTree {
			t.Errorf("swarm %d class %d has %d peers and still bucket counts", id, class, n)
		}
		want := rebucket(f, id, class, fw.bits)
		for j := range fw.t {
			if fw.t[j] != want.t[j] {
				t.Fatalf("swarm %d class %d: bucket counts out of step with the tree", id, class)
			}
		}
	}
	for id := range sh.swarms.len() {
		for class := range peerClass(2) {
			if n := sh.swarms.at(uint32(id)).n[fam][class]; sh.swarms.at(uint32(id)).blk[fam] == inTree && n > samplerMin && f.samplers[classKey(uint32(id), class)] == nil {
				t.Errorf("swarm %d class %d has %d peers and no bucket counts", id, class, n)
			}
		}
	}
}

// rebucket counts a class into 2^bits buckets from the tree.
func rebucket[S slot[S], P record[P]](f *family[S, P], id uint32, class peerClass, bits uint) *fenwick {
	fw := &fenwick{bits: bits, t: make([]uint32, 1<<bits+1)}
	var zero P
	lo := classBase(id, class)
	f.tree.AscendRange(zero.probe(lo), zero.probe(lo|hidMask+1), func(p P) bool {
		fw.add(int((p.recKey()&hidMask)>>(hidBits-bits)), 1)
		return true
	})
	return fw
}

func TestFenwickFind(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		bits := uint(1 + r.IntN(6))
		counts := make([]int, 1<<bits)
		fw := &fenwick{bits: bits, t: make([]uint32, 1<<bits+1)}
		total := 0
		for b := range counts {
			counts[b] = r.IntN(4)
			total += counts[b]
			fw.add(b, int32(counts[b]))
		}
		rank := 0
		for b, c := range counts {
			for off := range c {
				if gb, goff := fw.find(rank); gb != b || goff != off {
					t.Fatalf("find(%d) = %d, %d; want %d, %d (counts %v)", rank, gb, goff, b, off, counts)
				}
				rank++
			}
		}
		if rank != total {
			t.Fatal("bad total")
		}
	}
}
