package tracker

// A listener that answers the common tracker request, an announce or a
// scrape on a connection of its own, without net/http; the
// system-specific halves are http_fast_linux.go and http_fast_other.go.

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/annuaire/tracker/internal/httpwire"
)

// FastListener is a net.Listener for an [http.Server] whose Handler is an
// [HTTPHandler]: it answers most tracker requests itself, inside Accept,
// and returns the other connections to the server.
//
// Most clients (qBittorrent, µTorrent, libtorrent, aria2) open a
// connection per announce and ask to close it after the reply
// (Connection: close). On Linux, for each connection accepted, a
// FastListener reads once; when that read holds a whole GET or HEAD of an
// announce or a scrape over HTTP/1.1 asking to close the connection, it
// answers it with the handler, writes the reply and closes the
// connection, all on the goroutine that called Accept, with one system
// call for each of accept, read, write and close and no allocation: no
// goroutine, no registration with the runtime's network poller, no
// buffers, timers or contexts per connection. Its listening socket gets
// TCP_DEFER_ACCEPT, so that a connection is accepted once its request has
// arrived.
//
// Every other connection is returned by Accept, with the bytes read
// replayed first, and the server answers it as if it had come straight
// from the listener: a client that keeps its connection alive, a request
// not whole in the first read, any other method or path (the server's
// Handler may serve more than the tracker), HTTP/1.0, anything unusual in
// the request head, a full scrape, and a request that needs a plug-in
// that may block (one that is not a [NonBlocker]: a passkey checked
// against a database, say), since the listener's goroutine must not wait.
// The client reads the same reply either way.
//
// A FastListener serves the tracker's paths at the root of the URL, as
// the HTTPHandler does: give it to a server whose Handler is the
// HTTPHandler, or a handler that passes those paths to it unchanged (one
// that only adds a header to replies to clients that keep their
// connection alive, say); a middleware that must see every request needs
// a plain listener. The requests it answers itself carry
// [context.Background] as their context; the server's ConnState hook and
// its timeouts apply to the connections it returns only.
//
// The limiter, if not nil, bounds the connections as [ConnLimiter.Listener]
// would, those answered inside Accept included; set the server's
// ConnState to [ConnLimiter.ConnState] as usual.
//
// Closing the listener makes Accept return an error once the connections
// already accepted are answered or returned: [http.Server.Shutdown] and
// [http.Server.Close] wait for that, since they wait for Serve to
// return. A reply too big for the socket's buffer (a rare one) is
// finished by a goroutine that Accept also waits for then, within 10
// seconds.
//
// Elsewhere than on Linux, and over a listener that is not a
// *net.TCPListener, a FastListener returns every connection to the
// server; Stats tells which requests took which way.
//
// A FastListener answers on up to HTTPConfig.FastWorkers goroutines (by
// default one per core), each accepting from the same socket: the first
// waits for connections, and wakes the others only while it cannot keep
// up, so that an idle one costs nothing. With one, Accept itself
// answers; with more, the workers start with the first Accept and pass
// it the connections for the server.
type FastListener struct {
	l     net.Listener
	cl    *ConnLimiter
	slow  net.Listener   // every connection to the server: l, bounded by cl
	sys   fastSys        // the system's half
	ws    []*fastWorker  // none when every connection goes to the server
	mu    sync.Mutex     // one Accept at a time, with one worker
	tails sync.WaitGroup // goroutines that finish writing big replies

	// With several workers: they send Accept's results on conns; Close
	// closes quit, and done is closed once every worker has returned.
	// The first worker alone waits for connections; the others sleep
	// until it finds connections waiting, accept while there are, and
	// sleep again (see fastWorker).
	start sync.Once
	conns chan fastAccept
	wake  chan struct{}
	quit  chan struct{}
	done  chan struct{}
	stop  sync.Once

	closed               atomic.Bool
	answered, handedOver atomic.Uint64
	helped               atomic.Uint64 // connections accepted by other workers than the first
}

// fastWorker is one of a FastListener's goroutines, with its own scratch
// space.
//
// One goroutine per core, all waiting on the listening socket, would all
// wake for every connection while the load leaves them idle: on two cores
// shared with the load, two such workers answered 5% more connections
// than one, for 40% more processor time per connection. So the first
// worker alone waits on the socket; when it finds a connection already waiting after
// each of fastBusy accepts in a row (it cannot keep up), it wakes another,
// which accepts until the queue is empty and then sleeps again.
type fastWorker struct {
	l     *FastListener
	srv   *fastServer
	acc   fastAccepter // the system's half of accepting
	awake bool         // a worker other than the first, while it accepts
}

// fastBusy is how many accepts in a row, each finding a connection
// already waiting, make the first worker wake another (a variable for
// tests). Bursts of a load that kept the first worker 45% busy reached
// 32 often enough to cost 13% more processor time per connection; at 256
// the cost was lost in the noise, and a worker that cannot keep up gets
// there within a few milliseconds.
var fastBusy = 256

// fastAccept is a result of Accept, passed on by a worker.
type fastAccept struct {
	c   net.Conn
	err error
}

// FastListenerStats is a snapshot of a [FastListener]'s counters.
type FastListenerStats struct {
	// Answered counts the requests answered inside Accept, and
	// HandedOver the connections Accept returned to the server.
	Answered, HandedOver uint64
}

// NewFastListener returns a FastListener over l that answers requests with
// h, its connections bounded by limiter if not nil. The listener takes
// l over: closing it closes l.
func (h *HTTPHandler) NewFastListener(l net.Listener, limiter *ConnLimiter) *FastListener {
	fl := &FastListener{l: l, cl: limiter, slow: l,
		conns: make(chan fastAccept), quit: make(chan struct{}), done: make(chan struct{})}
	if limiter != nil {
		fl.slow = limiter.Listener(l)
	}
	tl, ok := l.(*net.TCPListener)
	if !ok {
		return fl
	}
	if !fl.sys.init(tl) {
		return fl
	}
	n := h.cfg.FastWorkers
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	for range n {
		w := &fastWorker{l: fl, srv: newFastServer(h)}
		w.acc.init()
		fl.ws = append(fl.ws, w)
	}
	fl.wake = make(chan struct{}, n-1)
	return fl
}

// Accept answers connections until one is for the server, and returns
// it; see [FastListener].
func (l *FastListener) Accept() (net.Conn, error) {
	switch len(l.ws) {
	case 0:
		c, err := l.slow.Accept()
		if err == nil {
			l.handedOver.Add(1)
		}
		return c, err
	case 1:
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.ws[0].next()
	}
	l.start.Do(l.startWorkers)
	select {
	case a := <-l.conns:
		return a.c, a.err
	case <-l.done:
		return nil, l.acceptError(net.ErrClosed)
	}
}

// startWorkers starts the workers of a FastListener that has several.
func (l *FastListener) startWorkers() {
	var wg sync.WaitGroup
	for _, w := range l.ws {
		wg.Go(w.run)
	}
	go func() {
		wg.Wait()
		l.tails.Wait()
		close(l.done)
	}()
}

// run answers connections and passes those for the server, and errors,
// to Accept, until the listener is closed.
func (w *fastWorker) run() {
	l := w.l
	for {
		c, err := w.next()
		if err != nil && l.closed.Load() {
			return
		}
		a := fastAccept{c, err}
		select {
		case l.conns <- a:
			continue
		case <-l.quit:
		}
		if c == nil {
			return
		}
		// Closed with a connection in hand: a server that still calls
		// Accept gets it, as it would from one worker (an http.Server
		// does until Accept fails, and Shutdown serves the request);
		// one that stopped calling does not hold the worker long.
		t := time.NewTimer(fastHandOverGrace)
		select {
		case l.conns <- a:
			t.Stop()
		case <-t.C:
			c.Close()
			return
		}
	}
}

// fastHandOverGrace bounds the wait of a worker that holds a connection
// for the server when the listener is closed.
const fastHandOverGrace = time.Second

// acceptError is the error Accept returns for err.
func (l *FastListener) acceptError(err error) error {
	return &net.OpError{Op: "accept", Net: l.l.Addr().Network(), Addr: l.l.Addr(), Err: err}
}

// Close closes the listener.
func (l *FastListener) Close() error {
	l.closed.Store(true)
	l.stop.Do(func() { close(l.quit) })
	err := l.sys.close()
	if lerr := l.l.Close(); lerr != nil {
		err = lerr
	}
	return err
}

// Addr returns the listener's network address.
func (l *FastListener) Addr() net.Addr { return l.l.Addr() }

// Stats returns the listener's counters.
func (l *FastListener) Stats() FastListenerStats {
	return FastListenerStats{Answered: l.answered.Load(), HandedOver: l.handedOver.Load()}
}

// fastReadSize is the most a FastListener reads of a connection before it
// decides who answers it: a request head that fills it goes to the
// server. A libtorrent announce takes about 400 bytes, a scrape of 74
// hashes about 4 KB.
const fastReadSize = 8 << 10

// fastTailTimeout bounds the time a reply too big for the socket's buffer
// takes to be written.
const fastTailTimeout = 10 * time.Second

// fastServer answers the requests a FastListener reads: the scratch space
// of one request at a time.
type fastServer struct {
	h   *HTTPHandler
	st  *httpState
	req httpwire.Request
	buf []byte // what was read of the connection
	out []byte // the reply: its head and its body

	// The request in hand, for the observer once its reply is written.
	op    string
	err   error
	start time.Time

	// date is the Date header's value, made once per second.
	date    []byte
	dateSec int64
}

func newFastServer(h *HTTPHandler) *fastServer {
	st := h.newState()
	st.strs = newInternTable()
	return &fastServer{
		h:   h,
		st:  st,
		buf: make([]byte, fastReadSize),
		out: make([]byte, 0, 2048),
	}
}

// answer answers the request b holds, from a client at remote, if it is
// one a FastListener answers itself: it returns the whole reply, or
// false to leave the connection to the server, having changed nothing.
// Once the reply is written, the caller calls done.
func (s *fastServer) answer(b []byte, remote netip.AddrPort) ([]byte, bool) {
	h := s.h
	if !httpwire.ParseRequest(b, h.ipHeader, &s.req) || !s.req.Close {
		return nil, false
	}
	route, pathPasskey := httpwire.ParsePath(s.req.Path)
	if route == httpwire.NotFound {
		return nil, false
	}
	rq := httpRequest{
		ctx:            context.Background(),
		remote:         remote,
		route:          route,
		pathPasskey:    pathPasskey,
		query:          s.req.Query,
		userAgent:      s.req.UserAgent,
		acceptEncoding: s.req.AcceptEncoding,
		clientIP:       s.req.ClientIP,
		fast:           true,
	}
	s.start = h.t.observeStart()
	var err error
	if s.op, err = h.answer(s.st, &rq); err == errWouldBlock {
		return nil, false
	}
	s.err = err
	body, vary, zipped := h.reply(s.st, rq.acceptEncoding)
	s.out = s.appendHead(s.out[:0], len(body), vary, zipped)
	if !s.req.Head {
		s.out = append(s.out, body...)
	}
	return s.out, true
}

// done reports the request answered last to the tracker's observer.
func (s *fastServer) done() {
	s.h.t.observe(ProtocolHTTP, s.op, s.start, s.err)
	s.err = nil
}

// appendHead appends the head of a reply whose body is n bytes long, with
// the headers net/http sends for the handler's reply to a client that
// asked to close the connection.
func (s *fastServer) appendHead(dst []byte, n int, vary, zipped bool) []byte {
	dst = append(dst, "HTTP/1.1 200 OK\r\nConnection: close\r\n"...)
	if zipped {
		dst = append(dst, "Content-Encoding: gzip\r\n"...)
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(n), 10)
	dst = append(dst, "\r\nContent-Type: text/plain\r\nDate: "...)
	now := time.Now()
	if sec := now.Unix(); sec != s.dateSec || s.date == nil {
		s.date, s.dateSec = now.UTC().AppendFormat(s.date[:0], http.TimeFormat), sec
	}
	dst = append(dst, s.date...)
	if vary {
		dst = append(dst, "\r\nVary: Accept-Encoding"...)
	}
	return append(dst, "\r\n\r\n"...)
}

// replayConn is a connection handed to the server with the bytes read of
// it before: its first reads return them.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// CloseWrite closes the sending side of the connection, when it can be
// closed alone (TCP).
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return nil
}
