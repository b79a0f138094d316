package httpwire

import (
	"errors"
	"net/netip"
	"strings"
)

// Event is the event parameter of an announce. The values are numbered as
// the tracker's own events are.
type Event uint8

// The events.
const (
	EventNone Event = iota
	EventStarted
	EventStopped
	EventCompleted
	EventPaused
)

// Failures of the query parsers. They are values, so returning one
// allocates nothing.
var (
	ErrNoInfoHash    = errors.New("missing info_hash")
	ErrNoPeerID      = errors.New("missing peer_id")
	ErrNoPort        = errors.New("missing port")
	ErrNoLeft        = errors.New("missing left")
	ErrInfoHash      = errors.New("invalid info_hash")
	ErrPeerID        = errors.New("invalid peer_id")
	ErrPort          = errors.New("invalid port")
	ErrCounter       = errors.New("invalid uploaded, downloaded or left")
	ErrEvent         = errors.New("invalid event")
	ErrTooManyHashes = errors.New("too many info_hash values")
)

// Limits on what one parameter may hold.
const (
	// MaxDigits is the most digits a number parameter may have.
	MaxDigits = 20
)

// AnnounceQuery is an announce's query, parsed.
type AnnounceQuery struct {
	InfoHash, PeerID           [20]byte
	Port                       uint16
	Uploaded, Downloaded, Left int64
	Event                      Event
	// NumWant is the numwant parameter: -1 when it is missing or not a
	// number, saturated at the largest int32.
	NumWant int
	// Key is the key parameter folded to 32 bits (see [FoldKey]); zero if
	// missing.
	Key uint32
	// Compact is false only for compact=0; NoPeerID is true for
	// no_peer_id other than 0.
	Compact, NoPeerID bool
	// Passkey is the passkey parameter, still escaped; "" if none.
	Passkey string
	// IP, IPv4 and IPv6 are those parameters, still escaped.
	IP, IPv4, IPv6 string
}

// ParseAnnounce parses the raw query of an announce into q. It allocates
// nothing.
//
// info_hash and peer_id must decode to 20 bytes, port to 1-65535,
// uploaded, downloaded and left to decimal int64 values of at most
// MaxDigits digits. Missing uploaded and downloaded mean 0; a missing
// left, port, info_hash or peer_id is a failure. event is started,
// stopped, completed, paused or empty; another value is a failure.
// numwant, compact, no_peer_id, key and the ip parameters never fail: a
// numwant that is not a number, or is negative, gives -1. When several
// parameters are wrong, the failure reported is the first of: a missing
// or invalid info_hash, peer_id, port, counter, a missing left, an
// invalid event.
func ParseAnnounce(query string, q *AnnounceQuery) error {
	*q = AnnounceQuery{Compact: true, NumWant: -1}
	var haveHash, havePeer, havePort, haveLeft bool
	var eventErr, portErr, counterErr, hashErr, peerErr bool
	for query != "" {
		var k, v string
		k, v, query = NextParam(query)
		switch key := keyOf(k); key {
		case keyInfoHash:
			haveHash = true
			hashErr = !unescape20(&q.InfoHash, v)
		case keyPeerID:
			havePeer = true
			peerErr = !unescape20(&q.PeerID, v)
		case keyPort:
			havePort = true
			n, ok := parseUint(v)
			portErr = !ok || n == 0 || n > 65535
			q.Port = uint16(n)
		case keyUploaded, keyDownloaded, keyLeft:
			n, ok := parseUint(v)
			if !ok || n > 1<<63-1 {
				counterErr = true
				continue
			}
			switch key {
			case keyUploaded:
				q.Uploaded = int64(n)
			case keyDownloaded:
				q.Downloaded = int64(n)
			default:
				q.Left, haveLeft = int64(n), true
			}
		case keyEvent:
			var ok bool
			q.Event, ok = parseEvent(v)
			eventErr = !ok
		case keyNumWant:
			q.NumWant = parseNumWant(v)
		case keyKey:
			q.Key = FoldKey(v)
		case keyCompact:
			q.Compact = !isZero(v)
		case keyNoPeerID:
			q.NoPeerID = !isZero(v)
		case keyPasskey:
			q.Passkey = v
		case keyIP:
			q.IP = v
		case keyIPv4:
			q.IPv4 = v
		case keyIPv6:
			q.IPv6 = v
		}
	}
	switch {
	case !haveHash:
		return ErrNoInfoHash
	case hashErr:
		return ErrInfoHash
	case !havePeer:
		return ErrNoPeerID
	case peerErr:
		return ErrPeerID
	case !havePort:
		return ErrNoPort
	case portErr:
		return ErrPort
	case counterErr:
		return ErrCounter
	case !haveLeft:
		return ErrNoLeft
	case eventErr:
		return ErrEvent
	}
	return nil
}

// ParseScrape appends the info_hash values of a scrape's raw query to
// hashes, at most max of them, and returns the passkey parameter, still
// escaped ("" if none). It allocates nothing when hashes has room.
func ParseScrape[H ~[20]byte](query string, hashes []H, max int) (_ []H, passkey string, _ error) {
	for query != "" {
		var k, v string
		k, v, query = NextParam(query)
		switch keyOf(k) {
		case keyInfoHash:
			if len(hashes) >= max {
				return hashes, passkey, ErrTooManyHashes
			}
			var h [20]byte
			ok := unescape20(&h, v)
			hashes = append(hashes, H(h))
			if !ok {
				return hashes, passkey, ErrInfoHash
			}
		case keyPasskey:
			passkey = v
		}
	}
	return hashes, passkey, nil
}

// ParseAddrParam parses an escaped address parameter (ip, ipv4, ipv6), an
// address as [ParseHost] reads it. Whether the address may be a peer's
// (an unspecified or multicast address may not) is the caller's to decide.
func ParseAddrParam(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	var buf [64]byte
	b, ok := UnescapeInto(buf[:], s)
	if !ok {
		return netip.Addr{}, false
	}
	return ParseHost(string(b))
}

// ParseHost parses an address as proxies and clients write it: a bare
// IPv4 or IPv6 address, [IPv6], or either with a port. The result is
// unmapped and without zone.
func ParseHost(s string) (netip.Addr, bool) {
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

// The parameter names the parsers know.
const (
	keyUnknown = iota
	keyInfoHash
	keyPeerID
	keyPort
	keyUploaded
	keyDownloaded
	keyLeft
	keyEvent
	keyNumWant
	keyKey
	keyCompact
	keyNoPeerID
	keyPasskey
	keyIP
	keyIPv4
	keyIPv6
)

// keyOf returns the parameter an escaped key names.
func keyOf(k string) int {
	if strings.IndexByte(k, '%') >= 0 {
		var buf [16]byte
		b, ok := UnescapeInto(buf[:], k)
		if !ok {
			return keyUnknown
		}
		return keyOfBytes(b)
	}
	return keyOfBytes(k)
}

func keyOfBytes[S ~string | ~[]byte](k S) int {
	switch string(k) {
	case "info_hash":
		return keyInfoHash
	case "peer_id":
		return keyPeerID
	case "port":
		return keyPort
	case "uploaded":
		return keyUploaded
	case "downloaded":
		return keyDownloaded
	case "left":
		return keyLeft
	case "event":
		return keyEvent
	case "numwant":
		return keyNumWant
	case "key":
		return keyKey
	case "compact":
		return keyCompact
	case "no_peer_id":
		return keyNoPeerID
	case "passkey":
		return keyPasskey
	case "ip":
		return keyIP
	case "ipv4":
		return keyIPv4
	case "ipv6":
		return keyIPv6
	}
	return keyUnknown
}

// unescape20 decodes s into dst, which it must fill exactly.
func unescape20(dst *[20]byte, s string) bool {
	b, ok := UnescapeInto(dst[:], s)
	if ok && len(b) == len(dst) {
		return true
	}
	*dst = [20]byte{}
	return false
}

// parseUint parses an escaped decimal number of at most MaxDigits digits
// (a leading '+' or '-' is not allowed).
func parseUint(s string) (uint64, bool) {
	var buf [MaxDigits]byte
	b, ok := UnescapeInto(buf[:], s)
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

// parseNumWant parses numwant: a decimal number, saturated at MaxInt32;
// anything else (a negative number, a number over 32 characters) gives -1.
func parseNumWant(s string) int {
	var buf [32]byte
	b, ok := UnescapeInto(buf[:], s)
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

// parseEvent parses the event parameter.
func parseEvent(s string) (Event, bool) {
	var buf [16]byte
	b, ok := UnescapeInto(buf[:], s)
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

// isZero reports whether a flag parameter is 0 (escaped or not).
func isZero(s string) bool {
	return s == "0" || s == "%30"
}

// FoldKey folds the key parameter, opaque to the tracker, into 32 bits so
// that the same key always gives the same value: 8 hex digits (either
// case) are read as hex, as libtorrent, Transmission and aria2 send it; a
// decimal number in the range of int32 or uint32 (optionally signed) as its
// 32-bit value; anything else is hashed (FNV-1a) over its decoded bytes.
func FoldKey(s string) uint32 {
	var buf [64]byte
	b, ok := UnescapeInto(buf[:], s)
	if !ok {
		return fnv(s) // too long to decode here: hash as sent
	}
	if len(b) == 8 {
		var v uint32
		hex := true
		for _, c := range b {
			d := hexValue[c]
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
	if n, ok := decimal(digits); ok {
		if !neg && n <= 1<<32-1 {
			return uint32(n)
		}
		if neg && n <= 1<<31 {
			return uint32(-int64(n))
		}
	}
	return fnv(b)
}

// decimal parses 1 to 10 decimal digits.
func decimal(b []byte) (uint64, bool) {
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

func fnv[S ~string | ~[]byte](s S) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
