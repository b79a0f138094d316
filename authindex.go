package tracker

import (
	"hash/maphash"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
)

// digestIndex is the store behind [PasskeySet] and [TorrentList]: a set of
// keyed 64-bit digests, each with an optional 64-bit value, sized for
// millions of entries.
//
// The digests live in open-addressing tables with Robin Hood linear
// probing, one per shard. A slot is one word (the digest) or two (digest
// and value), with no pointer in it, so the garbage collector never scans
// the tables, and the table size is not rounded to a power of two, so a
// freshly loaded index is filled to exactly bulkLoad. Robin Hood order
// keeps probe sequences short and lets a lookup for an absent digest stop
// as soon as it meets an entry closer to its own home slot than the digest
// sought would be.
//
// Readers take no lock and write no shared memory: each shard carries a
// sequence number that writers make odd while they change the shard's table
// and even again afterwards, and a reader retries when the number it read
// before probing is odd or has changed after. Every word of a published
// table is read and written atomically, so a reader that raced a writer
// merely reads a torn state it then discards. A table that must grow or
// shrink is rebuilt aside and swapped in; a whole reload builds a new state
// (with a fresh digest key) aside and swaps it in. Writers are serialized
// by mu.
type digestIndex struct {
	mu  sync.Mutex
	cur atomic.Pointer[indexState]
}

const (
	indexShardBits = 6
	indexShards    = 1 << indexShardBits

	// A reload fills tables to bulkLoad. Single insertions grow a table
	// that would pass maxLoad to growLoad; deletions shrink one that falls
	// under minLoad back to growLoad.
	bulkLoad = 0.875
	maxLoad  = 0.92
	growLoad = 0.72
	minLoad  = 0.30
	minSlots = 8
)

// indexState is one generation of an index: its digest key and its shards.
// A reload replaces the whole state.
type indexState struct {
	seed   maphash.Seed
	stride int          // words per slot: 1 for a set, 2 with values
	n      atomic.Int64 // entries, for Len
	shards [indexShards]indexShard
}

type indexShard struct {
	seq atomic.Uint64          // odd while a writer changes tab
	tab atomic.Pointer[dtable] // nil when the shard never held anything
	n   int                    // entries; written under the index's mu
}

func newIndexState(stride int) *indexState {
	return &indexState{seed: maphash.MakeSeed(), stride: stride}
}

// state returns the current state, nil if the index never held anything.
func (x *digestIndex) state() *indexState { return x.cur.Load() }

// writable returns the current state, creating it with slots of stride
// words if needed. The caller holds x.mu.
func (x *digestIndex) writable(stride int) *indexState {
	st := x.cur.Load()
	if st == nil {
		st = newIndexState(stride)
		x.cur.Store(st)
	}
	return st
}

func (x *digestIndex) len() int {
	if st := x.cur.Load(); st != nil {
		return int(st.n.Load())
	}
	return 0
}

// fixDigest keeps 0 free to mark empty slots.
func fixDigest(d uint64) uint64 {
	if d == 0 {
		return 1
	}
	return d
}

func (st *indexState) shard(d uint64) *indexShard {
	return &st.shards[d>>(64-indexShardBits)]
}

// get returns the value stored with d, and whether d is present. It never
// blocks: it retries only while a writer is changing d's shard, which takes
// one insertion or deletion (the rebuild of a table happens aside).
func (st *indexState) get(d uint64) (uint64, bool) {
	sh := st.shard(d)
	for spin := 0; ; spin++ {
		if s := sh.seq.Load(); s&1 == 0 {
			v, ok := sh.tab.Load().find(d)
			if sh.seq.Load() == s {
				return v, ok
			}
		}
		if spin >= 16 {
			// The writer was descheduled in the middle of a change: let
			// it run.
			runtime.Gosched()
		}
	}
}

// put stores d with v and reports whether d is new. The caller holds the
// index's mu (or owns an unpublished state).
func (st *indexState) put(d, v uint64) bool {
	sh := st.shard(d)
	t := sh.tab.Load()
	if i, ok := t.index(d); ok {
		if st.stride > 1 && t.value(i) != v {
			sh.seq.Add(1)
			t.setValue(i, v)
			sh.seq.Add(1)
		}
		return false
	}
	if t == nil || float64(sh.n+1) > maxLoad*float64(t.size) {
		t = t.rebuilt(slotsFor(sh.n+1, growLoad), st.stride)
		sh.seq.Add(1)
		sh.tab.Store(t)
	} else {
		sh.seq.Add(1)
	}
	t.insert(d, v)
	sh.seq.Add(1)
	sh.n++
	st.n.Add(1)
	return true
}

// del removes d and reports whether it was present. The caller holds the
// index's mu.
func (st *indexState) del(d uint64) bool {
	sh := st.shard(d)
	t := sh.tab.Load()
	i, ok := t.index(d)
	if !ok {
		return false
	}
	sh.n--
	st.n.Add(-1)
	if t.size > minSlots && float64(sh.n) < minLoad*float64(t.size) {
		// Shrink: rebuild aside without d, then swap.
		nt := t.rebuilt(slotsFor(sh.n+1, growLoad), st.stride)
		if j, ok := nt.index(d); ok {
			nt.remove(j)
		}
		sh.seq.Add(1)
		sh.tab.Store(nt)
		sh.seq.Add(1)
		return true
	}
	sh.seq.Add(1)
	t.remove(i)
	sh.seq.Add(1)
	return true
}

// indexBuilder builds a new state aside, for a reload: it gathers the
// digests shard by shard, then fills each shard's table at once, sized for
// bulkLoad. Filling one table at a time keeps it in the processor's cache.
type indexBuilder struct {
	st      *indexState
	entries [indexShards][]uint64 // stride words per entry, in order added
}

func newIndexBuilder(stride int) *indexBuilder {
	return &indexBuilder{st: newIndexState(stride)}
}

// seed returns the digest key of the state being built.
func (b *indexBuilder) seed() maphash.Seed { return b.st.seed }

// add adds d with v; a later add of d replaces v.
func (b *indexBuilder) add(d, v uint64) {
	e := &b.entries[d>>(64-indexShardBits)]
	*e = append(*e, d)
	if b.st.stride > 1 {
		*e = append(*e, v)
	}
}

// build returns the new state, to be published. The builder must not be
// used afterwards.
func (b *indexBuilder) build() *indexState {
	st := b.st
	stride := st.stride
	for i := range st.shards {
		e := b.entries[i]
		b.entries[i] = nil
		if len(e) == 0 {
			continue
		}
		sh := &st.shards[i]
		t := newTable(slotsFor(len(e)/stride, bulkLoad), stride)
		for j := 0; j < len(e); j += stride {
			var v uint64
			if stride > 1 {
				v = e[j+1]
			}
			if k, ok := t.index(e[j]); ok {
				if stride > 1 {
					t.setValue(k, v) // the later value wins
				}
				continue
			}
			t.insert(e[j], v)
			sh.n++
		}
		if want := slotsFor(sh.n, bulkLoad); want != t.size {
			t = t.rebuilt(want, stride) // there were repeated digests
		}
		sh.tab.Store(t)
		st.n.Add(int64(sh.n))
	}
	return st
}

// slotsFor returns the table size that holds n entries at load.
func slotsFor(n int, load float64) uint64 {
	if n == 0 {
		return 0
	}
	return max(minSlots, uint64(float64(n)/load)+1)
}

// dtable is one shard's table. size and words never change once the table
// is published; the words are then accessed atomically.
type dtable struct {
	size   uint64   // slots
	stride uint64   // words per slot
	words  []uint64 // slot i is words[i*stride:]: digest (0 if empty), value
}

func newTable(size uint64, stride int) *dtable {
	return &dtable{size: size, stride: uint64(stride), words: make([]uint64, size*uint64(stride))}
}

// home is d's preferred slot. The top indexShardBits of d chose the shard,
// so the slot is taken from the bits below them, scaled to the table size
// (a multiply and shift instead of a division).
func (t *dtable) home(d uint64) uint64 {
	hi, _ := bits.Mul64(d<<indexShardBits, t.size)
	return hi
}

// dist is how far slot i lies past the home of d, which is stored there.
func (t *dtable) dist(d, i uint64) uint64 {
	h := t.home(d)
	if i >= h {
		return i - h
	}
	return i + t.size - h
}

func (t *dtable) digest(i uint64) uint64 { return atomic.LoadUint64(&t.words[i*t.stride]) }
func (t *dtable) value(i uint64) uint64  { return atomic.LoadUint64(&t.words[i*t.stride+1]) }

func (t *dtable) setValue(i, v uint64) { atomic.StoreUint64(&t.words[i*t.stride+1], v) }

func (t *dtable) set(i, d, v uint64) {
	atomic.StoreUint64(&t.words[i*t.stride], d)
	if t.stride > 1 {
		atomic.StoreUint64(&t.words[i*t.stride+1], v)
	}
}

// index returns the slot holding d. Reading a table a writer is changing
// gives a wrong answer but always ends: no probe goes further than the
// table size.
func (t *dtable) index(d uint64) (uint64, bool) {
	if t == nil || t.size == 0 {
		return 0, false
	}
	i := t.home(d)
	for n := uint64(0); n < t.size; n++ {
		w := t.digest(i)
		if w == d {
			return i, true
		}
		// An empty slot, or an entry closer to its home than d would be
		// here: with Robin Hood order, d would have taken this slot.
		if w == 0 || t.dist(w, i) < n {
			return 0, false
		}
		if i++; i == t.size {
			i = 0
		}
	}
	return 0, false
}

func (t *dtable) find(d uint64) (uint64, bool) {
	i, ok := t.index(d)
	if !ok || t.stride == 1 {
		return 0, ok
	}
	return t.value(i), true
}

// insert adds d, which is not in the table, which has a free slot. An entry
// met further from its home than the carried one keeps its slot; one nearer
// to its home gives its slot up and is carried on.
func (t *dtable) insert(d, v uint64) {
	i, n := t.home(d), uint64(0)
	for {
		w := t.digest(i)
		if w == 0 {
			t.set(i, d, v)
			return
		}
		if wn := t.dist(w, i); wn < n {
			var wv uint64
			if t.stride > 1 {
				wv = t.value(i)
			}
			t.set(i, d, v)
			d, v, n = w, wv, wn
		}
		if i++; i == t.size {
			i = 0
		}
		n++
	}
}

// remove empties slot i and shifts the entries after it back by one until
// an empty slot or an entry in its home slot, so no tombstone is left.
func (t *dtable) remove(i uint64) {
	for {
		j := i + 1
		if j == t.size {
			j = 0
		}
		w := t.digest(j)
		if w == 0 || t.dist(w, j) == 0 {
			t.set(i, 0, 0)
			return
		}
		var v uint64
		if t.stride > 1 {
			v = t.value(j)
		}
		t.set(i, w, v)
		i = j
	}
}

// rebuilt returns a new table of size slots holding t's entries (t may be
// nil). Entries are taken in slot order, which is nearly home order, so
// every insertion ends after a step or two.
func (t *dtable) rebuilt(size uint64, stride int) *dtable {
	nt := newTable(size, stride)
	if t == nil {
		return nt
	}
	for i := range t.size {
		if d := t.digest(i); d != 0 {
			var v uint64
			if t.stride > 1 {
				v = t.value(i)
			}
			nt.insert(d, v)
		}
	}
	return nt
}
