//go:build unix

package tracker

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// chunksOutsideHeap reports whether chunks live outside the Go heap.
const chunksOutsideHeap = true

// mapChunks returns size bytes of zeroed memory outside the Go heap.
func mapChunks(size int) []byte {
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		// The address space is exhausted: the heap would not fare better,
		// but it reports the failure the way every allocation does.
		return make([]byte, size)
	}
	return b
}

// releaseChunk returns the pages that lie wholly in a chunk to the system;
// they read as zeros when next touched. Pages the chunk shares with its
// neighbours stay.
func releaseChunk(c []byte) {
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(c)))
	lo := (start + page - 1) &^ (page - 1)
	hi := (start + uintptr(len(c))) &^ (page - 1)
	if hi > lo {
		unix.Madvise(c[lo-start:hi-start], unix.MADV_DONTNEED)
	}
}
