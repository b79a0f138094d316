// The memory store's index of a shard's swarms by info hash.

package tracker

import "hash/maphash"

// swarmIndex finds a shard's swarms by info hash. It is an open-addressing
// table with linear probing whose 4-byte entries hold a swarm id and 8 bits
// of the hash: about 6 bytes per swarm where a map keyed by the 20-byte hash
// takes over 30, and a lookup reads the swarm it finds anyway, so a hit
// costs one probe of a small, cache-friendly array.
type swarmIndex struct {
	slots []uint32 // 0: empty; otherwise tag<<idBits | (id+1)
	n     int
}

const (
	idBits  = 24
	idMask  = 1<<idBits - 1
	minSize = 8
)

// The hash of an info hash is split: its low bits pick the shard, bits 16
// to 23 are the tag, the high 32 bits the first slot probed.
func slotOf(hv uint64, mask int) int { return int(hv>>32) & mask }
func tagOf(hv uint64) uint32         { return uint32(hv>>16) & 0xff }

// find returns the id of the swarm of h, whose hash is hv.
func (x *swarmIndex) find(swarms *swarmTable, h *InfoHash, hv uint64) (uint32, bool) {
	if x.n == 0 {
		return 0, false
	}
	mask := len(x.slots) - 1
	tag := tagOf(hv)
	for i := slotOf(hv, mask); ; i = (i + 1) & mask {
		e := x.slots[i]
		if e == 0 {
			return 0, false
		}
		if e>>idBits == tag {
			if id := e&idMask - 1; swarms.at(id).hash == *h {
				return id, true
			}
		}
	}
}

// insert adds id under hv; the hash must not be in the table. The hashes
// of other swarms are recomputed from seed when the table grows.
func (x *swarmIndex) insert(id uint32, hv uint64, seed maphash.Seed, swarms *swarmTable) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.resize(max(minSize, len(x.slots)*2), seed, swarms)
	}
	x.put(id, hv)
	x.n++
}

func (x *swarmIndex) put(id uint32, hv uint64) {
	mask := len(x.slots) - 1
	i := slotOf(hv, mask)
	for x.slots[i] != 0 {
		i = (i + 1) & mask
	}
	x.slots[i] = tagOf(hv)<<idBits | (id + 1)
}

// remove deletes id, stored under hv, shifting later entries of its probe
// run back so that no tombstone is left.
func (x *swarmIndex) remove(id uint32, hv uint64, seed maphash.Seed, swarms *swarmTable) {
	mask := len(x.slots) - 1
	i := slotOf(hv, mask)
	for x.slots[i]&idMask != id+1 {
		i = (i + 1) & mask
	}
	x.slots[i] = 0
	x.n--
	for j := (i + 1) & mask; x.slots[j] != 0; j = (j + 1) & mask {
		// Move entry j into the hole at i if its home slot does not lie
		// in the cyclic range (i, j].
		home := slotOf(maphash.Comparable(seed, swarms.at(x.slots[j]&idMask-1).hash), mask)
		if (j-home)&mask >= (j-i)&mask {
			x.slots[i] = x.slots[j]
			x.slots[j] = 0
			i = j
		}
	}
	if len(x.slots) > minSize && x.n*8 < len(x.slots) {
		x.resize(len(x.slots)/2, seed, swarms)
	}
}

func (x *swarmIndex) resize(size int, seed maphash.Seed, swarms *swarmTable) {
	old := x.slots
	x.slots = make([]uint32, size)
	for _, e := range old {
		if e != 0 {
			id := e&idMask - 1
			x.put(id, maphash.Comparable(seed, swarms.at(id).hash))
		}
	}
}

// swarmTable holds a shard's swarms by id, in pages that never move: a
// table that grows copies nothing, under the shard's lock or for the
// garbage collector, and wastes at most a page. Pages are chunks, outside
// the Go heap where the system allows (see newChunk).
type swarmTable struct {
	pages [][]swarm
	n     int
}

const (
	swarmPageBits = 7
	swarmPageLen  = 1 << swarmPageBits // swarms in a page: about 7.5 KB
	swarmPageMask = swarmPageLen - 1
)

// at returns the swarm of id, which must be below len.
func (t *swarmTable) at(id uint32) *swarm {
	return &t.pages[id>>swarmPageBits][id&swarmPageMask]
}

func (t *swarmTable) len() int { return t.n }

// push adds a zero swarm at the end and returns its id.
func (t *swarmTable) push() uint32 {
	if t.n == len(t.pages)*swarmPageLen {
		t.pages = append(t.pages, newChunk[swarm](swarmPageLen))
	}
	t.n++
	return uint32(t.n - 1)
}

// giveBack gives back the table's pages; it is empty after.
func (t *swarmTable) giveBack() {
	for _, p := range t.pages {
		freeChunk(p)
	}
	*t = swarmTable{}
}

// rename moves the entry of id, stored under hv, to to.
func (x *swarmIndex) rename(id, to uint32, hv uint64) {
	mask := len(x.slots) - 1
	i := slotOf(hv, mask)
	for x.slots[i]&idMask != id+1 {
		i = (i + 1) & mask
	}
	x.slots[i] = tagOf(hv)<<idBits | (to + 1)
}

// truncate drops the swarms from n on, and the pages they leave empty.
func (t *swarmTable) truncate(n int) {
	pages := (n + swarmPageLen - 1) / swarmPageLen
	for _, p := range t.pages[pages:] {
		freeChunk(p)
	}
	clear(t.pages[pages:])
	t.pages = t.pages[:pages]
	t.n = n
}
