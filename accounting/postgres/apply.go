package postgres

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// How a batch, or each part of one (see Apply), is applied, in one
// transaction (READ COMMITTED):
//
//  1. One statement reads the baselines of the batch's peers (one index
//     probe per peer, in key order) with the version of each row (its
//     ctid and xmin), and, for the peers without a row, whether their
//     user exists.
//  2. The records are credited in Go, in order, with accounting.Credit
//     itself: each record against the baseline the previous ones left.
//  3. One round trip writes the new baselines (UPDATE of the rows read
//     in 1, by their ctid, if still the version read; INSERT of the new
//     peers), adds to the history
//     and records the snatches; the next adds to the users' and the
//     torrents' totals, with the snatches that were new. Every statement
//     takes one array per column (unnest): a batch is six statements
//     whatever its size.
//
// Two transactions touching the same peer: if the other one changes its
// row between steps 1 and 3, the UPDATE of step 3 finds a newer version
// (another ctid and xmin) and skips it; if it inserts a new peer first,
// the INSERT of step 3 does nothing for it. Either way the transaction
// is rolled back and tried again, against the rows the other left, and
// this time step 1 locks the rows it reads (SELECT ... FOR UPDATE), so
// that the second try waits for a busy row rather than failing again.
// Reading without locks on the first try saves writing a lock into
// every row that step 3 writes anyway. The statements lock their rows in
// key order and run in the same order in every transaction, so
// transactions do not deadlock one another.

// maxTries bounds the tries of one Apply on conflicts with concurrent
// transactions.
const maxTries = 10

// minPart is the fewest records a part of a batch applied in a
// transaction of its own holds: below it, a second transaction costs
// more round trips than it saves.
const minPart = 1024

// errConflict reports that a concurrent transaction inserted one of the
// batch's new peers first.
var errConflict = errors.New("postgres: a concurrent batch created the same peer")

// Apply implements accounting.Journal.
//
// A batch of at least twice minPart records is split by user into up to
// Config.Writers parts, applied concurrently, each in a transaction of
// its own: a user's records, history, snatches and totals are all in one
// part, in the batch's order. If Apply fails, some parts may have been
// committed; applying the batch again credits what they hold nothing the
// second time (their records are stale against the baselines they
// left), so the batch is still applied exactly once.
func (b *Backend) Apply(ctx context.Context, batch []accounting.Record) error {
	if len(batch) == 0 {
		return nil
	}
	n := min(b.writers, len(batch)/minPart)
	if n <= 1 {
		return b.applyPart(ctx, batch)
	}
	sp := splitPool.Get().(*split)
	defer splitPool.Put(sp)
	parts := sp.split(batch, n)
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i := 1; i < len(parts); i++ {
		wg.Go(func() { errs[i] = b.applyPart(ctx, parts[i]) })
	}
	errs[0] = b.applyPart(ctx, parts[0])
	wg.Wait()
	return errors.Join(errs...)
}

// split holds the parts of a batch; a pool keeps them across calls.
type split struct {
	parts, full [][]accounting.Record // every part; those that hold records
}

var splitPool = sync.Pool{New: func() any { return new(split) }}

// split deals the records of batch into n parts by user, keeping their
// order, and returns the parts that hold records.
func (sp *split) split(batch []accounting.Record, n int) [][]accounting.Record {
	for len(sp.parts) < n {
		sp.parts = append(sp.parts, nil)
	}
	for i, p := range sp.parts {
		clear(p) // drop the previous batch's references
		sp.parts[i] = p[:0]
	}
	for i := range batch {
		// A multiplicative hash: sites number their users in sequence.
		k := int((batch[i].User * 0x9E3779B97F4A7C15 >> 32) % uint64(n))
		sp.parts[k] = append(sp.parts[k], batch[i])
	}
	sp.full = sp.full[:0]
	for _, p := range sp.parts[:n] {
		if len(p) > 0 {
			sp.full = append(sp.full, p)
		}
	}
	return sp.full
}

// applyPart applies records in one transaction, trying again on
// conflicts with concurrent transactions.
func (b *Backend) applyPart(ctx context.Context, batch []accounting.Record) error {
	w := workPool.Get().(*work)
	defer workPool.Put(w)
	for try := 1; ; try++ {
		err := b.apply(ctx, batch, w, try > 1)
		if err == nil {
			return nil
		}
		if !retryable(err) || try == maxTries {
			return wrap(err)
		}
		// Back off a little, at random, so that the transactions that
		// collided do not collide again.
		d := time.Duration(rand.Int64N(int64(try) * int64(2*time.Millisecond)))
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return wrap(err)
		}
	}
}

// retryable reports whether err is a conflict with a concurrent
// transaction, after which the same batch can be tried again.
func retryable(err error) bool {
	if errors.Is(err, errConflict) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", // serialization_failure
			"40P01", // deadlock_detected
			"23503": // foreign_key_violation: a user deleted meanwhile
			return true
		}
	}
	return false
}

type peerKey struct {
	user uint64
	ih   tracker.InfoHash
	id   tracker.PeerID
}

type pairKey struct {
	user uint64
	ih   tracker.InfoHash
}

func comparePeers(a, b *peerKey) int {
	if c := cmp.Compare(a.user, b.user); c != 0 {
		return c
	}
	if c := bytes.Compare(a.ih[:], b.ih[:]); c != 0 {
		return c
	}
	return bytes.Compare(a.id[:], b.id[:])
}

func comparePairs(a, b pairKey) int {
	if c := cmp.Compare(a.user, b.user); c != 0 {
		return c
	}
	return bytes.Compare(a.ih[:], b.ih[:])
}

// peer is a peer of the batch: its baseline as the records move it.
type peer struct {
	key    peerKey
	b      accounting.Baseline
	tid    pgtype.TID // its row, when stored
	xmin   uint32     // and the row's version
	known  bool       // a baseline exists: in the database, or left by a record
	stored bool       // the database holds a row for it
	user   bool       // its user exists
	moved  bool       // a record moved the baseline
	addr   netip.AddrPort
}

// sums is what a batch adds to a history row, a user or a torrent.
type sums struct {
	up, down, rawUp, rawDown, seed int64
	first, last                    int64 // Unix nanoseconds
	snatches                       int64 // new snatches, for a user or a torrent
	// For a history row: whether a record was credited, whether one
	// completes the torrent, and the first that does.
	seen        bool
	completes   bool
	completedAt int64
}

func (s *sums) add(d *accounting.Delta) {
	s.up = satAdd(s.up, d.Up)
	s.down = satAdd(s.down, d.Down)
	s.rawUp = satAdd(s.rawUp, d.RawUp)
	s.rawDown = satAdd(s.rawDown, d.RawDown)
}

// satAdd adds two counters, saturating at the largest int64: totals
// never wrap around, and never fail the batch that would overflow them.
func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// satSum is SQL for a + b, saturating at the largest bigint (b is never
// negative).
func satSum(a, b string) string {
	return "CASE WHEN " + a + " > 9223372036854775807 - " + b + " THEN 9223372036854775807 ELSE " + a + " + " + b + " END"
}

// work holds what one Apply builds; a pool keeps them across calls.
type work struct {
	index   map[peerKey]int32 // into peers
	peers   []peer            // the batch's peers, in key order once sorted
	rec     []int32           // each record's peer
	pairs   map[pairKey]int32 // into hist
	hist    []sums
	users   map[uint64]int32 // into userSum
	userSum []sums
	tors    map[tracker.InfoHash]int32 // into torSum
	torSum  []sums
	perm    []int32

	sel      peerColumns
	upd, ins peerColumns
	hc       historyColumns
	sc       snatchColumns
	uc, tc   totalColumns
}

var workPool = sync.Pool{New: func() any {
	return &work{
		index: map[peerKey]int32{},
		pairs: map[pairKey]int32{},
		users: map[uint64]int32{},
		tors:  map[tracker.InfoHash]int32{},
	}
}}

// reset empties w for a batch of n records.
func (w *work) reset(n int) {
	clear(w.index)
	clear(w.pairs)
	clear(w.users)
	clear(w.tors)
	w.peers, w.rec, w.hist, w.userSum, w.torSum = w.peers[:0], slices.Grow(w.rec[:0], n), w.hist[:0], w.userSum[:0], w.torSum[:0]
}

// collect finds the batch's peers, in key order.
func (w *work) collect(batch []accounting.Record) {
	w.reset(len(batch))
	for i := range batch {
		r := &batch[i]
		if r.User > math.MaxInt64 {
			w.rec = append(w.rec, -1) // no such user in a bigint column
			continue
		}
		k := peerKey{r.User, r.InfoHash, r.PeerID}
		j, ok := w.index[k]
		if !ok {
			j = int32(len(w.peers))
			w.index[k] = j
			w.peers = append(w.peers, peer{key: k})
		}
		w.rec = append(w.rec, j)
	}
	// Sort the peers, and renumber the records' references.
	w.perm = w.perm[:0]
	for j := range w.peers {
		w.perm = append(w.perm, int32(j))
	}
	slices.SortFunc(w.perm, func(a, b int32) int { return comparePeers(&w.peers[a].key, &w.peers[b].key) })
	sorted := make([]peer, len(w.peers))
	where := make([]int32, len(w.peers))
	for to, from := range w.perm {
		sorted[to] = w.peers[from]
		where[from] = int32(to)
	}
	w.peers = sorted
	for i, j := range w.rec {
		if j >= 0 {
			w.rec[i] = where[j]
		}
	}
}

// apply tries the batch once; lock locks the baselines it reads.
func (b *Backend) apply(ctx context.Context, batch []accounting.Record, w *work, lock bool) error {
	w.collect(batch)
	if len(w.peers) == 0 {
		return nil
	}
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())

	// 1. The baselines, locked, and whether the users of new peers exist.
	// The statements of the batch join small arrays with large tables:
	// a probe of the index per element is what they must do, whatever
	// the planner estimates of unnest.
	w.sel.reset()
	for j := range w.peers {
		w.sel.addKey(&w.peers[j].key)
	}
	var rt pgx.Batch
	rt.Queue(`SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)`)
	sql := selectBaselines
	if lock {
		sql = selectBaselinesLocked
	}
	rt.Queue(sql, w.sel.user, w.sel.ih, w.sel.id)
	if err := w.read(ctx, tx, &rt); err != nil {
		return err
	}
	if b.afterRead != nil {
		b.afterRead(lock)
	}

	// 2. Credit the records, in order.
	w.credit(batch, b.rules)

	// 3. Baselines, history, snatches.
	rt = pgx.Batch{}
	w.upd.reset()
	w.ins.reset()
	for j := range w.peers {
		p := &w.peers[j]
		switch {
		case !p.moved:
		case p.stored:
			w.upd.add(p)
		default:
			w.ins.add(p)
		}
	}
	updated, inserted := -1, -1
	if len(w.upd.user) > 0 {
		rt.Queue(`WITH u AS (
			UPDATE peers p SET uploaded = v.uploaded, downloaded = v.downloaded, remaining = v.remaining, key = v.key,
				announced_ns = v.announced_ns, stopped = v.stopped, addr = v.addr, port = v.port
			FROM unnest($1::tid[], $2::xid[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::bool[], $9::inet[], $10::int4[])
				AS v(tid, xmin, uploaded, downloaded, remaining, key, announced_ns, stopped, addr, port)
			WHERE p.ctid = v.tid AND p.xmin = v.xmin
			RETURNING 1)
		SELECT count(*) FROM u`, w.upd.tid, w.upd.xmin, w.upd.up, w.upd.down, w.upd.left, w.upd.key, w.upd.announced, w.upd.stopped, w.upd.addr, w.upd.port).
			QueryRow(func(row pgx.Row) error { return row.Scan(&updated) })
	}
	if len(w.ins.user) > 0 {
		rt.Queue(`WITH i AS (
			INSERT INTO peers (user_id, info_hash, peer_id, uploaded, downloaded, remaining, key, announced_ns, stopped, addr, port)
			SELECT * FROM unnest($1::int8[], $2::bytea[], $3::bytea[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::bool[], $10::inet[], $11::int4[])
			ON CONFLICT (user_id, info_hash, peer_id) DO NOTHING
			RETURNING 1)
		SELECT count(*) FROM i`, w.ins.user, w.ins.ih, w.ins.id, w.ins.up, w.ins.down, w.ins.left, w.ins.key, w.ins.announced, w.ins.stopped, w.ins.addr, w.ins.port).
			QueryRow(func(row pgx.Row) error { return row.Scan(&inserted) })
	}
	w.hc.reset()
	w.sc.reset()
	pairs := slices.SortedFunc(mapKeys(w.pairs), comparePairs)
	for i := range pairs {
		k := &pairs[i]
		s := &w.hist[w.pairs[*k]]
		w.hc.add(k, s)
		if s.completes {
			w.sc.add(k, s.completedAt)
		}
	}
	if len(w.hc.user) > 0 {
		rt.Queue(`INSERT INTO history AS h (user_id, info_hash, uploaded, downloaded, raw_uploaded, raw_downloaded, seed_time, first_seen, last_seen)
			SELECT * FROM unnest($1::int8[], $2::bytea[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::timestamptz[], $9::timestamptz[])
			ON CONFLICT (user_id, info_hash) DO UPDATE SET
				uploaded = `+satSum("h.uploaded", "EXCLUDED.uploaded")+`,
				downloaded = `+satSum("h.downloaded", "EXCLUDED.downloaded")+`,
				raw_uploaded = `+satSum("h.raw_uploaded", "EXCLUDED.raw_uploaded")+`,
				raw_downloaded = `+satSum("h.raw_downloaded", "EXCLUDED.raw_downloaded")+`,
				seed_time = `+satSum("h.seed_time", "EXCLUDED.seed_time")+`,
				first_seen = LEAST(h.first_seen, EXCLUDED.first_seen),
				last_seen = GREATEST(h.last_seen, EXCLUDED.last_seen)`,
			w.hc.user, w.hc.ih, w.hc.up, w.hc.down, w.hc.rawUp, w.hc.rawDown, w.hc.seed, w.hc.first, w.hc.last)
	}
	if len(w.sc.user) > 0 {
		rt.Queue(`INSERT INTO snatches (user_id, info_hash, completed_at)
			SELECT * FROM unnest($1::int8[], $2::bytea[], $3::timestamptz[])
			ON CONFLICT (user_id, info_hash) DO NOTHING
			RETURNING user_id, info_hash`, w.sc.user, w.sc.ih, w.sc.at).Query(func(rows pgx.Rows) error {
			var u int64
			var h []byte
			_, err := pgx.ForEachRow(rows, []any{&u, &h}, func() error {
				w.snatched(uint64(u), tracker.InfoHash(h))
				return nil
			})
			return err
		})
	}
	if rt.Len() > 0 {
		if err := tx.SendBatch(ctx, &rt).Close(); err != nil {
			return err
		}
	}
	if updated >= 0 && updated != len(w.upd.user) {
		if lock {
			return errors.New("postgres: a locked baseline changed under its lock")
		}
		return errConflict
	}
	if inserted >= 0 && inserted != len(w.ins.user) {
		return errConflict
	}

	// 4. Totals: every user and torrent has its row (made by a trigger
	// with the user or torrent); a torrent the site does not hold has
	// none, and gets no totals.
	rt = pgx.Batch{}
	w.uc.reset()
	w.tc.reset()
	for _, u := range slices.Sorted(mapKeys(w.users)) {
		w.uc.add(int64(u), nil, &w.userSum[w.users[u]])
	}
	hashes := slices.SortedFunc(mapKeys(w.tors), func(a, b tracker.InfoHash) int { return bytes.Compare(a[:], b[:]) })
	for i := range hashes {
		w.tc.add(0, hashes[i][:], &w.torSum[w.tors[hashes[i]]])
	}
	if len(w.uc.id) > 0 {
		rt.Queue(`UPDATE user_totals t SET
				uploaded = `+satSum("t.uploaded", "v.uploaded")+`,
				downloaded = `+satSum("t.downloaded", "v.downloaded")+`,
				raw_uploaded = `+satSum("t.raw_uploaded", "v.raw_uploaded")+`,
				raw_downloaded = `+satSum("t.raw_downloaded", "v.raw_downloaded")+`,
				snatches = t.snatches + v.snatches
			FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[])
				AS v(user_id, uploaded, downloaded, raw_uploaded, raw_downloaded, snatches)
			WHERE t.user_id = v.user_id`,
			w.uc.id, w.uc.up, w.uc.down, w.uc.rawUp, w.uc.rawDown, w.uc.snatches)
	}
	if len(w.tc.hash) > 0 {
		rt.Queue(`UPDATE torrent_totals t SET
				uploaded = `+satSum("t.uploaded", "v.uploaded")+`,
				downloaded = `+satSum("t.downloaded", "v.downloaded")+`,
				snatches = t.snatches + v.snatches
			FROM unnest($1::bytea[], $2::int8[], $3::int8[], $4::int8[]) AS v(info_hash, uploaded, downloaded, snatches)
			WHERE t.info_hash = v.info_hash`,
			w.tc.hash, w.tc.up, w.tc.down, w.tc.snatches)
	}
	if rt.Len() > 0 {
		if err := tx.SendBatch(ctx, &rt).Close(); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// selectPeers reads the baselines of the peers of three arrays (user
// ids, info hashes, peer ids) in key order, one row per peer, with each
// row's version; for a peer without a row, only whether its user exists.
// It ends in the subquery that reads a peer's row.
const selectPeers = `SELECT p.tid, p.xmin, p.uploaded, p.downloaded, p.remaining, p.key, p.announced_ns, p.stopped,
		CASE WHEN p.tid IS NULL THEN (SELECT true FROM users u WHERE u.id = k.user_id) END
	FROM unnest($1::int8[], $2::bytea[], $3::bytea[]) AS k(user_id, info_hash, peer_id)
	LEFT JOIN LATERAL (
		SELECT ctid AS tid, xmin, * FROM peers p
		WHERE p.user_id = k.user_id AND p.info_hash = k.info_hash AND p.peer_id = k.peer_id`

// selectBaselines reads the baselines; selectBaselinesLocked also locks
// their rows.
const (
	selectBaselines       = selectPeers + `) p ON true`
	selectBaselinesLocked = selectPeers + ` FOR UPDATE) p ON true`
)

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// read runs the first round trip: the baselines, one row per peer in
// the order of w.peers.
func (w *work) read(ctx context.Context, tx pgx.Tx, rt *pgx.Batch) error {
	res := tx.SendBatch(ctx, rt)
	defer res.Close()
	if _, err := res.Exec(); err != nil {
		return err
	}
	rows, _ := res.Query()
	j := 0
	var tid pgtype.TID
	var xmin pgtype.Uint32
	var up, down, left, key, at pgtype.Int8
	var stopped, user pgtype.Bool
	if _, err := pgx.ForEachRow(rows, []any{&tid, &xmin, &up, &down, &left, &key, &at, &stopped, &user}, func() error {
		if j == len(w.peers) {
			return errors.New("postgres: more baselines than peers")
		}
		p := &w.peers[j]
		j++
		if !tid.Valid {
			p.user = user.Bool
			return nil
		}
		p.tid, p.xmin, p.known, p.stored, p.user = tid, xmin.Uint32, true, true, true
		p.b = accounting.Baseline{Uploaded: up.Int64, Downloaded: down.Int64, Left: left.Int64, Key: uint32(key.Int64), Time: at.Int64, Stopped: stopped.Bool}
		return nil
	}); err != nil {
		return err
	}
	if j != len(w.peers) {
		return errors.New("postgres: fewer baselines than peers")
	}
	return res.Close()
}

// credit applies accounting.Credit to the records of users the database
// holds, in order, and sums what they add.
func (w *work) credit(batch []accounting.Record, rules accounting.Rules) {
	for i := range batch {
		r := &batch[i]
		j := w.rec[i]
		if j < 0 || !w.peers[j].user {
			continue // a user the database does not hold: nothing to credit
		}
		p := &w.peers[j]
		d := accounting.Credit(p.b, p.known, r, rules)
		if d.Stale {
			continue
		}
		var seed int64
		if d.SeedTime > 0 {
			// Seed time is kept in whole seconds: the seconds between
			// the two announces' times, so that a seeder's intervals
			// add up to the time between its first and last announce.
			seed = r.Time/int64(time.Second) - p.b.Time/int64(time.Second)
		}
		p.b, p.known, p.moved, p.addr = d.Baseline, true, true, r.Addr
		h := sumOf(w.pairs, &w.hist, pairKey{r.User, r.InfoHash})
		if !h.seen {
			h.seen, h.first, h.last = true, r.Time, r.Time
		}
		h.add(&d)
		h.seed = satAdd(h.seed, seed)
		h.first, h.last = min(h.first, r.Time), max(h.last, r.Time)
		if d.Snatch && !h.completes {
			h.completes, h.completedAt = true, r.Time
		}
		if d.Up|d.Down|d.RawUp|d.RawDown != 0 {
			sumOf(w.users, &w.userSum, r.User).add(&d)
			sumOf(w.tors, &w.torSum, r.InfoHash).add(&d)
		}
	}
}

// snatched counts a snatch the database did not hold yet.
func (w *work) snatched(user uint64, h tracker.InfoHash) {
	sumOf(w.users, &w.userSum, user).snatches++
	sumOf(w.tors, &w.torSum, h).snatches++
}

// sumOf returns the sums of k, made if new.
func sumOf[K comparable](index map[K]int32, s *[]sums, k K) *sums {
	i, ok := index[k]
	if !ok {
		i = int32(len(*s))
		index[k] = i
		*s = append(*s, sums{})
	}
	return &(*s)[i]
}

// peerColumns are peers' keys and baselines, a slice per column.
type peerColumns struct {
	user                                 []int64
	ih, id                               [][]byte
	tid                                  []pgtype.TID
	xmin                                 []uint32
	up, down, left, key, announced, port []int64
	stopped                              []bool
	addr                                 []netip.Addr
}

func (c *peerColumns) reset() {
	c.user, c.ih, c.id, c.tid, c.xmin = c.user[:0], c.ih[:0], c.id[:0], c.tid[:0], c.xmin[:0]
	c.up, c.down, c.left, c.key, c.announced, c.port = c.up[:0], c.down[:0], c.left[:0], c.key[:0], c.announced[:0], c.port[:0]
	c.stopped, c.addr = c.stopped[:0], c.addr[:0]
}

func (c *peerColumns) addKey(k *peerKey) {
	c.user = append(c.user, int64(k.user))
	c.ih = append(c.ih, k.ih[:])
	c.id = append(c.id, k.id[:])
}

func (c *peerColumns) add(p *peer) {
	c.addKey(&p.key)
	c.tid = append(c.tid, p.tid)
	c.xmin = append(c.xmin, p.xmin)
	c.up = append(c.up, p.b.Uploaded)
	c.down = append(c.down, p.b.Downloaded)
	c.left = append(c.left, p.b.Left)
	c.key = append(c.key, int64(p.b.Key))
	c.announced = append(c.announced, p.b.Time)
	c.stopped = append(c.stopped, p.b.Stopped)
	c.addr = append(c.addr, p.addr.Addr())
	c.port = append(c.port, int64(p.addr.Port()))
}

// historyColumns are additions to history rows.
type historyColumns struct {
	user                           []int64
	ih                             [][]byte
	up, down, rawUp, rawDown, seed []int64
	first, last                    []time.Time
}

func (c *historyColumns) reset() {
	c.user, c.ih, c.up, c.down, c.rawUp, c.rawDown, c.seed = c.user[:0], c.ih[:0], c.up[:0], c.down[:0], c.rawUp[:0], c.rawDown[:0], c.seed[:0]
	c.first, c.last = c.first[:0], c.last[:0]
}

func (c *historyColumns) add(k *pairKey, s *sums) {
	c.user = append(c.user, int64(k.user))
	c.ih = append(c.ih, k.ih[:])
	c.up = append(c.up, s.up)
	c.down = append(c.down, s.down)
	c.rawUp = append(c.rawUp, s.rawUp)
	c.rawDown = append(c.rawDown, s.rawDown)
	c.seed = append(c.seed, s.seed)
	c.first = append(c.first, time.Unix(0, s.first))
	c.last = append(c.last, time.Unix(0, s.last))
}

// snatchColumns are snatches to record.
type snatchColumns struct {
	user []int64
	ih   [][]byte
	at   []time.Time
}

func (c *snatchColumns) reset() { c.user, c.ih, c.at = c.user[:0], c.ih[:0], c.at[:0] }

func (c *snatchColumns) add(k *pairKey, at int64) {
	c.user = append(c.user, int64(k.user))
	c.ih = append(c.ih, k.ih[:])
	c.at = append(c.at, time.Unix(0, at))
}

// totalColumns are additions to users' or torrents' totals.
type totalColumns struct {
	id                                 []int64
	hash                               [][]byte
	up, down, rawUp, rawDown, snatches []int64
}

func (c *totalColumns) reset() {
	c.id, c.hash, c.up, c.down, c.rawUp, c.rawDown, c.snatches = c.id[:0], c.hash[:0], c.up[:0], c.down[:0], c.rawUp[:0], c.rawDown[:0], c.snatches[:0]
}

func (c *totalColumns) add(id int64, hash []byte, s *sums) {
	if hash == nil {
		c.id = append(c.id, id)
		c.rawUp = append(c.rawUp, s.rawUp)
		c.rawDown = append(c.rawDown, s.rawDown)
	} else {
		c.hash = append(c.hash, hash)
	}
	c.up = append(c.up, s.up)
	c.down = append(c.down, s.down)
	c.snatches = append(c.snatches, s.snatches)
}
