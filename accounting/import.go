package accounting

import (
	"context"
	"fmt"

	"github.com/annuaire/tracker"
)

// A BulkDirectory is a [Directory] that puts many users or torrents at
// once faster than one at a time: one sync for all of them, say. A
// Backend may implement it; [Ledger.AddUsers] and [Ledger.AddTorrents]
// use it when it does.
type BulkDirectory interface {
	// PutUsers puts each of users as PutUser does. When it fails, any of
	// them may have been put.
	PutUsers(ctx context.Context, users []User) error
	// PutTorrents puts each of torrents as PutTorrent does. When it
	// fails, any of them may have been put.
	PutTorrents(ctx context.Context, torrents []Torrent) error
}

// AddUsers registers the users the Ledger does not hold yet, for a site
// that imports its members in bulk: a user whose id the Ledger holds, or
// whose passkey another user holds (or an earlier user of users), is left
// as it is. It returns how many users it added. Every user must be valid
// as for PutUser, and not Deleted; otherwise AddUsers adds none and
// returns a *ValidationError. When the backend fails, some of the users
// may have been added; the Ledger reads them back at its next poll.
func (l *Ledger) AddUsers(ctx context.Context, users []User) (int, error) {
	for i, u := range users {
		err := validUser(u)
		if err == nil && u.Deleted {
			err = &ValidationError{"deleted", "a user to add cannot be deleted"}
		}
		if err != nil {
			return 0, fmt.Errorf("accounting: user %d (number %d of %d): %w", u.ID, i+1, len(users), err)
		}
	}
	l.dirMu.Lock()
	defer l.dirMu.Unlock()
	ids := make(map[uint64]bool, len(users))
	passkeys := make(map[string]bool, len(users))
	var add []User
	for _, u := range users {
		if _, ok := l.dir.user(u.ID); ok || ids[u.ID] {
			continue
		}
		if _, ok := l.dir.byPasskey(u.Passkey); ok || passkeys[u.Passkey] {
			continue
		}
		ids[u.ID], passkeys[u.Passkey] = true, true
		add = append(add, u)
	}
	return putAll(ctx, add, l.b.PutUser, bulkUsers(l.b), l.dir.putUser, "users", func(u User) string {
		return fmt.Sprintf("user %d", u.ID)
	})
}

// AddTorrents registers the torrents the Ledger does not hold yet (a
// deleted torrent counts as held: it stays deleted), for a site that
// imports its torrents in bulk. It returns how many it added. Every
// torrent must be valid as for PutTorrent, and not Deleted; otherwise
// AddTorrents adds none and returns a *ValidationError. When the backend
// fails, some of the torrents may have been added; the Ledger reads them
// back at its next poll.
func (l *Ledger) AddTorrents(ctx context.Context, torrents []Torrent) (int, error) {
	for i, t := range torrents {
		err := validTorrent(t)
		if err == nil && t.Deleted {
			err = &ValidationError{"deleted", "a torrent to add cannot be deleted"}
		}
		if err != nil {
			return 0, fmt.Errorf("accounting: torrent %v (number %d of %d): %w", t.InfoHash, i+1, len(torrents), err)
		}
	}
	l.dirMu.Lock()
	defer l.dirMu.Unlock()
	seen := make(map[tracker.InfoHash]bool, len(torrents))
	var add []Torrent
	for _, t := range torrents {
		if _, ok := l.dir.torrent(t.InfoHash); ok || seen[t.InfoHash] {
			continue
		}
		seen[t.InfoHash] = true
		add = append(add, t)
	}
	return putAll(ctx, add, l.b.PutTorrent, bulkTorrents(l.b), l.dir.putTorrent, "torrents", func(t Torrent) string {
		return fmt.Sprintf("torrent %v", t.InfoHash)
	})
}

// bulkUsers and bulkTorrents return the bulk put of b, or nil when b is
// not a BulkDirectory.
func bulkUsers(b Backend) func(context.Context, []User) error {
	if bd, ok := b.(BulkDirectory); ok {
		return bd.PutUsers
	}
	return nil
}

func bulkTorrents(b Backend) func(context.Context, []Torrent) error {
	if bd, ok := b.(BulkDirectory); ok {
		return bd.PutTorrents
	}
	return nil
}

// putAll puts rows into the backend, all at once with bulk when there is
// one, else one at a time with put, and records each row put in the
// Ledger's directory with record. It returns how many rows were put;
// kind names the rows and name one row in errors.
func putAll[T any](ctx context.Context, rows []T, put func(context.Context, T) error, bulk func(context.Context, []T) error, record func(T), kind string, name func(T) string) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	if bulk != nil {
		if err := bulk(ctx, rows); err != nil {
			return 0, fmt.Errorf("accounting: adding %d %s: %w", len(rows), kind, err)
		}
		for _, r := range rows {
			record(r)
		}
		return len(rows), nil
	}
	for i, r := range rows {
		if err := put(ctx, r); err != nil {
			return i, fmt.Errorf("accounting: adding %s: %w", name(r), err)
		}
		record(r)
	}
	return len(rows), nil
}
