//go:build unix

package redisserver

import (
	"net"
	"testing"
)

func TestStartKillRestart(t *testing.T) {
	s := ForTest(t)
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	pid := s.Pid()
	s.Kill()
	if s.Pid() != 0 {
		t.Error("Pid after Kill is not 0")
	}
	if c, err := net.Dial("tcp", s.Addr); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Kill", s.Addr)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	if s.Pid() == pid || s.Pid() == 0 {
		t.Errorf("Pid after Restart = %d; want a new process (was %d)", s.Pid(), pid)
	}
	s.Kill()
	s.Kill() // twice is harmless
}
