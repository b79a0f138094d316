//go:build !windows

package logdb

import "os"

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
