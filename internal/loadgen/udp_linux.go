//go:build linux

package loadgen

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgIO moves batches of datagrams over a connected UDP socket with one
// sendmmsg or recvmmsg system call per batch, waiting in Go's network
// poller when the socket is not ready (so read deadlines apply). The
// message headers and their iovecs are allocated once.
type mmsgIO struct {
	rc syscall.RawConn

	smsgs []unix.Mmsghdr
	siovs []unix.Iovec
	sn    int // messages to send
	sdone int // messages sent
	serr  error

	rmsgs []unix.Mmsghdr
	riovs []unix.Iovec
	rn    int
	rerr  error

	sendFn, recvFn func(fd uintptr) bool
}

func newPacketIO(c *net.UDPConn, recvBufs [][]byte, maxSend int) (packetIO, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	m := &mmsgIO{
		rc:    rc,
		smsgs: make([]unix.Mmsghdr, maxSend),
		siovs: make([]unix.Iovec, maxSend),
		rmsgs: make([]unix.Mmsghdr, len(recvBufs)),
		riovs: make([]unix.Iovec, len(recvBufs)),
	}
	for i := range m.smsgs {
		m.smsgs[i].Hdr.Iov = &m.siovs[i]
		m.smsgs[i].Hdr.SetIovlen(1)
	}
	for i, b := range recvBufs {
		m.riovs[i].Base = &b[0]
		m.riovs[i].SetLen(len(b))
		m.rmsgs[i].Hdr.Iov = &m.riovs[i]
		m.rmsgs[i].Hdr.SetIovlen(1)
	}
	m.sendFn = m.doSend
	m.recvFn = m.doRecv
	return m, nil
}

func (m *mmsgIO) send(bufs [][]byte) (int, error) {
	for i, b := range bufs {
		m.siovs[i].Base = &b[0]
		m.siovs[i].SetLen(len(b))
	}
	m.sn, m.sdone, m.serr = len(bufs), 0, nil
	if err := m.rc.Write(m.sendFn); err != nil {
		return m.sdone, err
	}
	return m.sdone, m.serr
}

func (m *mmsgIO) doSend(fd uintptr) bool {
	for m.sdone < m.sn {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&m.smsgs[m.sdone])), uintptr(m.sn-m.sdone),
			unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			m.sdone += int(r)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			m.serr = errno
			return true
		}
	}
	return true
}

func (m *mmsgIO) recv(bufs [][]byte, sizes []int) (int, error) {
	m.rn, m.rerr = 0, nil
	if err := m.rc.Read(m.recvFn); err != nil {
		return 0, err
	}
	if m.rerr != nil {
		return 0, m.rerr
	}
	for i := range m.rn {
		sizes[i] = int(m.rmsgs[i].Len)
		if m.rmsgs[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
			sizes[i] = len(bufs[i]) + 1
		}
	}
	return m.rn, nil
}

func (m *mmsgIO) doRecv(fd uintptr) bool {
	for {
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd,
			uintptr(unsafe.Pointer(&m.rmsgs[0])), uintptr(len(m.rmsgs)),
			unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			m.rn = int(r)
			return true
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			m.rerr = errno
			return true
		}
	}
}
