//go:build !linux

package loadgen

import "net"

// closeProbe is not available on this platform: a connection the server
// closed is found when the next request on it fails, and sent again.
type closeProbe struct{}

func (p *closeProbe) reset(c net.Conn) {}

func (p *closeProbe) peerClosed() bool { return false }
