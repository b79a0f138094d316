//go:build linux

package tracker

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux a reader moves datagrams in batches: one recvmmsg receives up
// to UDPConfig.Batch of them and one sendmmsg sends the replies. The
// system calls run inside syscall.RawConn's Read and Write, so a reader
// with nothing to read is parked by the runtime's network poller like any
// other, and deadlines (which Shutdown uses) work as usual.
//
// golang.org/x/net/ipv4's ReadBatch would do the same, but it returns each
// source address as a new *net.UDPAddr: two allocations per datagram. Here
// the message headers, iovecs, socket addresses and buffers are allocated
// once per reader, and a source address is read straight from its raw
// sockaddr into a netip.AddrPort. A reply goes back to the very sockaddr
// its request came from, so it needs no encoding either.

// readUDP is the reader loop over a *net.UDPConn.
func (s *UDPServer) readUDP(conn *net.UDPConn, h *udpHandler) error {
	if s.cfg.Batch <= 1 {
		return s.readUDPOne(conn, h)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return s.readUDPOne(conn, h)
	}
	return s.readBatches(rc, h)
}

// mmsgBatch is one reader's state for recvmmsg and sendmmsg. The headers
// point into the batch's own buffers, all allocated once.
//
// Both calls are made with RawSyscall6, without telling the scheduler:
// they never block (MSG_DONTWAIT), but sendmmsg of a batch over loopback
// can take tens of microseconds (it delivers the replies), and a system
// call announced to the scheduler that lasts that long has its processor
// handed to another thread, which the reader then has to take back: under
// load that made about 6,500 context switches a second on one core, and
// cost 5-8% of the requests a core answers.
type mmsgBatch struct {
	rhdrs []unix.Mmsghdr // received datagrams
	riovs []unix.Iovec
	names []unix.RawSockaddrInet6 // their sources; an IPv4 sockaddr fits too
	bufs  [][]byte
	shdrs []unix.Mmsghdr // replies
	siovs []unix.Iovec
	outs  [][]byte

	n     int // datagrams received by the last recvmmsg
	sent  int // replies sent so far, of nsend
	nsend int
	errno syscall.Errno // of the last recvmmsg, when it failed
}

func newMmsgBatch(n, replyCap int) *mmsgBatch {
	b := &mmsgBatch{
		rhdrs: make([]unix.Mmsghdr, n),
		riovs: make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n),
		bufs:  make([][]byte, n),
		shdrs: make([]unix.Mmsghdr, n),
		siovs: make([]unix.Iovec, n),
		outs:  make([][]byte, n),
	}
	const size = maxRequest + 1 // a datagram that fills it was cut
	in := make([]byte, n*size)
	out := make([]byte, n*replyCap)
	for i := range n {
		b.bufs[i] = in[i*size : (i+1)*size : (i+1)*size]
		b.riovs[i].Base = &b.bufs[i][0]
		b.riovs[i].SetLen(size)
		b.rhdrs[i].Hdr.Iov = &b.riovs[i]
		b.rhdrs[i].Hdr.SetIovlen(1)
		b.rhdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		b.outs[i] = out[i*replyCap : i*replyCap : (i+1)*replyCap]
		b.shdrs[i].Hdr.Iov = &b.siovs[i]
		b.shdrs[i].Hdr.SetIovlen(1)
	}
	return b
}

// recv is the callback of RawConn.Read: it receives a batch, or returns
// false to wait until the socket is readable.
func (b *mmsgBatch) recv(fd uintptr) bool {
	for i := range b.rhdrs {
		b.rhdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		b.rhdrs[i].Hdr.Flags = 0
	}
	for {
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.rhdrs[0])), uintptr(len(b.rhdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case 0:
			b.n, b.errno = int(n), 0
		default:
			b.n, b.errno = 0, errno
		}
		return true
	}
}

// send is the callback of RawConn.Write: it sends the queued replies, or
// returns false to wait until the socket is writable. A reply the kernel
// refuses (an unroutable address, say) is dropped.
func (b *mmsgBatch) send(fd uintptr) bool {
	for b.sent < b.nsend {
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.shdrs[b.sent])), uintptr(b.nsend-b.sent), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		case 0:
			b.sent += int(n)
		default:
			b.sent++ // sendmmsg fails only on its first message: skip it
		}
	}
	return true
}

// queue makes out, the reply to received datagram i, the k-th to send.
func (b *mmsgBatch) queue(k, i int, out []byte) {
	b.outs[k] = out // keep the buffer if the reply outgrew it
	hdr := &b.shdrs[k].Hdr
	hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	hdr.Namelen = b.rhdrs[i].Hdr.Namelen
	b.siovs[k].Base = &out[0]
	b.siovs[k].SetLen(len(out))
}

// readBatches is the reader loop with recvmmsg and sendmmsg.
func (s *UDPServer) readBatches(rc syscall.RawConn, h *udpHandler) error {
	b := newMmsgBatch(s.cfg.Batch, h.replyCap())
	recv, send := b.recv, b.send // made once: RawConn calls take no new closure per batch
	ctx := context.Background()
	var backoff time.Duration
	for {
		err := rc.Read(recv)
		if err == nil && b.errno != 0 {
			err = b.errno
		}
		if err != nil {
			if err := s.readFailed(err, &backoff); err != nil {
				return err
			}
			continue
		}
		backoff = 0
		now := s.now()
		held := time.Now() // since when the replies queued so far wait
		k := 0
		for i := range b.n {
			m := &b.rhdrs[i]
			if m.Hdr.Flags&unix.MSG_TRUNC != 0 || m.Len > maxRequest {
				continue
			}
			from, ok := sockaddrAddrPort(&b.names[i], m.Hdr.Namelen)
			if !ok {
				continue
			}
			out := h.handle(ctx, now, b.bufs[i][:m.Len], from, b.outs[k][:0])
			if len(out) > 0 {
				b.queue(k, i, out)
				k++
			}
			// A request that took long (a plug-in that said it never
			// blocks, and did) must not hold up the replies before it
			// more than it already has, nor those after it: send what is
			// ready.
			if k > 0 && time.Since(held) > udpHold {
				b.flush(rc, send, k)
				k, held = 0, time.Now()
			}
		}
		b.flush(rc, send, k)
	}
}

// udpHold bounds how long the replies of a batch wait for the rest of it.
// Answering 32 datagrams takes about 30 µs, so it does not split batches
// in steady state.
const udpHold = time.Millisecond

// flush sends the first k queued replies.
func (b *mmsgBatch) flush(rc syscall.RawConn, send func(uintptr) bool, k int) {
	if k > 0 {
		b.sent, b.nsend = 0, k
		rc.Write(send) // fails only when the socket is closed or past its deadline
	}
}

// sockaddrAddrPort reads a raw IPv4 or IPv6 socket address of n bytes.
// The zone of a link-local IPv6 address is dropped: the tracker ignores it.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6, n uint32) (netip.AddrPort, bool) {
	p := (*[2]byte)(unsafe.Pointer(&sa.Port)) // in network order
	port := uint16(p[0])<<8 | uint16(p[1])
	switch {
	case sa.Family == unix.AF_INET6 && n >= unix.SizeofSockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port), true
	case sa.Family == unix.AF_INET && n >= unix.SizeofSockaddrInet4:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port), true
	}
	return netip.AddrPort{}, false
}

// listenUDP is ListenUDP on Linux.
func listenUDP(network, addr string, n int) ([]net.PacketConn, error) {
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	ctx := context.Background()
	// The first socket is bound without SO_REUSEPORT: it fails if any
	// socket holds the address, even one of another copy of this server,
	// which would otherwise share it silently. It also picks the port
	// when addr asks for port 0.
	first, err := net.ListenPacket(network, addr)
	if err != nil || n == 1 {
		if err != nil {
			return nil, err
		}
		return []net.PacketConn{first}, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		first.Close()
		return nil, err
	}
	addr = net.JoinHostPort(host, strconv.Itoa(first.LocalAddr().(*net.UDPAddr).Port))
	first.Close()
	lc := net.ListenConfig{Control: setReusePort}
	var conns []net.PacketConn
	for range n {
		c, err := lc.ListenPacket(ctx, network, addr)
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func setReusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
