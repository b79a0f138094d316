package loadgen

import (
	"errors"
	"io"
	"net"
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

	conn   net.Conn
	opened bool // a connection was opened before
	rd     respReader
	probe  closeProbe
	req    []byte
	hashes [][20]byte

	pick picker
	pace pacer
	ws   workerStats
}

func newHTTPWorker(g *Generator) *httpWorker {
	h := &httpWorker{
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
	h.ws = workerStats{}
	for {
		now := p.now()
		if !p.sending(now) {
			return nil
		}
		if !h.pace.due(p, now) {
			if sleepUntil(p, h.pace.wake(p)) != nil {
				return nil
			}
			continue
		}
		r, ok := h.pick.next()
		if !ok {
			return nil
		}
		st := p.statsAt(&h.ws, now)
		st.Requests++
		if r.scrape {
			h.req = h.w.appendHTTPScrape(h.req[:0], h.scrapeTarget, r, h.hashes)
		} else {
			h.req = h.w.appendHTTPAnnounce(h.req[:0], h.target, r)
		}
		resp, err := h.roundTrip(st, p.base.Add(time.Duration(now)+h.timeout))
		switch {
		case err == nil && resp.status != 200:
			st.Malformed++
		case err == nil && r.scrape:
			st.count(checkHTTPScrape(resp.body, h.hashes), time.Duration(p.now()-now))
		case err == nil:
			st.count(checkHTTPAnnounce(resp.body), time.Duration(p.now()-now))
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
			c, err := h.dialer.Dial("tcp", h.target.addr)
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

// closedByPeer reports whether err is what writing to or reading from a
// connection the peer has closed gives.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// sleepUntil sleeps until at (nanoseconds since the phase's base), or
// until the phase stops.
func sleepUntil(p *phase, at int64) error {
	d := time.Duration(at - p.now())
	if p.stopAt > 0 {
		d = min(d, time.Duration(p.stopAt-p.now()))
	}
	if d > 0 {
		time.Sleep(d)
	}
	if p.stop.Load() {
		return errStopped
	}
	return nil
}

var errStopped = errors.New("loadgen: stopped")
