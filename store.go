package tracker

import (
	"context"
	"errors"
	"time"
)

// Store keeps the swarms: who is in them and their counters. A Store knows
// no policy (passkeys, allow-lists and rate limits are settled before it is
// called) and no wire format.
//
// Implementations must be safe for concurrent use, and must follow these
// rules, which the conformance suite in package trackertest checks:
//
//   - Announce is one atomic step per swarm: it inserts, refreshes or (on
//     EventStopped) removes the announcing peer, counts a snatch, selects
//     peers and reports the swarm's counters, so that a remote store needs
//     one round trip per announce.
//   - A peer is identified within a swarm by its address and port (req.Addr),
//     its user (resp.Identity.UserID, set before Announce is called; zero on
//     a public tracker) and its peer id. Peer ids travel in every BitTorrent
//     handshake, so the address and the user are what keep anyone from
//     moving or stopping another's peer: the same peer id from another
//     address or port, or from another user, is another peer, and the
//     record at the old address stays until it is stopped from there or
//     expires. (The key parameter cannot serve instead: aria2 sends a new one
//     with every UDP announce.) A store may tell the peers of one address
//     and port apart by a hash of their user and peer id, and take two whose
//     hashes meet for one. Peers of the two address families are kept apart:
//     an IPv4 announcer gets IPv4 peers only, an IPv6 announcer IPv6 peers
//     only.
//   - A client that announces over both families (BEP 7: once per family,
//     with the same peer id and key) does so from two addresses, so it is
//     two peers, one in each family. Each counts in Complete or Incomplete
//     (the counts add up the families), each gets the peers of its own
//     family, a stop over one family leaves the other, and a completion
//     reported over both counts two snatches. Telling the two apart from
//     two clients would take trusting the peer id, which anyone can send.
//   - The reply never holds the announcing peer; a seeder (Left 0) gets only
//     leechers; a leecher gets a uniform random sample of the other peers;
//     at most req.NumWant peers, appended to resp.Peers. A stopping peer gets
//     none.
//   - A snatch is counted once per peer and swarm when the peer completes:
//     on EventCompleted, or when a peer known as a leecher announces Left 0.
//     A repeated or retransmitted announce does not count it again.
//   - A partial seed (EventPaused with Left above 0) counts in Incomplete
//     but not in Downloaders.
//   - Peers not heard from for the store's peer TTL disappear, from
//     replies and counts alike. Once a swarm has no peers left, a scrape
//     of it reports zero peers; its snatch count may be kept for a while
//     of the store's choosing (a swarm TTL), then drops to zero.
//
// Announce fills resp.Complete, resp.Incomplete, resp.Downloaded and
// resp.Outcome, and appends to resp.Peers; it leaves the other fields of
// resp (Interval, MinInterval, Warning, Identity, which it may read) and the
// whole of req alone. req.NumWant has already been resolved by the
// [Tracker] (never negative).
//
// Errors: a store at its configured bound returns an *Error of
// KindCapacity; a store used after Close returns ErrClosed; any other error
// is an internal failure.
//
// The [Tracker] checks what a store returns: negative counters, more peers
// than req.NumWant, a peer of the other address family or without a valid
// address and port, or a scrape with a number of entries other than the
// number of hashes, fail the request as an internal error (logged, at most
// once a minute with a count of the others), as does a policy's *Error
// whose Kind is not one of the package's.
//
// A store that answers from memory declares it through [NonBlocker], and
// the UDP server then calls it on its readers; any other store is called
// from the UDP server's workers, with a deadline ([Config.RequestTimeout])
// in ctx that it should honour.
type Store interface {
	Announce(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse) error
	// Scrape appends one ScrapeStats per hash to dst, in order, zero for
	// unknown swarms, and returns the extended slice.
	Scrape(ctx context.Context, hashes []InfoHash, dst []ScrapeStats) ([]ScrapeStats, error)
	// Close releases the store's resources and stops its goroutines. It
	// may be called more than once; calls after the first return nil.
	Close() error
}

// StoreCounts are a store's totals at one moment.
type StoreCounts struct {
	Swarms  int
	Peers   int
	Seeders int
	// Announces and Scrapes count the calls that succeeded since the store
	// was made.
	Announces, Scrapes uint64
}

// CountingStore is implemented by stores that can report their totals
// cheaply; [Tracker.Stats] includes them when the store does. A store that
// counts its calls under locks it takes anyway saves the tracker from
// counting on a shared cache line.
type CountingStore interface {
	Store
	Counts(ctx context.Context) (StoreCounts, error)
}

// FullScraper is implemented by stores that can list every swarm, for the
// HTTP full scrape. ScrapeAll calls fn for each swarm with at least one peer
// or one snatch until fn returns false. It must not hold locks that block
// announces while fn runs.
type FullScraper interface {
	Store
	ScrapeAll(ctx context.Context, fn func(InfoHash, ScrapeStats) bool) error
}

// ExpiringStore is implemented by stores that drop peers not heard from
// for a fixed time, the peer TTL. [New] refuses a configuration whose
// AnnounceInterval plus IntervalJitter is longer than PeerTTL, since the
// swarms would empty between two announces of their peers.
type ExpiringStore interface {
	Store
	PeerTTL() time.Duration
}

// Ways a store breaks its contract, which the tracker checks.
var (
	errStoreCounts  = errors.New("tracker: the store returned a negative counter")
	errStoreNumWant = errors.New("tracker: the store returned more peers than asked for")
	errStorePeer    = errors.New("tracker: the store returned a peer of the other address family or with an invalid address")
	errStoreScrape  = errors.New("tracker: the store returned a scrape entry count other than the number of hashes")
)

// verifyAnnounce reports how resp, a store's reply to req, breaks the Store
// contract, if it does: the front-ends' encoders rely on these rules.
func verifyAnnounce(req *AnnounceRequest, resp *AnnounceResponse) error {
	switch {
	case resp.Complete < 0 || resp.Incomplete < 0 || resp.Downloaded < 0:
		return errStoreCounts
	case len(resp.Peers) > req.NumWant:
		return errStoreNumWant
	}
	v4 := req.Addr.Addr().Is4() // unmapped by the tracker
	for i := range resp.Peers {
		ap := resp.Peers[i].Addr
		a := ap.Addr().Unmap()
		if a.Is4() != v4 || a.IsUnspecified() || !a.IsValid() || ap.Port() == 0 {
			return errStorePeer
		}
	}
	return nil
}

// verifyScrape does for a scrape what verifyAnnounce does for an announce.
func verifyScrape(hashes []InfoHash, files []ScrapeStats) error {
	if len(files) != len(hashes) {
		return errStoreScrape
	}
	for i := range files {
		if f := &files[i]; f.Complete < 0 || f.Incomplete < 0 || f.Downloaded < 0 || f.Downloaders < 0 {
			return errStoreCounts
		}
	}
	return nil
}
