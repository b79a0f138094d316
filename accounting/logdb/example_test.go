package logdb_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/logdb"
)

func Example() {
	dir, err := os.MkdirTemp("", "ledger")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	rules := accounting.Rules{PeerTTL: 45 * time.Minute, SeedGap: 45 * time.Minute}
	db, err := logdb.Open(dir, rules, logdb.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	// The site's side: a member and a freeleech torrent.
	err = db.PutUser(ctx, accounting.User{ID: 42, Passkey: "0123456789abcdef0123456789abcdef", CanLeech: true, UpFactor: 100, DownFactor: 100})
	if err != nil {
		log.Fatal(err)
	}
	hash := tracker.InfoHash{0xab}
	if err := db.PutTorrent(ctx, accounting.Torrent{InfoHash: hash, UpFactor: 100, DownFactor: 0}); err != nil {
		log.Fatal(err)
	}

	// Two announces of the member's client, as a Ledger hands them over,
	// with the factors in force: the second is retried, and credited once.
	start := time.Now()
	announce := func(up, down, left int64, ev tracker.Event, at time.Time) accounting.Record {
		return accounting.Record{User: 42, InfoHash: hash, PeerID: tracker.PeerID{'-', 'q', 'B'}, Key: 7,
			Uploaded: up, Downloaded: down, Left: left, Event: ev, Time: at.UnixNano(),
			UpFactor: accounting.Factor(100, 100, 100), DownFactor: accounting.Factor(0, 100, 100)}
	}
	batch := []accounting.Record{
		announce(0, 0, 700<<20, tracker.EventStarted, start),
		announce(50<<20, 700<<20, 0, tracker.EventCompleted, start.Add(10*time.Minute)),
	}
	for range 2 {
		if err := db.Apply(ctx, batch); err != nil {
			log.Fatal(err)
		}
	}

	u, err := db.User(ctx, 42)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("uploaded %d MiB, downloaded %d MiB (%d MiB raw), %d snatch\n", u.Uploaded>>20, u.Downloaded>>20, u.RawDownloaded>>20, u.Snatches)
	// Output: uploaded 50 MiB, downloaded 0 MiB (700 MiB raw), 1 snatch
}
