package tracker

// The UDP server's workers: a fixed pool of goroutines with a bounded
// queue, which answer the requests that need a policy or store that may
// block, so that the readers never wait.

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/annuaire/tracker/internal/udpwire"
)

// udpSocket is a socket being served, as the workers that answer its
// requests see it.
type udpSocket struct {
	conn net.PacketConn
	udp  *net.UDPConn // conn, if it is one
	// jobs counts the socket's requests handed to the workers and not yet
	// answered; Serve waits for them before it returns.
	jobs sync.WaitGroup
}

// udpJob is a request handed over to the workers: a copy of the datagram
// and what it takes to answer it.
type udpJob struct {
	sock     *udpSocket
	from     netip.AddrPort
	addr     net.Addr  // from as a generic net.PacketConn gave it, or nil
	start    time.Time // for the observer
	deadline time.Time // zero for none
	n        int
	buf      [maxRequest]byte
}

// udpPool is the server's workers and their queue. Jobs are recycled
// through free: at most cap(queue) exist, so a job always fits the queue
// and handing one over never blocks.
type udpPool struct {
	queue chan *udpJob
	free  chan *udpJob
	made  atomic.Int64
	wg    sync.WaitGroup // the workers
	// ctx is the parent of every job's context; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
}

// startPool starts the server's workers. It is called under s.mu, by the
// first Serve.
func (s *UDPServer) startPool() *udpPool {
	n := s.cfg.Workers + s.cfg.Queue
	p := &udpPool{
		queue: make(chan *udpJob, n),
		free:  make(chan *udpJob, n),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(s.cfg.Workers)
	for range s.cfg.Workers {
		h := s.newHandler()
		go func() {
			defer p.wg.Done()
			h.work(p)
		}()
	}
	return p
}

// handOver queues the request p from `from` (addr, for a generic
// net.PacketConn) received on sock, to be answered by a worker before the
// given timeout (none if zero). It reports false, having queued nothing,
// when the queue is full, or when p is nil (no workers).
func (p *udpPool) handOver(sock *udpSocket, pkt []byte, from netip.AddrPort, addr net.Addr, start time.Time, timeout time.Duration) bool {
	if p == nil {
		return false
	}
	var j *udpJob
	select {
	case j = <-p.free:
	default:
		if p.made.Add(1) > int64(cap(p.queue)) {
			p.made.Add(-1)
			return false
		}
		j = new(udpJob)
	}
	j.sock, j.from, j.addr, j.start = sock, from, addr, start
	j.deadline = time.Time{}
	if timeout > 0 {
		j.deadline = time.Now().Add(timeout)
	}
	j.n = copy(j.buf[:], pkt)
	sock.jobs.Add(1)
	p.queue <- j // never blocks: no more jobs exist than the queue holds
	return true
}

// work answers queued requests until the queue is closed.
func (h *udpHandler) work(p *udpPool) {
	out := make([]byte, 0, h.replyCap())
	for j := range p.queue {
		out = h.runJob(p.ctx, j, out[:0])
		if len(out) > 0 {
			if j.sock.udp != nil {
				j.sock.udp.WriteToUDPAddrPort(out, j.from)
			} else {
				j.sock.conn.WriteTo(out, j.addr)
			}
		}
		j.sock.jobs.Done()
		j.sock, j.addr = nil, nil // keep nothing alive while the job is free
		p.free <- j
	}
}

// runJob answers a queued request: it appends the reply to out and
// returns it. A request whose deadline has passed while it waited is
// answered with ErrBusy without calling the tracker.
func (h *udpHandler) runJob(ctx context.Context, j *udpJob, out []byte) (reply []byte) {
	pkt := j.buf[:j.n]
	hdr, _ := udpwire.ParseHeader(pkt) // checked by the reader
	op := udpOp(hdr.Action)
	defer func() {
		if v := recover(); v != nil {
			reply = h.recovered(v, hdr.TxID, op, j.start, out[:0])
		}
	}()
	var err error
	switch {
	case !j.deadline.IsZero() && !time.Now().Before(j.deadline):
		err = ErrBusy
		h.t.fail(err, "")
		out = appendError(out, hdr.TxID, ErrBusy.Reason, maxReply)
	default:
		if !j.deadline.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, j.deadline)
			defer cancel()
		}
		out, err = h.answer(ctx, hdr, pkt, j.from, out)
	}
	h.t.observe(ProtocolUDP, op, j.start, err)
	return out
}
