package tracker

import "context"

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
//   - The reply never holds the announcing peer; a seeder (Left 0) gets only
//     leechers; a leecher gets a uniform random sample of the other peers;
//     at most req.NumWant peers, appended to resp.Peers. A stopping peer gets
//     none.
//   - A snatch is counted once per peer and swarm when the peer completes:
//     on EventCompleted, or when a peer known as a leecher announces Left 0.
//     A repeated or retransmitted announce does not count it again.
//   - A partial seed (EventPaused with Left above 0) counts in Incomplete
//     but not in Downloaders.
//   - Peers not heard from for the store's peer TTL disappear.
//
// Announce fills resp.Complete, resp.Incomplete, resp.Downloaded and
// resp.Outcome, and appends to resp.Peers; it leaves the other fields
// alone (it may read resp.Identity). req.NumWant has
// already been resolved by the [Tracker] (never negative).
//
// Errors: a store at its configured bound returns an *Error of
// KindCapacity; a store used after Close returns ErrClosed; any other error
// is an internal failure.
type Store interface {
	Announce(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse) error
	// Scrape appends one ScrapeStats per hash to dst, in order, zero for
	// unknown swarms, and returns the extended slice.
	Scrape(ctx context.Context, hashes []InfoHash, dst []ScrapeStats) ([]ScrapeStats, error)
	// Close releases the store's resources and stops its goroutines.
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
