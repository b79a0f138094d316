package accounting

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/annuaire/tracker"
)

// A Backend keeps the ledger durably: the baselines, the totals, the
// history and the snatches, and the users and torrents of the site. The
// embedded database and PostgreSQL backends live in modules of their own;
// [NewMemoryBackend] is one for tests. Package accountingtest holds the
// conformance suite every backend runs against itself.
//
// A backend is made with the [Rules] of the tracker it serves (every
// instance sharing a backend must use the same). Implementations must be
// safe for concurrent use. Errors other than
// [ErrNotFound] are failures of the backend (a database down): the Ledger
// keeps the records and tries again.
type Backend interface {
	Journal
	Directory
	Reports
	io.Closer
}

// Journal applies announces.
type Journal interface {
	// Apply applies the records of batch, in order, in one transaction:
	// for each, it reads the baseline of its (user, torrent, peer id),
	// applies [Credit] with the backend's [Rules], stores the new baseline, and adds the
	// delta to the user's totals, the torrent's totals and the user's
	// history on the torrent, and records a snatch once per user and
	// torrent. All of it is durable when Apply returns nil. Applied
	// twice, a batch changes nothing the second time; so a backend may
	// split a batch into transactions by user (each holding all of a
	// user's records, in order), and, when Apply fails, have committed
	// some of them: the Ledger applies the batch again.
	Apply(ctx context.Context, batch []Record) error
}

// Directory holds the site's users and torrents.
type Directory interface {
	// PutUser creates or replaces a user; a user with Deleted set is
	// removed.
	PutUser(ctx context.Context, u User) error
	// PutTorrent creates or replaces a torrent; a torrent with Deleted
	// set stays, so that clients learn its Reason.
	PutTorrent(ctx context.Context, t Torrent) error
	// Changes returns the users and torrents changed since version (all of
	// them for version 0), and the version to ask from next time. Every
	// change the backend makes, or a site makes in its tables, raises the
	// version.
	Changes(ctx context.Context, since uint64) (users []User, torrents []Torrent, version uint64, err error)
}

// Reports reads the ledger back.
type Reports interface {
	// User returns a user's totals, or ErrNotFound.
	User(ctx context.Context, id uint64) (UserTotals, error)
	// UserTorrents returns a user's history, one row per torrent it
	// announced, or ErrNotFound for an unknown user.
	UserTorrents(ctx context.Context, id uint64) ([]History, error)
	// Torrent returns a torrent's totals, or ErrNotFound.
	Torrent(ctx context.Context, h tracker.InfoHash) (TorrentTotals, error)
}

// ErrNotFound is returned for a user or torrent the backend does not hold.
var ErrNotFound = errors.New("accounting: not found")

// User is a member of the site.
type User struct {
	ID uint64
	// Passkey is the secret in the member's announce URL: 32 characters.
	Passkey string
	// CanLeech is false for a member who may seed but not download.
	CanLeech bool
	// UpFactor and DownFactor are the member's own factors, in percent
	// (100 counts bytes as they are), at most MaxFactor.
	UpFactor, DownFactor uint16
	// Deleted removes the member (in PutUser) or says it was removed (in
	// Changes).
	Deleted bool
}

// Torrent is a torrent the site serves, registered under one info hash (a
// hybrid torrent is registered under its v1 and its v2 hash).
type Torrent struct {
	InfoHash tracker.InfoHash
	// UpFactor and DownFactor are the torrent's factors, in percent, at
	// most MaxFactor: freeleech is DownFactor 0, a neutral torrent has
	// both 0, double upload is UpFactor 200.
	UpFactor, DownFactor uint16
	// Deleted makes the tracker refuse the torrent with "unregistered
	// torrent: " and Reason.
	Deleted bool
	Reason  string
}

// MaxFactor is the largest factor, in percent.
const MaxFactor = 1000

// UserTotals are a member's totals, in bytes.
type UserTotals struct {
	ID uint64
	// Uploaded and Downloaded are credited: factors applied.
	Uploaded, Downloaded int64
	// RawUploaded and RawDownloaded are as the member's clients reported.
	RawUploaded, RawDownloaded int64
	// Snatches counts the torrents the member completed.
	Snatches int64
	// Seeding and Leeching count the member's peers that announced within
	// Rules.PeerTTL and did not stop.
	Seeding, Leeching int64
}

// TorrentTotals are a torrent's totals.
type TorrentTotals struct {
	InfoHash tracker.InfoHash
	// Snatches counts the members who completed the torrent.
	Snatches int64
	// Uploaded and Downloaded are the credits of every member on it.
	Uploaded, Downloaded int64
	// Seeders and Leechers count the peers that announced within
	// Rules.PeerTTL and did not stop.
	Seeders, Leechers int64
}

// History is what one member did on one torrent.
type History struct {
	InfoHash                   tracker.InfoHash
	Uploaded, Downloaded       int64 // credited
	RawUploaded, RawDownloaded int64
	SeedTime                   time.Duration
	FirstSeen, LastSeen        time.Time
	// CompletedAt is when the member completed the torrent; zero if it
	// has not.
	CompletedAt time.Time
	// Active is true while one of the member's peers on the torrent
	// announced within Rules.PeerTTL and did not stop.
	Active bool
}
