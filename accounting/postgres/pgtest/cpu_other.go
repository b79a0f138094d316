//go:build !linux

package pgtest

import (
	"errors"
	"time"
)

// CPUTime returns the processor time the server's processes have used;
// it is known on Linux only.
func (s *Server) CPUTime() (time.Duration, error) {
	return 0, errors.New("pgtest: the server's processor time is read on Linux only")
}
