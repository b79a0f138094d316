package loadgen

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/annuaire/tracker/internal/udpwire"
)

// packetIO moves datagrams over a connected UDP socket, in batches where
// the platform allows (udp_linux.go), one at a time elsewhere.
type packetIO interface {
	// send writes the datagrams of bufs in order. It returns how many were
	// sent and the error that stopped it at the next one.
	send(bufs [][]byte) (int, error)
	// recv waits until a datagram arrives or the socket's read deadline
	// passes, then fills bufs[0:n] and sizes[0:n]. A datagram too large
	// for its buffer has a size beyond the buffer.
	recv(bufs [][]byte, sizes []int) (n int, err error)
}

const (
	// udpConnTTL is when a socket asks for a new connection id: a client
	// may use one for a minute (BEP 15).
	udpConnTTL = 50 * time.Second
	// udpMaxConnectTries is how many connects in a row may go unanswered
	// before a socket gives up on a silent target.
	udpMaxConnectTries = 5
	// udpWake bounds how long a socket sleeps, so that a stop is seen soon.
	udpWake = 100 * time.Millisecond
)

var errNoConnect = errors.New("loadgen: no reply to connect requests")

// udpSlot is one request in flight. Its transaction id is its index in
// the low 16 bits and a sequence number in the high 16, so a late reply
// to an earlier use of the slot is told apart.
type udpSlot struct {
	busy   bool
	action uint32
	tid    uint32
	seq    uint16
	sentAt int64
	dueAt  int64 // when the request was due: latencies count from it
	st     *stats
	buf    []byte
}

// udpWorker drives one socket: a single goroutine that keeps its slots
// busy, sends the requests of each round in one batch and reads the
// replies in batches.
type udpWorker struct {
	w       *Workload
	conn    *net.UDPConn
	io      packetIO
	peerLen int
	timeout int64
	connTTL int64
	k, n    int // the worker's index and the number of workers, for pacing
	pace    pacer

	slots    []udpSlot
	free     []int
	busy     int
	oldest   int64 // no busy slot was sent before oldest
	deadline int64 // the socket's read deadline, 0 if unset

	hasConn      bool
	connID       uint64
	connAt       int64
	connSlot     int // the slot of the connect in flight, or -1
	connectFails int

	sendBufs  [][]byte
	sendSlots []int
	recvBufs  [][]byte
	sizes     []int

	pick picker
	ws   workerStats
}

// newUDPWorker opens the socket of worker k of n, from address src (any
// if src is the zero Addr), with inflight slots.
func newUDPWorker(g *Generator, k, n, inflight int, src netip.Addr) (*udpWorker, error) {
	raddr, err := net.ResolveUDPAddr("udp", g.cfg.UDP)
	if err != nil {
		return nil, err
	}
	var laddr *net.UDPAddr
	if src.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	conn, err := net.DialUDP("udp", laddr, raddr)
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadBuffer(1 << 20)
	_ = conn.SetWriteBuffer(1 << 20)
	u := &udpWorker{
		w:        &g.w,
		conn:     conn,
		peerLen:  udpwire.Peer6Len,
		timeout:  int64(g.cfg.Timeout),
		connTTL:  int64(g.connTTL),
		k:        k,
		n:        n,
		slots:    make([]udpSlot, inflight),
		free:     make([]int, 0, inflight),
		connSlot: -1,
		sizes:    make([]int, inflight),
	}
	if raddr.IP.To4() != nil {
		u.peerLen = udpwire.Peer4Len
	}
	// Replies to numwant peers, or to the largest scrape, with room to
	// spare; a larger one is malformed anyway.
	want := g.w.NumWant
	if want < 200 {
		want = 200
	}
	recvSize := max(udpwire.AnnounceReplyLen+udpwire.Peer6Len*want,
		udpwire.ScrapeReplyLen+udpwire.ScrapeEntryLen*udpwire.MaxScrapeHashes) + 512
	sendSize := max(udpwire.AnnounceLen, udpwire.HeaderLen+udpwire.HashLen*g.w.ScrapeHashes)
	for i := range u.slots {
		u.slots[i].buf = make([]byte, 0, sendSize)
		u.free = append(u.free, inflight-1-i)
	}
	u.recvBufs = make([][]byte, inflight)
	for i := range u.recvBufs {
		u.recvBufs[i] = make([]byte, recvSize)
	}
	u.sendBufs = make([][]byte, 0, inflight)
	u.sendSlots = make([]int, 0, inflight)
	u.io, err = newPacketIO(conn, u.recvBufs, inflight)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return u, nil
}

func (u *udpWorker) close() error        { return u.conn.Close() }
func (u *udpWorker) stats() *workerStats { return &u.ws }

func (u *udpWorker) setPicker(p picker) { u.pick = p }

// run sends requests until the phase stops or the picker runs out, then
// waits for the replies or timeouts of those in flight.
func (u *udpWorker) run(p *phase) error {
	u.ws.reset(p)
	u.pace.start(p, u.k, u.n)
	sending := true
	for {
		now := p.now()
		if u.busy > 0 && now-u.oldest >= u.timeout {
			u.expire(now)
		}
		sending = sending && p.sending(now)
		if sending {
			sending = u.fill(p, now)
			if u.connectFails >= udpMaxConnectTries && !u.hasConn {
				return fmt.Errorf("%w: %d sent to %s", errNoConnect, u.connectFails, u.conn.RemoteAddr())
			}
		}
		u.flush(p, now)
		if u.busy == 0 {
			if !sending {
				return nil
			}
			if u.pace.gap > 0 {
				// Nothing in flight and nothing due yet.
				sleepUntil(p, min(u.pace.due, now+int64(udpWake)))
			}
			continue
		}
		u.receive(p, sending)
	}
}

// sleepUntil sleeps until time at of phase p, or until p stops sending.
func sleepUntil(p *phase, at int64) {
	if p.stopAt > 0 {
		at = min(at, p.stopAt)
	}
	if d := time.Duration(at - p.now()); d > 0 {
		time.Sleep(d)
	}
}

// expire frees the slots whose requests have waited longer than the
// timeout, and recomputes oldest.
func (u *udpWorker) expire(now int64) {
	oldest := int64(math.MaxInt64)
	for i := range u.slots {
		s := &u.slots[i]
		if !s.busy {
			continue
		}
		if now-s.sentAt < u.timeout {
			oldest = min(oldest, s.sentAt)
			continue
		}
		s.st.Timeouts++
		if s.action == udpwire.ActionConnect {
			u.connSlot = -1
			u.connectFails++
		}
		u.release(i)
	}
	u.oldest = oldest
}

func (u *udpWorker) release(i int) {
	u.slots[i].busy = false
	u.free = append(u.free, i)
	u.busy--
}

// take marks a free slot busy with a new transaction id, for a request
// sent at now that was due at due.
func (u *udpWorker) take(action uint32, st *stats, now, due int64) (int, *udpSlot) {
	i := u.free[len(u.free)-1]
	u.free = u.free[:len(u.free)-1]
	s := &u.slots[i]
	s.busy, s.action, s.st, s.sentAt, s.dueAt = true, action, st, now, due
	s.seq++
	s.tid = uint32(s.seq)<<16 | uint32(i)
	if u.busy == 0 {
		u.oldest = now
	}
	u.busy++
	return i, s
}

// fill queues a request in every free slot, starting with a connect when
// the socket needs a connection id. It returns false when the picker has
// run out.
func (u *udpWorker) fill(p *phase, now int64) bool {
	st := p.statsAt(&u.ws, now)
	if u.connSlot < 0 && len(u.free) > 0 && (!u.hasConn || now-u.connAt >= u.connTTL) {
		i, s := u.take(udpwire.ActionConnect, st, now, now)
		s.buf = udpwire.AppendConnectRequest(s.buf[:0], s.tid)
		u.connSlot = i
		st.Connects++
		u.queue(i)
	}
	if !u.hasConn {
		return true
	}
	for len(u.free) > 0 {
		due, ok, skipped := u.pace.take(now, u.timeout)
		st.Requests += skipped
		st.Timeouts += skipped
		if !ok {
			return true
		}
		r, ok := u.pick.next()
		if !ok {
			return false
		}
		if r.scrape {
			i, s := u.take(udpwire.ActionScrape, st, now, due)
			s.buf = u.w.appendUDPScrape(s.buf[:0], u.connID, s.tid, r)
			u.queue(i)
		} else {
			i, s := u.take(udpwire.ActionAnnounce, st, now, due)
			s.buf = u.w.appendUDPAnnounce(s.buf[:0], u.connID, s.tid, r)
			u.queue(i)
		}
		st.Requests++
	}
	return true
}

func (u *udpWorker) queue(i int) {
	u.sendBufs = append(u.sendBufs, u.slots[i].buf)
	u.sendSlots = append(u.sendSlots, i)
}

// flush sends the queued requests in one batch. A request the socket
// refuses is counted as an error and its slot freed.
func (u *udpWorker) flush(p *phase, now int64) {
	bufs, slots := u.sendBufs, u.sendSlots
	for len(bufs) > 0 {
		n, err := u.io.send(bufs)
		if err == nil {
			break
		}
		// Request n failed: drop it and send the rest.
		i := slots[n]
		u.slots[i].st.Errors++
		if i == u.connSlot {
			u.connSlot = -1
			u.connectFails++
		}
		u.release(i)
		bufs, slots = bufs[n+1:], slots[n+1:]
	}
	u.sendBufs, u.sendSlots = u.sendBufs[:0], u.sendSlots[:0]
}

// receive waits for replies until the earliest timeout, and handles them.
func (u *udpWorker) receive(p *phase, sending bool) {
	now := p.now()
	dl := min(u.oldest+u.timeout, now+int64(udpWake))
	if sending && p.stopAt > 0 {
		dl = min(dl, p.stopAt)
	}
	if sending && u.pace.gap > 0 && u.hasConn && len(u.free) > 0 {
		// Wake for the next request due. Not before the connection id
		// has come: a deadline in the past returns without reading it.
		dl = min(dl, max(u.pace.due, now+1))
	}
	// Setting a deadline costs a timer update: move it only when it has
	// passed or must come sooner. Waking early is harmless.
	if u.deadline == 0 || u.deadline <= now || dl < u.deadline {
		_ = u.conn.SetReadDeadline(p.base.Add(time.Duration(dl)))
		u.deadline = dl
	}
	n, err := u.io.recv(u.recvBufs, u.sizes)
	if err != nil {
		// A passed deadline, or an ICMP error reported on the socket:
		// the requests concerned will time out.
		if errors.Is(err, os.ErrDeadlineExceeded) {
			u.deadline = 0
		}
		return
	}
	now = p.now()
	for k := range n {
		b, size := u.recvBufs[k], u.sizes[k]
		truncated := size > len(b)
		if !truncated {
			b = b[:size]
		}
		u.handle(p, now, b, truncated)
	}
}

// handle matches a reply to its slot and checks it.
func (u *udpWorker) handle(p *phase, now int64, b []byte, truncated bool) {
	h, ok := udpwire.ParseReplyHeader(b)
	i := int(h.TxID & 0xffff)
	if !ok || i >= len(u.slots) {
		p.statsAt(&u.ws, now).Malformed++
		return
	}
	s := &u.slots[i]
	if !s.busy || s.tid != h.TxID {
		p.statsAt(&u.ws, now).Late++
		return
	}
	o := outMalformed
	if !truncated {
		o = checkUDPReply(b, s.action, u.peerLen, u.w.ScrapeHashes)
	}
	if s.action == udpwire.ActionConnect {
		u.connSlot = -1
		if o == outOK {
			r, _ := udpwire.ParseConnectReply(b)
			u.hasConn, u.connID, u.connAt, u.connectFails = true, r.ConnID, now, 0
		} else {
			u.connectFails++
			countUDP(s.st, o, 0, b)
		}
	} else {
		countUDP(s.st, o, time.Duration(now-s.dueAt), b)
		// An error packet may mean the connection id went stale (the
		// tracker restarted): ask for a new one, at most once a second.
		if o == outFailure && u.hasConn && now-u.connAt > int64(time.Second) {
			u.connAt = now - u.connTTL
		}
	}
	u.release(i)
}

// countUDP counts reply b of outcome o, with its latency, or its text if
// it is an error packet.
func countUDP(st *stats, o outcome, latency time.Duration, b []byte) {
	if o == outFailure {
		st.refused(b[udpwire.ReplyHeaderLen:])
		return
	}
	st.count(o, latency)
}
