package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/accountingtest"
)

// TestBulkPut: PutUsers and PutTorrents put many users and torrents with
// one statement each, as PutUser and PutTorrent would, and fail whole.
func TestBulkPut(t *testing.T) {
	dsn := requireServer(t).DSN("postgres")
	b := openBackend(t, dsn, newSchema(), accountingtest.Rules)
	ctx := context.Background()
	var users []accounting.User
	var torrents []accounting.Torrent
	for i := range 1000 {
		users = append(users, accounting.User{ID: uint64(i + 1), Passkey: fmt.Sprintf("%032d", i), CanLeech: i%2 == 0, UpFactor: 100, DownFactor: uint16(i % 3 * 50)})
		torrents = append(torrents, accounting.Torrent{InfoHash: tracker.InfoHash{byte(i), byte(i >> 8), 1}, UpFactor: 200, DownFactor: 0})
	}
	if err := b.PutUsers(ctx, users); err != nil {
		t.Fatal(err)
	}
	if err := b.PutTorrents(ctx, torrents); err != nil {
		t.Fatal(err)
	}
	// Put again, changed: a replace, as PutUser's.
	users[7].UpFactor, torrents[7].Deleted, torrents[7].Reason = 300, true, "dupe"
	if err := b.PutUsers(ctx, users[5:10]); err != nil {
		t.Fatal(err)
	}
	if err := b.PutTorrents(ctx, torrents[5:10]); err != nil {
		t.Fatal(err)
	}
	gotU, gotT, _, err := b.Changes(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(gotU, func(a, b accounting.User) int { return int(a.ID) - int(b.ID) })
	if !slices.Equal(gotU, users) {
		t.Errorf("Changes(0) returned %d users, not those put", len(gotU))
	}
	number := func(t accounting.Torrent) int { return int(t.InfoHash[1])<<8 + int(t.InfoHash[0]) }
	slices.SortFunc(gotT, func(a, b accounting.Torrent) int { return number(a) - number(b) })
	if !slices.Equal(gotT, torrents) {
		t.Errorf("Changes(0) returned %d torrents, not those put", len(gotT))
	}

	// One bad user fails the whole call.
	bad := []accounting.User{{ID: 5000, Passkey: fmt.Sprintf("%032d", 5000), UpFactor: 100, DownFactor: 100}, {ID: 5001, Passkey: users[0].Passkey, UpFactor: 100, DownFactor: 100}}
	if err := b.PutUsers(ctx, bad); !errors.Is(err, accounting.ErrPasskeyInUse) {
		t.Errorf("PutUsers with a passkey in use = %v; want ErrPasskeyInUse", err)
	}
	if _, err := b.User(ctx, 5000); !errors.Is(err, accounting.ErrNotFound) {
		t.Errorf("user 5000 of the failed call: %v; want ErrNotFound", err)
	}
	var ve *accounting.ValidationError
	if err := b.PutTorrents(ctx, []accounting.Torrent{{UpFactor: accounting.MaxFactor + 1}}); !errors.As(err, &ve) {
		t.Errorf("PutTorrents with a factor above the maximum = %v; want a *ValidationError", err)
	}
	// Deleted users go.
	if err := b.PutUsers(ctx, []accounting.User{{ID: 1, Deleted: true}, {ID: 2, Deleted: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.User(ctx, 2); !errors.Is(err, accounting.ErrNotFound) {
		t.Errorf("user 2 after its deletion: %v; want ErrNotFound", err)
	}
	if err := b.PutUsers(ctx, nil); err != nil {
		t.Errorf("PutUsers(nil) = %v", err)
	}
	if err := b.PutTorrents(ctx, nil); err != nil {
		t.Errorf("PutTorrents(nil) = %v", err)
	}
}
