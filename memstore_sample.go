// The memory store's replies from the tree: the sample of peers an announce
// gets when its family is in the tree, and the bucket counts (Fenwick trees)
// through which a large class finds the peer of a random rank. A reply from
// a block is a window taken at the end of announceBlock, where it costs no
// call on the path most announces take.

package tracker

import "math/rand/v2"

// sampleTree appends to resp the reply to the peer whose key is key, of
// the given class, from a family in the tree.
func sampleTree[S slot[S], P record[P]](f *family[S, P], fam addrFamily, w *swarm, id uint32, class peerClass, key uint64, want int, resp *AnnounceResponse) error {
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

// sampleClass appends to out up to m peers of one class of a swarm, never
// the peer whose key is self. The class holds n peers, self included when
// self is of this class. The peers are a window of consecutive records
// (wrapping around) that starts at a uniformly random rank among the
// others, so every other peer is picked with probability m/(n-1) or m/n.
func sampleClass[S slot[S], P record[P]](f *family[S, P], id uint32, class peerClass, n int, self uint64, m int, out []Peer) []Peer {
	others := n
	if peerClass(self>>hidBits)&1 == class {
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

const (
	// Classes with more peers than this get bucket counts for rank lookup;
	// smaller ones are walked from their start (at most this many steps).
	samplerMin = 64
	// Bucket counts aim at this many peers per bucket and are rebuilt when
	// the average leaves [bucketLow, bucketHigh].
	bucketAim  = 32
	bucketLow  = 8
	bucketHigh = 128
)

// classKey names one class of one swarm in a family's samplers map.
func classKey(id uint32, class peerClass) uint32 { return id<<1 | uint32(class) }

// addCount changes a class's peer count by d after the tree has changed,
// and keeps its bucket counts in step.
func addCount[S slot[S], P record[P]](f *family[S, P], fam addrFamily, w *swarm, id uint32, class peerClass, hid uint64, d int32) {
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

// fenwick counts the records of one class in 2^bits buckets, a bucket being
// a range of the peer hash, as a Fenwick tree: the bucket holding a given
// rank is found in O(bits).
type fenwick struct {
	bits uint
	t    []uint32 // 1-based
}

func buildFenwick[S slot[S], P record[P]](f *family[S, P], id uint32, class peerClass, n int) *fenwick {
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
