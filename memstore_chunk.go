// The memory of the slabs' chunks. On Unix systems chunks live outside the
// Go heap, in anonymous mappings: they hold no pointers, so the garbage
// collector has nothing to do with them, and the memory they take is the
// memory the process shows, with neither the collector's headroom nor its
// metadata on top. A chunk given back has its pages returned to the system
// and waits on a free list for the next chunk of its size; mappings are
// never unmapped, so no slice can outlive its memory.

package tracker

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// chunkPool hands out chunks of one size in bytes, a multiple of the page
// size.
type chunkPool struct {
	mu     sync.Mutex
	size   int
	free   [][]byte // chunks given back, their pages returned
	region []byte   // what is left of the last mapping
}

// chunkRegion is the size of a mapping: chunks are carved from it.
const chunkRegion = 1 << 20

// chunkPools are the pools of the chunk sizes in use, by size.
var chunkPools sync.Map // int -> *chunkPool

// chunkBytes is the size of the chunks handed out and not given back, in
// every pool: the store's memory outside the Go heap, which the heap's
// statistics do not show.
var chunkBytes atomic.Int64

// newChunk returns a chunk of n records of type P, zeroed.
func newChunk[P any](n int) []P {
	var zero P
	size := n * int(unsafe.Sizeof(zero))
	b := poolFor(size).get()
	return unsafe.Slice((*P)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// freeChunk gives back a chunk from newChunk. It must not be used after.
func freeChunk[P any](c []P) {
	var zero P
	size := len(c) * int(unsafe.Sizeof(zero))
	poolFor(size).put(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(c))), size))
}

func poolFor(size int) *chunkPool {
	if p, ok := chunkPools.Load(size); ok {
		return p.(*chunkPool)
	}
	p, _ := chunkPools.LoadOrStore(size, &chunkPool{size: size})
	return p.(*chunkPool)
}

func (p *chunkPool) get() []byte {
	chunkBytes.Add(int64(p.size))
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		c := p.free[n-1]
		p.free = p.free[:n-1]
		clear(c) // what was not returned to the system whole
		return c
	}
	if len(p.region) < p.size {
		p.region = mapChunks(max(chunkRegion/p.size, 1) * p.size)
	}
	c := p.region[:p.size:p.size]
	p.region = p.region[p.size:]
	return c
}

func (p *chunkPool) put(c []byte) {
	chunkBytes.Add(-int64(p.size))
	releaseChunk(c)
	p.mu.Lock()
	p.free = append(p.free, c)
	p.mu.Unlock()
}
