//go:build !unix

package loadgen

import "time"

// selfCPU is not measured on this platform.
func selfCPU() time.Duration { return 0 }
