//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package logdb

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on f, or fails at once with ErrLocked
// if another open file holds it. The system drops it when the process
// ends, however it ends.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	return err
}
