package accounting_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/accountingtest"
	"github.com/annuaire/tracker/trackertest"
)

// bulkBackend is a memory backend that also puts users and torrents in
// bulk, and counts the calls.
type bulkBackend struct {
	accounting.Backend
	bulk atomic.Int64
}

func (b *bulkBackend) PutUsers(ctx context.Context, users []accounting.User) error {
	b.bulk.Add(1)
	for _, u := range users {
		if err := b.PutUser(ctx, u); err != nil {
			return err
		}
	}
	return nil
}

func (b *bulkBackend) PutTorrents(ctx context.Context, torrents []accounting.Torrent) error {
	b.bulk.Add(1)
	for _, t := range torrents {
		if err := b.PutTorrent(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

func TestAddUsersAndTorrents(t *testing.T) {
	for _, bulk := range []bool{false, true} {
		var b accounting.Backend = accounting.NewMemoryBackend(rules)
		bb := &bulkBackend{Backend: b}
		if bulk {
			b = bb
		}
		l, err := accounting.Open(ctx, b, accounting.Config{Logger: discard})
		if err != nil {
			t.Fatal(err)
		}
		user := func(id uint64, pk string) accounting.User {
			return accounting.User{ID: id, Passkey: pk, CanLeech: true, UpFactor: 100, DownFactor: 100}
		}
		// User 1 exists with other factors: adding it again leaves it.
		kept := user(1, accountingtest.Passkey(1))
		kept.UpFactor = 200
		if err := l.PutUser(ctx, kept); err != nil {
			t.Fatal(err)
		}
		n, err := l.AddUsers(ctx, []accounting.User{
			user(1, accountingtest.Passkey(11)), // id held
			user(2, accountingtest.Passkey(1)),  // passkey held
			user(3, accountingtest.Passkey(3)),
			user(3, accountingtest.Passkey(33)), // id earlier in the batch
			user(4, accountingtest.Passkey(3)),  // passkey earlier in the batch
			user(5, accountingtest.Passkey(5)),
		})
		if err != nil || n != 2 {
			t.Errorf("bulk %v: AddUsers = %d, %v; want 2 added", bulk, n, err)
		}
		for pk, want := range map[string]uint64{accountingtest.Passkey(1): 1, accountingtest.Passkey(3): 3, accountingtest.Passkey(5): 5, accountingtest.Passkey(11): 0, accountingtest.Passkey(33): 0} {
			id, err := l.ValidatePasskey(ctx, pk)
			if want == 0 && !errors.Is(err, tracker.ErrInvalidPasskey) || want != 0 && (err != nil || id.UserID != want) {
				t.Errorf("bulk %v: ValidatePasskey(%s) = %d, %v; want user %d", bulk, pk, id.UserID, err, want)
			}
		}
		if _, err := l.AddUsers(ctx, []accounting.User{user(6, accountingtest.Passkey(6)), user(7, "short")}); err == nil {
			t.Errorf("bulk %v: AddUsers with a bad passkey succeeded", bulk)
		} else if _, err := l.ValidatePasskey(ctx, accountingtest.Passkey(6)); err == nil {
			t.Errorf("bulk %v: AddUsers failed but added a user", bulk)
		}

		gone := trackertest.Hash(2)
		for _, tt := range []accounting.Torrent{{InfoHash: trackertest.Hash(1), UpFactor: 100}, {InfoHash: gone, UpFactor: 100, DownFactor: 100}} {
			if err := l.PutTorrent(ctx, tt); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.DeleteTorrent(ctx, gone, "dupe"); err != nil {
			t.Fatal(err)
		}
		n, err = l.AddTorrents(ctx, []accounting.Torrent{
			{InfoHash: trackertest.Hash(1), UpFactor: 100, DownFactor: 100},
			{InfoHash: gone, UpFactor: 100, DownFactor: 100},
			{InfoHash: trackertest.Hash(3), UpFactor: 100, DownFactor: 100},
			{InfoHash: trackertest.Hash(3), UpFactor: 100, DownFactor: 100},
		})
		if err != nil || n != 1 {
			t.Errorf("bulk %v: AddTorrents = %d, %v; want 1 added", bulk, n, err)
		}
		if err := l.AllowTorrent(ctx, gone, tracker.Identity{}); err == nil {
			t.Errorf("bulk %v: a deleted torrent was served again after AddTorrents", bulk)
		}
		if err := l.AllowTorrent(ctx, trackertest.Hash(3), tracker.Identity{}); err != nil {
			t.Errorf("bulk %v: AllowTorrent(added) = %v", bulk, err)
		}
		if tt, err := b.Torrent(ctx, trackertest.Hash(1)); err != nil || tt.InfoHash != trackertest.Hash(1) {
			t.Errorf("bulk %v: Torrent(1) = %+v, %v", bulk, tt, err)
		}
		if bulk && bb.bulk.Load() != 2 {
			t.Errorf("%d bulk calls; want 2", bb.bulk.Load())
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
