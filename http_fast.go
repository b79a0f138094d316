package tracker

// A listener that answers the common tracker request, an announce or a
// scrape on a connection of its own, without net/http; the
// system-specific halves are http_fast_linux.go and http_fast_other.go.

import (
	"context"
	"net"
	"net/http"
	"net/netip"
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
type FastListener struct {
	l     net.Listener
	cl    *ConnLimiter
	slow  net.Listener // every connection to the server: l, bounded by cl
	sys   fastSys      // the system's half
	mu    sync.Mutex   // one Accept at a time; guards srv
	srv   *fastServer
	tails sync.WaitGroup // goroutines that finish writing big replies

	closed               atomic.Bool
	answered, handedOver atomic.Uint64
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
	fl := &FastListener{l: l, cl: limiter, slow: l}
	if limiter != nil {
		fl.slow = limiter.Listener(l)
	}
	if tl, ok := l.(*net.TCPListener); ok && fl.sys.init(tl) {
		fl.srv = newFastServer(h)
	}
	return fl
}

// Accept answers connections until one is for the server, and returns
// it; see [FastListener].
func (l *FastListener) Accept() (net.Conn, error) {
	if l.srv == nil {
		c, err := l.slow.Accept()
		if err == nil {
			l.handedOver.Add(1)
		}
		return c, err
	}
	return l.accept()
}

// Close closes the listener.
func (l *FastListener) Close() error {
	l.closed.Store(true)
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
