//go:build linux

package tracker

// A FastListener's accept loop on Linux: the system calls on the accepted
// socket are made directly, so that the runtime's network poller never
// sees a connection the listener answers itself.
//
// They are made with RawSyscall, which does not tell the scheduler: none
// of them waits (the sockets are read and written with MSG_DONTWAIT, the
// listening one is non-blocking), but a send, which on loopback runs the
// receiving side too, or a close, is often long enough for the runtime's
// monitor to find the thread in a system call and hand its processor to
// another thread, which costs thread wake-ups. With RawSyscall, a server
// on one core answered about a tenth more requests per second of CPU.

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fastSys is the listening socket of a FastListener. A listener's own
// syscall.RawConn cannot wait for a connection (its Read fails), so the
// listener waits on a duplicate of its socket, an *os.File, whose RawConn
// can.
type fastSys struct {
	f  *os.File
	rc syscall.RawConn
}

// fastAccepter is a worker's accept4: its callback and its last result.
type fastAccepter struct {
	fn    func(fd uintptr) bool // acceptRaw, made once
	fd    int
	errno syscall.Errno
	sa    unix.RawSockaddrInet6 // the peer's address; an IPv4 one fits too
	saLen uint32
	busy  int // accepts in a row that found a connection waiting
}

func (a *fastAccepter) init() { a.fn = a.acceptRaw }

// init readies the listening socket of l; it reports false if that
// cannot be done, and the listener then returns every connection.
func (s *fastSys) init(l *net.TCPListener) bool {
	lrc, err := l.SyscallConn()
	if err != nil {
		return false
	}
	// A connection is accepted once its first bytes have arrived, so
	// that the one read after accept finds the request. One without data
	// is accepted after a second all the same.
	var serr error
	if err := lrc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 1)
	}); err != nil || serr != nil {
		return false
	}
	f, err := l.File()
	if err != nil {
		return false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return false
	}
	s.f, s.rc = f, rc
	return true
}

// close closes the duplicate of the listening socket, which wakes the
// Accept waiting on it.
func (s *fastSys) close() error {
	if s.f == nil {
		return nil
	}
	return s.f.Close()
}

// acceptRaw is the callback of rc.Read: it accepts a connection, or
// returns false to wait until one is ready. The accepted socket stays
// blocking, and is read and written with MSG_DONTWAIT: a socket handed
// to the server then needs no poller registration before it is
// duplicated.
func (a *fastAccepter) acceptRaw(lfd uintptr) bool {
	for {
		a.saLen = unix.SizeofSockaddrInet6
		fd, _, errno := unix.RawSyscall6(unix.SYS_ACCEPT4, lfd, uintptr(unsafe.Pointer(&a.sa)), uintptr(unsafe.Pointer(&a.saLen)), unix.SOCK_CLOEXEC, 0, 0)
		switch errno {
		case unix.EAGAIN:
			a.busy = 0
			return false
		case unix.EINTR, unix.ECONNABORTED:
			continue
		}
		a.fd, a.errno = int(fd), errno
		a.busy++
		return true
	}
}

// next answers connections until one is for the server, and returns it.
func (w *fastWorker) next() (net.Conn, error) {
	l, a := w.l, &w.acc
	for {
		var err error
		if w == l.ws[0] {
			err = w.wait()
		} else if !w.help() {
			return nil, l.acceptError(net.ErrClosed)
		}
		if err == nil && a.errno != 0 {
			// Out of descriptors or memory: the server pauses and
			// tries again.
			err = os.NewSyscallError("accept4", a.errno)
		}
		if err != nil {
			if l.closed.Load() {
				err = net.ErrClosed // as a closed net.Listener says
				l.tails.Wait()
			}
			return nil, l.acceptError(err)
		}
		remote, _ := sockaddrAddrPort(&a.sa, a.saLen)
		if c := w.serve(a.fd, remote); c != nil {
			return c, nil
		}
	}
}

// wait is the first worker's accept: it waits for a connection, and wakes
// another worker once it has found one waiting after fastBusy accepts in
// a row.
func (w *fastWorker) wait() error {
	l, a := w.l, &w.acc
	err := l.sys.rc.Read(a.fn)
	if a.busy >= fastBusy && len(l.ws) > 1 {
		a.busy = 0
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return err
}

// help is the accept of the other workers: it takes a connection already
// waiting, sleeping until the first worker wakes it whenever there is
// none. It reports false once the listener is closed.
func (w *fastWorker) help() bool {
	l, a := w.l, &w.acc
	for {
		if !w.awake {
			select {
			case <-l.wake:
			case <-l.quit:
				return false
			}
		}
		ok := false
		if err := l.sys.rc.Control(func(fd uintptr) { ok = a.fn(fd) }); err != nil {
			return false // closed
		}
		// None waiting, or out of descriptors (which the first worker
		// reports): sleep.
		w.awake = ok && a.errno == 0
		if w.awake {
			l.helped.Add(1)
			return true
		}
	}
}

// serve answers the connection fd from remote, or returns it for the
// server; it returns nil once the connection is answered or closed.
func (w *fastWorker) serve(fd int, remote netip.AddrPort) net.Conn {
	l := w.l
	var key netip.Addr
	if l.cl != nil {
		key = l.cl.key(remote.Addr())
		if !l.cl.take(key, nil) {
			fastClose(fd)
			return nil
		}
	}
	s := w.srv
	n, errno := fastRecv(fd, s.buf)
	switch {
	case errno == unix.EAGAIN:
		n = 0 // nothing yet: the server waits for it
	case errno != 0 || n == 0:
		l.close(fd, key) // reset, or closed before a request
		return nil
	}
	if n > 0 && n < len(s.buf) {
		if reply, ok := w.answer(s.buf[:n], remote); ok {
			l.send(fd, reply, key)
			if reply != nil {
				s.done()
				l.answered.Add(1)
			}
			return nil
		}
	}
	c, err := fastConn(fd)
	if err != nil {
		l.give(key)
		return nil
	}
	if n > 0 {
		c = &replayConn{Conn: c, pending: slices.Clone(s.buf[:n])}
	}
	if l.cl != nil {
		c = l.cl.conn(c, key)
	}
	l.handedOver.Add(1)
	return c
}

// answer is the fast server's answer, but a panic in a plug-in is
// recovered, reported, and answered with nothing (a nil reply), as
// net/http does.
func (w *fastWorker) answer(b []byte, remote netip.AddrPort) (reply []byte, ok bool) {
	defer func() {
		if v := recover(); v != nil {
			reply, ok = nil, true
			w.srv.h.recovered(v, remote)
		}
	}()
	return w.srv.answer(b, remote)
}

// send writes the reply on fd and closes it; a reply the socket's buffer
// cannot take whole is finished by a goroutine.
func (l *FastListener) send(fd int, reply []byte, key netip.Addr) {
	for len(reply) > 0 {
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&reply[0])), uintptr(len(reply)),
			unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
		switch errno {
		case 0:
			reply = reply[n:]
			continue
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			l.finish(fd, reply, key)
			return
		}
		break // the client is gone
	}
	l.close(fd, key)
}

// finish writes the rest of a reply on fd, on a goroutine that Accept
// waits for once the listener is closed, and closes it.
func (l *FastListener) finish(fd int, rest []byte, key netip.Addr) {
	c, err := fastConn(fd)
	if err != nil {
		l.give(key)
		return
	}
	rest = slices.Clone(rest)
	l.tails.Go(func() {
		c.SetWriteDeadline(time.Now().Add(fastTailTimeout))
		c.Write(rest)
		c.Close()
		l.give(key)
	})
}

// close closes fd and gives its place back.
func (l *FastListener) close(fd int, key netip.Addr) {
	fastClose(fd)
	l.give(key)
}

// give gives back to the limiter the place of a connection from key.
func (l *FastListener) give(key netip.Addr) {
	if l.cl != nil {
		l.cl.give(key)
	}
}

// fastRecv reads what fd holds into buf, without waiting.
func fastRecv(fd int, buf []byte) (int, syscall.Errno) {
	for {
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
			unix.MSG_DONTWAIT, 0, 0)
		if errno != unix.EINTR {
			return int(n), errno
		}
	}
}

// fastConn returns the accepted socket fd as a net.Conn served by the
// runtime's poller, without TCP keep-alive (as ListenTCP's connections).
// fd itself is closed: the connection holds a duplicate.
func fastConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetKeepAlive(false)
	}
	return c, nil
}

// fastClose closes fd.
func fastClose(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}
