package tracker

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/annuaire/tracker/internal/announceurl"
)

// HTTPConfig configures an [HTTPHandler]. The zero value serves announces
// and scrapes, believes no proxy header and no ip parameter, refuses full
// scrapes, and gzips replies of 1 KB or more for clients that accept it.
type HTTPConfig struct {
	// TrustedProxies lists the networks of the reverse proxies in front of
	// the tracker. A request whose connection comes from one of them is
	// taken to come from the right-most address of its X-Forwarded-For
	// header that is not itself in TrustedProxies (every hop trusted: the
	// left-most), or, without that header, from its X-Real-IP header. A
	// header that names no valid address makes announces fail with "invalid
	// peer address". If nil, those headers are never believed.
	TrustedProxies []netip.Prefix
	// AllowIPParam lets clients choose the address they are announced at:
	// the ip parameter (an IP address; host names are ignored) or else the
	// ipv4 or ipv6 parameter of the request's own address family replaces
	// the address the request comes from. Only trackers whose clients are
	// all trusted (behind the same NAT as the tracker, say) should set it:
	// it lets anyone make a swarm send peers to any address. If false, the
	// parameters are accepted and ignored.
	AllowIPParam bool
	// TrackerID is sent in every announce reply as "tracker id". Clients
	// echo it as the trackerid parameter, which is accepted and ignored.
	// If empty, none is sent.
	TrackerID string
	// FullScrape answers a scrape that names no info_hash with the counters
	// of every swarm, when the tracker's Store is a [FullScraper]. A full
	// scrape still needs a valid passkey when passkeys are required, and
	// leaves out the torrents the TorrentFilter refuses to the zero
	// [Identity]. If false, such scrapes fail with "full scrape not
	// allowed".
	FullScrape bool
	// MaxFullScrape is the most swarms a full scrape lists; past it, which
	// swarms are left out is unspecified. If zero, 100,000.
	MaxFullScrape int
	// FullScrapeCache is how long a full scrape, once built, is served to
	// every client before it is built again. One build runs at a time: the
	// clients that come during a build get the previous copy, or wait for
	// the first one. If zero, 1 minute.
	FullScrapeCache time.Duration
	// GzipMinSize is the size from which a reply is gzipped for clients
	// that send Accept-Encoding: gzip; such replies carry Vary:
	// Accept-Encoding. In practice only scrapes are that big. If zero,
	// 1024 bytes; if negative, replies are never gzipped.
	GzipMinSize int
	// Logger receives the errors of the handler itself (a full scrape that
	// cannot be built) and, through [NewHTTPServer], net/http's own; the
	// tracker logs its internal errors to its Config.Logger. Nothing is
	// logged per request above debug level. If nil, the tracker's
	// Config.Logger.
	Logger *slog.Logger
}

// HTTPHandler serves the HTTP tracker protocol (BEP 3, 7, 23, 24, 31, 48)
// for a [Tracker]. It serves GET and HEAD on these paths:
//
//	/announce  /announce.php  /announce/<passkey>  /<passkey>/announce
//	/scrape    /scrape.php    /scrape/<passkey>    /<passkey>/scrape
//
// and takes a passkey from a passkey query parameter too
// (/announce.php?passkey=<passkey>); the tracker's PasskeyValidator
// decides whether it is valid. The paths are matched at the root of the
// request's URL: to mount the handler under a prefix, wrap it in
// [http.StripPrefix]. Any other path gets a plain 404 and any other method
// a 405.
//
// Every reply on those paths, failures included, is HTTP 200 with a
// bencoded body, since clients show the "failure reason" of a 200 reply
// and hide the body of any other status. Failures carry the tracker's
// intervals, which clients back off by, and "retry in" (BEP 31) when the
// failure asks for it.
//
// The query is read as clients write it: parameters separated by '&',
// %XX in either case decoded, and every other byte taken as it is, '+'
// included (it is never a space, so a Go client must not build the query
// with url.QueryEscape). A repeated parameter takes its last value, except
// info_hash in scrapes, which lists the swarms; unknown parameters are
// ignored. An announce needs info_hash and peer_id (20 bytes each), port
// and left; compact=0 asks for a list of dictionaries instead of compact
// peers (BEP 23), and no_peer_id=1 leaves their ids out. IPv6 peers go to
// IPv6 announcers, in "peers6" (BEP 7). The reply's "external ip" (BEP
// 24) is the address the request came from: the connection's, or the one
// a trusted proxy names (see [HTTPConfig]).
//
// An HTTPHandler is safe for concurrent use. In steady state an announce
// or a scrape allocates nothing in the handler: requests are parsed from
// the raw query in place and replies encoded into pooled buffers.
type HTTPHandler struct {
	t       *Tracker
	cfg     HTTPConfig // defaults applied
	log     *slog.Logger
	gzipMin int // -1: never
	full    FullScraper
	pool    sync.Pool // *httpState
	// The largest scratch space kept in pool.
	maxPooled struct{ bytes, peers, hashes int }

	// The full-scrape cache: fullBody is the last body built; while a
	// build runs, fullBuild is a channel that it closes when done.
	fullMu    sync.Mutex
	fullBody  *httpFullBody
	fullBuild chan struct{}
}

// NewHTTPHandler validates cfg and returns a handler that serves the HTTP
// tracker protocol for t. It starts no goroutine.
func (t *Tracker) NewHTTPHandler(cfg HTTPConfig) (*HTTPHandler, error) {
	if cfg.MaxFullScrape == 0 {
		cfg.MaxFullScrape = 100_000
	}
	if cfg.FullScrapeCache == 0 {
		cfg.FullScrapeCache = time.Minute
	}
	if cfg.GzipMinSize == 0 {
		cfg.GzipMinSize = 1024
	}
	switch {
	case cfg.MaxFullScrape < 0:
		return nil, errorf("HTTPConfig.MaxFullScrape %d is negative", cfg.MaxFullScrape)
	case cfg.FullScrapeCache < 0:
		return nil, errorf("HTTPConfig.FullScrapeCache %v is negative", cfg.FullScrapeCache)
	}
	for _, p := range cfg.TrustedProxies {
		if !p.IsValid() {
			return nil, errorf("HTTPConfig.TrustedProxies: invalid prefix %v", p)
		}
	}
	cfg.TrustedProxies = slices.Clone(cfg.TrustedProxies)
	for i, p := range cfg.TrustedProxies {
		cfg.TrustedProxies[i] = httpUnmapPrefix(p)
	}
	h := &HTTPHandler{t: t, cfg: cfg, log: cfg.Logger, gzipMin: max(cfg.GzipMinSize, -1)}
	if h.log == nil {
		h.log = t.log
	}
	// Room for the largest reply the tracker's limits allow: a scrape entry
	// is about 100 bytes, a dictionary peer about 80.
	h.maxPooled.peers = max(httpMaxPooledPeers, t.cfg.MaxNumWant)
	h.maxPooled.hashes = max(httpMaxPooledHashes, t.cfg.MaxScrapeHashes)
	h.maxPooled.bytes = max(httpMaxPooledBytes, 128*t.cfg.MaxScrapeHashes, 128*t.cfg.MaxNumWant)
	if cfg.FullScrape {
		h.full, _ = t.store.(FullScraper)
	}
	return h, nil
}

// httpUnmapPrefix turns a prefix of IPv4-mapped addresses into the IPv4
// prefix it covers, since client addresses are unmapped before matching.
func httpUnmapPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return p.Masked()
}

// Header values, shared by every reply: nothing may change them in place.
var (
	httpTextPlain      = []string{"text/plain"}
	httpGzipEncoding   = []string{"gzip"}
	httpVaryEncoding   = []string{"Accept-Encoding"}
	httpAllowedMethods = []string{"GET, HEAD"}
)

// httpLengths caches Content-Length header values, built the first time
// each length is sent.
var httpLengths [8 << 10]atomic.Pointer[[1]string]

func httpContentLength(n int) []string {
	if n >= len(httpLengths) {
		return []string{strconv.Itoa(n)}
	}
	p := httpLengths[n].Load()
	if p == nil {
		p = &[1]string{strconv.Itoa(n)}
		httpLengths[n].Store(p)
	}
	return p[:]
}

// Client-visible failures of the HTTP front-end, besides the core's.
var (
	httpErrNoInfoHash  = &Error{Kind: KindBadRequest, Reason: "missing info_hash"}
	httpErrNoPeerID    = &Error{Kind: KindBadRequest, Reason: "missing peer_id"}
	httpErrNoPort      = &Error{Kind: KindBadRequest, Reason: "missing port"}
	httpErrNoLeft      = &Error{Kind: KindBadRequest, Reason: "missing left"}
	httpErrFullScrape  = &Error{Kind: KindBadRequest, Reason: "full scrape not allowed"}
	httpErrMethod      = &Error{Kind: KindBadRequest, Reason: "method not allowed: use GET"}
	httpErrUnavailable = &Error{Kind: KindInternal, Reason: "full scrape unavailable, try again later", RetryIn: time.Minute}
)

// Limits on what one request may carry.
const (
	httpMaxPasskey = 128 // bytes, decoded
	httpMaxDigits  = 20  // digits of a number parameter
)

// Sizes past which pooled scratch space is dropped rather than kept,
// unless the tracker's limits need more: a reply of 64 KB, 1024 peers,
// 1024 scrape hashes.
const (
	httpMaxPooledBytes  = 64 << 10
	httpMaxPooledPeers  = 1 << 10
	httpMaxPooledHashes = 1 << 10
)

// httpState is the scratch space of one request, pooled.
type httpState struct {
	req    AnnounceRequest
	resp   AnnounceResponse
	sreq   ScrapeRequest
	sresp  ScrapeResponse
	order  []int
	out    []byte
	zipped httpBuffer
}

func (h *HTTPHandler) getState() *httpState {
	if st, ok := h.pool.Get().(*httpState); ok {
		return st
	}
	return &httpState{
		resp: AnnounceResponse{Peers: make([]Peer, 0, h.t.cfg.MaxNumWant)},
		out:  make([]byte, 0, 1024),
	}
}

func (h *HTTPHandler) putState(st *httpState) {
	if cap(st.out) > h.maxPooled.bytes || cap(st.zipped.b) > h.maxPooled.bytes ||
		cap(st.resp.Peers) > h.maxPooled.peers || cap(st.sreq.InfoHashes) > h.maxPooled.hashes {
		return
	}
	// Drop what refers to the request, so the pool keeps nothing alive.
	st.req = AnnounceRequest{}
	st.resp = AnnounceResponse{Peers: st.resp.Peers[:0]}
	st.sreq = ScrapeRequest{InfoHashes: st.sreq.InfoHashes[:0]}
	h.pool.Put(st)
}

// httpBuffer is an io.Writer that appends to b.
type httpBuffer struct{ b []byte }

func (w *httpBuffer) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// httpRoute is what a request path asks for.
type httpRoute uint8

const (
	httpNotFound httpRoute = iota
	httpAnnounce
	httpScrape
)

// httpRouteOf maps an escaped request path to its route, and reports
// whether the path holds a passkey (/announce/<pk> or /<pk>/announce and
// their scrape forms). It matches the layouts in the order that
// announceurl reads them, so the two agree on ambiguous paths such as
// /announce/scrape.
func httpRouteOf(path string) (httpRoute, bool) {
	switch path {
	case "/announce", "/announce.php":
		return httpAnnounce, false
	case "/scrape", "/scrape.php":
		return httpScrape, false
	}
	if len(path) < 2 || path[0] != '/' {
		return httpNotFound, false
	}
	for _, r := range [...]struct {
		route  httpRoute
		prefix string
		suffix string
	}{{httpAnnounce, "/announce/", "/announce"}, {httpScrape, "/scrape/", "/scrape"}} {
		// /<verb>/<pk>
		if pk, ok := strings.CutPrefix(path, r.prefix); ok && pk != "" && !strings.Contains(pk, "/") {
			return r.route, true
		}
		// /<pk>/<verb>
		if pk, ok := strings.CutSuffix(path[1:], r.suffix); ok && pk != "" && !strings.Contains(pk, "/") {
			return r.route, true
		}
	}
	return httpNotFound, false
}

// ServeHTTP answers one announce or scrape; see [HTTPHandler] for the paths.
func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	route, pathPasskey := httpRouteOf(path)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header()["Allow"] = httpAllowedMethods
		if route == httpNotFound {
			http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
			return
		}
		// On a tracker path, a failure a client can read.
		body := appendFailure(nil, httpErrMethod, h.t.cfg.AnnounceInterval, h.t.cfg.MinAnnounceInterval)
		w.Header()["Content-Type"] = httpTextPlain
		w.Header()["Content-Length"] = httpContentLength(len(body))
		w.WriteHeader(http.StatusMethodNotAllowed)
		w.Write(body)
		return
	}
	if route == httpNotFound {
		http.NotFound(w, r)
		return
	}
	start := h.t.observeStart()
	st := h.getState()
	defer h.putState(st)
	src := h.clientAddr(r)
	var err error
	op := OpAnnounce
	// Rate limit first: a client over its limit costs no parsing.
	if src.IsValid() && !h.t.allowIP(src) {
		err = h.reject(ErrRateLimited)
	} else if route == httpAnnounce {
		err = h.announce(w, r, st, path, pathPasskey, src)
	} else {
		op = OpScrape
		err = h.scrape(w, r, st, path, pathPasskey, src)
	}
	if err != nil {
		h.writeFailure(w, r, st, err)
	}
	h.t.observe(ProtocolHTTP, op, start, err)
}

// announce parses and answers an announce. An error is the failure to
// send, not yet written.
func (h *HTTPHandler) announce(w http.ResponseWriter, r *http.Request, st *httpState, path string, pathPasskey bool, src netip.Addr) error {
	req := &st.req
	*req = AnnounceRequest{}
	var q httpAnnounceQuery
	if err := httpParseAnnounce(r.URL.RawQuery, req, &q); err != nil {
		return h.reject(err)
	}
	var err error
	if req.Passkey, err = httpPasskey(r, path, pathPasskey, q.passkey); err != nil {
		return h.reject(err)
	}
	addr := src
	if h.cfg.AllowIPParam {
		if a := q.claimedAddr(src); a.IsValid() {
			addr = a
		}
	}
	req.Addr = netip.AddrPortFrom(addr, q.port)
	if ua := r.Header["User-Agent"]; len(ua) > 0 {
		req.UserAgent = ua[0]
	}
	if err := h.t.announce(r.Context(), req, &st.resp, true); err != nil {
		return err
	}
	st.out = appendAnnounce(st.out[:0], &st.resp, replyOptions{
		Compact:    q.compact,
		NoPeerID:   q.noPeerID,
		ExternalIP: src,
		TrackerID:  h.cfg.TrackerID,
	})
	h.write(w, r, st, st.out)
	return nil
}

// scrape parses and answers a scrape, full or not.
func (h *HTTPHandler) scrape(w http.ResponseWriter, r *http.Request, st *httpState, path string, pathPasskey bool, src netip.Addr) error {
	sreq := &st.sreq
	hashes, passkeyParam, err := httpParseScrape(r.URL.RawQuery, sreq.InfoHashes[:0], h.t.cfg.MaxScrapeHashes)
	sreq.InfoHashes = hashes
	if err != nil {
		return h.reject(err)
	}
	if sreq.Passkey, err = httpPasskey(r, path, pathPasskey, passkeyParam); err != nil {
		return h.reject(err)
	}
	sreq.Addr = src
	if len(hashes) == 0 {
		return h.fullScrape(w, r, sreq.Passkey)
	}
	if err := h.t.scrape(r.Context(), sreq, &st.sresp, true); err != nil {
		return err
	}
	st.out, st.order = appendScrape(st.out[:0], hashes, st.sresp.Files, st.sresp.MinInterval, st.order)
	h.write(w, r, st, st.out)
	return nil
}

// reject counts a failure of the front-end's own checks, an *Error, in
// the tracker's Stats, and returns it.
func (h *HTTPHandler) reject(err error) error {
	if e, ok := err.(*Error); ok {
		h.t.failures[e.Kind].add()
		return err
	}
	return h.t.fail(err, "http")
}

// httpPasskey returns the request's passkey, found by announceurl in the
// path (when pathPasskey) or in the query (when it has a passkey
// parameter), or "" if none.
func httpPasskey(r *http.Request, path string, pathPasskey, inQuery bool) (string, error) {
	var pk string
	switch {
	case pathPasskey:
		pk, _ = announceurl.Passkey(path)
	case inQuery:
		pk, _ = announceurl.Passkey(httpMarkedQuery(r))
	}
	if len(pk) > httpMaxPasskey {
		return "", ErrInvalidPasskey
	}
	return pk, nil
}

// httpMarkedQuery returns the raw query behind a '?', which announceurl
// reads as a URL with an empty path. It is a part of the request line
// when that ends with the query, as it does for requests a server read.
func httpMarkedQuery(r *http.Request) string {
	u, q := r.RequestURI, r.URL.RawQuery
	if n := len(u) - len(q) - 1; n >= 0 && u[n] == '?' && u[n+1:] == q {
		return u[n:]
	}
	return "?" + q
}

// clientAddr returns the address the request comes from: the connection's,
// or what a trusted proxy says. The zero Addr means none could be told.
func (h *HTTPHandler) clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	a := ap.Addr().Unmap().WithZone("")
	if !h.trusted(a) {
		return a
	}
	if vs := r.Header["X-Forwarded-For"]; len(vs) > 0 {
		if fa, ok := h.forwardedFor(vs); ok {
			return fa
		}
	}
	if vs := r.Header["X-Real-Ip"]; len(vs) > 0 {
		fa, _ := httpParseHost(strings.TrimSpace(vs[len(vs)-1]))
		return fa
	}
	return a
}

// trusted reports whether a is in one of the trusted proxy networks.
func (h *HTTPHandler) trusted(a netip.Addr) bool {
	for _, p := range h.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor reads X-Forwarded-For lines (each hop appends its peer's
// address, so the right-most addresses are the ones trusted proxies
// wrote): it returns the right-most address that is not a trusted proxy,
// or the left-most if all are. ok is false for a header with no address;
// an entry that is not an address ends the walk with the zero Addr.
func (h *HTTPHandler) forwardedFor(lines []string) (_ netip.Addr, ok bool) {
	var last netip.Addr
	for i := len(lines) - 1; i >= 0; i-- {
		s := lines[i]
		for s != "" {
			var part string
			if j := strings.LastIndexByte(s, ','); j >= 0 {
				part, s = s[j+1:], s[:j]
			} else {
				part, s = s, ""
			}
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			a, valid := httpParseHost(part)
			if !valid || !h.trusted(a) {
				return a, true
			}
			last = a
		}
	}
	return last, last.IsValid()
}

// httpParseHost parses an address as proxies and clients write it: a bare
// IPv4 or IPv6 address, [IPv6], or either with a port. The result is
// unmapped and without zone.
func httpParseHost(s string) (netip.Addr, bool) {
	var a netip.Addr
	var err error
	switch i := strings.LastIndexByte(s, ':'); {
	case strings.HasPrefix(s, "["):
		if strings.HasSuffix(s, "]") {
			a, err = netip.ParseAddr(s[1 : len(s)-1])
		} else {
			var ap netip.AddrPort
			ap, err = netip.ParseAddrPort(s)
			a = ap.Addr()
		}
	case i >= 0 && strings.IndexByte(s, ':') == i: // IPv4 with a port
		var ap netip.AddrPort
		ap, err = netip.ParseAddrPort(s)
		a = ap.Addr()
	default:
		a, err = netip.ParseAddr(s)
	}
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// write sends a successful or failed reply, gzipped when it is big enough
// and the client accepts it.
func (h *HTTPHandler) write(w http.ResponseWriter, r *http.Request, st *httpState, body []byte) {
	hdr := w.Header()
	hdr["Content-Type"] = httpTextPlain
	if h.gzipMin >= 0 && len(body) >= h.gzipMin {
		hdr["Vary"] = httpVaryEncoding
		if httpAcceptsGzip(r.Header["Accept-Encoding"]) {
			st.zipped.b = st.zipped.b[:0]
			httpGzip(&st.zipped, body)
			body = st.zipped.b
			hdr["Content-Encoding"] = httpGzipEncoding
		}
	}
	hdr["Content-Length"] = httpContentLength(len(body))
	w.WriteHeader(http.StatusOK)
	w.Write(body) // a client gone away is not the tracker's failure
}

// writeFailure sends err as a failure reply: its text when it is an *Error,
// a generic one otherwise.
func (h *HTTPHandler) writeFailure(w http.ResponseWriter, r *http.Request, st *httpState, err error) {
	e, ok := err.(*Error) // the common case, without errors.As
	if !ok {
		e, _ = clientError(err)
	}
	st.out = appendFailure(st.out[:0], e, h.t.cfg.AnnounceInterval, h.t.cfg.MinAnnounceInterval)
	h.write(w, r, st, st.out)
}

var httpGzipWriters sync.Pool // *gzip.Writer

// httpGzip appends the gzipped body to dst.
func httpGzip(dst *httpBuffer, body []byte) {
	zw, _ := httpGzipWriters.Get().(*gzip.Writer)
	if zw == nil {
		zw, _ = gzip.NewWriterLevel(dst, gzip.BestSpeed)
	} else {
		zw.Reset(dst)
	}
	// Writes to an httpBuffer cannot fail.
	zw.Write(body)
	zw.Close()
	zw.Reset(nil) // keep no reference to dst in the pool
	httpGzipWriters.Put(zw)
}

// httpAcceptsGzip reports whether Accept-Encoding header lines accept
// gzip: listed as gzip or x-gzip, or covered by *, with a nonzero q.
func httpAcceptsGzip(lines []string) bool {
	named, star := 0, 0 // 0 absent, 1 refused, 2 accepted
	for _, s := range lines {
		for s != "" {
			var part string
			part, s, _ = strings.Cut(s, ",")
			coding, params, _ := strings.Cut(part, ";")
			coding = strings.TrimSpace(coding)
			v := 2
			if httpQZero(params) {
				v = 1
			}
			switch {
			case strings.EqualFold(coding, "gzip") || strings.EqualFold(coding, "x-gzip"):
				named = max(named, v)
			case coding == "*":
				star = max(star, v)
			}
		}
	}
	if named != 0 {
		return named == 2
	}
	return star == 2
}

// httpQZero reports whether the parameters of a coding set its q to zero.
func httpQZero(params string) bool {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		v = strings.TrimSpace(v)
		if v == "" || v[0] != '0' {
			return false
		}
		return strings.Trim(v[1:], ".0") == ""
	}
	return false
}

// httpFullBody is a built full scrape.
type httpFullBody struct {
	plain, zipped []byte // zipped is nil when the body is too small to gzip
	built         time.Time
}

// fullScrape answers a scrape that names no info_hash.
func (h *HTTPHandler) fullScrape(w http.ResponseWriter, r *http.Request, passkey string) error {
	if h.full == nil {
		return h.reject(httpErrFullScrape)
	}
	ctx := r.Context()
	if h.t.closed.Load() {
		return h.t.fail(ErrClosed, "http full scrape")
	}
	if _, err := h.t.identify(ctx, passkey); err != nil {
		return h.t.fail(err, "http full scrape")
	}
	fb, err := h.fullScrapeBody(ctx)
	if err != nil {
		return err
	}
	body := fb.plain
	hdr := w.Header()
	hdr["Content-Type"] = httpTextPlain
	if fb.zipped != nil {
		hdr["Vary"] = httpVaryEncoding
		if httpAcceptsGzip(r.Header["Accept-Encoding"]) {
			body = fb.zipped
			hdr["Content-Encoding"] = httpGzipEncoding
		}
	}
	hdr["Content-Length"] = httpContentLength(len(body))
	w.WriteHeader(http.StatusOK)
	// The body is shared by every client: write it in chunks, so that
	// nothing is copied per request beyond the server's buffers.
	const chunk = 32 << 10
	for len(body) > 0 {
		n := min(len(body), chunk)
		if _, err := w.Write(body[:n]); err != nil {
			break
		}
		body = body[n:]
	}
	return nil
}

// fullScrapeBody returns the cached full scrape, building it when it is
// missing or older than FullScrapeCache. While one request builds it, the
// others get the previous copy, or wait for this one when there is none.
func (h *HTTPHandler) fullScrapeBody(ctx context.Context) (*httpFullBody, error) {
	h.fullMu.Lock()
	fb, building := h.fullBody, h.fullBuild
	switch {
	case fb != nil && (time.Since(fb.built) < h.cfg.FullScrapeCache || building != nil):
		h.fullMu.Unlock()
		return fb, nil
	case building != nil:
		h.fullMu.Unlock()
		select {
		case <-building:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		h.fullMu.Lock()
		fb = h.fullBody
		h.fullMu.Unlock()
		if fb == nil {
			return nil, h.t.fail(httpErrUnavailable, "http full scrape")
		}
		return fb, nil
	}
	done := make(chan struct{})
	h.fullBuild = done
	h.fullMu.Unlock()

	var err error
	fb = nil
	defer func() {
		// Even if the store panics, the waiting clients are let go.
		h.fullMu.Lock()
		if fb != nil {
			h.fullBody = fb
		}
		h.fullBuild = nil
		h.fullMu.Unlock()
		close(done)
	}()
	// The build outlives a client that hangs up: others may be waiting.
	fb, err = h.buildFullScrape(context.WithoutCancel(ctx))
	if err != nil {
		e, ok := clientError(err)
		h.t.failures[e.Kind].add()
		if !ok {
			h.log.Error("tracker: http full scrape failed", "err", err)
		}
		return nil, err
	}
	return fb, nil
}

// buildFullScrape lists the store's swarms and encodes them, sorted by
// hash as bencode requires, and gzipped when the body is big enough.
func (h *HTTPHandler) buildFullScrape(ctx context.Context) (*httpFullBody, error) {
	type entry struct {
		h  InfoHash
		st ScrapeStats
	}
	limit := h.cfg.MaxFullScrape
	entries := make([]entry, 0, min(limit, 1024))
	err := h.full.ScrapeAll(ctx, func(ih InfoHash, st ScrapeStats) bool {
		if len(entries) >= limit {
			return false
		}
		entries = append(entries, entry{ih, st})
		return len(entries) < limit
	})
	if err != nil {
		return nil, err
	}
	if f := h.t.cfg.Torrents; f != nil {
		entries = slices.DeleteFunc(entries, func(e entry) bool {
			return f.AllowTorrent(ctx, e.h, Identity{}) != nil
		})
	}
	slices.SortFunc(entries, func(a, b entry) int { return bytes.Compare(a.h[:], b.h[:]) })
	entries = slices.CompactFunc(entries, func(a, b entry) bool { return a.h == b.h })

	const perEntry = 3 + 20 + len("d8:completei0e10:downloadedi0e11:downloadersi0e10:incompletei0ee") + 16
	plain := make([]byte, 0, 64+perEntry*len(entries))
	plain = append(plain, "d5:filesd"...)
	for _, e := range entries {
		plain = appendScrapeEntry(plain, e.h, e.st)
	}
	plain = append(plain, "e5:flagsd20:min_request_interval"...)
	plain = appendInt(plain, seconds(h.t.cfg.MinScrapeInterval))
	plain = append(plain, "ee"...)
	fb := &httpFullBody{plain: plain, built: time.Now()}
	if h.gzipMin >= 0 && len(plain) >= h.gzipMin {
		z := httpBuffer{b: make([]byte, 0, len(plain)/2)}
		httpGzip(&z, plain)
		fb.zipped = slices.Clip(z.b)
	}
	return fb, nil
}

// httpAnnounceQuery is what an announce query says beyond the fields of
// AnnounceRequest.
type httpAnnounceQuery struct {
	port     uint16
	compact  bool // false only for compact=0
	noPeerID bool
	passkey  bool // the query has a passkey parameter
	// The ip, ipv4 and ipv6 parameters, still escaped.
	ip, ipv4, ipv6 string
}

// claimedAddr returns the address the ip parameters claim for a request
// from src: ip, or else the one of ipv4 and ipv6 of src's family. The
// zero Addr means none.
func (q *httpAnnounceQuery) claimedAddr(src netip.Addr) netip.Addr {
	if a, ok := httpParseAddrParam(q.ip); ok {
		return a
	}
	s := q.ipv4
	if src.Is6() {
		s = q.ipv6
	}
	if a, ok := httpParseAddrParam(s); ok && a.Is6() == src.Is6() {
		return a
	}
	return netip.Addr{}
}

// httpParseAddrParam parses an escaped address parameter, with or without
// a port; an unspecified address counts as none.
func httpParseAddrParam(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	var buf [64]byte
	b, ok := httpUnescapeInto(buf[:], s)
	if !ok {
		return netip.Addr{}, false
	}
	a, ok := httpParseHost(string(b))
	return a, ok && !a.IsUnspecified()
}

// The parameter names the parser knows; a key with escapes is matched
// after decoding.
const (
	httpKeyUnknown = iota
	httpKeyInfoHash
	httpKeyPeerID
	httpKeyPort
	httpKeyUploaded
	httpKeyDownloaded
	httpKeyLeft
	httpKeyEvent
	httpKeyNumWant
	httpKeyKey
	httpKeyCompact
	httpKeyNoPeerID
	httpKeyPasskey
	httpKeyIP
	httpKeyIPv4
	httpKeyIPv6
)

func httpKeyOf(k string) int {
	if strings.IndexByte(k, '%') >= 0 {
		var buf [16]byte
		b, ok := httpUnescapeInto(buf[:], k)
		if !ok {
			return httpKeyUnknown
		}
		return httpKeyOfBytes(b)
	}
	return httpKeyOfBytes(k)
}

func httpKeyOfBytes[S ~string | ~[]byte](k S) int {
	switch string(k) {
	case "info_hash":
		return httpKeyInfoHash
	case "peer_id":
		return httpKeyPeerID
	case "port":
		return httpKeyPort
	case "uploaded":
		return httpKeyUploaded
	case "downloaded":
		return httpKeyDownloaded
	case "left":
		return httpKeyLeft
	case "event":
		return httpKeyEvent
	case "numwant":
		return httpKeyNumWant
	case "key":
		return httpKeyKey
	case "compact":
		return httpKeyCompact
	case "no_peer_id":
		return httpKeyNoPeerID
	case "passkey":
		return httpKeyPasskey
	case "ip":
		return httpKeyIP
	case "ipv4":
		return httpKeyIPv4
	case "ipv6":
		return httpKeyIPv6
	}
	return httpKeyUnknown
}

// httpNextParam splits the first parameter off an &-separated query.
func httpNextParam(q string) (key, value, rest string) {
	param := q
	if i := strings.IndexByte(q, '&'); i >= 0 {
		param, rest = q[:i], q[i+1:]
	}
	key, value, _ = strings.Cut(param, "=")
	return key, value, rest
}

// httpParseAnnounce parses an announce's raw query into req and q. It
// allocates nothing.
//
// Parameters are separated by '&'; %XX (either case) decodes to its byte
// and any other byte, '+' included, stands for itself. A repeated
// parameter takes its last value; unknown ones are ignored. info_hash and
// peer_id must decode to 20 bytes, port to 1-65535, uploaded, downloaded
// and left to decimal int64 values of at most 20 digits. Missing uploaded
// and downloaded mean 0; a missing left, port, info_hash or peer_id is a
// failure. event is started, stopped, completed, paused or empty; another
// value is a failure. numwant, compact, no_peer_id, key and the ip
// parameters never fail: a numwant that is not a number, or is negative,
// asks for the default, compact=0 asks for dictionary peers, and key is
// folded to 32 bits (see httpFoldKey).
func httpParseAnnounce(query string, req *AnnounceRequest, q *httpAnnounceQuery) error {
	*q = httpAnnounceQuery{compact: true}
	req.NumWant = -1
	var haveHash, havePeer, havePort, haveLeft bool
	var eventErr, portErr, counterErr, hashErr, peerErr bool
	for query != "" {
		var k, v string
		k, v, query = httpNextParam(query)
		switch key := httpKeyOf(k); key {
		case httpKeyInfoHash:
			haveHash = true
			hashErr = !httpUnescape20((*[20]byte)(&req.InfoHash), v)
		case httpKeyPeerID:
			havePeer = true
			peerErr = !httpUnescape20((*[20]byte)(&req.PeerID), v)
		case httpKeyPort:
			havePort = true
			n, ok := httpParseUint(v)
			portErr = !ok || n == 0 || n > 65535
			q.port = uint16(n)
		case httpKeyUploaded, httpKeyDownloaded, httpKeyLeft:
			n, ok := httpParseUint(v)
			if !ok || n > 1<<63-1 {
				counterErr = true
				continue
			}
			switch key {
			case httpKeyUploaded:
				req.Uploaded = int64(n)
			case httpKeyDownloaded:
				req.Downloaded = int64(n)
			default:
				req.Left, haveLeft = int64(n), true
			}
		case httpKeyEvent:
			var ok bool
			req.Event, ok = httpParseEvent(v)
			eventErr = !ok
		case httpKeyNumWant:
			req.NumWant = httpParseNumWant(v)
		case httpKeyKey:
			req.Key = httpFoldKey(v)
		case httpKeyCompact:
			q.compact = !httpIsZero(v)
		case httpKeyNoPeerID:
			q.noPeerID = !httpIsZero(v)
		case httpKeyPasskey:
			q.passkey = true
		case httpKeyIP:
			q.ip = v
		case httpKeyIPv4:
			q.ipv4 = v
		case httpKeyIPv6:
			q.ipv6 = v
		}
	}
	switch {
	case !haveHash:
		return httpErrNoInfoHash
	case hashErr:
		return ErrInvalidInfoHash
	case !havePeer:
		return httpErrNoPeerID
	case peerErr:
		return ErrInvalidPeerID
	case !havePort:
		return httpErrNoPort
	case portErr:
		return ErrInvalidPort
	case counterErr:
		return ErrInvalidCounter
	case !haveLeft:
		return httpErrNoLeft
	case eventErr:
		return ErrInvalidEvent
	}
	return nil
}

// httpParseScrape appends the info_hash values of a scrape's raw query to
// hashes, at most max of them, and reports whether it has a passkey
// parameter. It decodes like httpParseAnnounce and allocates nothing when
// hashes has room.
func httpParseScrape(query string, hashes []InfoHash, max int) (_ []InfoHash, passkey bool, _ error) {
	for query != "" {
		var k, v string
		k, v, query = httpNextParam(query)
		switch httpKeyOf(k) {
		case httpKeyInfoHash:
			if len(hashes) >= max {
				return hashes, passkey, ErrTooManyInfoHashes
			}
			hashes = append(hashes, InfoHash{})
			if !httpUnescape20((*[20]byte)(&hashes[len(hashes)-1]), v) {
				return hashes, passkey, ErrInvalidInfoHash
			}
		case httpKeyPasskey:
			passkey = true
		}
	}
	return hashes, passkey, nil
}

// httpUnescapeInto decodes s into dst and returns the decoded part of dst,
// or false if it does not fit.
func httpUnescapeInto(dst []byte, s string) ([]byte, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if n == len(dst) {
			return dst[:n], false
		}
		c := s[i]
		if c == '%' && i+2 < len(s) {
			if hi, lo := httpHexValue[s[i+1]], httpHexValue[s[i+2]]; hi|lo < 16 {
				c = hi<<4 | lo
				i += 2
			}
		}
		dst[n] = c
		n++
	}
	return dst[:n], true
}

// httpHexValue maps a hex digit, in either case, to its value, and any
// other byte to 0xFF.
var httpHexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	for i := range 10 {
		t['0'+i] = byte(i)
	}
	for i := range 6 {
		t['a'+i], t['A'+i] = byte(10+i), byte(10+i)
	}
	return t
}()

// httpUnescape20 decodes s into dst, which it must fill exactly.
func httpUnescape20(dst *[20]byte, s string) bool {
	b, ok := httpUnescapeInto(dst[:], s)
	if ok && len(b) == len(dst) {
		return true
	}
	*dst = [20]byte{}
	return false
}

// httpParseUint parses an escaped decimal number of at most
// httpMaxDigits digits (a leading '+' or '-' is not allowed).
func httpParseUint(s string) (uint64, bool) {
	var buf [httpMaxDigits]byte
	b, ok := httpUnescapeInto(buf[:], s)
	if !ok || len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// httpParseNumWant parses numwant: a decimal number, saturated at MaxInt32;
// anything else (a negative number, a number over 32 characters) means the
// default, -1.
func httpParseNumWant(s string) int {
	var buf [32]byte
	b, ok := httpUnescapeInto(buf[:], s)
	if !ok || len(b) == 0 {
		return -1
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = min(n*10+int(c-'0'), 1<<31-1)
	}
	return n
}

// httpParseEvent parses the event parameter.
func httpParseEvent(s string) (Event, bool) {
	var buf [16]byte
	b, ok := httpUnescapeInto(buf[:], s)
	if !ok {
		return EventNone, false
	}
	switch string(b) {
	case "":
		return EventNone, true
	case "started":
		return EventStarted, true
	case "stopped":
		return EventStopped, true
	case "completed":
		return EventCompleted, true
	case "paused":
		return EventPaused, true
	}
	return EventNone, false
}

// httpIsZero reports whether a flag parameter is 0 (escaped or not).
func httpIsZero(s string) bool {
	return s == "0" || s == "%30"
}

// httpFoldKey folds the key parameter, opaque to the tracker, into 32 bits
// so that the same key always gives the same value: 8 hex digits (either
// case) are read as hex, a decimal number in the range of int32 or uint32
// (optionally signed) as its 32-bit value, and anything else is hashed
// (FNV-1a) over its decoded bytes.
func httpFoldKey(s string) uint32 {
	var buf [64]byte
	b, ok := httpUnescapeInto(buf[:], s)
	if !ok {
		return httpFNV(s) // too long to decode here: hash as sent
	}
	if len(b) == 8 {
		var v uint32
		hex := true
		for _, c := range b {
			d := httpHexValue[c]
			if d > 15 {
				hex = false
				break
			}
			v = v<<4 | uint32(d)
		}
		if hex {
			return v
		}
	}
	digits, neg := b, false
	if len(digits) > 0 && (digits[0] == '-' || digits[0] == '+') {
		digits, neg = digits[1:], digits[0] == '-'
	}
	if n, ok := httpDecimal(digits); ok {
		if !neg && n <= 1<<32-1 {
			return uint32(n)
		}
		if neg && n <= 1<<31 {
			return uint32(-int64(n))
		}
	}
	return httpFNV(b)
}

// httpDecimal parses 1 to 10 decimal digits.
func httpDecimal(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func httpFNV[S ~string | ~[]byte](s S) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// HTTPServer is an [http.Server] set up for tracker traffic, a convenience
// for programs that do not already run one: it reads a request's headers
// within 5 seconds and the whole request within 10, writes a reply within
// 30 (a full scrape can be big), closes idle connections after 60 seconds,
// and refuses request lines and headers over 16 KB (a scrape of 256 hashes
// needs about 18 KB of query). Its methods follow http.Server's, except
// that they return [ErrServerClosed] once the server is shut down or
// closed.
//
// Programs that run their own http.Server mount an [HTTPHandler] on it
// instead, and should set similar timeouts.
type HTTPServer struct {
	srv http.Server
}

// NewHTTPServer returns a server that serves handler: an [HTTPHandler], or
// a mux the handler is mounted on. When handler is an *HTTPHandler,
// net/http's own error messages go to the handler's Logger: at warning
// level (accept errors, handler panics), or at debug level for those any
// client can cause (TLS handshake errors, semicolons in a query).
// Otherwise they go to the log package's standard logger.
func NewHTTPServer(handler http.Handler) *HTTPServer {
	s := &HTTPServer{srv: http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}}
	if h, ok := handler.(*HTTPHandler); ok {
		s.srv.ErrorLog = log.New(httpErrorLog{h.log}, "", 0)
	}
	return s
}

// httpErrorLog passes net/http's error messages on to a slog.Logger.
type httpErrorLog struct{ log *slog.Logger }

func (w httpErrorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := slog.LevelWarn
	for _, noise := range [...]string{"http: TLS handshake error", "http: URL query contains semicolon"} {
		if strings.HasPrefix(msg, noise) {
			level = slog.LevelDebug
		}
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}

// ListenAndServe listens on the TCP address addr (":6969", say; ":http" if
// empty) and serves it until the server is shut down or closed. It always
// returns a non-nil error: [ErrServerClosed] after Shutdown or Close.
func (s *HTTPServer) ListenAndServe(addr string) error {
	if addr == "" {
		addr = ":http"
	}
	l, err := httpListenConfig.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// httpListenConfig leaves TCP keep-alive off on accepted connections: the
// server's idle timeout already closes connections a client forgot, and
// turning keep-alive on costs four system calls per connection, which
// matters when clients (qBittorrent, µTorrent) open one per announce.
var httpListenConfig = net.ListenConfig{KeepAlive: -1}

// Serve accepts connections on l and serves them until the server is shut
// down or closed; it closes l when it returns. It always returns a non-nil
// error: [ErrServerClosed] after Shutdown or Close. A listener made with
// net.ListenConfig{KeepAlive: -1} spares each connection the system calls
// that turn TCP keep-alive on, which the server's idle timeout makes
// unnecessary.
func (s *HTTPServer) Serve(l net.Listener) error {
	return httpServeError(s.srv.Serve(l))
}

// Shutdown stops the server gracefully: it closes the listeners, then
// waits for the requests in progress to be answered and their connections
// to go idle, and closes those. If ctx ends first, Shutdown returns its
// error and the remaining connections stay open (Close ends them).
// Shutdown may be called more than once.
func (s *HTTPServer) Shutdown(ctx context.Context) error {
	return s.srv.Shutdown(ctx)
}

// Close stops the server at once: it closes the listeners and every
// connection, requests in progress included. It may be called more than
// once, and after Shutdown.
func (s *HTTPServer) Close() error {
	return s.srv.Close()
}

func httpServeError(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return ErrServerClosed
	}
	return err
}
