package accounting

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/annuaire/tracker"
)

// ErrPasskeyInUse is returned when a user is given a passkey that another
// user holds.
var ErrPasskeyInUse = errors.New("accounting: passkey already in use")

// A ValidationError reports a value a site gave that the Ledger refuses,
// such as a passkey of the wrong length or a factor over MaxFactor.
type ValidationError struct {
	Field  string // "passkey", "upload_factor", ...
	Reason string
}

func (e *ValidationError) Error() string {
	return "accounting: invalid " + e.Field + ": " + e.Reason
}

// PasskeyLen is the length of a passkey: letters and digits.
const PasskeyLen = 32

// MaxReasonLen is the longest reason a deleted torrent may carry, in
// bytes.
const MaxReasonLen = 200

// directory holds the users and torrents in memory, in shards, so that
// the announce path takes only a shard's read lock, which writers hold for
// one map operation.
type directory struct {
	seed     maphash.Seed
	passkeys [numShards]shard[string, *userEntry]
	users    [numShards]shard[uint64, *userEntry]
	torrents [numShards]shard[tracker.InfoHash, *torrentEntry]
	nUsers   atomic.Int64
	nTorrent atomic.Int64
}

const numShards = 64

type shard[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V
	_  [32]byte // with the lock and the map, a cache line each
}

func (s *shard[K, V]) get(k K) (V, bool) {
	s.mu.RLock()
	v, ok := s.m[k]
	s.mu.RUnlock()
	return v, ok
}

// put sets k to v and reports whether k is new.
func (s *shard[K, V]) put(k K, v V) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[K]V{}
	}
	_, had := s.m[k]
	s.m[k] = v
	return !had
}

// remove deletes k if keep(v) is false for its value, and reports whether
// it did.
func (s *shard[K, V]) remove(k K, keep func(V) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	if !ok || keep != nil && keep(v) {
		return false
	}
	delete(s.m, k)
	return true
}

// userEntry is a user as the announce path needs it. Entries are never
// changed once published: a change replaces the entry.
type userEntry struct {
	User
}

// torrentEntry is a registered torrent; refusal is what a deleted one
// answers.
type torrentEntry struct {
	up, down uint16
	refusal  *tracker.Error
}

func newDirectory() *directory { return &directory{seed: maphash.MakeSeed()} }

func (d *directory) passkeyShard(pk string) *shard[string, *userEntry] {
	return &d.passkeys[maphash.String(d.seed, pk)%numShards]
}

func (d *directory) userShard(id uint64) *shard[uint64, *userEntry] {
	return &d.users[id%numShards]
}

func (d *directory) torrentShard(h tracker.InfoHash) *shard[tracker.InfoHash, *torrentEntry] {
	return &d.torrents[(uint(h[0])|uint(h[19])<<8)%numShards]
}

func (d *directory) byPasskey(pk string) (*userEntry, bool) { return d.passkeyShard(pk).get(pk) }
func (d *directory) user(id uint64) (*userEntry, bool)      { return d.userShard(id).get(id) }
func (d *directory) torrent(h tracker.InfoHash) (*torrentEntry, bool) {
	return d.torrentShard(h).get(h)
}

// putUser publishes u, or removes it if u.Deleted. The old passkey stops
// working before putUser returns.
func (d *directory) putUser(u User) {
	old, had := d.user(u.ID)
	if u.Deleted {
		if d.userShard(u.ID).remove(u.ID, nil) {
			d.nUsers.Add(-1)
		}
	} else {
		e := &userEntry{User: u}
		d.passkeyShard(u.Passkey).put(u.Passkey, e)
		if d.userShard(u.ID).put(u.ID, e) {
			d.nUsers.Add(1)
		}
	}
	if had && (u.Deleted || old.Passkey != u.Passkey) {
		d.passkeyShard(old.Passkey).remove(old.Passkey, func(e *userEntry) bool { return e.ID != u.ID })
	}
}

func (d *directory) putTorrent(t Torrent) {
	e := &torrentEntry{up: t.UpFactor, down: t.DownFactor}
	if t.Deleted {
		e.refusal = tracker.ErrUnregisteredTorrent
		if t.Reason != "" {
			e.refusal = &tracker.Error{Kind: tracker.KindTorrent, Reason: tracker.ErrUnregisteredTorrent.Reason + ": " + t.Reason}
		}
	}
	if d.torrentShard(t.InfoHash).put(t.InfoHash, e) {
		d.nTorrent.Add(1)
	}
}

// refresh applies the changes the backend made since the last refresh.
func (l *Ledger) refresh(ctx context.Context) error {
	l.dirMu.Lock()
	defer l.dirMu.Unlock()
	users, torrents, v, err := l.b.Changes(ctx, l.version)
	if err != nil {
		return fmt.Errorf("accounting: reading users and torrents: %w", err)
	}
	for _, u := range users {
		if !u.Deleted {
			if e, ok := l.dir.byPasskey(u.Passkey); ok && e.ID != u.ID {
				l.log.Warn("accounting: two users hold one passkey; the later change wins", "user", u.ID, "other", e.ID)
			}
		}
		l.dir.putUser(u)
	}
	for _, t := range torrents {
		l.dir.putTorrent(t)
	}
	l.version = v
	return nil
}

func validPasskey(pk string) error {
	if len(pk) != PasskeyLen {
		return &ValidationError{"passkey", fmt.Sprintf("want %d letters and digits, have %d characters", PasskeyLen, len(pk))}
	}
	for i := range len(pk) {
		c := pk[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return &ValidationError{"passkey", "only letters and digits"}
		}
	}
	return nil
}

func validFactors(up, down uint16) error {
	if up > MaxFactor {
		return &ValidationError{"upload_factor", fmt.Sprintf("%d is over %d", up, MaxFactor)}
	}
	if down > MaxFactor {
		return &ValidationError{"download_factor", fmt.Sprintf("%d is over %d", down, MaxFactor)}
	}
	return nil
}

func validUser(u User) error {
	if u.ID == 0 {
		return &ValidationError{"id", "must not be zero"}
	}
	if err := validPasskey(u.Passkey); err != nil {
		return err
	}
	return validFactors(u.UpFactor, u.DownFactor)
}

func validTorrent(t Torrent) error {
	if t.InfoHash == (tracker.InfoHash{}) {
		return &ValidationError{"info_hash", "must not be zero"}
	}
	if err := validFactors(t.UpFactor, t.DownFactor); err != nil {
		return err
	}
	switch {
	case len(t.Reason) > MaxReasonLen:
		return &ValidationError{"reason", fmt.Sprintf("%d bytes, over %d", len(t.Reason), MaxReasonLen)}
	case !utf8.ValidString(t.Reason):
		return &ValidationError{"reason", "not UTF-8"}
	}
	for _, c := range t.Reason {
		if unicode.IsControl(c) {
			return &ValidationError{"reason", "control characters"}
		}
	}
	return nil
}

// PutUser creates or replaces a user; the change applies to the next
// announce. Its passkey must be PasskeyLen letters and digits, held by no
// other user (else ErrPasskeyInUse), and its factors at most MaxFactor;
// bad input is a *ValidationError. A user with Deleted set is deleted as
// by DeleteUser. Replacing a user keeps its totals and history; a new
// passkey takes over at once, and the old one stops working.
func (l *Ledger) PutUser(ctx context.Context, u User) error {
	if u.Deleted {
		return l.DeleteUser(ctx, u.ID)
	}
	return l.saveUser(ctx, u.ID, func(*userEntry) (User, error) { return u, nil })
}

// saveUser saves the user that change makes of user id's entry (nil for
// a user the Ledger does not know), under the directory's lock.
func (l *Ledger) saveUser(ctx context.Context, id uint64, change func(old *userEntry) (User, error)) error {
	l.dirMu.Lock()
	defer l.dirMu.Unlock()
	old, _ := l.dir.user(id)
	u, err := change(old)
	if err != nil {
		return err
	}
	if err := validUser(u); err != nil {
		return err
	}
	if e, ok := l.dir.byPasskey(u.Passkey); ok && e.ID != u.ID {
		return ErrPasskeyInUse
	}
	if err := l.b.PutUser(ctx, u); err != nil {
		return fmt.Errorf("accounting: saving user %d: %w", u.ID, err)
	}
	l.dir.putUser(u)
	return nil
}

// DeleteUser deletes a user: its passkey stops working at once. It
// returns ErrNotFound for a user the Ledger does not know.
func (l *Ledger) DeleteUser(ctx context.Context, id uint64) error {
	l.dirMu.Lock()
	defer l.dirMu.Unlock()
	if _, ok := l.dir.user(id); !ok {
		return fmt.Errorf("accounting: user %d: %w", id, ErrNotFound)
	}
	u := User{ID: id, Deleted: true}
	if err := l.b.PutUser(ctx, u); err != nil {
		return fmt.Errorf("accounting: deleting user %d: %w", id, err)
	}
	l.dir.putUser(u)
	return nil
}

// RotatePasskey gives a user a new passkey; the old one stops working at
// once. Errors are as for PutUser, and ErrNotFound for an unknown user.
func (l *Ledger) RotatePasskey(ctx context.Context, id uint64, passkey string) error {
	return l.saveUser(ctx, id, func(old *userEntry) (User, error) {
		if old == nil {
			return User{}, fmt.Errorf("accounting: user %d: %w", id, ErrNotFound)
		}
		u := old.User
		u.Passkey = passkey
		return u, nil
	})
}

// PutTorrent registers a torrent or changes its factors (at most
// MaxFactor; bad input is a *ValidationError); the change applies to the
// next announce. A torrent put with Deleted false is served again after a
// deletion.
func (l *Ledger) PutTorrent(ctx context.Context, t Torrent) error {
	if err := validTorrent(t); err != nil {
		return err
	}
	l.dirMu.Lock()
	defer l.dirMu.Unlock()
	if err := l.b.PutTorrent(ctx, t); err != nil {
		return fmt.Errorf("accounting: saving torrent %v: %w", t.InfoHash, err)
	}
	l.dir.putTorrent(t)
	return nil
}

// DeleteTorrent stops serving a torrent: its clients are told
// "unregistered torrent: " and reason (or just "unregistered torrent" if
// reason is empty), and its totals and history stay. It returns
// ErrNotFound for a torrent the Ledger does not know.
func (l *Ledger) DeleteTorrent(ctx context.Context, h tracker.InfoHash, reason string) error {
	t := Torrent{InfoHash: h, Deleted: true, Reason: reason}
	if err := validTorrent(t); err != nil {
		return err
	}
	l.dirMu.Lock()
	defer l.dirMu.Unlock()
	e, ok := l.dir.torrent(h)
	if !ok {
		return fmt.Errorf("accounting: torrent %v: %w", h, ErrNotFound)
	}
	t.UpFactor, t.DownFactor = e.up, e.down
	if err := l.b.PutTorrent(ctx, t); err != nil {
		return fmt.Errorf("accounting: deleting torrent %v: %w", h, err)
	}
	l.dir.putTorrent(t)
	return nil
}

// User returns a user's totals from the backend, or ErrNotFound. Records
// still in the buffer are not in them yet.
func (l *Ledger) User(ctx context.Context, id uint64) (UserTotals, error) {
	return l.b.User(ctx, id)
}

// UserTorrents returns a user's history from the backend, one row per
// torrent, or ErrNotFound.
func (l *Ledger) UserTorrents(ctx context.Context, id uint64) ([]History, error) {
	return l.b.UserTorrents(ctx, id)
}

// Torrent returns a torrent's totals from the backend, or ErrNotFound.
func (l *Ledger) Torrent(ctx context.Context, h tracker.InfoHash) (TorrentTotals, error) {
	return l.b.Torrent(ctx, h)
}
