package tracker_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/annuaire/tracker"
)

// A tracker used straight from Go: two peers join a swarm and the second
// learns about the first.
func Example() {
	t, err := tracker.New(tracker.Config{})
	if err != nil {
		panic(err)
	}
	defer t.Close()
	ctx := context.Background()
	hash, _ := tracker.ParseInfoHash("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")

	seeder := &tracker.AnnounceRequest{
		InfoHash: hash,
		PeerID:   tracker.PeerID([]byte("-qB4650-000000000001")),
		Addr:     netip.MustParseAddrPort("198.51.100.7:51413"),
		Left:     0,
		Event:    tracker.EventStarted,
	}
	if _, err := t.Announce(ctx, seeder); err != nil {
		panic(err)
	}
	leecher := &tracker.AnnounceRequest{
		InfoHash: hash,
		PeerID:   tracker.PeerID([]byte("-TR4060-000000000002")),
		Addr:     netip.MustParseAddrPort("203.0.113.9:6881"),
		Left:     1 << 30,
		Event:    tracker.EventStarted,
	}
	resp, err := t.Announce(ctx, leecher)
	if err != nil {
		panic(err)
	}
	fmt.Println("seeders:", resp.Complete, "leechers:", resp.Incomplete)
	for _, p := range resp.Peers {
		fmt.Println("peer:", p.Addr)
	}
	// Output:
	// seeders: 1 leechers: 1
	// peer: 198.51.100.7:51413
}

// A private tracker checks passkeys against the site's accounts; failures
// the client should read are *tracker.Error values.
func ExamplePasskeyFunc() {
	accounts := map[string]uint64{"4f2a9c": 1001}
	t, err := tracker.New(tracker.Config{
		Passkeys: tracker.PasskeyFunc(func(ctx context.Context, passkey string) (tracker.Identity, error) {
			if user, ok := accounts[passkey]; ok {
				return tracker.Identity{UserID: user}, nil
			}
			return tracker.Identity{}, tracker.ErrInvalidPasskey
		}),
	})
	if err != nil {
		panic(err)
	}
	defer t.Close()

	req := &tracker.AnnounceRequest{
		InfoHash: tracker.InfoHash{1},
		PeerID:   tracker.PeerID([]byte("-qB4650-000000000001")),
		Addr:     netip.MustParseAddrPort("198.51.100.7:51413"),
		Left:     100,
		Passkey:  "not-a-passkey",
	}
	_, err = t.Announce(context.Background(), req)
	var e *tracker.Error
	if errors.As(err, &e) {
		fmt.Println("failure reason:", e.Reason)
	}
	req.Passkey = "4f2a9c"
	resp, err := t.Announce(context.Background(), req)
	fmt.Println("user:", resp.Identity.UserID, err)
	// Output:
	// failure reason: invalid passkey
	// user: 1001 <nil>
}

// An allow-list and a deny-list together: a torrent is served only if both
// agree.
func ExampleAllTorrents() {
	listed := tracker.InfoHash{1}
	removed := tracker.InfoHash{2}
	allow := tracker.TorrentFunc(func(ctx context.Context, h tracker.InfoHash, id tracker.Identity) error {
		if h == listed || h == removed {
			return nil
		}
		return tracker.ErrUnregisteredTorrent
	})
	deny := tracker.TorrentFunc(func(ctx context.Context, h tracker.InfoHash, id tracker.Identity) error {
		if h == removed {
			return &tracker.Error{Kind: tracker.KindTorrent, Reason: "torrent removed at the rights holder's request"}
		}
		return nil
	})
	f := tracker.AllTorrents(allow, deny)
	for _, h := range []tracker.InfoHash{listed, removed, {3}} {
		fmt.Println(f.AllowTorrent(context.Background(), h, tracker.Identity{}))
	}
	// Output:
	// <nil>
	// tracker: torrent removed at the rights holder's request
	// tracker: unregistered torrent
}

func ExampleTracker_Scrape() {
	t, err := tracker.New(tracker.Config{})
	if err != nil {
		panic(err)
	}
	defer t.Close()
	ctx := context.Background()
	h := tracker.InfoHash{0xAB}
	for i, left := range []int64{0, 0, 500} {
		t.Announce(ctx, &tracker.AnnounceRequest{
			InfoHash: h,
			PeerID:   tracker.PeerID{byte(i)},
			Addr:     netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 6881),
			Left:     left,
		})
	}
	resp, err := t.Scrape(ctx, &tracker.ScrapeRequest{InfoHashes: []tracker.InfoHash{h, {0xCD}}})
	if err != nil {
		panic(err)
	}
	for _, f := range resp.Files {
		fmt.Printf("seeders %d, leechers %d, completed %d\n", f.Complete, f.Incomplete, f.Downloaded)
	}
	// Output:
	// seeders 2, leechers 1, completed 0
	// seeders 0, leechers 0, completed 0
}

func ExampleTracker_Stats() {
	t, err := tracker.New(tracker.Config{})
	if err != nil {
		panic(err)
	}
	defer t.Close()
	t.Announce(context.Background(), &tracker.AnnounceRequest{
		InfoHash: tracker.InfoHash{1},
		Addr:     netip.MustParseAddrPort("192.0.2.1:0"), // port 0 is refused
	})
	s := t.Stats()
	fmt.Println("announces:", s.Announces, "bad requests:", s.Failures["bad_request"])
	// Output: announces: 0 bad requests: 1
}
