//go:build !unix

package tracker

import (
	"testing"
	"time"
)

// processCPU cannot read the processor time here; see the unix version.
func processCPU() time.Duration { return 0 }

// reportCPU reports nothing here: processCPU cannot read the time.
func reportCPU(b *testing.B, cpu time.Duration, ops int) {}
