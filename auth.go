package tracker

import (
	"context"
	"errors"
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
// return, and block only for what must be durable before the client hears
// back (a stopped session's last counters, a completion), within ctx. An
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
func AnyPasskey(vs ...PasskeyValidator) PasskeyValidator {
	return PasskeyFunc(func(ctx context.Context, passkey string) (Identity, error) {
		var first error
		for _, v := range vs {
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
	})
}

// AllTorrents returns a filter that serves a torrent only if every filter
// of fs does, such as an allow-list and a deny-list together. It returns
// the first refusal.
func AllTorrents(fs ...TorrentFilter) TorrentFilter {
	return TorrentFunc(func(ctx context.Context, h InfoHash, id Identity) error {
		for _, f := range fs {
			if err := f.AllowTorrent(ctx, h, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// AllClients returns a filter that admits a client only if every filter of
// fs does. It returns the first refusal.
func AllClients(fs ...ClientFilter) ClientFilter {
	return ClientFunc(func(ctx context.Context, id PeerID, userAgent string) error {
		for _, f := range fs {
			if err := f.AllowClient(ctx, id, userAgent); err != nil {
				return err
			}
		}
		return nil
	})
}
