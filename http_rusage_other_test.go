//go:build !unix

package tracker

import "time"

// httpCPUTime cannot read the processor time here; see the unix version.
func httpCPUTime() time.Duration { return 0 }
