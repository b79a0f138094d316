//go:build unix

package tracker

import (
	"math"
	"syscall"
)

// fdLimit returns the process's limit on open file descriptors (the soft
// RLIMIT_NOFILE, which the Go runtime raises to the hard one at start), or
// 0 if it cannot be read.
func fdLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	if n := uint64(r.Cur); n < math.MaxInt32 {
		return int(n)
	}
	return math.MaxInt32 // no limit to speak of
}
