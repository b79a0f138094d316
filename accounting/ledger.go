package accounting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/annuaire/tracker"
)

// Config configures a [Ledger]. The zero value works: no spool, and the
// defaults each field gives.
type Config struct {
	// Spool is the path of the spool file, where records go when the
	// buffer fills while the backend is down, and where announces that
	// must be durable (stopped, completed, started) are made so during an
	// outage. Its directory must exist; the file is created when needed
	// and removed once its records are applied. One Ledger per file. If
	// empty, there is no spool: during an outage such announces fail, and
	// so does every announce once the buffer is full.
	Spool string
	// BufferSize is the most records held in memory. If zero, 65,536.
	BufferSize int
	// BatchSize is the most records one Apply carries; a full batch is
	// flushed at once. If zero, 10,000, or BufferSize if that is smaller.
	BatchSize int
	// FlushInterval is the longest a record waits in the buffer. If zero,
	// 1 second.
	FlushInterval time.Duration
	// PollInterval is how often the Ledger reads back the users and
	// torrents the backend changed (a site writing its tables directly,
	// another tracker instance). If zero, 5 seconds; [tracker.Disabled]
	// never polls.
	PollInterval time.Duration
	// ApplyTimeout bounds one Apply. If zero, 30 seconds.
	ApplyTimeout time.Duration
	// MaxRetryDelay bounds the wait between two tries after a failed
	// Apply; the wait starts at a tenth of FlushInterval and doubles. If
	// zero, 10 seconds.
	MaxRetryDelay time.Duration
	// Logger receives flush failures and recoveries. If nil,
	// [slog.Default].
	Logger *slog.Logger
	// Shared says that other trackers apply records to the same backend
	// (several instances on one PostgreSQL database). An announce that
	// must be durable then waits until the backend applied its record:
	// the spool alone is not enough, because a record that waits in one
	// tracker's spool could reach the backend after the next session of
	// the same peer, announced to another tracker, and be credited
	// nothing. While the backend is failing, and while more than two
	// batches of records wait before theirs (the backlog of an outage,
	// being applied), such announces fail at once with ErrNotDurable
	// (their clients try again); the others are answered and wait in the
	// buffer and the spool as usual.
	Shared bool
}

// Errors of the announce path, as clients read them.
var (
	// ErrBacklogFull fails an announce when the buffer is full and the
	// records can go neither to the backend nor to the spool.
	ErrBacklogFull = &tracker.Error{Kind: tracker.KindInternal, Reason: "accounting backlog full, try again later", RetryIn: time.Minute}
	// ErrNotDurable fails an announce that must be durable before its
	// reply (stopped, completed, started) while neither the backend nor
	// the spool can take it. The record stays in the buffer: the client's
	// retry changes nothing.
	ErrNotDurable = &tracker.Error{Kind: tracker.KindInternal, Reason: "accounting unavailable, try again later", RetryIn: time.Minute}
	// ErrLeechingDisabled refuses an announce with something left to
	// download from a user whose CanLeech is false.
	ErrLeechingDisabled = &tracker.Error{Kind: tracker.KindOther, Reason: "downloading is disabled for your account: you may only seed"}
)

// ErrClosed is returned by a Ledger used after Close.
var ErrClosed = errors.New("accounting: ledger closed")

// A Ledger keeps the ratio accounting of a private tracker over a
// [Backend]. It is the tracker's [tracker.Accounting], and also its
// [tracker.AnnounceFilter], [tracker.PasskeyValidator] and
// [tracker.TorrentFilter]: give it as all four in [tracker.Config].
//
// Users and torrents are held in memory: read from the backend at Open,
// changed at once by the Ledger's own methods, and read back every
// PollInterval for changes made elsewhere. Announces are recorded in a
// bounded buffer that a flusher goroutine applies in batches; see the
// package documentation for what is durable when.
//
// A Ledger runs two goroutines, the flusher and the poller, which Close
// stops. Every method is safe for concurrent use.
type Ledger struct {
	b   Backend
	cfg Config
	log *slog.Logger
	dir *directory
	// global holds the site-wide factors: upload << 16 | download.
	global atomic.Uint32

	dirMu   sync.Mutex // serializes directory writes and refreshes
	version uint64     // the backend's version the directory reflects

	mu      sync.Mutex
	ring    []Record
	head, n int    // the records in memory: ring[head], then on, wrapping
	seq     uint64 // records ever appended; the last one's number
	safe    uint64 // every record numbered at most safe is applied or spooled
	applied uint64 // every record numbered at most applied is applied
	waitFor uint64 // the highest number an Account waits for
	flushTo uint64 // the highest number a Flush waits for
	spoolAt uint64 // the number of the first record in the spool
	wake    chan struct{}
	unsafe  bool // a flush failed and the records could not be spooled
	down    bool // the last Apply failed
	closed  bool
	spooled int // records in the spool
	stats   flushStats

	kick     chan struct{} // flush now
	closeReq chan context.Context
	closeRes chan error
	stopPoll chan struct{}
	wg       sync.WaitGroup
	cancel   context.CancelFunc // ends the flusher's Apply calls
	base     context.Context

	// The flusher's own.
	sp      *spool
	batch   []Record
	failing bool
	delay   time.Duration
	retryAt time.Time
}

// flushStats are the flusher's counters, under Ledger.mu.
type flushStats struct {
	applied, batches, errors uint64
	last                     time.Duration
	lastErr                  error
	lastApply                time.Time
	rate                     float64
	rateStart                time.Time
	rateBase                 uint64
}

const rateWindow = 10 * time.Second

// Stats is a snapshot of a Ledger's state.
type Stats struct {
	// Users and Torrents count the users and torrents held in memory
	// (deleted torrents included).
	Users, Torrents int
	// Backlog counts the records not applied yet, in memory and in the
	// spool; Spooled those in the spool.
	Backlog, Spooled int
	// Applied counts the records applied, in Batches successful Apply
	// calls.
	Applied, Batches uint64
	// RowsPerSecond is the rate records were applied at over the last ten
	// seconds or so.
	RowsPerSecond float64
	// FlushErrors counts failed Apply calls (and spool failures);
	// LastError is the last one, nil once a flush succeeds.
	FlushErrors uint64
	LastError   error
	// LastFlush is how long the last successful Apply took.
	LastFlush time.Duration
}

// Open loads the users and torrents of backend, applies what a spool left
// by a crash holds, and starts the Ledger. The Ledger owns backend from
// then on: Close closes it. If Open fails, backend is left open.
func Open(ctx context.Context, backend Backend, cfg Config) (*Ledger, error) {
	switch {
	case cfg.BufferSize == 0:
		cfg.BufferSize = 65_536
	case cfg.BufferSize < 0:
		return nil, fmt.Errorf("accounting: Config.BufferSize %d is negative", cfg.BufferSize)
	}
	switch {
	case cfg.BatchSize == 0:
		cfg.BatchSize = min(10_000, cfg.BufferSize)
	case cfg.BatchSize < 0 || cfg.BatchSize > cfg.BufferSize:
		return nil, fmt.Errorf("accounting: Config.BatchSize %d: want between 1 and BufferSize", cfg.BatchSize)
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = time.Second
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 30 * time.Second
	}
	if cfg.MaxRetryDelay == 0 {
		cfg.MaxRetryDelay = 10 * time.Second
	}
	if cfg.FlushInterval < 0 || cfg.ApplyTimeout < 0 || cfg.MaxRetryDelay < 0 {
		return nil, errors.New("accounting: Config intervals must not be negative")
	}
	l := &Ledger{
		b:        backend,
		cfg:      cfg,
		log:      cfg.Logger,
		dir:      newDirectory(),
		ring:     make([]Record, cfg.BufferSize),
		batch:    make([]Record, cfg.BatchSize),
		kick:     make(chan struct{}, 1),
		closeReq: make(chan context.Context),
		closeRes: make(chan error),
		stopPoll: make(chan struct{}),
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	l.global.Store(100<<16 | 100)
	if err := l.refresh(ctx); err != nil {
		return nil, err
	}
	if cfg.Spool != "" {
		sp, cut, err := openSpool(cfg.Spool)
		if err != nil {
			return nil, err
		}
		if cut > 0 {
			l.log.Warn("accounting: spool: dropped a torn write at its end, which no announce was told was safe", "records", cut)
		}
		// The spool's records come first: number them 1 to n.
		l.sp, l.spooled = sp, sp.pending()
		l.seq, l.safe, l.spoolAt, l.flushTo = uint64(l.spooled), uint64(l.spooled), 1, uint64(l.spooled)
		for l.spooled > 0 {
			if _, err := l.step(ctx); err != nil {
				sp.close()
				return nil, fmt.Errorf("accounting: applying the spool %s: %w", cfg.Spool, err)
			}
		}
	}
	l.base, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(2)
	go l.flusher()
	go l.poller()
	return l, nil
}

// RulesFor returns the Rules for a tracker configured with cfg: its
// peers' time to live, and a SeedGap of one and a half announce intervals
// (jitter included), with the tracker's defaults where cfg leaves a field
// zero. Every Ledger sharing a backend must use the same rules.
func RulesFor(cfg tracker.Config) Rules {
	interval := cfg.AnnounceInterval
	if interval == 0 {
		interval = 30 * time.Minute
	}
	jitter := cfg.IntervalJitter
	switch {
	case jitter == 0:
		jitter = interval / 10
	case jitter < 0:
		jitter = 0
	}
	minInterval := cfg.MinAnnounceInterval
	if minInterval == 0 {
		minInterval = interval / 2
	}
	ttl := cfg.Memory.PeerTTL
	if ttl == 0 {
		ttl = interval + jitter + minInterval
	}
	return Rules{PeerTTL: ttl, SeedGap: (interval + jitter) * 3 / 2}
}

// SetGlobalFactors sets the site-wide factors, in percent, at most
// MaxFactor: 100 and 0 make a site-wide freeleech, 200 and 100 a double
// upload event. They apply to the next announce, and are not kept across
// restarts. Both are 100 at Open.
func (l *Ledger) SetGlobalFactors(up, down uint16) error {
	if err := validFactors(up, down); err != nil {
		return err
	}
	l.global.Store(uint32(up)<<16 | uint32(down))
	return nil
}

// GlobalFactors returns the site-wide factors, in percent.
func (l *Ledger) GlobalFactors() (up, down uint16) {
	g := l.global.Load()
	return uint16(g >> 16), uint16(g)
}

// adminScrape marks the context of the admin API's scrapes, which the
// Ledger lets through as anonymous: a Go context value, which no client
// can send.
type adminScrape struct{}

// adminPasskey is the passkey the admin API scrapes with.
const adminPasskey = "admin-api"

// NonBlocking implements [tracker.NonBlocker]: as the passkey validator,
// the torrent filter and the announce filter, the Ledger answers from
// memory. (As the accounting, it waits for what must be durable, which the
// tracker knows.)
func (l *Ledger) NonBlocking() bool { return true }

// ValidatePasskey implements [tracker.PasskeyValidator]: a user's passkey
// is its Identity (with UserID set); any other is ErrInvalidPasskey.
func (l *Ledger) ValidatePasskey(ctx context.Context, passkey string) (tracker.Identity, error) {
	if e, ok := l.dir.byPasskey(passkey); ok {
		return tracker.Identity{UserID: e.ID, Value: e}, nil
	}
	if passkey == adminPasskey && ctx.Value(adminScrape{}) == l {
		return tracker.Identity{}, nil
	}
	return tracker.Identity{}, tracker.ErrInvalidPasskey
}

// AllowTorrent implements [tracker.TorrentFilter]: a torrent never
// registered is ErrUnregisteredTorrent; a deleted one is an *Error of
// KindTorrent whose reason is "unregistered torrent: " and the reason it
// was deleted for.
func (l *Ledger) AllowTorrent(ctx context.Context, h tracker.InfoHash, id tracker.Identity) error {
	e, ok := l.dir.torrent(h)
	if !ok {
		return tracker.ErrUnregisteredTorrent
	}
	if e.refusal != nil {
		return e.refusal
	}
	return nil
}

// userOf returns the user an identity names.
func (l *Ledger) userOf(id tracker.Identity) (*userEntry, bool) {
	if e, ok := id.Value.(*userEntry); ok && e.ID == id.UserID {
		return e, true
	}
	return l.dir.user(id.UserID)
}

// AllowAnnounce implements [tracker.AnnounceFilter]: a user whose
// CanLeech is false may announce with something left only to stop
// (ErrLeechingDisabled otherwise).
func (l *Ledger) AllowAnnounce(ctx context.Context, req *tracker.AnnounceRequest, id tracker.Identity) error {
	if u, ok := l.userOf(id); ok && !u.CanLeech && req.Left > 0 && req.Event != tracker.EventStopped {
		return ErrLeechingDisabled
	}
	return nil
}

// Account implements [tracker.Accounting]: it records the announce, with
// the factors in force, in the buffer and returns. An announce that
// starts a session, completes a download or stops a session returns once
// its record is applied or in the synced spool, or fails with ctx (one
// flush serves every announce waiting for it). It fails with
// ErrBacklogFull when the buffer is full and cannot be emptied, and with
// ErrNotDurable when a record that must be durable cannot be made so.
func (l *Ledger) Account(ctx context.Context, req *tracker.AnnounceRequest, resp *tracker.AnnounceResponse, now time.Time) error {
	var uf, df uint16 = 100, 100
	if u, ok := l.userOf(resp.Identity); ok {
		uf, df = u.UpFactor, u.DownFactor
	}
	var tf, tdf uint16 = 100, 100
	if t, ok := l.dir.torrent(req.InfoHash); ok {
		tf, tdf = t.up, t.down
	}
	g := l.global.Load()
	r := Record{
		User:       resp.Identity.UserID,
		InfoHash:   req.InfoHash,
		PeerID:     req.PeerID,
		Key:        req.Key,
		Addr:       req.Addr,
		Uploaded:   req.Uploaded,
		Downloaded: req.Downloaded,
		Left:       req.Left,
		Event:      req.Event,
		Time:       now.UnixNano(),
		UpFactor:   Factor(tf, uf, uint16(g>>16)),
		DownFactor: Factor(tdf, df, uint16(g)),
	}
	seq, err := l.append(ctx, &r)
	if err != nil {
		return err
	}
	switch req.Event {
	case tracker.EventStarted, tracker.EventCompleted, tracker.EventStopped:
		return l.waitSafe(ctx, seq)
	}
	return nil
}

// append adds r to the buffer and returns its number.
func (l *Ledger) append(ctx context.Context, r *Record) (uint64, error) {
	l.mu.Lock()
	for l.n == len(l.ring) && !l.closed {
		if l.unsafe {
			l.mu.Unlock()
			return 0, ErrBacklogFull
		}
		if err := l.wait(ctx, "waiting for room in the buffer"); err != nil {
			return 0, err
		}
	}
	if l.closed {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	i := l.head + l.n
	if i >= len(l.ring) {
		i -= len(l.ring)
	}
	l.ring[i] = *r
	l.n++
	l.seq++
	seq, n := l.seq, l.n
	l.mu.Unlock()
	if n == l.cfg.BatchSize {
		l.flushNow()
	}
	return seq, nil
}

// waitCh returns the channel closed at the next change waiters look for.
// The caller holds l.mu.
func (l *Ledger) waitCh() chan struct{} {
	if l.wake == nil {
		l.wake = make(chan struct{})
	}
	return l.wake
}

// wakeAll wakes every waiter. The caller holds l.mu.
func (l *Ledger) wakeAll() {
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
}

func (l *Ledger) flushNow() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// waitSafe waits until record seq is applied or spooled (applied, with
// Config.Shared).
func (l *Ledger) waitSafe(ctx context.Context, seq uint64) error {
	l.mu.Lock()
	for {
		switch {
		case l.safe >= seq && (!l.cfg.Shared || l.applied >= seq):
			l.mu.Unlock()
			return nil
		case l.unsafe, l.cfg.Shared && (l.down || seq-l.applied > uint64(2*l.cfg.BatchSize)):
			// With Config.Shared, a record behind more than two batches
			// (the backlog of an outage being applied) would hold its
			// announce, and the worker serving it, for seconds.
			l.mu.Unlock()
			return ErrNotDurable
		}
		l.waitFor = max(l.waitFor, seq)
		if err := l.wait(ctx, "waiting for the announce to be durable"); err != nil {
			return err
		}
	}
}

// Flush applies every record the Ledger holds when it is called, in
// memory and in the spool, and returns once they are applied or ctx ends.
// The flusher does this on its own; Flush is for a site that reads totals
// back at once, and for tests.
func (l *Ledger) Flush(ctx context.Context) error {
	l.mu.Lock()
	target := l.seq
	l.flushTo = max(l.flushTo, target)
	for l.applied < target {
		if l.closed {
			l.mu.Unlock()
			return ErrClosed
		}
		if err := l.wait(ctx, "flushing"); err != nil {
			return err
		}
	}
	l.mu.Unlock()
	return nil
}

// wait, called with l.mu held, asks for a flush and waits for the next
// change waiters look for (records made safe or applied, room made, a
// failure). It returns with l.mu held again, or, when ctx ends first,
// without it and with an error that names what was awaited.
func (l *Ledger) wait(ctx context.Context, what string) error {
	ch := l.waitCh()
	l.mu.Unlock()
	l.flushNow()
	select {
	case <-ch:
		l.mu.Lock()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("accounting: %s: %w", what, ctx.Err())
	}
}

// Stats returns a snapshot of the Ledger's state.
func (l *Ledger) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := &l.stats
	s := Stats{
		Users:       int(l.dir.nUsers.Load()),
		Torrents:    int(l.dir.nTorrent.Load()),
		Backlog:     l.n + l.spooled,
		Spooled:     l.spooled,
		Applied:     st.applied,
		Batches:     st.batches,
		FlushErrors: st.errors,
		LastError:   st.lastErr,
		LastFlush:   st.last,
	}
	if time.Since(st.lastApply) < 2*rateWindow {
		s.RowsPerSecond = st.rate
	}
	return s
}

// Close stops the Ledger: it applies every record (or, when ctx ends
// first, spools what remains), stops its goroutines, and closes the
// backend. It returns an error if records could be neither applied nor
// spooled. Later announces fail with ErrClosed. Close the tracker's
// front-ends first.
func (l *Ledger) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	l.wakeAll() // announces waiting for room
	l.mu.Unlock()
	close(l.stopPoll)
	stop := context.AfterFunc(ctx, l.cancel)
	l.closeReq <- ctx
	err := <-l.closeRes
	stop()
	l.cancel()
	l.wg.Wait()
	if l.sp != nil {
		err = errors.Join(err, l.sp.close())
	}
	return errors.Join(err, l.b.Close())
}

func (l *Ledger) poller() {
	defer l.wg.Done()
	if l.cfg.PollInterval < 0 {
		<-l.stopPoll
		return
	}
	t := time.NewTicker(l.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stopPoll:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(l.base, l.cfg.ApplyTimeout)
		if err := l.refresh(ctx); err != nil {
			l.log.Error(err.Error())
		}
		cancel()
	}
}

func (l *Ledger) flusher() {
	defer l.wg.Done()
	t := time.NewTimer(l.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-l.kick:
		case ctx := <-l.closeReq:
			l.closeRes <- l.drain(ctx)
			return
		}
		l.flush()
		next := l.cfg.FlushInterval
		if l.failing {
			next = min(next, max(time.Until(l.retryAt), time.Millisecond))
		}
		t.Reset(next)
	}
}

// flush applies batches while there is a full one, a waiting announce or
// spooled records, and spools when the backend fails.
func (l *Ledger) flush() {
	for {
		if l.failing && time.Now().Before(l.retryAt) {
			l.spill(false)
			return
		}
		n, err := l.step(l.base)
		if err != nil {
			l.spill(false)
			return
		}
		l.mu.Lock()
		catchingUp := l.spooled > 0
		more := catchingUp || l.n >= l.cfg.BatchSize || l.waitFor > l.safe || l.flushTo > l.applied
		l.mu.Unlock()
		if catchingUp {
			// The spool goes first, and applying it after an outage
			// takes a while: the records arriving meanwhile follow it
			// there once the buffer is half full, rather than fill the
			// buffer and hold up the announces that add to it.
			l.spill(false)
		}
		if n == 0 || !more {
			return
		}
	}
}

// drain applies everything, within ctx, for Close; what remains when ctx
// ends goes to the spool.
func (l *Ledger) drain(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for ctx.Err() == nil {
		if l.failing {
			t.Reset(time.Until(l.retryAt))
			select {
			case <-t.C:
			case <-ctx.Done():
				continue
			}
		}
		n, err := l.step(ctx)
		if err == nil && n == 0 {
			return nil
		}
	}
	l.spill(true)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unsafe = true
	l.wakeAll()
	if l.n > 0 {
		return fmt.Errorf("accounting: closing: %d records neither applied nor spooled: %w", l.n, ctx.Err())
	}
	return nil
}

// step applies one batch: from the spool while it holds records, else
// from the buffer. It returns how many records it applied.
func (l *Ledger) step(ctx context.Context) (int, error) {
	var batch []Record
	var fromSpool bool
	var first uint64
	l.mu.Lock()
	switch {
	case l.spooled > 0:
		fromSpool = true
	case l.n > 0:
		k := min(l.n, len(l.batch), len(l.ring)-l.head)
		first = l.seq - uint64(l.n) + 1
		l.mu.Unlock()
		// The flusher alone moves head, and appends write past the end:
		// these slots stay as they are while it reads them.
		batch = l.batch[:k]
		copy(batch, l.ring[l.head:l.head+k])
		l.mu.Lock()
	}
	l.mu.Unlock()
	if fromSpool {
		var err error
		if batch, err = l.sp.next(l.batch); err != nil {
			l.failed(err)
			return 0, err
		}
	}
	if len(batch) == 0 {
		return 0, nil
	}
	actx, cancel := context.WithTimeout(ctx, l.cfg.ApplyTimeout)
	start := time.Now()
	err := l.b.Apply(actx, batch)
	took := time.Since(start)
	cancel()
	if err != nil {
		l.failed(fmt.Errorf("accounting: applying %d records: %w", len(batch), err))
		return 0, err
	}
	var spErr error
	if fromSpool {
		spErr = l.sp.commit(len(batch))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := len(batch)
	if fromSpool {
		l.spooled -= k
		l.applied = l.spoolAt + uint64(k) - 1
		l.spoolAt += uint64(k)
	} else {
		l.head += k
		if l.head == len(l.ring) {
			l.head = 0
		}
		l.n -= k
		l.safe = max(l.safe, first+uint64(k)-1)
		l.applied = first + uint64(k) - 1
	}
	if l.failing {
		l.log.Info("accounting: the backend takes records again", "failures", l.stats.errors)
	}
	l.failing, l.unsafe, l.down, l.delay = false, false, false, 0
	st := &l.stats
	st.applied += uint64(k)
	st.batches++
	st.last, st.lastErr, st.lastApply = took, nil, start.Add(took)
	if st.rateStart.IsZero() {
		st.rateStart, st.rateBase = start, st.applied-uint64(k)
	}
	if el := st.lastApply.Sub(st.rateStart); el >= rateWindow {
		st.rate = float64(st.applied-st.rateBase) / el.Seconds()
		st.rateStart, st.rateBase = st.lastApply, st.applied
	}
	if spErr != nil {
		// The records are applied; the spool could not be cut. Applied
		// again from it later, they change nothing.
		st.errors++
		st.lastErr = spErr
		l.log.Error(spErr.Error())
	}
	l.wakeAll()
	return k, nil
}

// failed records a failure and sets the next try.
func (l *Ledger) failed(err error) {
	l.delay = min(max(2*l.delay, l.cfg.FlushInterval/10, time.Millisecond), l.cfg.MaxRetryDelay)
	l.retryAt = time.Now().Add(l.delay)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.failing {
		l.log.Error("accounting: flush failed; records wait in memory and in the spool", "err", err, "backlog", l.n+l.spooled)
	}
	l.failing, l.down = true, true
	l.stats.errors++
	l.stats.lastErr = err
	l.wakeAll() // with Config.Shared, durable announces fail now
}

// spill moves the records in memory to the spool, when some wait to be
// durable, the buffer is half full, or all is set; without a spool, or
// when it fails, it marks the Ledger unsafe so that waiting announces
// fail rather than hang.
func (l *Ledger) spill(all bool) {
	l.mu.Lock()
	need := all || l.waitFor > l.safe || l.n >= len(l.ring)/2
	k, first := l.n, l.seq-uint64(l.n)+1
	if !need || k == 0 {
		l.mu.Unlock()
		return
	}
	if l.sp == nil {
		l.unsafe = true
		l.wakeAll()
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	var err error
	for done := 0; done < k && err == nil; {
		i := l.head // commitSpill moves it
		m := min(k-done, len(l.ring)-i)
		err = l.sp.append(l.ring[i : i+m])
		if err == nil {
			l.commitSpill(m, first+uint64(done+m)-1)
			done += m
		}
	}
	if err != nil {
		l.mu.Lock()
		l.unsafe = true
		l.stats.errors++
		l.stats.lastErr = err
		l.wakeAll()
		l.mu.Unlock()
		l.log.Error("accounting: the spool cannot be written: announces that must be durable fail, and all of them once the buffer is full", "err", err)
	}
}

// commitSpill drops the first m records from memory, now in the spool;
// last is the number of the last of them.
func (l *Ledger) commitSpill(m int, last uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.head = (l.head + m) % len(l.ring)
	l.n -= m
	if l.spooled == 0 {
		l.spoolAt = last - uint64(m) + 1
	}
	l.spooled += m
	l.safe = max(l.safe, last)
	l.unsafe = false
	l.wakeAll()
}
