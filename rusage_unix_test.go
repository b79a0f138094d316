//go:build unix

package tracker

import (
	"syscall"
	"testing"
	"time"
)

// processCPU returns the processor time the process has used, user and
// system, or 0 where it cannot be read. Benchmarks report it per
// operation (see reportCPU): on a shared machine it is steadier than
// elapsed time, and it counts every core.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the processor time the process used per operation
// since cpu (from processCPU), as cpu-ns/op, when it can be read.
func reportCPU(b *testing.B, cpu time.Duration, ops int) {
	if now := processCPU(); now > 0 && ops > 0 {
		b.ReportMetric(float64(now-cpu)/float64(ops), "cpu-ns/op")
	}
}
