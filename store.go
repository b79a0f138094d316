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
//   - A peer is identified within a swarm by its user (resp.Identity.UserID,
//     set before Announce is called; zero on a public tracker), its address
//     (the IP of req.Addr, not the port) and its peer id. Peer ids travel in
//     every BitTorrent handshake, so the address and the user are what keep
//     anyone from moving or stopping another's peer: the same peer id from
//     another address, or from another user, is another peer. A peer that
//     announces from its address on a new port moves to it. (The key
//     parameter cannot serve instead: aria2 sends a new one with every UDP
//     announce.) Peers of the two address families are kept apart: an IPv4
//     announcer gets IPv4 peers only, an IPv6 announcer IPv6 peers only.
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
// Announce fills resp.Complete, resp.Incomplete and resp.Downloaded and
// appends to resp.Peers; it leaves the other fields of resp (Interval,
// MinInterval, Warning, Identity) and the whole of req alone. req.NumWant
// has already been resolved by the [Tracker] (never negative).
//
// Errors: a store at its configured bound returns an *Error of
// KindCapacity; a store used after Close returns ErrClosed; any other error
// is an internal failure.
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
