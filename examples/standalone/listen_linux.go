//go:build linux

package main

import (
	"context"
	"net"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// udpSockets is the number of sockets opened on each UDP address: one per
// core, sharing the address through SO_REUSEPORT, so that the kernel
// spreads clients among them and no socket lock is shared by all cores.
func udpSockets() int { return runtime.GOMAXPROCS(0) }

// listenUDP opens n sockets bound to addr with SO_REUSEPORT. It first
// binds addr without SO_REUSEPORT, for a moment, so that an address held
// by another process (a second copy of the server, say) is an error
// rather than a port silently shared with it; that socket also picks the
// port when addr asks for port 0.
func listenUDP(addr string, n int) ([]net.PacketConn, error) {
	probe, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	if n == 1 {
		return []net.PacketConn{probe}, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		probe.Close()
		return nil, err
	}
	port := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	addr = net.JoinHostPort(host, strconv.Itoa(port))

	lc := net.ListenConfig{Control: setReusePort}
	var conns []net.PacketConn
	for range n {
		c, err := lc.ListenPacket(context.Background(), "udp", addr)
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
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}
