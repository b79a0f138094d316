package tracker

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"time"
)

// InfoHash identifies a swarm: the SHA-1 of a torrent's info dictionary
// (BEP 3), or the first 20 bytes of its SHA-256 for a v2 torrent (BEP 52).
// A hybrid torrent is announced under both and makes two swarms.
type InfoHash [20]byte

// ParseInfoHash parses 40 hexadecimal digits, in either case.
func ParseInfoHash(s string) (InfoHash, error) {
	var h InfoHash
	if len(s) != 2*len(h) {
		return h, fmt.Errorf("tracker: info hash %.48q: want 40 hex digits, have %d characters", s, len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("tracker: info hash %q: %w", s, err)
	}
	return h, nil
}

// String returns the hash as 40 lowercase hexadecimal digits.
func (h InfoHash) String() string { return hex.EncodeToString(h[:]) }

// PeerID is the 20-byte identifier a client picks for itself at start-up.
// Most clients begin it with an Azureus-style prefix such as "-qB4650-".
type PeerID [20]byte

// String returns the peer id with printable ASCII kept and other bytes
// escaped, the way it appears in logs.
func (p PeerID) String() string {
	return fmt.Sprintf("%+q", string(p[:]))
}

// Event is what a client reports happening since its last announce.
type Event uint8

// The announce events. EventPaused (BEP 21) is sent by partial seeds, which
// have every piece they want and download nothing more.
const (
	EventNone Event = iota
	EventStarted
	EventStopped
	EventCompleted
	EventPaused
)

var eventNames = [...]string{"none", "started", "stopped", "completed", "paused"}

// String returns the event as the HTTP event parameter spells it, with
// "none" for the regular announce.
func (e Event) String() string {
	if int(e) < len(eventNames) {
		return eventNames[e]
	}
	return fmt.Sprintf("Event(%d)", uint8(e))
}

// Peer is one entry of an announce reply.
type Peer struct {
	// Addr is the address and TCP port the peer accepts connections on.
	Addr netip.AddrPort
	// ID is the peer's id, or all zeros when the store does not keep peer
	// ids (the in-memory store keeps only a keyed hash of them). Encoders
	// leave a zero ID out of dictionary peers.
	ID PeerID
}

// AnnounceRequest is one announce, as a front-end decoded it. Front-ends
// fill it from the wire; Go callers fill it directly.
type AnnounceRequest struct {
	InfoHash InfoHash
	PeerID   PeerID
	// Addr is the address other peers should connect to: the source of the
	// request (IPv4-mapped IPv6 addresses are treated as IPv4) and the TCP
	// port the client listens on. Port 0 is refused.
	Addr netip.AddrPort
	// Uploaded, Downloaded and Left are the client's byte counters for this
	// session. Left 0 makes the peer a seeder. Negative values are refused.
	Uploaded, Downloaded, Left int64
	Event                      Event
	// NumWant is how many peers the client asks for. If zero, the
	// configured default ([Config.DefaultNumWant]); a negative value asks
	// for none. More than the configured maximum is clipped.
	NumWant int
	// Key is the client's key parameter, opaque to the tracker. Stores do
	// not identify peers by it: aria2 sends a new one with every UDP
	// announce.
	Key uint32
	// Passkey is the passkey from the announce URL, empty if none.
	Passkey string
	// UserAgent is the client's User-Agent header over HTTP, empty over UDP.
	UserAgent string
}

// AnnounceResponse is the reply to an announce.
type AnnounceResponse struct {
	// Interval is how long the client should wait before its next announce.
	Interval time.Duration
	// MinInterval is the least time before an unprompted re-announce.
	MinInterval time.Duration
	// Complete, Incomplete and Downloaded are the swarm's seeders, leechers
	// (partial seeds included) and completed downloads, the announcing peer
	// counted.
	Complete, Incomplete, Downloaded int
	// Peers holds at most NumWant other peers of the announcer's address
	// family: the announcing peer is never in it, and a seeder gets only
	// leechers. Stores append to it, so its capacity is reused between
	// calls to [Tracker.AnnounceInto].
	Peers []Peer
	// Warning is a message for the user that does not fail the announce,
	// for instance one set by a passkey validator through [Identity].
	Warning string
	// Identity is who the passkey belongs to; zero on a public tracker.
	Identity Identity
	// Outcome is what the store did with the announcing peer.
	Outcome Outcome
}

// Outcome is what an announce did to its peer, as the store reports it in
// [AnnounceResponse.Outcome]: a set of the flags below, zero when the
// announce refreshed a known peer (or the store does not say).
type Outcome uint8

// The outcomes.
const (
	// OutcomeJoined: the peer was not in the swarm and now is.
	OutcomeJoined Outcome = 1 << iota
	// OutcomeLeft: the peer was in the swarm and stopped.
	OutcomeLeft
	// OutcomeCompleted: the announce counted a completion (a snatch) for
	// the swarm.
	OutcomeCompleted
	// OutcomeSeeding: the peer announced as a seeder (Left 0).
	OutcomeSeeding
)

// ScrapeRequest asks for the counters of one or more swarms.
type ScrapeRequest struct {
	// InfoHashes lists the swarms; the reply keeps this order.
	InfoHashes []InfoHash
	// Addr is the client's address, used for rate limiting.
	Addr netip.Addr
	// Passkey is the passkey from the scrape URL, empty if none.
	Passkey string
}

// ScrapeStats are one swarm's counters.
type ScrapeStats struct {
	// Complete is the number of seeders.
	Complete int
	// Incomplete is the number of leechers, partial seeds included.
	Incomplete int
	// Downloaded is the number of completed downloads ever counted.
	Downloaded int
	// Downloaders is Incomplete without the partial seeds (BEP 21).
	Downloaders int
}

// ScrapeResponse is the reply to a scrape.
type ScrapeResponse struct {
	// Files holds one entry per requested info hash, in request order. A
	// swarm the tracker does not know (or may not reveal) has zero counters.
	Files []ScrapeStats
	// MinInterval is the least time a client should leave between scrapes.
	MinInterval time.Duration
}

// Identity is who a passkey belongs to, as a [PasskeyValidator] reports it.
// The tracker hands it on in [AnnounceResponse.Identity] and to the
// [TorrentFilter], and otherwise never inspects it.
type Identity struct {
	// UserID identifies the account. Zero means anonymous.
	UserID uint64
	// Warning, when not empty, is sent to the client as the reply's
	// warning message (a low ratio, an upcoming ban).
	Warning string
	// Value is whatever the validator wants to pass on (a *User, say).
	Value any
}
