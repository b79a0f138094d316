//go:build !linux

package main

import "net"

// udpSockets is the number of sockets opened on each UDP address: one on
// this platform, read by several goroutines.
func udpSockets() int { return 1 }

// listenUDP opens the socket served on addr; n is always 1 here.
func listenUDP(addr string, n int) ([]net.PacketConn, error) {
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	return []net.PacketConn{c}, nil
}
