//go:build unix

package redisstore_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/redisstore"
)

// A tracker whose swarms are in Redis: instances made the same way on
// other machines share them. Here a seeder announces, then a leecher,
// which gets the seeder.
func Example() {
	// exampleURL is the Redis to use, such as redis://127.0.0.1:6379/0.
	store, err := redisstore.Open(exampleURL, redisstore.Config{Prefix: "example:"})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close() // a tracker does not close a store it was given
	t, err := tracker.New(tracker.Config{Store: store})
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()

	ctx := context.Background()
	torrent, _ := tracker.ParseInfoHash("0123456789abcdef0123456789abcdef01234567")
	if _, err := t.Announce(ctx, &tracker.AnnounceRequest{
		InfoHash: torrent,
		PeerID:   tracker.PeerID([]byte("-qB4650-seeder000001")),
		Addr:     netip.MustParseAddrPort("192.0.2.1:6881"),
		Event:    tracker.EventStarted,
	}); err != nil {
		log.Fatal(err)
	}
	resp, err := t.Announce(ctx, &tracker.AnnounceRequest{
		InfoHash: torrent,
		PeerID:   tracker.PeerID([]byte("-TR3000-leecher00001")),
		Addr:     netip.MustParseAddrPort("198.51.100.7:51413"),
		Left:     1 << 30,
		Event:    tracker.EventStarted,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("seeders", resp.Complete, "leechers", resp.Incomplete)
	for _, p := range resp.Peers {
		fmt.Println("peer", p.Addr)
	}
	st := store.Stats()
	fmt.Println("announces", st.Announce.Calls, "failed", st.Announce.Timeouts+st.Announce.Unavailable+st.Announce.Errors)
	// Output:
	// seeders 1 leechers 1
	// peer 192.0.2.1:6881
	// announces 2 failed 0
}
