package loadgen

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// httpWorker drives one HTTP connection: it writes a request, reads the
// whole response, checks it, and goes on, one request at a time as
// HTTP/1.1 clients do. In keep-alive mode it keeps its connection and
// opens a new one when the server closes it; in close mode it opens one
// per request, as qBittorrent and µTorrent do.
type httpWorker struct {
	w            *Workload
	target       *httpTarget // announces
	scrapeTarget *httpTarget
	closeMode    bool
	timeout      time.Duration
	dialer       net.Dialer
	tlsConfig    *tls.Config // for an https:// target
	k, n         int         // the worker's index and the number of workers, for pacing
	pace         pacer

	conn   net.Conn
	opened bool // a connection was opened before
	rd     respReader
	probe  closeProbe
	req    []byte
	hashes [][20]byte

	pick picker
	ws   workerStats
}

// newHTTPWorker makes worker k of n, whose connections come from address
// src (any if src is the zero Addr).
func newHTTPWorker(g *Generator, k, n int, src netip.Addr) *httpWorker {
	h := &httpWorker{
		k:            k,
		n:            n,
		w:            &g.w,
		target:       g.announce,
		scrapeTarget: g.scrape,
		closeMode:    g.cfg.HTTPClose,
		timeout:      g.cfg.Timeout,
		// No TCP keep-alive probes: they cost system calls per connection.
		dialer: net.Dialer{Timeout: g.cfg.Timeout, KeepAlive: -1},
		req:    make([]byte, 0, 1024),
		hashes: make([][20]byte, g.w.ScrapeHashes),
	}
	if src.IsValid() {
		h.dialer.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	if g.announce.tls {
		// A benchmark measures the server's work, not a certificate's
		// chain: any certificate is taken.
		h.tlsConfig = &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}
		if g.cfg.TLSResume {
			h.tlsConfig.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		}
	}
	return h
}

func (h *httpWorker) stats() *workerStats { return &h.ws }
func (h *httpWorker) setPicker(p picker)  { h.pick = p }

func (h *httpWorker) close() error {
	if h.conn == nil {
		return nil
	}
	err := h.conn.Close()
	h.conn = nil
	return err
}

// run sends requests until the phase stops or the picker runs out.
func (h *httpWorker) run(p *phase) error {
	h.ws.reset(p)
	h.pace.start(p, h.k, h.n)
	for {
		now := p.now()
		if !p.sending(now) {
			return nil
		}
		due, ok, skipped := h.pace.take(now, int64(h.timeout))
		st := p.statsAt(&h.ws, now)
		st.Requests += skipped
		st.Timeouts += skipped
		if !ok {
			sleepUntil(p, min(h.pace.due, now+int64(udpWake)))
			continue
		}
		r, ok := h.pick.next()
		if !ok {
			return nil
		}
		st.Requests++
		if r.scrape {
			h.req = h.w.appendHTTPScrape(h.req[:0], h.scrapeTarget, r, h.hashes)
		} else {
			h.req = h.w.appendHTTPAnnounce(h.req[:0], h.target, r)
		}
		resp, err := h.roundTrip(st, p.base.Add(time.Duration(now)+h.timeout))
		latency := time.Duration(p.now() - due)
		switch {
		case err == nil && resp.status != 200:
			st.Malformed++
		case err == nil && r.scrape:
			countHTTP(st, checkHTTPScrape(resp.body, h.hashes), latency, resp.body)
		case err == nil:
			countHTTP(st, checkHTTPAnnounce(resp.body), latency, resp.body)
		case errors.Is(err, errBadResponse):
			st.Malformed++
		case isTimeout(err):
			st.Timeouts++
		default:
			st.Errors++
		}
	}
}

// roundTrip sends h.req and reads the response. A keep-alive connection
// that the server closed while idle (opentracker closes every one after a
// reply) is opened again and the request sent once more.
func (h *httpWorker) roundTrip(st *stats, deadline time.Time) (response, error) {
	if h.conn != nil && h.probe.peerClosed() {
		h.close()
	}
	for attempt := 0; ; attempt++ {
		fresh := h.conn == nil
		if fresh {
			c, err := h.dial(deadline)
			if err != nil {
				return response{}, err
			}
			st.Connects++
			if h.opened && !h.closeMode {
				st.Reconnects++
			}
			h.conn, h.opened = c, true
			h.probe.reset(c)
		}
		_ = h.conn.SetDeadline(deadline)
		_, err := h.conn.Write(h.req)
		var resp response
		if err == nil {
			resp, err = h.rd.read(h.conn)
		}
		if err != nil {
			h.close()
			if !fresh && attempt == 0 && !resp.gotBytes && closedByPeer(err) {
				continue
			}
			return resp, err
		}
		if !resp.keepAlive || h.closeMode {
			h.close()
		}
		return resp, nil
	}
}

// dial opens a connection to the target, and makes the TLS handshake of
// an https:// one.
func (h *httpWorker) dial(deadline time.Time) (net.Conn, error) {
	c, err := h.dialer.Dial("tcp", h.target.addr)
	if err != nil || h.tlsConfig == nil {
		return c, err
	}
	tc := tls.Client(c, h.tlsConfig)
	_ = tc.SetDeadline(deadline)
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// closedByPeer reports whether err is what writing to or reading from a
// connection the peer has closed gives.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// countHTTP counts reply body of outcome o, with its latency, or its
// failure reason if it is a refusal.
func countHTTP(st *stats, o outcome, latency time.Duration, body []byte) {
	if o == outFailure {
		st.refused(failureReason(body))
		return
	}
	st.count(o, latency)
}
