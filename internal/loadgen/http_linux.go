//go:build linux

package loadgen

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// closeProbe tells whether the server has closed an idle connection,
// with a non-blocking one-byte peek: no request is wasted on it, as a
// client's event loop would have seen the close before reusing it.
type closeProbe struct {
	rc     syscall.RawConn
	fn     func(fd uintptr) bool
	buf    [1]byte
	closed bool
}

func (p *closeProbe) reset(c net.Conn) {
	p.rc = nil
	if sc, ok := c.(syscall.Conn); ok {
		p.rc, _ = sc.SyscallConn()
	}
	if p.fn == nil {
		p.fn = p.peek
	}
}

// peerClosed reports whether the peer has closed the connection or sent
// bytes nobody asked for; either way it cannot carry another request.
func (p *closeProbe) peerClosed() bool {
	if p.rc == nil {
		return false
	}
	p.closed = false
	if p.rc.Read(p.fn) != nil {
		return true
	}
	return p.closed
}

func (p *closeProbe) peek(fd uintptr) bool {
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p.buf[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	_ = n // zero is the end of the stream, more is unexpected data: closed both
	p.closed = errno != unix.EAGAIN && errno != unix.EINTR
	return true
}
