package pgtest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// CPUTime returns the processor time, user and system, the server's
// processes have used since it last started: the postmaster, the
// backends still running, and those it reaped. Benchmarks compare it
// with their own process's.
func (s *Server) CPUTime() (time.Duration, error) {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return 0, errors.New("pgtest: the server is not running")
	}
	pm := p.cmd.Process.Pid // the postmaster; every other process of the server is its child
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // gone meanwhile
		}
		// The fields after the command, which is in parentheses and may
		// hold spaces: state, ppid, ..., utime (the 14th field of the
		// line), stime, cutime, cstime.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		if len(f) < 15 {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if ppid, _ := strconv.Atoi(string(f[1])); pid != pm && ppid != pm {
			continue
		}
		n := 2 // utime, stime
		if pid == pm {
			n = 4 // and the reaped children's
		}
		for _, v := range f[11 : 11+n] {
			t, _ := strconv.ParseInt(string(v), 10, 64)
			ticks += t
		}
	}
	// The kernel counts in USER_HZ, 100 on every Linux architecture Go
	// supports.
	return time.Duration(ticks) * (time.Second / 100), nil
}
