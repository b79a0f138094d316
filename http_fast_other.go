//go:build !linux

package tracker

import "net"

// fastSys is empty on this system: a FastListener returns every
// connection to the server.
type fastSys struct{}

func (*fastSys) init(*net.TCPListener) bool { return false }

func (*fastSys) close() error { return nil }

// accept is never called on this system, where init fails.
func (l *FastListener) accept() (net.Conn, error) { return l.slow.Accept() }
