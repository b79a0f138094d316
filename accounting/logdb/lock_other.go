//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || windows)

package logdb

import "os"

// lockFile does nothing on this system: one process at a time is up to
// the caller.
func lockFile(*os.File) error { return nil }
