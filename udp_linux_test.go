package tracker

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Item 33: an IPv6 socket answers an IPv4 client (seen as IPv4-mapped) in
// the IPv4 format. The socket is an IPv6 one bound to ::ffff:127.0.0.1
// with IPV6_V6ONLY off, so it serves IPv4 loopback only.
func TestUDPDualStack(t *testing.T) {
	// Go refuses to bind a "udp6" socket to an IPv4-mapped address, so the
	// socket is made by hand.
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no IPv6 socket: %v", err)
	}
	f := os.NewFile(uintptr(fd), "dual-stack")
	defer f.Close()
	sa := &unix.SockaddrInet6{Addr: netip.MustParseAddr("::ffff:127.0.0.1").As16()}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
		t.Skipf("no dual-stack socket: %v", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		t.Skipf("no dual-stack socket: %v", err)
	}
	pc, err := net.FilePacketConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	conn := pc.(*net.UDPConn)
	tr := newTestTracker(t, Config{})
	serve(t, newTestServer(t, tr, UDPConfig{}), conn)
	peer := &AnnounceRequest{InfoHash: InfoHash{1}, PeerID: PeerID{1}, Addr: netip.MustParseAddrPort("127.0.0.1:7000"), Left: 0}
	if _, err := tr.Announce(context.Background(), peer); err != nil {
		t.Fatal(err)
	}
	port := conn.LocalAddr().(*net.UDPAddr).Port
	c := dialServer(t, "udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	r := c.roundTrip(announceBytes(announcePacket(c.connect(), 3, 1, 0, false)))
	ar := parseAnnounceReply(t, r, 6)
	if len(r) != 26 || ar.peers[0] != peer.Addr {
		t.Errorf("reply to an IPv4 client of an IPv6 socket: %x; want one 6-byte peer 127.0.0.1:7000", r)
	}
}

func TestListenUDPRefusesHeldAddress(t *testing.T) {
	conns, err := ListenUDP("udp4", "127.0.0.1:0", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(conns)
	addr := conns[0].LocalAddr().String()
	for _, c := range conns[1:] {
		if c.LocalAddr().String() != addr {
			t.Errorf("sockets bound to %v and %v; want one address", addr, c.LocalAddr())
		}
	}
	// A second copy of the server, SO_REUSEPORT and all, must not share
	// the address silently.
	if second, err := ListenUDP("udp4", addr, 3); err == nil {
		closeAll(second)
		t.Errorf("ListenUDP(%s) succeeded while another server holds it", addr)
	}
	if _, err := ListenUDP("udp4", "127.0.0.1:0", -1); err == nil {
		t.Error("ListenUDP with -1 sockets succeeded")
	}
}

// inMemoryTorrents is a torrent filter that declares it never blocks, so
// that the readers call it.
type inMemoryTorrents struct{ TorrentFilter }

func (inMemoryTorrents) NonBlocking() bool { return true }

// TestUDPBatchHold: a request that takes long on a reader (here a filter
// that says it never blocks, and does) holds back the replies of its batch
// only while it runs: past a millisecond, what is ready is sent before the
// reader goes on, so the reply to the first slow request does not wait
// for the second.
func TestUDPBatchHold(t *testing.T) {
	slowHash := InfoHash{7}
	gates := []chan struct{}{make(chan struct{}), make(chan struct{})}
	var calls atomic.Int32
	tr := newTestTracker(t, Config{Torrents: inMemoryTorrents{TorrentFunc(func(_ context.Context, h InfoHash, _ Identity) error {
		if h == slowHash {
			<-gates[calls.Add(1)-1]
			time.Sleep(2 * udpHold) // long enough to pass the bound
		}
		return nil
	})}})
	conn := listenLoopback(t, "udp4")
	s := newTestServer(t, tr, UDPConfig{Readers: 1, Batch: 8})
	c := dialServer(t, "udp4", conn.LocalAddr())
	id := s.ids.Issue(time.Now(), netip.MustParseAddr("127.0.0.1"))
	for tx, h := range []byte{7, 1, 7, 1} { // slow, fast, slow, fast
		if _, err := c.c.Write(announceBytes(announcePacket(id, uint32(tx), h, tx, false))); err != nil {
			t.Fatal(err)
		}
	}
	serve(t, s, conn)
	var once sync.Once
	release := func() {
		once.Do(func() {
			close(gates[0])
			close(gates[1])
		})
	}
	t.Cleanup(release) // before Shutdown

	gates[0] <- struct{}{} // the first slow request ends; the second will not
	if r := parseAnnounceReply(t, c.read(), 6); r.tx != 0 {
		t.Errorf("first reply: transaction id %d; want 0", r.tx)
	}
	release()
	got := c.replies(3)
	for tx := range uint32(3) {
		parseAnnounceReply(t, got[tx+1], 6)
	}
}
