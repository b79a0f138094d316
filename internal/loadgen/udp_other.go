//go:build !linux

package loadgen

import "net"

// plainIO is the portable packetIO: one system call per datagram.
type plainIO struct{ c *net.UDPConn }

func newPacketIO(c *net.UDPConn, recvBufs [][]byte, maxSend int) (packetIO, error) {
	return plainIO{c}, nil
}

func (p plainIO) send(bufs [][]byte) (int, error) {
	for i, b := range bufs {
		if _, err := p.c.Write(b); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

func (p plainIO) recv(bufs [][]byte, sizes []int) (int, error) {
	n, err := p.c.Read(bufs[0])
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	return 1, nil
}
