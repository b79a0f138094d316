package tracker

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// TestFastListenerBigReply: a reply that the socket's buffer cannot take
// whole is finished after Accept moved on, and Shutdown waits for it.
func TestFastListenerBigReply(t *testing.T) {
	tr := newTestTracker(t, Config{MaxNumWant: 1000, DefaultNumWant: 1000})
	hash := httpTestHash(26)
	for n := range 1000 {
		req := &AnnounceRequest{InfoHash: hash, PeerID: httpTestPeerID(n), Left: 10,
			Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(n >> 8), byte(n)}), 6881)}
		if _, err := tr.Announce(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	h, err := tr.NewHTTPHandler(HTTPConfig{GzipMinSize: Disabled})
	if err != nil {
		t.Fatal(err)
	}
	// The accepted sockets take the listener's small send buffer.
	fl, srv, addr := fastServe(t, h, nil, func(l *net.TCPListener) {
		rc, err := l.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096) })
	})
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(fastHead("GET", "/announce?"+httpQuery(hash, httpTestPeerID(5000), 6881, 10, "compact=0&numwant=1000"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the request to be answered", func() bool { return fl.Stats().Answered == 1 })
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a reply still being written", err)
	case <-time.After(100 * time.Millisecond):
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := httpDecode(t, "big reply", body)
	if peers, _ := m["peers"].([]any); len(peers) != 1000 || len(body) < 16<<10 {
		t.Errorf("big reply: %d bytes, %d peers; want 1000", len(body), len(peers))
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
