package logdb

import (
	"fmt"
	"hash/maphash"
	"sync/atomic"
	"unsafe"
)

// The ledger lives in memory in tables of fixed-size, pointer-free rows,
// allocated in chunks outside the Go heap, each table with an open
// addressing index from its key to its row. Rows are never removed.

const (
	chunkBits = 15
	chunkRows = 1 << chunkBits
)

// rows is a growable array of T in chunks that never move.
type rows[T any] struct {
	chunks [][]T
	raw    [][]byte
	n      uint32
}

func (r *rows[T]) at(i uint32) *T { return &r.chunks[i>>chunkBits][i&(chunkRows-1)] }

// reserve makes room for n more rows.
func (r *rows[T]) reserve(n int) error {
	for uint64(len(r.chunks))*chunkRows < uint64(r.n)+uint64(n) {
		var zero T
		b, err := allocBytes(chunkRows * int(unsafe.Sizeof(zero)))
		if err != nil {
			return fmt.Errorf("allocating rows: %w", err)
		}
		r.raw = append(r.raw, b)
		r.chunks = append(r.chunks, unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), chunkRows))
	}
	return nil
}

// add returns a new zero row; reserve must have made room for it.
func (r *rows[T]) add() uint32 {
	r.n++
	return r.n - 1
}

func (r *rows[T]) free() {
	for _, b := range r.raw {
		freeBytes(b)
	}
	r.chunks, r.raw, r.n = nil, nil, 0
}

// table is rows with an index on their key K, which keyOf reads from a
// row. K must have no padding: its bytes are hashed.
type table[K comparable, T any] struct {
	rows[T]
	keyOf func(*T) K
	seed  maphash.Seed
	slots []uint64 // hash<<32 | row+1; 0 is empty
	raw   []byte
	snap  *frozen[T] // while a snapshot is written
}

// frozen is a table as it was when a snapshot began: its first n rows,
// those before cursor already written, and the rows at or after cursor
// changed since, as they were.
type frozen[T any] struct {
	n, cursor uint32
	saved     map[uint32]T
	bytes     *atomic.Int64 // the bytes of saved rows, counted with other tables'
}

// savedRowOverhead is about what a saved row costs besides its bytes.
const savedRowOverhead = 16

// freeze begins a snapshot of the rows there are now; saved rows are
// counted in *bytes.
func (t *table[K, T]) freeze(bytes *atomic.Int64) {
	t.snap = &frozen[T]{n: t.n, saved: make(map[uint32]T), bytes: bytes}
}

// touch is called before row i changes: while a snapshot is written, it
// keeps the row as it was for the snapshot if the snapshot still needs it.
func (t *table[K, T]) touch(i uint32) {
	if f := t.snap; f != nil && i < f.n && i >= f.cursor {
		if _, ok := f.saved[i]; !ok {
			f.saved[i] = *t.at(i)
			f.bytes.Add(int64(unsafe.Sizeof(f.saved[i])) + savedRowOverhead)
		}
	}
}

// appendFrozen appends the rows from the cursor up to to as they were
// when the table was frozen, encoded by enc, and moves the cursor to to.
func (t *table[K, T]) appendFrozen(b []byte, to uint32, enc func(*T, []byte) []byte) []byte {
	f := t.snap
	for i := f.cursor; i < to; i++ {
		r := t.at(i)
		if v, ok := f.saved[i]; ok {
			r = &v
			delete(f.saved, i)
			f.bytes.Add(-int64(unsafe.Sizeof(v)) - savedRowOverhead)
		}
		b = enc(r, b)
	}
	f.cursor = to
	return b
}

func newTable[K comparable, T any](keyOf func(*T) K) *table[K, T] {
	return &table[K, T]{keyOf: keyOf, seed: maphash.MakeSeed()}
}

func (t *table[K, T]) hash(k *K) uint64 {
	return maphash.Bytes(t.seed, unsafe.Slice((*byte)(unsafe.Pointer(k)), unsafe.Sizeof(*k)))
}

// find returns the row of k.
func (t *table[K, T]) find(k K) (uint32, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	h := t.hash(&k)
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		e := t.slots[i]
		if e == 0 {
			return 0, false
		}
		if uint32(e>>32) == uint32(h>>32) && t.keyOf(t.at(uint32(e)-1)) == k {
			return uint32(e) - 1, true
		}
	}
}

// findOrAdd returns the row of k, adding a zero row for it (the caller
// sets its key) if there is none; reserve must have made room.
func (t *table[K, T]) findOrAdd(k K) (row uint32, added bool) {
	h := t.hash(&k)
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		e := t.slots[i]
		if e == 0 {
			row = t.add()
			t.slots[i] = h>>32<<32 | uint64(row+1)
			return row, true
		}
		if uint32(e>>32) == uint32(h>>32) && t.keyOf(t.at(uint32(e)-1)) == k {
			return uint32(e) - 1, false
		}
	}
}

// reserve makes room for n more rows, in the rows and in the index, which
// it keeps at most three quarters full.
func (t *table[K, T]) reserve(n int) error {
	if err := t.rows.reserve(n); err != nil {
		return err
	}
	need := uint64(t.n) + uint64(n)
	size := uint64(len(t.slots))
	if need*4 <= size*3 {
		return nil
	}
	size = max(size, 1024)
	for need*4 > size*3 {
		size *= 2
	}
	b, err := allocBytes(int(size) * 8)
	if err != nil {
		return fmt.Errorf("allocating an index: %w", err)
	}
	slots := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), size)
	mask := size - 1
	for r := range t.n {
		k := t.keyOf(t.at(r))
		h := t.hash(&k)
		i := h & mask
		for slots[i] != 0 {
			i = (i + 1) & mask
		}
		slots[i] = h>>32<<32 | uint64(r+1)
	}
	if t.raw != nil {
		freeBytes(t.raw)
	}
	t.slots, t.raw = slots, b
	return nil
}

func (t *table[K, T]) free() {
	t.rows.free()
	if t.raw != nil {
		freeBytes(t.raw)
	}
	t.slots, t.raw = nil, nil
}

// bytes returns the memory the table holds.
func (t *table[K, T]) bytes() int64 {
	var zero T
	return int64(len(t.chunks))*chunkRows*int64(unsafe.Sizeof(zero)) + int64(len(t.raw))
}
