//go:build !linux

package tracker

import "net"

// fastSys is empty on this system: a FastListener returns every
// connection to the server.
type fastSys struct{}

func (*fastSys) init(*net.TCPListener) bool { return false }

func (*fastSys) close() error { return nil }

// fastAccepter is empty on this system.
type fastAccepter struct{}

func (*fastAccepter) init() {}

// next is never called on this system, where init fails.
func (w *fastWorker) next() (net.Conn, error) { return w.l.slow.Accept() }
