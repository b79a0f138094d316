//go:build !linux

package tracker

import "net"

// readUDP is the reader loop over a *net.UDPConn: one datagram per system
// call on this platform.
func (s *UDPServer) readUDP(conn *net.UDPConn, h *udpHandler) error {
	return s.readUDPOne(conn, h)
}

// listenUDP is ListenUDP elsewhere than on Linux: one socket, whatever n
// asks.
func listenUDP(network, addr string, n int) ([]net.PacketConn, error) {
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		return nil, err
	}
	return []net.PacketConn{c}, nil
}
