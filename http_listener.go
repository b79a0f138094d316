package tracker

// Bounds on the connections an HTTP tracker holds, so that no client can
// take all of the process's file descriptors.

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/annuaire/tracker/internal/setting"
)

// ConnLimits configures a [ConnLimiter]. The zero value caps each client
// address at 128 connections and all of them at the descriptor limit less
// a reserve, and cuts read timeouts to 2 seconds once half of that bound
// is reached.
type ConnLimits struct {
	// PerAddr is the most connections one client address (one IPv6
	// prefix, see IPv6Prefix) may hold open at once; a connection past it
	// is closed as soon as it is accepted. A client announces once per
	// torrent per interval and needs one connection at a time; the cap
	// leaves room for many users behind one NAT. Connections without an
	// IP address (over a Unix socket) count as one address. If zero, 128;
	// [Disabled] (any negative value) sets no cap.
	PerAddr int
	// IPv6Prefix is the prefix length IPv6 addresses are grouped by, since
	// one subscriber usually holds a whole /64. If zero, 64.
	IPv6Prefix int
	// MaxConns is the most connections open at once, so that the process
	// keeps file descriptors for the rest of its work: another listener
	// (metrics, health checks), its UDP sockets, files. Past it, a new
	// connection from an address that holds fewer connections than the
	// average takes the place of one idle for long (between requests, or
	// silent for a second since accepted; preferably one of an address
	// that holds more than the average), which is closed, when
	// [ConnLimiter.ConnState] is told the connections' states. Otherwise,
	// or with none idle, the new connection is closed as soon as it is
	// accepted. If zero, the
	// descriptor limit (RLIMIT_NOFILE) less a reserve of an eighth of it,
	// at least 64 and at most 1024 descriptors; without such a limit
	// (Windows), no bound. [Disabled] sets no bound.
	MaxConns int
	// PressureConns is the number of open connections from which the
	// limiter is under pressure: from then on, every read deadline that
	// net/http sets on a connection (the idle time between requests, the
	// time to read a request's headers, a TLS handshake's) is cut to
	// PressureTimeout from the moment it is set, so that idle and slow
	// connections give their descriptors back soon. Connections that went
	// idle before keep the deadline they had. If zero, half of MaxConns
	// (none without a MaxConns); [Disabled] never.
	PressureConns int
	// PressureTimeout is the longest read deadline under pressure. If
	// zero, 2 seconds.
	PressureTimeout time.Duration
}

// ConnLimiter bounds the connections its listeners accept: per client
// address and in all, and it shortens their read timeouts when many are
// open (see [ConnLimits]). Wrap each listener of an HTTP tracker with
// [ConnLimiter.Listener], and set the server's ConnState to
// [ConnLimiter.ConnState] (or call it from yours); several listeners
// (HTTP and HTTPS, IPv4 and IPv6) share one limiter's bounds:
//
//	cl, err := tracker.NewConnLimiter(tracker.ConnLimits{})
//	...
//	srv := tracker.NewHTTPServer(h)
//	srv.ConnState = cl.ConnState
//	go srv.Serve(cl.Listener(l))
//
// A ConnLimiter is safe for concurrent use.
type ConnLimiter struct {
	perAddr  int // 0: none
	maxConns int // 0: none
	pressure int // 0: never
	timeout  time.Duration
	v6Bits   int

	open atomic.Int64 // connections open
	// Connections closed at once, past PerAddr and past MaxConns, and
	// connections closed to make room for a new one.
	refusedAddr, refusedMax, evicted atomic.Uint64

	mu     sync.Mutex
	byAddr map[netip.Addr]int
	// The connections that may make room for a new one, oldest first:
	// between requests, and not yet past their first. Kept once
	// ConnState is called (tracked), since only it tells which are idle.
	tracked     bool
	idle, fresh connList
}

// ConnStats is a snapshot of a [ConnLimiter]'s counters.
type ConnStats struct {
	// Open is the number of connections open.
	Open int
	// RefusedPerAddr and RefusedMax count the connections closed as soon
	// as accepted, because their address held PerAddr connections
	// already, or because MaxConns were open.
	RefusedPerAddr, RefusedMax uint64
	// Evicted counts the idle connections closed to make room for a new
	// one when MaxConns were open.
	Evicted uint64
	// MaxConns and PressureConns are the bounds in force (0: none).
	MaxConns, PressureConns int
}

// NewConnLimiter validates cfg and returns a limiter. It reads the
// process's descriptor limit once, here.
func NewConnLimiter(cfg ConnLimits) (*ConnLimiter, error) {
	cfg.PerAddr = setting.Value(cfg.PerAddr, 128)
	if cfg.IPv6Prefix == 0 {
		cfg.IPv6Prefix = 64
	}
	cfg.MaxConns = setting.Value(cfg.MaxConns, connBudget(fdLimit()))
	cfg.PressureConns = setting.Value(cfg.PressureConns, cfg.MaxConns/2)
	if cfg.PressureTimeout == 0 {
		cfg.PressureTimeout = 2 * time.Second
	}
	switch {
	case cfg.IPv6Prefix < 8 || cfg.IPv6Prefix > 128:
		return nil, errorf("ConnLimits.IPv6Prefix %d: want between 8 and 128", cfg.IPv6Prefix)
	case cfg.PressureTimeout < 0:
		return nil, errorf("ConnLimits.PressureTimeout %v is negative", cfg.PressureTimeout)
	}
	return &ConnLimiter{
		perAddr:  cfg.PerAddr,
		maxConns: cfg.MaxConns,
		pressure: cfg.PressureConns,
		timeout:  cfg.PressureTimeout,
		v6Bits:   cfg.IPv6Prefix,
		byAddr:   make(map[netip.Addr]int),
	}, nil
}

// connBudget returns the connections a process with the descriptor limit
// n may hold, keeping a reserve for the rest: 0 (no bound) when n is not
// known.
func connBudget(n int) int {
	if n <= 0 {
		return 0
	}
	reserve := min(max(n/8, 64), 1024)
	return max(n-reserve, n/2, 1)
}

// Stats returns the limiter's counters.
func (cl *ConnLimiter) Stats() ConnStats {
	return ConnStats{
		Open:           int(cl.open.Load()),
		RefusedPerAddr: cl.refusedAddr.Load(),
		RefusedMax:     cl.refusedMax.Load(),
		Evicted:        cl.evicted.Load(),
		MaxConns:       cl.maxConns,
		PressureConns:  cl.pressure,
	}
}

// Listener returns l, bounded by the limiter. Its Accept closes at once
// the connections over a bound, and returns the others; their Close gives
// their place back. Closing it closes l.
func (cl *ConnLimiter) Listener(l net.Listener) net.Listener {
	return &limitedListener{Listener: l, cl: cl}
}

type limitedListener struct {
	net.Listener
	cl *ConnLimiter
}

func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc := l.cl.admit(c); lc != nil {
			return lc, nil
		}
		c.Close()
	}
}

// admit counts c in, or returns nil if it is over a bound.
func (cl *ConnLimiter) admit(c net.Conn) net.Conn {
	var key netip.Addr
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		key = ta.AddrPort().Addr().Unmap().WithZone("")
		if key.Is6() {
			key = netip.PrefixFrom(key, cl.v6Bits).Masked().Addr()
		}
	}
	var victim *limitedConn
	cl.mu.Lock()
	switch {
	case cl.perAddr > 0 && cl.byAddr[key] >= cl.perAddr:
		cl.mu.Unlock()
		cl.refusedAddr.Add(1)
		return nil
	case cl.maxConns > 0 && cl.open.Load() >= int64(cl.maxConns):
		// Only an address holding fewer connections than the average
		// may take another's place: a flood from a few addresses stops
		// churning, and other clients get in.
		if cl.byAddr[key] >= cl.maxConns/max(1, len(cl.byAddr)) {
			victim = nil
		} else {
			victim = cl.evictable(time.Now())
		}
		if victim == nil {
			cl.mu.Unlock()
			cl.refusedMax.Add(1)
			return nil
		}
	}
	cl.byAddr[key]++
	cl.open.Add(1)
	lc := &limitedConn{Conn: c, cl: cl, key: key}
	if cl.tracked {
		cl.fresh.push(lc, time.Now())
	}
	cl.mu.Unlock()
	if victim != nil {
		cl.evicted.Add(1)
		victim.Close()
	}
	if cw, ok := c.(closeWriter); ok {
		return &limitedTCPConn{lc, cw}
	}
	return lc
}

// freshEvictable is how long a connection may wait for its first request
// before a new connection may take its place.
const freshEvictable = time.Second

// evictScan is how many of the connections idle longest evictable looks
// at for one of an address that holds more than the average.
const evictScan = 16

// evictable takes out of the lists and returns the connection a new one
// may replace, or nil if there is none: among the connections idle
// longest, preferably one of an address holding more than the average.
// cl.mu is held.
func (cl *ConnLimiter) evictable(now time.Time) *limitedConn {
	if c := cl.idle.head; c != nil {
		avg := cl.maxConns / max(1, len(cl.byAddr))
		for k, d := 0, c; d != nil && k < evictScan; k, d = k+1, d.next {
			if cl.byAddr[d.key] > avg {
				c = d
				break
			}
		}
		cl.idle.remove(c)
		return c
	}
	if c := cl.fresh.head; c != nil && now.Sub(c.since) >= freshEvictable {
		cl.fresh.remove(c)
		return c
	}
	return nil
}

// ConnState tracks which connections are idle, so that when MaxConns are
// open a new connection takes the place of the one idle longest. Set it as
// the [http.Server]'s ConnState, or call it from that hook. Connections
// that none of the limiter's listeners accepted are ignored.
func (cl *ConnLimiter) ConnState(c net.Conn, state http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	var lc *limitedConn
	switch c := c.(type) {
	case *limitedConn:
		lc = c
	case *limitedTCPConn:
		lc = c.limitedConn
	}
	if lc == nil || lc.cl != cl {
		return
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.tracked = true
	if state == http.StateNew {
		return // in fresh since accepted
	}
	if lc.list != nil {
		lc.list.remove(lc)
	}
	if state == http.StateIdle && !lc.closed.Load() {
		cl.idle.push(lc, time.Now())
	}
}

func (cl *ConnLimiter) release(c *limitedConn) {
	cl.mu.Lock()
	if c.list != nil {
		c.list.remove(c)
	}
	if n := cl.byAddr[c.key]; n <= 1 {
		delete(cl.byAddr, c.key)
	} else {
		cl.byAddr[c.key] = n - 1
	}
	cl.open.Add(-1)
	cl.mu.Unlock()
}

// connList is a list of connections in the order they were pushed.
type connList struct{ head, tail *limitedConn }

func (l *connList) push(c *limitedConn, now time.Time) {
	c.list, c.since, c.prev, c.next = l, now, l.tail, nil
	if l.tail != nil {
		l.tail.next = c
	} else {
		l.head = c
	}
	l.tail = c
}

func (l *connList) remove(c *limitedConn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.list, c.prev, c.next = nil, nil, nil
}

// readDeadline returns t, cut to the pressure timeout from now when the
// limiter is under pressure.
func (cl *ConnLimiter) readDeadline(t time.Time) time.Time {
	if t.IsZero() || cl.pressure == 0 || cl.open.Load() < int64(cl.pressure) {
		return t
	}
	if limit := time.Now().Add(cl.timeout); t.After(limit) {
		return limit
	}
	return t
}

// limitedConn is a connection a ConnLimiter counts.
type limitedConn struct {
	net.Conn
	cl     *ConnLimiter
	key    netip.Addr
	closed atomic.Bool

	// In one of the limiter's lists (list not nil) since since; guarded
	// by the limiter's mu.
	list       *connList
	since      time.Time
	prev, next *limitedConn
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	if !c.closed.Swap(true) {
		c.cl.release(c)
	}
	return err
}

func (c *limitedConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.cl.readDeadline(t))
}

func (c *limitedConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetReadDeadline(c.cl.readDeadline(t))
}

// closeWriter is what net/http uses to close the sending side of a TCP
// connection before the whole of it.
type closeWriter interface{ CloseWrite() error }

// limitedTCPConn is a limitedConn over a connection that can close its
// sending side alone.
type limitedTCPConn struct {
	*limitedConn
	cw closeWriter
}

func (c *limitedTCPConn) CloseWrite() error { return c.cw.CloseWrite() }
