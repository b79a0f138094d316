package tracker

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/annuaire/tracker/internal/connid"
	"github.com/annuaire/tracker/internal/httpwire"
	"github.com/annuaire/tracker/internal/udpwire"
)

// UDPConfig configures a [UDPServer]. The zero value serves with the
// defaults below.
type UDPConfig struct {
	// ConnIDKey is the secret connection ids are made with: at least 16
	// bytes. If nil, each server draws a random key. Give several servers
	// the same key (servers sharing swarms behind one name, or a restarted
	// server) and each accepts the ids the others issued.
	ConnIDKey []byte
	// Readers is the number of goroutines reading each socket. If zero,
	// GOMAXPROCS divided among the sockets (one socket for Serve, Sockets
	// for ListenAndServe), at least 1 per socket.
	Readers int
	// Sockets is the number of sockets ListenAndServe opens on its address.
	// On Linux they share it through SO_REUSEPORT and the kernel spreads
	// clients among them. If zero, GOMAXPROCS. Elsewhere ListenAndServe
	// opens one socket whatever Sockets says.
	Sockets int
	// Batch is the most datagrams a reader receives, or sends, in one
	// system call (recvmmsg and sendmmsg on Linux, for a *net.UDPConn). If
	// zero, 32; 1 reads and writes one datagram per call. Elsewhere it is
	// ignored. The replies of a batch go out together, unless answering it
	// takes longer than a millisecond: then the replies ready so far are
	// sent before the reader goes on.
	Batch int
	// Workers is the number of goroutines, shared by every socket of the
	// server, that answer the requests needing a policy or store that may
	// block (one that does not declare otherwise through [NonBlocker]): a
	// passkey checked against a site's database, a remote store. Readers
	// hand such requests over and read on, so a slow plug-in never holds
	// up the datagrams behind; requests that need no such plug-in (a
	// connect, a failure found without one, a passkey an in-memory
	// validator of an [AnyPasskey] accepts) are answered on the readers.
	// If zero, 256. With a remote store every announce goes through the
	// workers, each answering one request per round trip to the store:
	// 256 keep up with 100,000 requests a second at 2.5 ms a round trip,
	// more than a small machine receives, for about 6 MB of buffers. No
	// worker is started while every plug-in of the tracker never blocks.
	Workers int
	// Queue is the most requests waiting for a worker, beyond one per
	// worker; each holds a copy of its datagram (2 KB). A request that
	// needs a worker when that many are waiting is answered at once with
	// [ErrBusy] ("tracker busy, retry"), and one still waiting at its
	// deadline ([Config.RequestTimeout]) too. If zero, 4 times Workers.
	Queue int
}

// Datagram sizes.
const (
	// maxRequest is the largest request read: an announce with 1.9 KB of
	// URL data. Larger datagrams are dropped unread.
	maxRequest = 2048
	// maxReply is the largest reply a UDP datagram can carry over IPv4.
	maxReply = 65507
	// maxInterned bounds each reader's cache of passkey strings.
	maxInterned    = 4096
	maxInternedLen = 128
)

// Client-visible failures of the UDP front-end.
var (
	errUDPConnID    = &Error{Kind: KindBadRequest, Reason: "invalid connection id"}
	errUDPMalformed = &Error{Kind: KindBadRequest, Reason: "malformed packet"}
	errUDPAction    = &Error{Kind: KindBadRequest, Reason: "unknown action"}
	// BEP 41 URL data is the only way a passkey reaches a UDP tracker, and
	// several clients (aria2, Transmission) never send it.
	errUDPNoPasskey = &Error{Kind: KindPasskey, Reason: "passkey required but none sent over UDP: use the HTTP announce URL from your account"}
	errUDPScrapeKey = &Error{Kind: KindPasskey, Reason: "passkey required: UDP scrapes carry none, scrape over HTTP"}
)

// A UDPServer answers the UDP tracker protocol (BEP 15) for a [Tracker]:
// connect, announce and scrape, over IPv4 and IPv6, with the passkey of a
// private tracker carried in BEP 41 URL data (/announce/<passkey>,
// /<passkey>/announce or ?passkey=<passkey>). Connection ids are stateless
// (a keyed MAC of the client's address and the time, valid for two
// minutes). No reply to a packet without a valid connection id is larger
// than that packet, so the server cannot be used to amplify an attack.
//
// Goroutines: each call to [UDPServer.Serve] starts a fixed set of reader
// goroutines on its socket ([UDPConfig.Readers]) and blocks until they
// end. A reader receives a datagram (on Linux, a batch of them), answers
// it on its own goroutine with buffers it owns, sends the reply and reads
// again; there is never a goroutine per packet, and in steady state a
// packet costs no allocation. When the tracker has a policy or store that
// may block (see [NonBlocker]), the first Serve also starts a fixed pool
// of workers ([UDPConfig.Workers]) with a bounded queue: a reader hands
// them the requests that need such a plug-in, copied, and reads on; a
// worker answers one with a deadline ([Config.RequestTimeout]) and sends
// the reply itself. When the queue is full, the reader answers at once
// with [ErrBusy]. [UDPServer.Shutdown] makes the readers stop reading,
// lets them and the workers finish the requests in hand and waits for
// them; [UDPServer.Close] stops them without waiting, and cancels the
// contexts of the requests the workers hold.
//
// A panic while answering a datagram (in a policy or store, say) is
// recovered: the request fails as an internal error, the client gets an
// error packet, and the panic is logged with its stack, at most once a
// minute with the number of others since.
//
// A UDPServer is safe for concurrent use.
type UDPServer struct {
	t        *Tracker
	cfg      UDPConfig
	ids      *connid.Codec // readers use clones
	maxPeers int           // most peers in one reply
	now      func() time.Time
	pool     *udpPool // set by the first Serve, nil if nothing may block
	panics   rareLog  // reports of recovered panics

	closed atomic.Bool
	mu     sync.Mutex
	conns  map[*net.PacketConn]struct{} // being served, one entry per Serve call
	owned  []net.PacketConn             // opened by ListenAndServe
	wg     sync.WaitGroup               // readers; Add under mu while !closed
	done   chan struct{}                // closed when the readers are all gone after shutdown
}

// NewUDPServer returns a UDP server for t. It returns an error if cfg is
// invalid. The server serves nothing until [UDPServer.Serve] or
// [UDPServer.ListenAndServe] is called.
func (t *Tracker) NewUDPServer(cfg UDPConfig) (*UDPServer, error) {
	switch {
	case cfg.Readers < 0 || cfg.Sockets < 0 || cfg.Batch < 0 || cfg.Workers < 0 || cfg.Queue < 0:
		return nil, errorf("UDPConfig: Readers %d, Sockets %d, Batch %d, Workers %d and Queue %d must not be negative", cfg.Readers, cfg.Sockets, cfg.Batch, cfg.Workers, cfg.Queue)
	case cfg.ConnIDKey != nil && len(cfg.ConnIDKey) < connid.MinKeyLen:
		return nil, errorf("UDPConfig.ConnIDKey has %d bytes: want at least %d", len(cfg.ConnIDKey), connid.MinKeyLen)
	}
	if cfg.Batch == 0 {
		cfg.Batch = 32
	}
	if cfg.Workers == 0 {
		cfg.Workers = 256
	}
	if cfg.Queue == 0 {
		cfg.Queue = 4 * cfg.Workers
	}
	ids, err := connid.New(cfg.ConnIDKey)
	if err != nil {
		return nil, errorf("UDPConfig.ConnIDKey: %v", err)
	}
	return &UDPServer{
		t:        t,
		cfg:      cfg,
		ids:      ids,
		maxPeers: min(t.cfg.MaxNumWant, (maxReply-udpwire.AnnounceReplyLen)/udpwire.Peer6Len),
		now:      time.Now,
		conns:    make(map[*net.PacketConn]struct{}),
	}, nil
}

// Serve answers the datagrams that arrive on conn until [UDPServer.Shutdown]
// or [UDPServer.Close] is called, then returns [ErrServerClosed]; it returns
// another error if conn fails (it was closed, say). The caller keeps
// ownership of conn: Serve does not close it. Serve may be called several
// times, on different sockets (an IPv4 and an IPv6 one, say), at once.
//
// A *net.UDPConn is served without allocation; on Linux it is read and
// written in batches (see [UDPConfig.Batch]). Any other net.PacketConn
// works too, at the cost of an allocation or two per packet.
func (s *UDPServer) Serve(conn net.PacketConn) error {
	return s.serve(conn, s.readers(1))
}

// readers returns the number of readers for each of n sockets.
func (s *UDPServer) readers(n int) int {
	if s.cfg.Readers > 0 {
		return s.cfg.Readers
	}
	return max(1, runtime.GOMAXPROCS(0)/n)
}

func (s *UDPServer) serve(conn net.PacketConn, readers int) error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	key := &conn // conn itself may not be comparable
	s.conns[key] = struct{}{}
	s.wg.Add(readers)
	if s.pool == nil && s.t.blocks.any() {
		s.pool = s.startPool()
	}
	s.mu.Unlock()
	sock := &udpSocket{conn: conn}
	sock.udp, _ = conn.(*net.UDPConn)
	defer func() {
		// The workers may still be answering this socket's requests.
		sock.jobs.Wait()
		s.mu.Lock()
		delete(s.conns, key)
		s.mu.Unlock()
	}()

	errs := make(chan error, readers)
	for range readers {
		h := s.newHandler()
		h.sock = sock
		if h.pool = s.pool; h.pool != nil {
			h.flags |= noWait
		}
		go func() {
			defer s.wg.Done()
			errs <- s.read(conn, h)
		}()
	}
	var first error
	for range readers {
		if err := <-errs; first == nil {
			first = err
		}
	}
	if s.closed.Load() {
		return ErrServerClosed
	}
	return first
}

// ListenAndServe opens [UDPConfig.Sockets] sockets on addr (on Linux,
// sharing it through SO_REUSEPORT) and serves them as Serve does, until
// the server is shut down or a socket fails. network is "udp", "udp4" or
// "udp6". The sockets are closed when it returns.
func (s *UDPServer) ListenAndServe(network, addr string) error {
	if s.closed.Load() {
		return ErrServerClosed
	}
	conns, err := ListenUDP(network, addr, s.cfg.Sockets)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		closeAll(conns)
		return ErrServerClosed
	}
	s.owned = append(s.owned, conns...)
	s.mu.Unlock()
	defer closeAll(conns)

	readers := s.readers(len(conns))
	errs := make(chan error, len(conns))
	for _, c := range conns {
		go func() { errs <- s.serve(c, readers) }()
	}
	var first error
	for range conns {
		err := <-errs
		if first == nil {
			first = err
			closeAll(conns) // one socket failed: stop the others too
		}
	}
	if s.closed.Load() {
		return ErrServerClosed
	}
	return first
}

// ListenUDP opens the sockets a [UDPServer] serves on addr, for
// [UDPServer.Serve]: on Linux, sockets of them (GOMAXPROCS if zero)
// sharing the address through SO_REUSEPORT, so that the kernel spreads
// clients among them; elsewhere one. network is "udp", "udp4" or "udp6".
// An address some socket already holds is an error, even when that socket
// allows SO_REUSEPORT too (another copy of the server, which would
// otherwise share the clients silently). Port 0 picks a free port, the
// same for every socket. The caller closes the sockets.
func ListenUDP(network, addr string, sockets int) ([]net.PacketConn, error) {
	if sockets < 0 {
		return nil, errorf("ListenUDP: %d sockets", sockets)
	}
	return listenUDP(network, addr, sockets)
}

func closeAll(conns []net.PacketConn) {
	for _, c := range conns {
		c.Close()
	}
}

// aLongTimeAgo is a deadline in the past, which unblocks reads at once.
var aLongTimeAgo = time.Unix(1, 0)

// Shutdown stops the server gracefully: the readers stop reading, answer
// the datagrams they already hold, and end; Shutdown waits for them, or
// for ctx to be done, whichever comes first (then it returns ctx.Err()).
// It closes the sockets ListenAndServe opened, but not those given to
// Serve. Calls after the first wait in the same way.
func (s *UDPServer) Shutdown(ctx context.Context) error {
	done := s.stop(false)
	select {
	case <-done:
	case <-ctx.Done():
		s.closeOwned()
		return ctx.Err()
	}
	s.closeOwned()
	return nil
}

// Close stops the server at once: reads and writes in progress fail and
// the readers end without finishing their datagrams. It closes the
// sockets ListenAndServe opened, but not those given to Serve, and does
// not wait for the readers. It is idempotent.
func (s *UDPServer) Close() error {
	s.stop(true)
	s.closeOwned()
	return nil
}

// stop marks the server closed, unblocks its readers (and, if abort, its
// writers) and returns a channel closed once every reader has ended.
func (s *UDPServer) stop(abort bool) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed.Store(true)
	for c := range s.conns {
		if abort {
			(*c).SetDeadline(aLongTimeAgo)
		} else {
			(*c).SetReadDeadline(aLongTimeAgo)
		}
	}
	if abort && s.pool != nil {
		s.pool.cancel()
	}
	if s.done == nil {
		s.done = make(chan struct{})
		pool := s.pool
		// No reader can be added from now on, so Wait does not race Add.
		go func() {
			s.wg.Wait()
			if pool != nil {
				// The readers are gone: no request is handed over any
				// more, and the workers end once the queue is empty.
				close(pool.queue)
				pool.wg.Wait()
				pool.cancel()
			}
			close(s.done)
		}()
	}
	return s.done
}

func (s *UDPServer) closeOwned() {
	s.mu.Lock()
	owned := s.owned
	s.owned = nil
	s.mu.Unlock()
	closeAll(owned)
}

// read runs one reader on conn until the server stops or conn fails.
func (s *UDPServer) read(conn net.PacketConn, h *udpHandler) error {
	if c, ok := conn.(*net.UDPConn); ok {
		return s.readUDP(c, h)
	}
	return s.readPacketConn(conn, h)
}

// readUDPOne is the portable loop over a *net.UDPConn: one datagram per
// system call, without allocation.
func (s *UDPServer) readUDPOne(conn *net.UDPConn, h *udpHandler) error {
	buf := make([]byte, maxRequest+1)
	out := make([]byte, 0, h.replyCap())
	ctx := context.Background()
	var backoff time.Duration
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if err := s.readFailed(err, &backoff); err != nil {
				return err
			}
			continue
		}
		backoff = 0
		if n > maxRequest {
			continue
		}
		h.from = nil
		out = h.handle(ctx, s.now(), buf[:n], from, out[:0])
		if len(out) > 0 {
			conn.WriteToUDPAddrPort(out, from)
		}
	}
}

// readPacketConn is the loop over any other net.PacketConn.
func (s *UDPServer) readPacketConn(conn net.PacketConn, h *udpHandler) error {
	buf := make([]byte, maxRequest+1)
	out := make([]byte, 0, h.replyCap())
	ctx := context.Background()
	var backoff time.Duration
	for {
		n, addr, err := conn.ReadFrom(buf)
		if err != nil {
			if err := s.readFailed(err, &backoff); err != nil {
				return err
			}
			continue
		}
		backoff = 0
		from, ok := addrPortOf(addr)
		if n > maxRequest || !ok {
			continue
		}
		h.from = addr
		out = h.handle(ctx, s.now(), buf[:n], from, out[:0])
		if len(out) > 0 {
			conn.WriteTo(out, addr)
		}
	}
}

func addrPortOf(addr net.Addr) (netip.AddrPort, bool) {
	if a, ok := addr.(*net.UDPAddr); ok {
		return a.AddrPort(), true
	}
	ap, err := netip.ParseAddrPort(addr.String())
	return ap, err == nil
}

// readFailed decides what a reader does after a failed read: it returns
// the error to end the reader with, or nil after a pause that grows while
// reads keep failing (a socket out of buffers, say).
func (s *UDPServer) readFailed(err error, backoff *time.Duration) error {
	if s.closed.Load() {
		return ErrServerClosed
	}
	if errors.Is(err, net.ErrClosed) {
		return err
	}
	*backoff = min(max(2**backoff, 5*time.Millisecond), time.Second)
	s.t.log.Warn("tracker: udp read failed", "err", err, "retry_in", *backoff)
	time.Sleep(*backoff)
	return nil
}

// udpHandler answers datagrams. Each reader and each worker has its own,
// with the buffers a packet needs, so that answering allocates nothing.
type udpHandler struct {
	s     *UDPServer
	t     *Tracker
	flags reqFlags // how the core is called: noWait on a reader with workers
	// A reader's socket and workers, to hand requests over; from is the
	// source of the datagram in hand as a generic net.PacketConn gave it.
	sock  *udpSocket
	pool  *udpPool
	from  net.Addr
	ids   *connid.Codec
	wire  udpwire.Announce
	areq  AnnounceRequest
	aresp AnnounceResponse
	sreq  ScrapeRequest
	sresp ScrapeResponse
	// pk is scratch for decoding a passkey; passkeys interns the strings
	// made from it, so that a returning passkey costs no allocation.
	pk       []byte
	passkeys map[string]string
}

func (s *UDPServer) newHandler() *udpHandler {
	return &udpHandler{
		s:        s,
		t:        s.t,
		flags:    ipCheckedFlag,
		ids:      s.ids.Clone(),
		wire:     udpwire.Announce{URLData: make([]byte, 0, maxRequest)},
		aresp:    AnnounceResponse{Peers: make([]Peer, 0, s.maxPeers)},
		sreq:     ScrapeRequest{InfoHashes: make([]InfoHash, 0, udpwire.MaxScrapeHashes)},
		sresp:    ScrapeResponse{Files: make([]ScrapeStats, 0, udpwire.MaxScrapeHashes)},
		passkeys: make(map[string]string),
	}
}

// replyCap is the size of the largest reply.
func (h *udpHandler) replyCap() int {
	return udpwire.AnnounceReplyLen + h.s.maxPeers*udpwire.Peer6Len
}

// handle answers the datagram p from client `from`, received at now: it
// appends the reply to out and returns it, or returns out unchanged when
// the datagram gets no reply, or none yet (a worker will answer it).
//
// The cheap checks come first: the size and the action, then the
// connection id, then the client's rate limit; only then is the request
// parsed and handed to the tracker. A reply to a datagram without a valid
// connection id is never larger than that datagram.
func (h *udpHandler) handle(ctx context.Context, now time.Time, p []byte, from netip.AddrPort, out []byte) (reply []byte) {
	hdr, ok := udpwire.ParseHeader(p)
	if !ok {
		return out
	}
	n0 := len(out)
	op, start := "", time.Time{} // op is set once the connection id is checked
	defer func() {
		if v := recover(); v != nil {
			reply = h.recovered(v, hdr.TxID, op, start, out[:n0])
		}
	}()
	addr := from.Addr().Unmap()
	start = h.t.observeStart()
	if hdr.Action == udpwire.ActionConnect {
		if hdr.ConnID != udpwire.ProtocolID {
			return out
		}
		out = udpwire.AppendConnect(out, hdr.TxID, h.ids.Issue(now, addr))
		h.t.observe(ProtocolUDP, OpConnect, start, nil)
		return out
	}
	if !h.ids.Check(now, addr, hdr.ConnID) {
		// Tell well-formed requests to reconnect, in fewer bytes than they
		// took; ignore the rest.
		switch {
		case hdr.Action == udpwire.ActionAnnounce && len(p) >= udpwire.AnnounceLen,
			hdr.Action == udpwire.ActionScrape && len(p) >= udpwire.HeaderLen+udpwire.HashLen:
			h.t.fail(errUDPConnID, "")
			h.t.observe(ProtocolUDP, udpOp(hdr.Action), start, errUDPConnID)
			return appendError(out, hdr.TxID, errUDPConnID.Reason, len(p)-1)
		}
		return out
	}
	op = udpOp(hdr.Action)
	if !h.t.allowIP(addr) {
		h.t.fail(ErrRateLimited, "")
		h.t.observe(ProtocolUDP, op, start, ErrRateLimited)
		return appendError(out, hdr.TxID, ErrRateLimited.Reason, maxReply)
	}
	out, err := h.answer(ctx, hdr, p, from, out)
	if err == errWouldBlock {
		if h.pool.handOver(h.sock, p, from, h.from, start, h.t.cfg.RequestTimeout) {
			return out
		}
		err = ErrBusy
		h.t.fail(err, "")
		out = appendError(out, hdr.TxID, ErrBusy.Reason, maxReply)
	}
	h.t.observe(ProtocolUDP, op, start, err)
	return out
}

// udpOp returns the observer's name of an action other than connect.
func udpOp(action uint32) string {
	switch action {
	case udpwire.ActionAnnounce:
		return OpAnnounce
	case udpwire.ActionScrape:
		return OpScrape
	}
	return OpUnknown
}

// answer answers an announce, a scrape or an unknown action whose
// connection id was checked, returning the reply and the failure, if any,
// that it reports. On a reader with workers, it returns errWouldBlock,
// with out unchanged and nothing counted, for a request that needs a
// plug-in that may block.
func (h *udpHandler) answer(ctx context.Context, hdr udpwire.Header, p []byte, from netip.AddrPort, out []byte) ([]byte, error) {
	switch hdr.Action {
	case udpwire.ActionAnnounce:
		return h.announce(ctx, p, from, hdr.TxID, out)
	case udpwire.ActionScrape:
		return h.scrape(ctx, p, from, hdr.TxID, out)
	}
	h.t.fail(errUDPAction, "")
	return appendError(out, hdr.TxID, errUDPAction.Reason, maxReply), errUDPAction
}

// recovered answers a request whose handling panicked with v: it counts
// an internal failure, reports the panic and, if the request had a valid
// connection id (op is set), appends an error reply to out.
func (h *udpHandler) recovered(v any, txID uint32, op string, start time.Time, out []byte) []byte {
	h.t.failures[KindInternal].add()
	if ok, held := h.s.panics.allow(time.Now()); ok {
		h.t.log.Error("tracker: udp: recovered from a panic answering a request", "panic", v, "stack", string(debug.Stack()), "suppressed", held)
	}
	if op == "" {
		return out
	}
	h.t.observe(ProtocolUDP, op, start, errInternal)
	return appendError(out, txID, errInternal.Reason, maxReply)
}

// udpEvents maps the UDP event numbers to events; larger numbers mean none.
var udpEvents = [...]Event{
	udpwire.EventNone:      EventNone,
	udpwire.EventCompleted: EventCompleted,
	udpwire.EventStarted:   EventStarted,
	udpwire.EventStopped:   EventStopped,
	udpwire.EventPaused:    EventPaused,
}

// announce answers an announce, returning the reply and the failure, if
// any, that it reports.
func (h *udpHandler) announce(ctx context.Context, p []byte, from netip.AddrPort, txID uint32, out []byte) ([]byte, error) {
	w := &h.wire
	if err := udpwire.ParseAnnounce(p, w); err != nil {
		h.t.fail(errUDPMalformed, "")
		return appendError(out, txID, errUDPMalformed.Reason, maxReply), errUDPMalformed
	}
	req := &h.areq
	*req = AnnounceRequest{
		InfoHash:   w.InfoHash,
		PeerID:     w.PeerID,
		Addr:       netip.AddrPortFrom(from.Addr(), w.Port), // never the IP field
		Uploaded:   int64(w.Uploaded),
		Downloaded: int64(w.Downloaded),
		Left:       int64(w.Left),
		NumWant:    wireNumWant(min(int(w.NumWant), h.s.maxPeers)),
		Key:        w.Key,
	}
	if int(w.Event) < len(udpEvents) {
		req.Event = udpEvents[w.Event]
	}
	if h.t.cfg.Passkeys != nil && len(w.URLData) > 0 {
		var ok bool
		if h.pk, ok = httpwire.AppendPasskey(h.pk[:0], w.URLData); ok {
			req.Passkey = h.intern(h.pk)
		}
	}
	resp := &h.aresp
	if err := h.t.announceFlags(ctx, req, resp, h.flags); err != nil {
		switch {
		case err == errWouldBlock:
			return out, err
		case len(w.URLData) == 0 && errors.Is(err, ErrPasskeyRequired):
			err = errUDPNoPasskey
		}
		return udpFailure(out, txID, err), err
	}
	out = udpwire.AppendAnnounce(out, txID, udpSeconds(resp.Interval), clamp32(resp.Incomplete), clamp32(resp.Complete))
	// The tracker checked the peers: at most NumWant, of the client's
	// family, with valid addresses.
	for _, peer := range resp.Peers[:min(len(resp.Peers), h.s.maxPeers)] {
		out = udpwire.AppendPeer(out, peer.Addr)
	}
	return out, nil
}

// scrape answers a scrape, returning the reply and the failure, if any,
// that it reports.
func (h *udpHandler) scrape(ctx context.Context, p []byte, from netip.AddrPort, txID uint32, out []byte) ([]byte, error) {
	sc, err := udpwire.ParseScrape(p)
	if err != nil {
		if errors.Is(err, udpwire.ErrNoHash) {
			err = ErrNoInfoHash
		} else {
			err = errUDPMalformed
		}
		h.t.fail(err, "")
		return udpFailure(out, txID, err), err
	}
	req := &h.sreq
	req.InfoHashes = req.InfoHashes[:0]
	for i := range sc.N() {
		req.InfoHashes = append(req.InfoHashes, sc.Hash(i))
	}
	req.Addr = from.Addr()
	resp := &h.sresp
	if err := h.t.scrapeFlags(ctx, req, resp, h.flags); err != nil {
		switch {
		case err == errWouldBlock:
			return out, err
		case errors.Is(err, ErrPasskeyRequired):
			err = errUDPScrapeKey
		}
		return udpFailure(out, txID, err), err
	}
	out = udpwire.AppendScrape(out, txID)
	for _, f := range resp.Files {
		out = udpwire.AppendScrapeEntry(out, clamp32(f.Complete), clamp32(f.Downloaded), clamp32(f.Incomplete))
	}
	return out, nil
}

// intern returns b as a string, from a bounded cache of the passkeys this
// reader saw lately, so that a returning client costs no allocation.
func (h *udpHandler) intern(b []byte) string {
	if s, ok := h.passkeys[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(s) > maxInternedLen {
		return s
	}
	if len(h.passkeys) >= maxInterned {
		for k := range h.passkeys { // map order is random: evict any one
			delete(h.passkeys, k)
			break
		}
	}
	h.passkeys[s] = s
	return s
}

// udpFailure appends the error reply for err: the reason of an *Error,
// or a generic text for an internal error (which the tracker has logged).
func udpFailure(out []byte, txID uint32, err error) []byte {
	e, _ := clientError(err)
	return appendError(out, txID, e.Reason, maxReply)
}

// appendError appends an error reply of at most limit bytes, cutting the
// text to fit.
func appendError(out []byte, txID uint32, msg string, limit int) []byte {
	if n := limit - udpwire.ErrorReplyLen; len(msg) > n {
		msg = msg[:max(n, 0)]
	}
	return udpwire.AppendError(out, txID, msg)
}

func udpSeconds(d time.Duration) uint32 {
	return uint32(min(max(d/time.Second, 0), math.MaxUint32))
}

func clamp32(n int) uint32 {
	return uint32(min(max(int64(n), 0), math.MaxUint32))
}
