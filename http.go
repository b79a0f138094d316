package tracker

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"net/textproto"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/annuaire/tracker/internal/httpwire"
)

// HTTPConfig configures an [HTTPHandler]. The zero value serves announces
// and scrapes, believes no proxy header and no ip parameter, refuses full
// scrapes, and gzips replies of 1 KB or more for clients that accept it.
type HTTPConfig struct {
	// TrustedProxies lists the networks of the reverse proxies in front of
	// the tracker. A request whose connection comes from one of them is
	// taken to come from the address its ClientIPHeader names; without
	// that header, from the proxy itself. A header that names no valid
	// address makes announces fail with "invalid peer address" (the request
	// is still charged to the proxy's address in the rate limits), and one
	// that names an address peers cannot be sent to fails them with
	// [ErrAddressNotAllowed]. If nil, no header is ever believed.
	TrustedProxies []netip.Prefix
	// ClientIPHeader names the one header the trusted proxies set to the
	// client's address; every other such header is ignored, since a proxy
	// passes on what clients send. "X-Forwarded-For" is a list each proxy
	// appends its peer's address to: the client's address is the
	// right-most one that is not in TrustedProxies (every hop trusted: the
	// left-most). Any other name, such as "X-Real-IP" (nginx's
	// proxy_set_header X-Real-IP $remote_addr) or "CF-Connecting-IP", is a
	// header the proxy replaces with a single address, of which the last
	// line counts. Name the header your proxy writes: one it merely passes
	// on lets clients choose their address. If empty, "X-Forwarded-For",
	// which nginx ($proxy_add_x_forwarded_for), HAProxy (option
	// forwardfor), Caddy, Traefik and the cloud load balancers append to.
	// The RFC 7239 Forwarded header is not supported.
	ClientIPHeader string
	// AllowIPParam lets clients choose the address they are announced at:
	// the ip parameter (an IP address of the connection's family; host
	// names are ignored) or else the ipv4 or ipv6 parameter of the
	// connection's family replaces the address the request comes from.
	// Only trackers whose clients are all trusted (behind the same NAT as
	// the tracker, say) should set it: it lets anyone make a swarm send
	// peers to any address. An ip of the other family, or an address peers
	// cannot be sent to, fails the announce (see AllowPrivateAddrs). If
	// false, the parameters are accepted and ignored.
	AllowIPParam bool
	// AllowPrivateAddrs accepts private (RFC 1918, RFC 4193, and the
	// carrier-grade NAT range 100.64.0.0/10) and loopback addresses from
	// the ip parameters and from the trusted proxies' header, as a tracker
	// on a LAN needs. Unspecified, broadcast, multicast, link-local and
	// reserved addresses are refused all the same. The address of the
	// connection itself is always taken as it is. If false, such addresses
	// fail the announce with [ErrAddressNotAllowed]; libtorrent sends its
	// local addresses as ipv4 and ipv6 for private torrents, so a tracker
	// that sets AllowIPParam for NATed clients sets this too.
	AllowPrivateAddrs bool
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
	// 1024 bytes; [Disabled] (any negative value) never gzips.
	GzipMinSize int
	// FastWorkers is the most goroutines a [FastListener] made by
	// [HTTPHandler.NewFastListener] answers requests on, each at most a
	// core: the first waits for connections, the others take those that
	// queue up while it cannot keep up. If zero, GOMAXPROCS when the
	// listener is made.
	FastWorkers int
	// Logger receives the errors of the handler itself (a full scrape that
	// cannot be built) and, through [NewHTTPServer], net/http's own; the
	// tracker logs its internal errors to its Config.Logger. Nothing is
	// logged per request above debug level. If nil, the tracker's logger.
	Logger *slog.Logger
}

// HTTPHandler serves the HTTP tracker protocol (BEP 3, 7, 23, 24, 31, 48)
// for a [Tracker]. It serves GET and HEAD on these paths:
//
//	/announce  /announce.php  /announce/<passkey>  /<passkey>/announce
//	/scrape    /scrape.php    /scrape/<passkey>    /<passkey>/scrape
//
// and takes a passkey from a passkey query parameter too
// (/announce.php?passkey=<passkey>); a passkey in the path wins over one
// in the query. The tracker's PasskeyValidator decides whether it is
// valid. The paths are matched at the root of the request's URL: to mount
// the handler next to other routes, give it a prefix of its own and strip
// it, which serves every layout:
//
//	mux.Handle("/tracker/", http.StripPrefix("/tracker", h))
//
// (On an [http.ServeMux], "/announce/{passkey}" and "/{passkey}/announce"
// cannot both be registered: they overlap at /announce/announce.) Any
// other path gets a plain 404 and any other method a 405.
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
	// ipHeader is the canonical name of ClientIPHeader.
	ipHeader string
	full     FullScraper
	pool     sync.Pool // *httpState
	// The largest scratch space kept in pool.
	maxPooled struct{ bytes, peers, hashes int }

	// panics reports the panics recovered in a FastListener.
	panics rareLog

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
	case cfg.FastWorkers < 0:
		return nil, errorf("HTTPConfig.FastWorkers %d is negative", cfg.FastWorkers)
	}
	for _, p := range cfg.TrustedProxies {
		if !p.IsValid() {
			return nil, errorf("HTTPConfig.TrustedProxies: invalid prefix %v", p)
		}
	}
	ipHeader := textproto.CanonicalMIMEHeaderKey(cfg.ClientIPHeader)
	switch {
	case ipHeader == "":
		ipHeader = httpXForwardedFor
	case ipHeader == "Forwarded":
		return nil, errorf("HTTPConfig.ClientIPHeader: the Forwarded header (RFC 7239) is not supported")
	case !httpToken(ipHeader):
		return nil, errorf("HTTPConfig.ClientIPHeader %q is not a header name", cfg.ClientIPHeader)
	}
	cfg.TrustedProxies = slices.Clone(cfg.TrustedProxies)
	for i, p := range cfg.TrustedProxies {
		cfg.TrustedProxies[i] = httpUnmapPrefix(p)
	}
	h := &HTTPHandler{t: t, cfg: cfg, log: cfg.Logger, gzipMin: max(cfg.GzipMinSize, -1), ipHeader: ipHeader}
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

// httpToken reports whether s is an HTTP token (RFC 9110), as header names
// are.
func httpToken(s string) bool {
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
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
	httpErrNoInfoHash  = &Error{Kind: KindBadRequest, Reason: httpwire.ErrNoInfoHash.Error()}
	httpErrNoPeerID    = &Error{Kind: KindBadRequest, Reason: httpwire.ErrNoPeerID.Error()}
	httpErrNoPort      = &Error{Kind: KindBadRequest, Reason: httpwire.ErrNoPort.Error()}
	httpErrNoLeft      = &Error{Kind: KindBadRequest, Reason: httpwire.ErrNoLeft.Error()}
	httpErrFullScrape  = &Error{Kind: KindBadRequest, Reason: "full scrape not allowed"}
	httpErrMethod      = &Error{Kind: KindBadRequest, Reason: "method not allowed: use GET"}
	httpErrUnavailable = &Error{Kind: KindInternal, Reason: "full scrape unavailable, try again later", RetryIn: time.Minute}
)

// httpQueryError returns the failure clients read for an error of the
// query parsers.
func httpQueryError(err error) *Error {
	switch err {
	case httpwire.ErrNoInfoHash:
		return httpErrNoInfoHash
	case httpwire.ErrNoPeerID:
		return httpErrNoPeerID
	case httpwire.ErrNoPort:
		return httpErrNoPort
	case httpwire.ErrNoLeft:
		return httpErrNoLeft
	case httpwire.ErrInfoHash:
		return ErrInvalidInfoHash
	case httpwire.ErrPeerID:
		return ErrInvalidPeerID
	case httpwire.ErrPort:
		return ErrInvalidPort
	case httpwire.ErrCounter:
		return ErrInvalidCounter
	case httpwire.ErrEvent:
		return ErrInvalidEvent
	case httpwire.ErrTooManyHashes:
		return ErrTooManyInfoHashes
	}
	return errInternal
}

// httpMaxPasskey is the longest passkey accepted, in bytes once decoded.
const httpMaxPasskey = 128

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
	query  httpwire.AnnounceQuery
	req    AnnounceRequest
	resp   AnnounceResponse
	sreq   ScrapeRequest
	sresp  ScrapeResponse
	order  []int
	out    []byte
	zipped httpBuffer
	// full is the reply to a full scrape, shared by every client: when
	// it is set, the reply is its body rather than out.
	full *httpFullBody
	// strs, when set, interns the strings of a request read from a
	// buffer that the next request reuses (see FastListener): the
	// passkey and the User-Agent, which go on to the plug-ins; pk is
	// scratch for decoding the passkey.
	strs *internTable
	pk   []byte
}

func (h *HTTPHandler) getState() *httpState {
	if st, ok := h.pool.Get().(*httpState); ok {
		return st
	}
	return h.newState()
}

func (h *HTTPHandler) newState() *httpState {
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
	st.clear()
	h.pool.Put(st)
}

// clear drops what refers to the last request, so that a state kept for
// the next one keeps nothing else alive.
func (st *httpState) clear() {
	st.query = httpwire.AnnounceQuery{}
	st.req = AnnounceRequest{}
	st.resp = AnnounceResponse{Peers: st.resp.Peers[:0]}
	st.sreq = ScrapeRequest{InfoHashes: st.sreq.InfoHashes[:0]}
	st.full = nil
}

// httpRequest is what the handler reads of an announce or a scrape,
// whether net/http or a FastListener read it.
type httpRequest struct {
	ctx context.Context
	// remote is the address of the connection's peer; not valid when it
	// could not be read.
	remote      netip.AddrPort
	route       httpwire.Route
	pathPasskey string // still escaped
	query       string // raw
	userAgent   string
	// The lines of Accept-Encoding and of the client address header.
	acceptEncoding, clientIP []string
	// fast is set for a request a FastListener answers on its own
	// goroutine: it must not wait, and it is left to net/http when it
	// could (see answer).
	fast bool
}

// ServeHTTP answers one announce or scrape; see [HTTPHandler] for the paths.
func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	route, pathPasskey := httpwire.ParsePath(path)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header()["Allow"] = httpAllowedMethods
		if route == httpwire.NotFound {
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
	if route == httpwire.NotFound {
		http.NotFound(w, r)
		return
	}
	rq := httpRequest{
		ctx:            r.Context(),
		route:          route,
		pathPasskey:    pathPasskey,
		query:          r.URL.RawQuery,
		acceptEncoding: r.Header["Accept-Encoding"],
		clientIP:       r.Header[h.ipHeader],
	}
	if ua := r.Header["User-Agent"]; len(ua) > 0 {
		rq.userAgent = ua[0]
	}
	rq.remote, _ = netip.ParseAddrPort(r.RemoteAddr)
	start := h.t.observeStart()
	st := h.getState()
	defer h.putState(st)
	op, err := h.answer(st, &rq)
	h.write(w, st, rq.acceptEncoding)
	h.t.observe(ProtocolHTTP, op, start, err)
}

// answer answers an announce or a scrape, leaving the reply in st (see
// reply), and returns the operation and the failure, if any, that the
// reply reports.
//
// The client's rate limit comes first, so that a client over its limit
// costs no parsing. A fast request is parsed first all the same, to learn
// whether it needs a plug-in that may block, or is a full scrape; for
// such a request answer returns errWouldBlock, having charged and counted
// nothing, and the request goes to net/http, which answers it as if it
// had come that way.
func (h *HTTPHandler) answer(st *httpState, rq *httpRequest) (op string, err error) {
	op = OpAnnounce
	if rq.route != httpwire.Announce {
		op = OpScrape
	}
	st.full = nil
	src, addrErr := h.clientAddr(rq.remote, rq.clientIP)
	var parseErr *Error
	if rq.fast {
		if parseErr = h.parse(st, rq); parseErr == nil && h.mayBlock(st, rq) {
			return op, errWouldBlock
		}
	}
	// Every request is charged to an address, or refused.
	switch {
	case !src.IsValid():
		err = h.reject(ErrInvalidAddress)
	case !h.t.allowIP(src):
		err = h.reject(ErrRateLimited)
	default:
		if !rq.fast {
			parseErr = h.parse(st, rq)
		}
		switch {
		case parseErr != nil:
			err = h.reject(parseErr)
		case op == OpAnnounce:
			err = h.announce(st, rq, src, addrErr)
		default:
			err = h.scrape(st, rq, src)
		}
	}
	if err != nil {
		e, ok := err.(*Error) // the common case, without errors.As
		if !ok {
			e, _ = clientError(err)
		}
		st.full = nil
		st.out = appendFailure(st.out[:0], e, h.t.cfg.AnnounceInterval, h.t.cfg.MinAnnounceInterval)
	}
	return op, err
}

// parse reads the query and the passkey of an announce into st.query and
// st.req, or those of a scrape into st.sreq. It changes nothing else: a
// failure is returned, not counted.
func (h *HTTPHandler) parse(st *httpState, rq *httpRequest) *Error {
	if rq.route != httpwire.Announce {
		sreq := &st.sreq
		hashes, queryPasskey, err := httpwire.ParseScrape(rq.query, sreq.InfoHashes[:0], h.t.cfg.MaxScrapeHashes)
		sreq.InfoHashes = hashes
		if err != nil {
			return httpQueryError(err)
		}
		var ok bool
		if sreq.Passkey, ok = st.passkey(rq.pathPasskey, queryPasskey); !ok {
			return ErrInvalidPasskey
		}
		return nil
	}
	q := &st.query
	if err := httpwire.ParseAnnounce(rq.query, q); err != nil {
		return httpQueryError(err)
	}
	req := &st.req
	*req = AnnounceRequest{
		InfoHash:   q.InfoHash,
		PeerID:     q.PeerID,
		Uploaded:   q.Uploaded,
		Downloaded: q.Downloaded,
		Left:       q.Left,
		Event:      Event(q.Event),
		NumWant:    wireNumWant(q.NumWant),
		Key:        q.Key,
	}
	var ok bool
	if req.Passkey, ok = st.passkey(rq.pathPasskey, q.Passkey); !ok {
		return ErrInvalidPasskey
	}
	req.UserAgent = rq.userAgent
	if st.strs != nil && req.UserAgent != "" {
		req.UserAgent = st.strs.intern(unsafe.Slice(unsafe.StringData(req.UserAgent), len(req.UserAgent)))
	}
	return nil
}

// mayBlock reports whether the request parsed into st needs a plug-in
// that may block, or is a full scrape (which may wait for a build and
// sends a big reply).
func (h *HTTPHandler) mayBlock(st *httpState, rq *httpRequest) bool {
	if rq.route == httpwire.Announce {
		return h.t.blocks.announce(&st.req)
	}
	return len(st.sreq.InfoHashes) == 0 || h.t.blocks.scrape(st.sreq.Passkey != "")
}

// flags returns how the core is called for rq: its client's address is
// charged already, and a fast request must not wait.
func (rq *httpRequest) flags() reqFlags {
	if rq.fast {
		return ipCheckedFlag | noWait
	}
	return ipCheckedFlag
}

// announce answers an announce parsed into st, from src; addrErr is the
// failure an announce from there gets, if any. An error is the failure
// to send.
func (h *HTTPHandler) announce(st *httpState, rq *httpRequest, src netip.Addr, addrErr *Error) error {
	if addrErr != nil {
		return h.reject(addrErr)
	}
	q, req := &st.query, &st.req
	addr := src
	if h.cfg.AllowIPParam {
		a, err := h.claimedAddr(q, src)
		if err != nil {
			return h.reject(err)
		}
		if a.IsValid() {
			addr = a
		}
	}
	req.Addr = netip.AddrPortFrom(addr, q.Port)
	if err := h.t.announceFlags(rq.ctx, req, &st.resp, rq.flags()); err != nil {
		return h.notBlocked(err)
	}
	st.out = appendAnnounce(st.out[:0], &st.resp, replyOptions{
		Compact:    q.Compact,
		NoPeerID:   q.NoPeerID,
		ExternalIP: src,
		TrackerID:  h.cfg.TrackerID,
	})
	return nil
}

// scrape answers a scrape parsed into st, full or not.
func (h *HTTPHandler) scrape(st *httpState, rq *httpRequest, src netip.Addr) error {
	sreq := &st.sreq
	sreq.Addr = src
	if len(sreq.InfoHashes) == 0 {
		return h.fullScrape(rq.ctx, st, sreq.Passkey)
	}
	if err := h.t.scrapeFlags(rq.ctx, sreq, &st.sresp, rq.flags()); err != nil {
		return h.notBlocked(err)
	}
	st.out, st.order = appendScrape(st.out[:0], sreq.InfoHashes, st.sresp.Files, st.sresp.MinInterval, st.order)
	return nil
}

// notBlocked returns err, or ErrBusy, counted, in place of errWouldBlock:
// a fast request whose plug-ins answered mayBlock's question wrong.
func (h *HTTPHandler) notBlocked(err error) error {
	if err == errWouldBlock {
		return h.t.fail(ErrBusy, "")
	}
	return err
}

// recovered reports a panic recovered while answering a request from
// remote on a FastListener; the connection is closed without a reply, as
// net/http does.
func (h *HTTPHandler) recovered(v any, remote netip.AddrPort) {
	if ok, held := h.panics.allow(time.Now()); ok {
		h.log.Error("tracker: http: recovered from a panic answering a request", "remote", remote.String(),
			"panic", v, "stack", string(debug.Stack()), "suppressed", held)
	}
}

// reject counts a failure of the front-end's own checks, an *Error, in
// the tracker's Stats, and returns it.
func (h *HTTPHandler) reject(err *Error) error {
	h.t.failures[err.Kind].add()
	return err
}

// passkey returns the request's passkey, decoded, from the one in its
// path if there is one or else the one in its query, both still escaped;
// "" if none. It reports false for a passkey too long to be valid.
func (st *httpState) passkey(inPath, inQuery string) (string, bool) {
	pk := inPath
	if pk == "" {
		pk = inQuery
	}
	if len(pk) > 3*httpMaxPasskey {
		return "", false // too long even if every byte is escaped
	}
	if st.strs == nil {
		pk = httpwire.Unescape(pk)
		return pk, len(pk) <= httpMaxPasskey
	}
	st.pk = httpwire.AppendUnescaped(st.pk[:0], pk)
	if len(st.pk) > httpMaxPasskey {
		return "", false
	}
	return st.strs.intern(st.pk), true
}

// reply returns the body of the reply in st as sent to a client whose
// Accept-Encoding lines are accept: gzipped when it is big enough and the
// client accepts it. vary reports whether the choice depended on
// Accept-Encoding, and zipped whether the body is gzipped.
func (h *HTTPHandler) reply(st *httpState, accept []string) (body []byte, vary, zipped bool) {
	if fb := st.full; fb != nil {
		switch {
		case fb.zipped == nil:
			return fb.plain, false, false
		case httpAcceptsGzip(accept):
			return fb.zipped, true, true
		}
		return fb.plain, true, false
	}
	body = st.out
	if h.gzipMin < 0 || len(body) < h.gzipMin {
		return body, false, false
	}
	if !httpAcceptsGzip(accept) {
		return body, true, false
	}
	st.zipped.b = st.zipped.b[:0]
	httpGzip(&st.zipped, body)
	return st.zipped.b, true, true
}

// write sends the reply in st through net/http.
func (h *HTTPHandler) write(w http.ResponseWriter, st *httpState, accept []string) {
	body, vary, zipped := h.reply(st, accept)
	hdr := w.Header()
	hdr["Content-Type"] = httpTextPlain
	if vary {
		hdr["Vary"] = httpVaryEncoding
	}
	if zipped {
		hdr["Content-Encoding"] = httpGzipEncoding
	}
	hdr["Content-Length"] = httpContentLength(len(body))
	w.WriteHeader(http.StatusOK)
	// A full scrape's body is shared by every client: write it in
	// chunks, so that nothing is copied per request beyond the server's
	// buffers.
	const chunk = 32 << 10
	for len(body) > 0 {
		n := min(len(body), chunk)
		if _, err := w.Write(body[:n]); err != nil {
			break // a client gone away is not the tracker's failure
		}
		body = body[n:]
	}
}
