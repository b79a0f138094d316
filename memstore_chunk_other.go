//go:build !unix

package tracker

// chunksOutsideHeap reports whether chunks live outside the Go heap.
const chunksOutsideHeap = false

// mapChunks returns size bytes of zeroed memory, from the Go heap where no
// anonymous mapping is at hand.
func mapChunks(size int) []byte { return make([]byte, size) }

// releaseChunk does nothing here: the chunk stays in the heap, and is
// cleared when it is handed out again.
func releaseChunk(c []byte) {}
