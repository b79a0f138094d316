//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || windows)

package logdb

import "os"

// lockFile does nothing on this system: one process at a time is up to
// the caller.
func lockFile(*os.File) error { return nil }

// syncDir makes the creations, renames and removals of files in dir
// durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
