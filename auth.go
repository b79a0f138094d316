package tracker

import (
	"context"
	"errors"
	"slices"
	"time"
)

// PasskeyValidator decides whether a passkey may use the tracker, and whose
// it is. It is how a site plugs in its users.
//
// ValidatePasskey returns the passkey's [Identity], or an error: an
// [*Error] (ErrInvalidPasskey, or one of the validator's own) is shown to
// the client; any other error (a database down) is logged and the client
// sees a generic failure. The passkey string may be kept. Implementations
// must be safe for concurrent use and should answer quickly: they run on
// every announce.
type PasskeyValidator interface {
	ValidatePasskey(ctx context.Context, passkey string) (Identity, error)
}

// PasskeyFunc adapts a function to [PasskeyValidator].
type PasskeyFunc func(ctx context.Context, passkey string) (Identity, error)

// ValidatePasskey calls f.
func (f PasskeyFunc) ValidatePasskey(ctx context.Context, passkey string) (Identity, error) {
	return f(ctx, passkey)
}

// TorrentFilter decides whether a torrent is served. AllowTorrent returns
// nil to serve it, or an error as for [PasskeyValidator]
// (ErrUnregisteredTorrent is the text clients understand). id is the
// announcer's identity, zero on a public tracker. Implementations must be
// safe for concurrent use.
//
// A hybrid torrent (BEP 52) is announced under two hashes, its v1 hash
// (SHA-1) and its v2 hash (SHA-256) truncated to 20 bytes, as two swarms:
// a filter that knows only the v1 hash refuses every v2 announce of the
// torrent, so a site should register both.
type TorrentFilter interface {
	AllowTorrent(ctx context.Context, h InfoHash, id Identity) error
}

// TorrentFunc adapts a function to [TorrentFilter].
type TorrentFunc func(ctx context.Context, h InfoHash, id Identity) error

// AllowTorrent calls f.
func (f TorrentFunc) AllowTorrent(ctx context.Context, h InfoHash, id Identity) error {
	return f(ctx, h, id)
}

// ClientFilter decides whether a client program may announce, from its peer
// id (whose first bytes name the program and version, such as "-qB4650-")
// and its User-Agent (empty over UDP). AllowClient returns nil or an error
// as for [PasskeyValidator]. Implementations must be safe for concurrent
// use.
type ClientFilter interface {
	AllowClient(ctx context.Context, id PeerID, userAgent string) error
}

// ClientFunc adapts a function to [ClientFilter].
type ClientFunc func(ctx context.Context, id PeerID, userAgent string) error

// AllowClient calls f.
func (f ClientFunc) AllowClient(ctx context.Context, id PeerID, userAgent string) error {
	return f(ctx, id, userAgent)
}

// Accounting keeps the ratio accounting of a private tracker: it is told
// about every announce of an identified user once the store has handled it.
// Account receives the request as the tracker normalized it (the address
// unmapped, NumWant resolved) and the reply as the store left it: the
// announcer's Identity and Outcome (what the store did: see [Outcome]), the
// swarm's counts; now is the time of the announce. Neither may be kept
// after Account returns: copy what is needed.
//
// Account is on the announce path: it should record the announce and
// return, and may block only for what must be durable before the client
// hears back (the start of a session, its last counters, a completion:
// events started, stopped and completed), within ctx. The UDP server calls
// it on its workers for those announces and on its readers for the
// others, which must not wait. An
// error fails the announce, as for [PasskeyValidator]; the peer stays as
// the store left it. Implementations must be safe for concurrent use.
type Accounting interface {
	Account(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse, now time.Time) error
}

// AnnounceFilter is implemented by an [Accounting] that decides about
// announces of identified users before the store sees them, from the whole
// request: a member allowed to seed but not to download, say.
// AllowAnnounce returns nil or an error as for [PasskeyValidator]. The
// tracker asks it after the passkey and the torrent filter, for announces
// whose Identity.UserID is not zero.
type AnnounceFilter interface {
	AllowAnnounce(ctx context.Context, req *AnnounceRequest, id Identity) error
}

// AnyPasskey returns a validator that tries vs in order and accepts a
// passkey as soon as one accepts it; for instance a [PasskeySet] of recent
// keys before a slower lookup in the site's database. If none accepts, it
// returns the first error that is not ErrInvalidPasskey (an outage should
// not read as a bad passkey), or ErrInvalidPasskey.
//
// The validator never blocks (see [NonBlocker]) if none of vs does. If
// some may, the UDP server still settles on its readers the passkeys that
// a validator placed before the first of those accepts, and hands only the
// others to its workers: put the in-memory validators first.
func AnyPasskey(vs ...PasskeyValidator) PasskeyValidator {
	a := &anyPasskey{vs: slices.Clone(vs)}
	for a.fast < len(a.vs) && !mayBlock(a.vs[a.fast]) {
		a.fast++
	}
	return a
}

// anyPasskey is the validator of AnyPasskey.
type anyPasskey struct {
	vs   []PasskeyValidator
	fast int // vs[:fast] never block
}

func (a *anyPasskey) ValidatePasskey(ctx context.Context, passkey string) (Identity, error) {
	var first error
	for _, v := range a.vs {
		id, err := v.ValidatePasskey(ctx, passkey)
		if err == nil {
			return id, nil
		}
		if first == nil && !errors.Is(err, ErrInvalidPasskey) {
			first = err
		}
	}
	if first != nil {
		return Identity{}, first
	}
	return Identity{}, ErrInvalidPasskey
}

func (a *anyPasskey) NonBlocking() bool { return a.fast == len(a.vs) }

// AllTorrents returns a filter that serves a torrent only if every filter
// of fs does, such as an allow-list and a deny-list together. It returns
// the first refusal. It never blocks (see [NonBlocker]) if none of fs does.
func AllTorrents(fs ...TorrentFilter) TorrentFilter {
	return &allTorrents{newEvery(fs)}
}

type allTorrents struct{ every[TorrentFilter] }

func (a *allTorrents) AllowTorrent(ctx context.Context, h InfoHash, id Identity) error {
	return a.first(func(f TorrentFilter) error { return f.AllowTorrent(ctx, h, id) })
}

// AllClients returns a filter that admits a client only if every filter of
// fs does. It returns the first refusal. It never blocks (see
// [NonBlocker]) if none of fs does.
func AllClients(fs ...ClientFilter) ClientFilter {
	return &allClients{newEvery(fs)}
}

type allClients struct{ every[ClientFilter] }

func (a *allClients) AllowClient(ctx context.Context, id PeerID, userAgent string) error {
	return a.first(func(f ClientFilter) error { return f.AllowClient(ctx, id, userAgent) })
}

// every is what AllTorrents and AllClients share: filters that must all
// admit, and whether none of them may block.
type every[F any] struct {
	fs          []F
	nonBlocking bool
}

func newEvery[F any](fs []F) every[F] {
	return every[F]{fs: slices.Clone(fs), nonBlocking: !slices.ContainsFunc(fs, func(f F) bool { return mayBlock(f) })}
}

// first returns the first refusal of the filters, each asked by allow.
func (e *every[F]) first(allow func(F) error) error {
	for _, f := range e.fs {
		if err := allow(f); err != nil {
			return err
		}
	}
	return nil
}

func (e *every[F]) NonBlocking() bool { return e.nonBlocking }
