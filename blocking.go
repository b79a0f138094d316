package tracker

// What may block: the plug-ins that declare they never do, how the core
// tells which requests need one that may, and the deadline of those that
// do.

import (
	"context"
	"errors"
	"time"
)

// NonBlocker is an optional interface of a [PasskeyValidator],
// [TorrentFilter], [ClientFilter] or [Store]. (An [Accounting] may block
// for the announces whose facts must be durable before the reply, and for
// no other: the tracker knows which.) NonBlocking reports true
// when the plug-in answers from memory, without I/O, without calling
// another process and without waiting for anything but short critical
// sections: then the [UDPServer] calls it on its readers, between two
// datagrams. A plug-in that does not implement NonBlocker, or whose
// NonBlocking reports false, is presumed to block (on a database, a
// site's API, a remote store), and the UDP server hands the requests that
// need it to its workers ([UDPConfig.Workers]), so that it never holds up
// the datagrams behind.
//
// [PasskeySet], [TorrentList], [ClientList] and [MemoryStore] never
// block; [AnyPasskey], [AllTorrents] and [AllClients] never block when
// none of the plug-ins they combine does. The answer must not change over
// the plug-in's life: the tracker reads it once, in [New].
type NonBlocker interface {
	NonBlocking() bool
}

// mayBlock reports whether the plug-in v may block: whether it does not
// declare otherwise through NonBlocker.
func mayBlock(v any) bool {
	nb, ok := v.(NonBlocker)
	return !ok || !nb.NonBlocking()
}

// blocking records which of a tracker's plug-ins may block, as New found
// them.
type blocking struct {
	passkeys, torrents, clients, store, accounting bool
	// fastPasskeys, when Passkeys may block, holds the validators an
	// [AnyPasskey] tries before the first that may: a passkey one of them
	// accepts is settled without blocking.
	fastPasskeys []PasskeyValidator
}

func blockingOf(cfg *Config, store Store) blocking {
	b := blocking{
		passkeys: cfg.Passkeys != nil && mayBlock(cfg.Passkeys),
		torrents: cfg.Torrents != nil && mayBlock(cfg.Torrents),
		clients:  cfg.Clients != nil && mayBlock(cfg.Clients),
		store:    mayBlock(store),
		// An accounting waits for what must be durable before a reply,
		// and only for that (see Accounting): whether it says it never
		// blocks or not, since it may be the passkey validator too.
		accounting: cfg.Accounting != nil,
	}
	if a, ok := cfg.Passkeys.(*anyPasskey); ok && b.passkeys {
		b.fastPasskeys = a.vs[:a.fast]
	}
	return b
}

// any reports whether any plug-in may block.
func (b *blocking) any() bool {
	return b.passkeys || b.torrents || b.clients || b.store || b.accounting
}

// announce reports whether an announce may block. Only an announce with a
// passkey has a user to account, and the accounting waits only for
// started, stopped and completed.
func (b *blocking) announce(req *AnnounceRequest) bool {
	pk := req.Passkey != ""
	return b.store || b.torrents || b.clients || b.passkeys && pk || b.accounting && pk && mustPersist(req.Event)
}

// mustPersist reports whether an announce with event ev carries what an
// [Accounting] makes durable before the reply: the start of a session, its
// last counters, a completion.
func mustPersist(ev Event) bool {
	return ev == EventStarted || ev == EventStopped || ev == EventCompleted
}

// scrape reports whether a scrape may block. A scrape without a passkey
// either needs none (PublicScrape) or fails without calling the validator.
func (b *blocking) scrape(passkey bool) bool {
	return b.store || b.torrents || (b.passkeys && passkey)
}

// reqFlags tell the core how a front-end calls it.
type reqFlags uint8

const (
	// ipCheckedFlag: the front-end has charged the client address's rate
	// limit.
	ipCheckedFlag reqFlags = 1 << iota
	// noWait: the caller must not block (a UDP reader). The core returns
	// errWouldBlock instead of calling a plug-in that may block, before
	// anything the request changes (a rate limit, a counter, the store).
	noWait
)

// errWouldBlock is returned by the core to a caller that must not wait,
// for a request that needs a plug-in that may block. It is never counted
// nor shown to a client: the caller hands the request to a worker.
var errWouldBlock = errors.New("tracker: request would block")

// withDeadline returns ctx with the tracker's request deadline, unless it
// has none or ctx has an earlier one; the caller calls cancel if it is not
// nil. It allocates, so the core calls it only for requests that need a
// plug-in that may block.
func (t *Tracker) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	d := t.cfg.RequestTimeout
	if d <= 0 {
		return ctx, nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return ctx, nil
	}
	return context.WithTimeout(ctx, d)
}

// timedOut turns the failure of a request whose context has ended (its
// deadline passed, the caller gave up, the server is closing) into
// ErrBusy, unless a policy chose what the client reads: a plug-in cut
// short returns the context's error, which would otherwise read as an
// internal failure and be logged.
func timedOut(ctx context.Context, err error) error {
	if _, ok := clientError(err); !ok && ctx.Err() != nil {
		return ErrBusy
	}
	return err
}
