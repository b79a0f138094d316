package tracker_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/annuaire/tracker"
)

// announce announces a peer and tells who the tracker took it for, or why
// it refused it.
func announce(t *tracker.Tracker, passkey, client string, h tracker.InfoHash) string {
	var id tracker.PeerID
	copy(id[:], client+"0123456789ab")
	resp, err := t.Announce(context.Background(), &tracker.AnnounceRequest{
		InfoHash: h,
		PeerID:   id,
		Addr:     netip.MustParseAddrPort("127.0.0.1:6881"),
		Left:     1 << 20,
		Passkey:  passkey,
	})
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("ok, user %d", resp.Identity.UserID)
}

var (
	debian = mustHash("1b2ca7e0d05f3e4c5a7f4e8b2c69e1bb0d7d6c3a")
	ubuntu = mustHash("2c3db8f1e1604f5d6b805f9c3d7af2cc1e8e7d4b")
	leaked = mustHash("3d4ec902f2715a6e7c916a0d4e8b03dd2f9f8e5c")
)

func mustHash(s string) tracker.InfoHash {
	h, err := tracker.ParseInfoHash(s)
	if err != nil {
		panic(err)
	}
	return h
}

// A site loads its passkeys at start-up, then keeps the set in step with
// its accounts while the tracker runs.
func ExamplePasskeySet() {
	passkeys := tracker.NewPasskeySet()
	// In production, the reader is the site's export file or a database
	// dump: one passkey per line, then the user id.
	err := passkeys.Load(strings.NewReader(`# passkey  user
alice-key  1042
bob-key    7
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	t, err := tracker.New(tracker.Config{Passkeys: passkeys})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()

	// A new account, and one closed: both take effect at once.
	passkeys.Set("carol-key", 2001)
	passkeys.Delete("bob-key")

	for _, passkey := range []string{"alice-key", "carol-key", "bob-key", ""} {
		fmt.Printf("%q: %s\n", passkey, announce(t, passkey, "-qB4650-", debian))
	}
	// Output:
	// "alice-key": ok, user 1042
	// "carol-key": ok, user 2001
	// "bob-key": tracker: invalid passkey
	// "": tracker: passkey required: use the announce URL from your account
}

// A set of the passkeys known at the last reload answers most announces;
// a passkey created since is looked up in the site's database. An outage of
// the database is reported as such, not as an invalid passkey.
func ExamplePasskeySet_Replace() {
	type account struct {
		passkey string
		id      uint64
	}
	accounts := []account{{"alice-key", 1042}, {"bob-key", 7}} // from the database

	passkeys := tracker.NewPasskeySet()
	// A periodic reload: the new content is swapped in whole.
	passkeys.Replace(func(yield func(string, uint64) bool) {
		for _, a := range accounts {
			if !yield(a.passkey, a.id) {
				return
			}
		}
	})
	errDown := errors.New("database unreachable")
	database := tracker.PasskeyFunc(func(ctx context.Context, passkey string) (tracker.Identity, error) {
		switch passkey {
		case "dave-key": // created after the reload
			return tracker.Identity{UserID: 3003}, nil
		case "erin-key":
			return tracker.Identity{}, errDown
		}
		return tracker.Identity{}, tracker.ErrInvalidPasskey
	})
	v := tracker.AnyPasskey(passkeys, database)

	for _, passkey := range []string{"bob-key", "dave-key", "mallory", "erin-key"} {
		id, err := v.ValidatePasskey(context.Background(), passkey)
		fmt.Printf("%s: user %d, err %v, invalid passkey %v\n", passkey, id.UserID, err, errors.Is(err, tracker.ErrInvalidPasskey))
	}
	// Output:
	// bob-key: user 7, err <nil>, invalid passkey false
	// dave-key: user 3003, err <nil>, invalid passkey false
	// mallory: user 0, err tracker: invalid passkey, invalid passkey true
	// erin-key: user 0, err database unreachable, invalid passkey false
}

// A semi-private tracker serves only the torrents uploaded to its site,
// and takes down some without deleting them from the upload list.
func ExampleTorrentList() {
	uploaded := tracker.NewTorrentAllowList()
	err := uploaded.Load(strings.NewReader(`# info hashes of the site's torrents
1b2ca7e0d05f3e4c5a7f4e8b2c69e1bb0d7d6c3a  # debian
2C3DB8F1E1604F5D6B805F9C3D7AF2CC1E8E7D4B  # ubuntu
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	takenDown := tracker.NewTorrentDenyList()
	t, err := tracker.New(tracker.Config{
		Torrents: tracker.AllTorrents(uploaded, takenDown),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()

	takenDown.Add(ubuntu)
	for _, h := range []tracker.InfoHash{debian, ubuntu, leaked} {
		fmt.Printf("%.8s: %s\n", h, announce(t, "", "-TR3000-", h))
	}

	// A malformed list is refused whole, and the old one stays in place.
	err = uploaded.Load(strings.NewReader("1b2ca7e0d05f3e4c5a7f4e8b2c69e1bb0d7d6c3a\n1b2ca7e0\n"))
	fmt.Println(err)
	fmt.Println(uploaded.Len(), uploaded.Contains(ubuntu))
	// Output:
	// 1b2ca7e0: ok, user 0
	// 2c3db8f1: tracker: unregistered torrent
	// 3d4ec902: tracker: unregistered torrent
	// tracker: torrents line 2: info hash "1b2ca7e0": want 40 hex digits (or 64 for a v2 hash), have 8 characters
	// 2 true
}

// A private tracker admits the clients its rules list, except for versions
// known to misreport their statistics.
func ExampleClientList() {
	allowed := tracker.NewClientAllowList()
	err := allowed.Load(strings.NewReader(`# peer id prefixes of the admitted clients
-qB      # qBittorrent
-TR      # Transmission
-lt0D    # rTorrent with libtorrent 0.13
M7-      # Mainline 7
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	banned := tracker.NewClientDenyList("-TR2", "-qB4640-")
	t, err := tracker.New(tracker.Config{
		Clients: tracker.AllClients(allowed, banned),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()

	for _, client := range []string{"-qB4650-", "-qB4640-", "-TR3000-", "-TR2940-", "-UT3550-"} {
		fmt.Printf("%s: %s\n", client, announce(t, "", client, debian))
	}
	// Output:
	// -qB4650-: ok, user 0
	// -qB4640-: tracker: client not allowed
	// -TR3000-: ok, user 0
	// -TR2940-: tracker: client not allowed
	// -UT3550-: tracker: client not allowed
}

// hotKeys is a site's own validator over passkeys it keeps in memory. It
// declares that it never blocks, so the UDP server checks them on its
// readers instead of handing the requests to its workers.
type hotKeys struct {
	mu    sync.RWMutex
	users map[string]uint64
}

func (k *hotKeys) ValidatePasskey(_ context.Context, passkey string) (tracker.Identity, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if user, ok := k.users[passkey]; ok {
		return tracker.Identity{UserID: user}, nil
	}
	return tracker.Identity{}, tracker.ErrInvalidPasskey
}

func (k *hotKeys) NonBlocking() bool { return true }

// Passkeys in memory first, the site's database for the others: over UDP,
// a passkey the in-memory validator accepts is settled on the reader that
// received it, and only the others wait for a worker and the database,
// with the tracker's deadline in their context.
func ExampleNonBlocker() {
	hot := &hotKeys{users: map[string]uint64{"alice-key": 1042}}
	database := tracker.PasskeyFunc(func(ctx context.Context, passkey string) (tracker.Identity, error) {
		// A query under ctx, which ends at the request's deadline.
		if _, ok := ctx.Deadline(); !ok {
			return tracker.Identity{}, errors.New("no deadline")
		}
		if passkey == "bob-key" {
			return tracker.Identity{UserID: 7}, nil
		}
		return tracker.Identity{}, tracker.ErrInvalidPasskey
	})
	t, err := tracker.New(tracker.Config{
		Passkeys:       tracker.AnyPasskey(hot, database),
		RequestTimeout: 2 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()
	for _, passkey := range []string{"alice-key", "bob-key", "eve-key"} {
		fmt.Printf("%q: %s\n", passkey, announce(t, passkey, "-qB4650-", debian))
	}
	// Output:
	// "alice-key": ok, user 1042
	// "bob-key": ok, user 7
	// "eve-key": tracker: invalid passkey
}

// A semi-private tracker shows seeders and leechers to everyone: scrapes
// without a passkey (every UDP scrape) read the counts of the torrents it
// serves, and zeros for the others, so the list of torrents stays private.
func ExampleConfig_publicScrape() {
	passkeys := tracker.NewPasskeySet()
	passkeys.Set("alice-key", 1042)
	torrents := tracker.NewTorrentAllowList()
	torrents.Add(debian)
	t, err := tracker.New(tracker.Config{
		Passkeys:     passkeys,
		Torrents:     torrents,
		PublicScrape: true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()
	fmt.Println(announce(t, "alice-key", "-qB4650-", debian))

	resp, err := t.Scrape(context.Background(), &tracker.ScrapeRequest{InfoHashes: []tracker.InfoHash{debian, leaked}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range resp.Files {
		fmt.Printf("%d seeders, %d leechers\n", f.Complete, f.Incomplete)
	}
	_, err = t.Scrape(context.Background(), &tracker.ScrapeRequest{InfoHashes: []tracker.InfoHash{debian}, Passkey: "mallory-key"})
	fmt.Println(err)
	// Output:
	// ok, user 1042
	// 0 seeders, 1 leechers
	// 0 seeders, 0 leechers
	// tracker: invalid passkey
}
