// Package udpwire reads and writes the packets of the UDP tracker protocol
// (BEP 15), with the URL data option of BEP 41.
//
// Parsers read only within the packet they are given and keep no reference
// to it unless documented; builders append to a caller's buffer, so that a
// server that reuses its buffers allocates nothing per packet. All integers
// are big-endian.
package udpwire

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// ProtocolID is the magic constant that opens a connect request.
const ProtocolID uint64 = 0x41727101980

// The actions, the 32-bit word at offset 8 of a request and at offset 0 of
// a reply.
const (
	ActionConnect  uint32 = 0
	ActionAnnounce uint32 = 1
	ActionScrape   uint32 = 2
	ActionError    uint32 = 3
)

// The events of an announce as they travel over UDP. They are numbered
// differently from the HTTP order. libtorrent writes its internal enum into
// the field, so partial seeds send EventPaused (4); larger values mean no
// event.
const (
	EventNone      uint32 = 0
	EventCompleted uint32 = 1
	EventStarted   uint32 = 2
	EventStopped   uint32 = 3
	EventPaused    uint32 = 4
)

// Sizes of the fixed parts of packets.
const (
	// HeaderLen is the common start of every request: connection id,
	// action, transaction id.
	HeaderLen = 16
	// ReplyHeaderLen is the common start of every reply: action,
	// transaction id.
	ReplyHeaderLen = 8
	// ConnectLen is the size of a connect request and of its reply.
	ConnectLen = 16
	// AnnounceLen is the size of an announce request without options.
	AnnounceLen = 98
	// AnnounceReplyLen is the size of an announce reply without peers.
	AnnounceReplyLen = 20
	// ScrapeReplyLen is the size of a scrape reply's header, before its
	// 12-byte entries.
	ScrapeReplyLen = 8
	// ErrorReplyLen is the size of an error reply's header, before its text.
	ErrorReplyLen = 8
	// HashLen is the size of an info hash.
	HashLen = 20
	// ScrapeEntryLen is the size of one entry of a scrape reply.
	ScrapeEntryLen = 12
	// Peer4Len and Peer6Len are the sizes of a peer in an announce reply
	// to an IPv4 and to an IPv6 client.
	Peer4Len = 6
	Peer6Len = 18
	// MaxScrapeHashes is the most info hashes a scrape is read for: 74
	// hashes make a 1496-byte request, the most that fits an Ethernet MTU.
	// Further hashes are ignored.
	MaxScrapeHashes = 74
)

// BEP 41 option types.
const (
	optEnd     = 0
	optNOP     = 1
	optURLData = 2
)

// Parse errors. They are values, so returning one allocates nothing.
var (
	ErrShort  = errors.New("udpwire: packet too short")
	ErrAction = errors.New("udpwire: unexpected action")
	ErrOption = errors.New("udpwire: truncated option")
	ErrNoHash = errors.New("udpwire: scrape without info hash")
	ErrLength = errors.New("udpwire: reply length does not fit its contents")
)

// Header is the start of every request.
type Header struct {
	ConnID uint64
	Action uint32
	TxID   uint32
}

// ParseHeader reads the first 16 bytes of a request. It reports false if
// p is shorter.
func ParseHeader(p []byte) (Header, bool) {
	if len(p) < HeaderLen {
		return Header{}, false
	}
	return Header{
		ConnID: binary.BigEndian.Uint64(p),
		Action: binary.BigEndian.Uint32(p[8:]),
		TxID:   binary.BigEndian.Uint32(p[12:]),
	}, true
}

// AppendHeader appends the start of a request. A connect request is its
// header alone, with ProtocolID in place of a connection id.
func AppendHeader(dst []byte, h Header) []byte {
	dst = binary.BigEndian.AppendUint64(dst, h.ConnID)
	dst = binary.BigEndian.AppendUint32(dst, h.Action)
	return binary.BigEndian.AppendUint32(dst, h.TxID)
}

// Announce is an announce request as it arrives.
type Announce struct {
	ConnID     uint64
	TxID       uint32
	InfoHash   [20]byte
	PeerID     [20]byte
	Downloaded uint64
	Left       uint64
	Uploaded   uint64
	// Event is the raw event field; see the Event constants.
	Event uint32
	// IP is the address field, which trackers should ignore: the source
	// address of the packet is the peer's address.
	IP      uint32
	Key     uint32
	NumWant int32 // -1 asks for the tracker's default
	Port    uint16
	// URLData is the concatenation of the request's BEP 41 URL data
	// options: the path and query of the announce URL. ParseAnnounce
	// appends to URLData[:0], so its capacity is reused between packets.
	URLData []byte
}

// ParseAnnounce reads an announce request into a. The request has at least
// 98 bytes; what follows is read as BEP 41 options up to the end of the
// packet or to an EndOfOptions option: NOP options are skipped, URL data
// options are concatenated into a.URLData, and options of unknown types are
// skipped by their length byte. An option cut short by the end of the
// packet makes the request malformed (ErrOption).
func ParseAnnounce(p []byte, a *Announce) error {
	if len(p) < AnnounceLen {
		return ErrShort
	}
	if binary.BigEndian.Uint32(p[8:]) != ActionAnnounce {
		return ErrAction
	}
	a.ConnID = binary.BigEndian.Uint64(p)
	a.TxID = binary.BigEndian.Uint32(p[12:])
	copy(a.InfoHash[:], p[16:36])
	copy(a.PeerID[:], p[36:56])
	a.Downloaded = binary.BigEndian.Uint64(p[56:])
	a.Left = binary.BigEndian.Uint64(p[64:])
	a.Uploaded = binary.BigEndian.Uint64(p[72:])
	a.Event = binary.BigEndian.Uint32(p[80:])
	a.IP = binary.BigEndian.Uint32(p[84:])
	a.Key = binary.BigEndian.Uint32(p[88:])
	a.NumWant = int32(binary.BigEndian.Uint32(p[92:]))
	a.Port = binary.BigEndian.Uint16(p[96:])
	a.URLData = a.URLData[:0]
	opts := p[AnnounceLen:]
	for len(opts) > 0 {
		switch typ := opts[0]; typ {
		case optEnd:
			return nil
		case optNOP:
			opts = opts[1:]
		default:
			if len(opts) < 2 || len(opts) < 2+int(opts[1]) {
				return ErrOption
			}
			n := 2 + int(opts[1])
			if typ == optURLData {
				a.URLData = append(a.URLData, opts[2:n]...)
			}
			opts = opts[n:]
		}
	}
	return nil
}

// Scrape is a scrape request as it arrives.
type Scrape struct {
	ConnID uint64
	TxID   uint32
	// Hashes holds the requested info hashes, 20 bytes each, at most
	// MaxScrapeHashes of them. It aliases the packet.
	Hashes []byte
}

// N returns the number of info hashes.
func (s *Scrape) N() int { return len(s.Hashes) / HashLen }

// Hash returns the i-th info hash.
func (s *Scrape) Hash(i int) [20]byte {
	return [20]byte(s.Hashes[i*HashLen:])
}

// ParseScrape reads a scrape request: the 16-byte header, then whole
// 20-byte info hashes. Hashes past MaxScrapeHashes and a trailing partial
// hash are ignored; a request without any hash is refused (ErrNoHash), as
// BEP 15 has no full scrape.
func ParseScrape(p []byte) (Scrape, error) {
	h, ok := ParseHeader(p)
	switch {
	case !ok:
		return Scrape{}, ErrShort
	case h.Action != ActionScrape:
		return Scrape{}, ErrAction
	}
	n := min((len(p)-HeaderLen)/HashLen, MaxScrapeHashes)
	if n == 0 {
		return Scrape{}, ErrNoHash
	}
	return Scrape{ConnID: h.ConnID, TxID: h.TxID, Hashes: p[HeaderLen : HeaderLen+n*HashLen]}, nil
}

// ReplyHeader is the start of every reply.
type ReplyHeader struct {
	Action uint32
	TxID   uint32
}

// AppendReplyHeader appends the start of a reply.
func AppendReplyHeader(dst []byte, h ReplyHeader) []byte {
	dst = binary.BigEndian.AppendUint32(dst, h.Action)
	return binary.BigEndian.AppendUint32(dst, h.TxID)
}

// AppendConnect appends a connect reply.
func AppendConnect(dst []byte, txID uint32, connID uint64) []byte {
	dst = AppendReplyHeader(dst, ReplyHeader{ActionConnect, txID})
	return binary.BigEndian.AppendUint64(dst, connID)
}

// AppendAnnounce appends the 20-byte header of an announce reply; the
// peers follow, appended with AppendPeer. Note the order: leechers, then
// seeders.
func AppendAnnounce(dst []byte, txID, interval, leechers, seeders uint32) []byte {
	dst = AppendReplyHeader(dst, ReplyHeader{ActionAnnounce, txID})
	dst = binary.BigEndian.AppendUint32(dst, interval)
	dst = binary.BigEndian.AppendUint32(dst, leechers)
	return binary.BigEndian.AppendUint32(dst, seeders)
}

// AppendPeer appends one peer of an announce reply: 4 bytes of address
// and the port for an IPv4 (or IPv4-mapped) address, 16 bytes and the port
// for an IPv6 one. A reply holds peers of one size only, the one of the
// client's own address family.
func AppendPeer(dst []byte, ap netip.AddrPort) []byte {
	addr := ap.Addr().Unmap()
	if addr.Is4() {
		a := addr.As4()
		dst = append(dst, a[:]...)
	} else {
		a := addr.As16()
		dst = append(dst, a[:]...)
	}
	return binary.BigEndian.AppendUint16(dst, ap.Port())
}

// AppendScrape appends the 8-byte header of a scrape reply; the entries
// follow, appended with AppendScrapeEntry in the order of the request.
func AppendScrape(dst []byte, txID uint32) []byte {
	return AppendReplyHeader(dst, ReplyHeader{ActionScrape, txID})
}

// AppendScrapeEntry appends one swarm's counters to a scrape reply. Note
// the order: seeders, completed, leechers.
func AppendScrapeEntry(dst []byte, seeders, completed, leechers uint32) []byte {
	dst = binary.BigEndian.AppendUint32(dst, seeders)
	dst = binary.BigEndian.AppendUint32(dst, completed)
	return binary.BigEndian.AppendUint32(dst, leechers)
}

// AppendError appends an error reply: the text runs to the end of the
// datagram, without a length or a terminating NUL.
func AppendError(dst []byte, txID uint32, msg string) []byte {
	dst = AppendReplyHeader(dst, ReplyHeader{ActionError, txID})
	return append(dst, msg...)
}

// The client side, for tests and load generators.

// AppendConnectRequest appends a connect request.
func AppendConnectRequest(dst []byte, txID uint32) []byte {
	return AppendHeader(dst, Header{ProtocolID, ActionConnect, txID})
}

// AppendAnnounceRequest appends the announce request a describes. Its URL
// data, if any, follows as URL data options of at most 255 bytes each,
// then an EndOfOptions option.
func AppendAnnounceRequest(dst []byte, a *Announce) []byte {
	dst = AppendHeader(dst, Header{a.ConnID, ActionAnnounce, a.TxID})
	dst = append(dst, a.InfoHash[:]...)
	dst = append(dst, a.PeerID[:]...)
	dst = binary.BigEndian.AppendUint64(dst, a.Downloaded)
	dst = binary.BigEndian.AppendUint64(dst, a.Left)
	dst = binary.BigEndian.AppendUint64(dst, a.Uploaded)
	dst = binary.BigEndian.AppendUint32(dst, a.Event)
	dst = binary.BigEndian.AppendUint32(dst, a.IP)
	dst = binary.BigEndian.AppendUint32(dst, a.Key)
	dst = binary.BigEndian.AppendUint32(dst, uint32(a.NumWant))
	dst = binary.BigEndian.AppendUint16(dst, a.Port)
	if len(a.URLData) == 0 {
		return dst
	}
	for u := a.URLData; len(u) > 0; {
		n := min(len(u), 255)
		dst = append(dst, optURLData, byte(n))
		dst = append(dst, u[:n]...)
		u = u[n:]
	}
	return append(dst, optEnd)
}

// AppendScrapeRequest appends a scrape request for hashes.
func AppendScrapeRequest(dst []byte, connID uint64, txID uint32, hashes ...[20]byte) []byte {
	dst = AppendHeader(dst, Header{connID, ActionScrape, txID})
	for _, h := range hashes {
		dst = append(dst, h[:]...)
	}
	return dst
}

// ParseReplyHeader reads the first 8 bytes of a reply. It reports false if
// p is shorter.
func ParseReplyHeader(p []byte) (ReplyHeader, bool) {
	if len(p) < ReplyHeaderLen {
		return ReplyHeader{}, false
	}
	return ReplyHeader{Action: binary.BigEndian.Uint32(p), TxID: binary.BigEndian.Uint32(p[4:])}, true
}

// The parsers of replies are for checking what a tracker sends, so they
// are strict: a reply shorter than its fixed part is ErrShort, one of the
// wrong action ErrAction, and one whose length is not exactly what its
// parts make (trailing bytes, a partial peer or entry) ErrLength. Only
// the error reply has no length to check.

// parseReply checks the action and the length of reply p: a fixed part of
// fixed bytes, then entries of size bytes (none if size is 0).
func parseReply(p []byte, action uint32, fixed, size int) (ReplyHeader, error) {
	h, ok := ParseReplyHeader(p)
	switch {
	case !ok || len(p) < fixed:
		return h, ErrShort
	case h.Action != action:
		return h, ErrAction
	case size == 0 && len(p) != fixed, size > 0 && (len(p)-fixed)%size != 0:
		return h, ErrLength
	}
	return h, nil
}

// ConnectReply is a connect reply as a client gets it.
type ConnectReply struct {
	TxID   uint32
	ConnID uint64
}

// ParseConnectReply reads a connect reply: 16 bytes, action 0.
func ParseConnectReply(p []byte) (ConnectReply, error) {
	h, err := parseReply(p, ActionConnect, ConnectLen, 0)
	if err != nil {
		return ConnectReply{}, err
	}
	return ConnectReply{TxID: h.TxID, ConnID: binary.BigEndian.Uint64(p[8:])}, nil
}

// AnnounceReply is an announce reply as a client gets it.
type AnnounceReply struct {
	TxID     uint32
	Interval uint32
	Leechers uint32
	Seeders  uint32
	// Peers holds the peers, PeerLen bytes each. It aliases the packet.
	Peers   []byte
	PeerLen int
}

// N returns the number of peers.
func (r *AnnounceReply) N() int {
	if r.PeerLen == 0 {
		return 0
	}
	return len(r.Peers) / r.PeerLen
}

// Peer returns the i-th peer.
func (r *AnnounceReply) Peer(i int) netip.AddrPort {
	p := r.Peers[i*r.PeerLen : (i+1)*r.PeerLen]
	port := binary.BigEndian.Uint16(p[r.PeerLen-2:])
	if r.PeerLen == Peer4Len {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(p)), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(p)), port)
}

// ParseAnnounceReply reads an announce reply to a client whose peers are
// peerLen bytes long (Peer4Len over IPv4, Peer6Len over IPv6): action 1,
// a 20-byte header, then whole peers.
func ParseAnnounceReply(p []byte, peerLen int) (AnnounceReply, error) {
	h, err := parseReply(p, ActionAnnounce, AnnounceReplyLen, peerLen)
	if err != nil {
		return AnnounceReply{}, err
	}
	return AnnounceReply{
		TxID:     h.TxID,
		Interval: binary.BigEndian.Uint32(p[8:]),
		Leechers: binary.BigEndian.Uint32(p[12:]),
		Seeders:  binary.BigEndian.Uint32(p[16:]),
		Peers:    p[AnnounceReplyLen:],
		PeerLen:  peerLen,
	}, nil
}

// ScrapeReply is a scrape reply as a client gets it.
type ScrapeReply struct {
	TxID uint32
	// Entries holds the swarms' counters, 12 bytes each, in the order of
	// the request. It aliases the packet.
	Entries []byte
}

// N returns the number of entries.
func (r *ScrapeReply) N() int { return len(r.Entries) / ScrapeEntryLen }

// Entry returns the counters of the i-th entry.
func (r *ScrapeReply) Entry(i int) (seeders, completed, leechers uint32) {
	e := r.Entries[i*ScrapeEntryLen:]
	return binary.BigEndian.Uint32(e), binary.BigEndian.Uint32(e[4:]), binary.BigEndian.Uint32(e[8:])
}

// ParseScrapeReply reads a scrape reply: action 2, an 8-byte header, then
// whole 12-byte entries.
func ParseScrapeReply(p []byte) (ScrapeReply, error) {
	h, err := parseReply(p, ActionScrape, ScrapeReplyLen, ScrapeEntryLen)
	if err != nil {
		return ScrapeReply{}, err
	}
	return ScrapeReply{TxID: h.TxID, Entries: p[ScrapeReplyLen:]}, nil
}

// ErrorReply is an error reply as a client gets it.
type ErrorReply struct {
	TxID uint32
	// Msg is the text, all that follows the header. It aliases the packet.
	Msg []byte
}

// ParseErrorReply reads an error reply: action 3, an 8-byte header, then
// the text.
func ParseErrorReply(p []byte) (ErrorReply, error) {
	h, err := parseReply(p, ActionError, ErrorReplyLen, 1)
	if err != nil {
		return ErrorReply{}, err
	}
	return ErrorReply{TxID: h.TxID, Msg: p[ErrorReplyLen:]}, nil
}
