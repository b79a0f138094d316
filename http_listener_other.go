//go:build !unix

package tracker

// fdLimit returns 0: this system has no limit on open descriptors that a
// process can read.
func fdLimit() int { return 0 }
