// Package logdb is the embedded durable backend of the accounting ledger:
// an [accounting.Backend] in a directory of its own, in pure Go, with no
// server to run.
//
// The ledger lives in memory, in tables of fixed-size rows outside the Go
// heap (about 350 bytes per member with one peer, see the README for
// figures). Every transaction (an Apply batch, a PutUser, a PutTorrent) is
// appended to a log file as one checksummed frame and synced (one fsync)
// before it is applied in memory and before the call returns. When the
// log has grown past the last snapshot's size, the ledger is written to a
// new snapshot and a new log begins. Opening the database reads the
// snapshot and replays the logs after it; a frame cut short by a crash is
// dropped, and what it held was never acknowledged.
//
// Apply credits records as [accounting.Credit] says, against the
// baselines in memory, so a batch applied twice changes nothing the second
// time. One process at a time opens a database: a second [Open] fails
// with [ErrLocked].
package logdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
)

// Errors of Open and of a database.
var (
	// ErrLocked is returned by Open when another process (or another DB
	// in this one) has the database open.
	ErrLocked = errors.New("logdb: database in use by another process")
	// ErrSchema is returned by Open for files written by a newer version
	// of this package.
	ErrSchema = errors.New("logdb: database written by a newer version")
	// ErrCorrupt is returned by Open for damaged files.
	ErrCorrupt = errors.New("logdb: database damaged")
	// ErrClosed is returned by the methods of a closed DB.
	ErrClosed = errors.New("logdb: database closed")
)

// Options tune a database. The zero value is the default.
type Options struct {
	// SnapshotBytes is the size of log past which the ledger is written
	// to a new snapshot: Open replays the log since the last snapshot, in
	// time proportional to its size. If zero, the size of the last
	// snapshot, at least 64 MiB.
	SnapshotBytes int64
	// Now tells the time to the reports, which count the peers that
	// announced within Rules.PeerTTL. If nil, time.Now.
	Now func() time.Time
}

// DB is a ledger in a directory. Its methods are safe for concurrent use;
// transactions are applied one at a time, reports read concurrently.
type DB struct {
	dir   string
	rules accounting.Rules
	opts  Options
	lock  *os.File

	mu       sync.Mutex // held by transactions and snapshots
	log      *os.File   // the current log
	gen      uint64     // its generation
	logSize  int64
	buf      []byte
	recs     []accounting.Record
	finish   sync.WaitGroup // the goroutine writing a snapshot
	writing  atomic.Bool    // a snapshot is being written
	progress chan struct{}  // a token after each block a snapshot writes

	snapMu    sync.Mutex
	snapStats Stats // the Snapshot fields
	closed    bool
	broken    error // a log write that could not be undone: reopen

	smu     sync.RWMutex // guards st
	st      *state
	stats   Stats // Commits
	records atomic.Int64
}

var (
	_ accounting.Backend       = (*DB)(nil)
	_ accounting.BulkDirectory = (*DB)(nil)
)

// Stats are a database's counters.
type Stats struct {
	// Commits counts the syncs of the log, each of which made one
	// transaction durable (several for PutUsers and PutTorrents).
	Commits int64
	// Records counts the records applied.
	Records int64
	// LogBytes is the size of the log since the last snapshot.
	LogBytes int64
	// Snapshots counts the snapshots written since Open; SnapshotBytes
	// is the size of the last one and SnapshotTime how long it took to
	// write (transactions go on meanwhile).
	Snapshots     int64
	SnapshotBytes int64
	SnapshotTime  time.Duration
	// SnapshotWait is how long transactions waited, in all, for a
	// snapshot that held too many rows as they were (the disk being slow).
	SnapshotWait time.Duration
	// SnapshotErr is the last snapshot's failure; nil once one succeeds.
	SnapshotErr error
	// Users, Torrents, Histories and Baselines count the rows.
	Users, Torrents, Histories, Baselines int
	// MemoryBytes is the memory the tables hold, outside the Go heap.
	MemoryBytes int64
}

// Open opens the database in directory path, creating it if need be.
// rules are the tracker's: they apply to every record applied until
// Close, and the logs keep them, so that a replay credits what was
// credited.
func Open(path string, rules accounting.Rules, opts Options) (*DB, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("logdb: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(path, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("logdb: %w", err)
	}
	if err := lockFile(lock); err != nil {
		lock.Close()
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("logdb: locking %s: %w", path, err)
	}
	db := &DB{dir: path, rules: rules, opts: opts, lock: lock, buf: make([]byte, 8, 64<<10), progress: make(chan struct{}, 1)}
	if err := db.load(); err != nil {
		if db.st != nil {
			db.st.free()
		}
		lock.Close()
		return nil, fmt.Errorf("logdb: opening %s: %w", path, err)
	}
	return db, nil
}

// load reads the snapshot, replays the logs after it, and starts a log.
func (db *DB) load() error {
	os.Remove(filepath.Join(db.dir, snapTmpName))
	f, err := os.Open(filepath.Join(db.dir, snapName))
	var next uint64 = 1
	switch {
	case errors.Is(err, os.ErrNotExist):
		gens, err := logGens(db.dir)
		if err != nil {
			return err
		}
		if len(gens) > 0 {
			return fmt.Errorf("%w: logs without a snapshot", ErrCorrupt)
		}
		// A new database: its first snapshot, in place before any log,
		// records the schema version.
		db.st = newState(db.rules)
		hdr := db.st.freeze(next)
		_, err = db.installSnapshot(hdr)
		db.st.thaw()
		if err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		info, err := f.Stat()
		if err == nil {
			db.snapStats.SnapshotBytes = info.Size()
			db.st, next, err = readSnapshot(f, db.rules)
		}
		f.Close()
		if err != nil {
			return err
		}
	}
	gens, err := logGens(db.dir)
	if err != nil {
		return err
	}
	var live []uint64 // the logs after the snapshot
	for _, g := range gens {
		if g < next {
			os.Remove(filepath.Join(db.dir, logName(g)))
			continue
		}
		if g != next+uint64(len(live)) {
			return fmt.Errorf("%w: log %d missing", ErrCorrupt, next+uint64(len(live)))
		}
		live = append(live, g)
	}
	frames := 0
	for i, g := range live {
		_, n, err := replayLog(db.dir, g, i == len(live)-1, func(rules accounting.Rules, payload []byte) error {
			db.st.rules = rules
			return db.st.applyPayload(payload, &db.recs)
		})
		if err != nil {
			return err
		}
		frames += n
	}
	db.st.rules = db.rules
	if frames > 0 {
		// What the logs held goes into a snapshot, written while the
		// database serves, and a new log begins.
		return db.snapshot(next + uint64(len(live)))
	}
	for _, g := range live {
		os.Remove(filepath.Join(db.dir, logName(g)))
	}
	return db.startLog(next)
}

func (db *DB) startLog(gen uint64) error {
	f, err := createLog(db.dir, gen, db.rules)
	if err != nil {
		return err
	}
	if db.log != nil {
		db.log.Close()
	}
	db.log, db.gen, db.logSize = f, gen, logHeaderSize
	return nil
}

// writeSnapshot writes the ledger to a new snapshot that log generation
// next follows, starts that log, and removes the older ones, all before
// returning.
func (db *DB) writeSnapshot(next uint64) error {
	if err := db.snapshot(next); err != nil {
		return err
	}
	db.finish.Wait()
	db.snapMu.Lock()
	defer db.snapMu.Unlock()
	return db.snapStats.SnapshotErr
}

// snapshot freezes the ledger and starts log generation next; then, while
// transactions go on, a goroutine writes the rows as they were to
// snapshot.tmp, syncs it, renames it into place and removes the logs it
// covers. db.mu is held (or db is not yet shared).
func (db *DB) snapshot(next uint64) error {
	db.finish.Wait() // the previous snapshot is done
	start := time.Now()
	db.smu.Lock()
	hdr := db.st.freeze(next)
	db.smu.Unlock()
	if err := db.startLog(next); err != nil {
		db.smu.Lock()
		db.st.thaw()
		db.smu.Unlock()
		db.setSnapshotResult(0, 0, err)
		return err
	}
	pause := time.Since(start)
	db.writing.Store(true)
	db.finish.Go(func() {
		size, err := db.installSnapshot(hdr)
		if err == nil {
			gens, _ := logGens(db.dir)
			for _, g := range gens {
				if g < next {
					os.Remove(filepath.Join(db.dir, logName(g)))
				}
			}
		}
		db.smu.Lock()
		db.st.thaw()
		db.smu.Unlock()
		db.setSnapshotResult(size, pause+time.Since(start), err)
		db.writing.Store(false)
		db.signalProgress()
	})
	return nil
}

// installSnapshot writes the frozen ledger to snapshot.tmp, syncs it and
// renames it over the snapshot, durably.
func (db *DB) installSnapshot(hdr *snapshotHeader) (int64, error) {
	name := filepath.Join(db.dir, snapTmpName)
	size, err := db.writeSnapshotFile(name, hdr)
	if err == nil {
		err = os.Rename(name, filepath.Join(db.dir, snapName))
	}
	if err == nil {
		err = syncDir(db.dir)
	}
	if err != nil {
		os.Remove(name)
	}
	return size, err
}

// writeSnapshotFile writes the frozen ledger to file name and syncs it.
func (db *DB) writeSnapshotFile(name string, hdr *snapshotHeader) (int64, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	err = db.st.writeSnapshot(&syncingWriter{f: f}, hdr, db.smu.RLocker(), db.signalProgress)
	size, _ := f.Seek(0, io.SeekCurrent)
	if err == nil {
		err = f.Sync()
	}
	return size, errors.Join(err, f.Close())
}

// syncingWriter syncs its file every syncEvery bytes, so that a snapshot
// reaches the disk in steps rather than in one burst in front of the
// log's syncs.
type syncingWriter struct {
	f       *os.File
	pending int
}

const syncEvery = 32 << 20

func (w *syncingWriter) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	if w.pending += n; err == nil && w.pending >= syncEvery {
		w.pending, err = 0, w.f.Sync()
	}
	return n, err
}

func (db *DB) setSnapshotResult(size int64, took time.Duration, err error) {
	db.snapMu.Lock()
	defer db.snapMu.Unlock()
	db.snapStats.SnapshotErr = err
	if err == nil {
		db.snapStats.Snapshots++
		db.snapStats.SnapshotBytes = size
		db.snapStats.SnapshotTime = took
	}
}

// commit makes the frames in db.buf durable, then applies them in memory:
// each frame is 8 bytes of room for its header, then its payload, and
// ends[i] is where frame i ends (one frame, the whole of db.buf, if ends
// is nil). db.mu is held; reserve has made room for them.
func (db *DB) commit(ends []int) error {
	if db.closed {
		return ErrClosed
	}
	if db.broken != nil {
		return db.broken
	}
	if ends == nil {
		ends = []int{len(db.buf)}
	}
	start := 0
	for _, end := range ends {
		putFrameHeader(db.buf[start:end])
		start = end
	}
	frames := db.buf[:start]
	_, err := db.log.Write(frames)
	if err == nil {
		err = db.log.Sync()
	}
	if err != nil {
		// Undo the frame so that no later frame follows a torn one.
		if terr := db.log.Truncate(db.logSize); terr != nil {
			db.broken = fmt.Errorf("logdb: the log could not be repaired after a failed write (%v): reopen the database: %w", err, terr)
		} else if _, serr := db.log.Seek(db.logSize, 0); serr != nil {
			db.broken = fmt.Errorf("logdb: reopen the database: %w", serr)
		}
		return fmt.Errorf("logdb: writing the log: %w", err)
	}
	db.logSize += int64(len(frames))
	db.stats.Commits++
	db.smu.Lock()
	start = 0
	for _, end := range ends {
		if err = db.st.applyPayload(db.buf[start+8:end], &db.recs); err != nil {
			break
		}
		start = end
	}
	db.smu.Unlock()
	if err != nil {
		db.broken = fmt.Errorf("logdb: applying a logged transaction: %w", err)
		return db.broken
	}
	threshold := db.opts.SnapshotBytes
	if threshold == 0 {
		db.snapMu.Lock()
		threshold = max(64<<20, db.snapStats.SnapshotBytes)
		db.snapMu.Unlock()
	}
	if db.logSize >= threshold && !db.writing.Load() {
		db.snapshot(db.gen + 1) // a failure is in Stats; the log goes on
	}
	return nil
}

// transact makes one transaction of the payload that encode appends,
// once reserve has made room for it in memory.
func (db *DB) transact(ctx context.Context, reserve func(*state) error, encode func([]byte) []byte) error {
	return db.transactEach(ctx, 1, reserve, func(b []byte, _ int) []byte { return encode(b) })
}

// transactEach makes a transaction of each of n payloads that encode
// appends (encode(b, i) appends the i-th), written to the log together
// with one sync, once reserve has made room for them all in memory. A
// crash may leave any first ones of them durable.
func (db *DB) transactEach(ctx context.Context, n int, reserve func(*state) error, encode func(b []byte, i int) []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return ErrClosed
	}
	db.waitForSnapshot()
	db.smu.Lock()
	err := reserve(db.st)
	db.smu.Unlock()
	if err != nil {
		return fmt.Errorf("logdb: %w", err)
	}
	b := db.buf[:0]
	ends := make([]int, n)
	for i := range n {
		b = encode(append(b, 0, 0, 0, 0, 0, 0, 0, 0), i)
		ends[i] = len(b)
	}
	db.buf = b
	return db.commit(ends)
}

// snapshotMemory bounds the rows a snapshot keeps as they were: past it,
// transactions wait for the snapshot to write rows (and drop the ones it
// kept) rather than hold ever more memory while the disk is slow.
var snapshotMemory int64 = 32 << 20

// waitForSnapshot waits while a snapshot being written keeps more than
// snapshotMemory of rows. db.mu is held.
func (db *DB) waitForSnapshot() {
	start := time.Now()
	waited := false
	for db.writing.Load() {
		if db.st.saved.Load() <= snapshotMemory {
			break
		}
		waited = true
		<-db.progress
	}
	if waited {
		db.stats.SnapshotWait += time.Since(start)
	}
}

// signalProgress wakes a transaction waiting for the snapshot.
func (db *DB) signalProgress() {
	select {
	case db.progress <- struct{}{}:
	default:
	}
}

// Apply applies batch in one transaction, as [accounting.Journal] says:
// it returns once the batch is in the log and synced.
func (db *DB) Apply(ctx context.Context, batch []accounting.Record) error {
	if len(batch) == 0 {
		return ctx.Err()
	}
	err := db.transact(ctx, func(s *state) error { return s.reserve(len(batch)) },
		func(b []byte) []byte { return appendApply(b, batch) })
	if err == nil {
		db.records.Add(int64(len(batch)))
	}
	return err
}

// PutUser creates or replaces a user, as [accounting.Directory] says. The
// passkey is at most 32 bytes.
func (db *DB) PutUser(ctx context.Context, u accounting.User) error {
	if err := checkUser(&u); err != nil {
		return err
	}
	return db.transact(ctx, func(s *state) error { return s.users.reserve(1) },
		func(b []byte) []byte { return appendPutUser(b, &u) })
}

func checkUser(u *accounting.User) error {
	if len(u.Passkey) > maxPasskey {
		return fmt.Errorf("logdb: user %d: passkey of %d bytes, more than %d", u.ID, len(u.Passkey), maxPasskey)
	}
	if u.UpFactor > accounting.MaxFactor || u.DownFactor > accounting.MaxFactor {
		return fmt.Errorf("logdb: user %d: factors %d and %d, above %d", u.ID, u.UpFactor, u.DownFactor, accounting.MaxFactor)
	}
	return nil
}

func checkTorrent(t *accounting.Torrent) error {
	if t.UpFactor > accounting.MaxFactor || t.DownFactor > accounting.MaxFactor {
		return fmt.Errorf("logdb: torrent %x: factors %d and %d, above %d", t.InfoHash, t.UpFactor, t.DownFactor, accounting.MaxFactor)
	}
	return nil
}

// PutTorrent creates or replaces a torrent, as [accounting.Directory]
// says.
func (db *DB) PutTorrent(ctx context.Context, t accounting.Torrent) error {
	if err := checkTorrent(&t); err != nil {
		return err
	}
	return db.transact(ctx, func(s *state) error { return s.torrents.reserve(1) },
		func(b []byte) []byte { return appendPutTorrent(b, &t) })
}

// PutUsers puts each of users as PutUser does, with one sync of the log
// for all of them (it implements [accounting.BulkDirectory]). Each user
// is a transaction of its own: a crash may leave the first ones put and
// not the others.
func (db *DB) PutUsers(ctx context.Context, users []accounting.User) error {
	for _, u := range users {
		if err := checkUser(&u); err != nil {
			return err
		}
	}
	return db.transactEach(ctx, len(users), func(s *state) error { return s.users.reserve(len(users)) },
		func(b []byte, i int) []byte { return appendPutUser(b, &users[i]) })
}

// PutTorrents puts each of torrents as PutTorrent does, with one sync of
// the log for all of them (it implements [accounting.BulkDirectory]).
// Each torrent is a transaction of its own: a crash may leave the first
// ones put and not the others.
func (db *DB) PutTorrents(ctx context.Context, torrents []accounting.Torrent) error {
	for _, t := range torrents {
		if err := checkTorrent(&t); err != nil {
			return err
		}
	}
	return db.transactEach(ctx, len(torrents), func(s *state) error { return s.torrents.reserve(len(torrents)) },
		func(b []byte, i int) []byte { return appendPutTorrent(b, &torrents[i]) })
}

// Changes returns the users and torrents changed since version, as
// [accounting.Directory] says. Users and torrents that only announced
// (never put) are not in it.
func (db *DB) Changes(ctx context.Context, since uint64) ([]accounting.User, []accounting.Torrent, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, 0, err
	}
	db.smu.Lock() // compacting the change list writes it
	defer db.smu.Unlock()
	if db.st == nil {
		return nil, nil, 0, ErrClosed
	}
	db.st.compactChanges()
	users, torrents := db.st.changesSince(since)
	return users, torrents, db.st.version, nil
}

// report reads the ledger with fn under the read lock; what names the
// user or torrent in ErrNotFound.
func report[T any](ctx context.Context, db *DB, what string, fn func(s *state, now int64) (T, bool)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	now := db.opts.Now().UnixNano()
	db.smu.RLock()
	defer db.smu.RUnlock()
	if db.st == nil {
		return zero, ErrClosed
	}
	v, ok := fn(db.st, now)
	if !ok {
		return zero, fmt.Errorf("%s: %w", what, accounting.ErrNotFound)
	}
	return v, nil
}

// User returns a user's totals: a user put and not deleted, or one that
// announced without being put.
func (db *DB) User(ctx context.Context, id uint64) (accounting.UserTotals, error) {
	return report(ctx, db, fmt.Sprint("user ", id), func(s *state, now int64) (accounting.UserTotals, bool) { return s.userTotals(id, now) })
}

// UserTorrents returns a user's history, sorted by info hash.
func (db *DB) UserTorrents(ctx context.Context, id uint64) ([]accounting.History, error) {
	return report(ctx, db, fmt.Sprint("user ", id), func(s *state, now int64) ([]accounting.History, bool) { return s.userTorrents(id, now) })
}

// Torrent returns a torrent's totals: a torrent put (deleted or not), or
// one that was announced without being put.
func (db *DB) Torrent(ctx context.Context, h tracker.InfoHash) (accounting.TorrentTotals, error) {
	return report(ctx, db, fmt.Sprintf("torrent %x", h), func(s *state, now int64) (accounting.TorrentTotals, bool) { return s.torrentTotals(h, now) })
}

// Stats returns the database's counters.
func (db *DB) Stats() Stats {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.smu.RLock()
	defer db.smu.RUnlock()
	s := db.stats
	s.Records = db.records.Load()
	db.snapMu.Lock()
	s.Snapshots, s.SnapshotBytes, s.SnapshotTime, s.SnapshotErr = db.snapStats.Snapshots, db.snapStats.SnapshotBytes, db.snapStats.SnapshotTime, db.snapStats.SnapshotErr
	db.snapMu.Unlock()
	s.LogBytes = db.logSize - logHeaderSize
	if st := db.st; st != nil {
		s.Users, s.Torrents, s.Histories, s.Baselines = int(st.users.n), int(st.torrents.n), int(st.hist.n), int(st.peers.n)
		s.MemoryBytes = st.users.bytes() + st.torrents.bytes() + st.hist.bytes() + st.peers.bytes()
	}
	return s
}

// Close writes a snapshot if the log holds anything, so that the next
// Open need not replay it, and closes the database. It is safe to call
// more than once.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil
	}
	db.closed = true
	var err error
	if db.broken == nil && db.logSize > logHeaderSize {
		err = db.writeSnapshot(db.gen + 1)
	}
	db.finish.Wait()
	err = errors.Join(err, db.log.Close())
	db.smu.Lock()
	db.st.free()
	db.st = nil
	db.smu.Unlock()
	return errors.Join(err, db.lock.Close())
}
