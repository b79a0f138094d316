//go:build unix

package tracker

import (
	"syscall"
	"time"
)

// httpCPUTime returns the processor time the process has used, user and
// system, or 0 where it cannot be read. Benchmarks report it per
// operation: on a shared machine it is steadier than elapsed time.
func httpCPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
