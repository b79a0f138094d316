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
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// How a batch is applied, in one transaction (READ COMMITTED):
//
//  1. One round trip reads which of the batch's users and torrents
//     exist, and reads the baselines of its peers with SELECT ... FOR
//     UPDATE, in key order.
//  2. The records are credited in Go, in order, with accounting.Credit:
//     the rule itself, each record against the baseline the previous
//     ones left.
//  3. One round trip writes the new baselines (UPDATE of the rows locked
//     in 1, INSERT of new peers), adds to the history and records the
//     snatches; the next adds to the users' and torrents' totals, with
//     the snatches that were new. Every statement takes one array per
//     column (unnest), so a batch is a few statements whatever its size.
//
// Two transactions touching the same peers serialize on the row locks of
// step 1: the second reads the baselines the first left. Every statement
// locks its rows in key order, and the statements run in the same order
// in every transaction, so transactions do not deadlock one another. A
// new peer has no row to lock: if another transaction inserts it first,
// the INSERT of step 3 does nothing for it, and the batch is rolled back
// and tried again, this time against that row.

// maxTries bounds the tries of one Apply on a conflict with a
// concurrent transaction.
const maxTries = 10

// errConflict reports that a concurrent transaction inserted one of the
// batch's new peers first.
var errConflict = errors.New("postgres: a concurrent batch created the same peer; retrying")

// Apply implements accounting.Journal.
func (b *Backend) Apply(ctx context.Context, batch []accounting.Record) error {
	if len(batch) == 0 {
		return nil
	}
	var w work
	for try := 1; ; try++ {
		err := b.apply(ctx, batch, &w)
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
// transaction, which the same batch can be tried again after.
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

func comparePeers(a, b peerKey) int {
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
	b      accounting.Baseline
	known  bool // a baseline exists: in the database, or left by a record
	stored bool // the database holds a row for it
	moved  bool // a record moved the baseline
	addr   netip.AddrPort
}

// sums is what a batch adds to a history row, a user or a torrent.
type sums struct {
	up, down, rawUp, rawDown, seed int64
	first, last                    int64 // Unix nanoseconds
	snatches                       int64 // new snatches, for a user or a torrent
	// For a history row: whether a record completes the torrent, and
	// the first that does.
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

// work holds what one Apply builds, kept across its tries.
type work struct {
	users    map[uint64]bool
	torrents map[tracker.InfoHash]bool
	peers    map[peerKey]*peer
	order    []peerKey // the batch's peers, sorted
	history  map[pairKey]*sums
	userSum  map[uint64]*sums
	torSum   map[tracker.InfoHash]*sums
}

// apply tries the batch once.
func (b *Backend) apply(ctx context.Context, batch []accounting.Record, w *work) error {
	// The batch's users, torrents and peers, with the keys in order.
	w.users = make(map[uint64]bool)
	w.torrents = make(map[tracker.InfoHash]bool)
	w.peers = make(map[peerKey]*peer, len(batch))
	w.order = w.order[:0]
	for i := range batch {
		r := &batch[i]
		if r.User > math.MaxInt64 {
			continue // no such user in a bigint column
		}
		w.users[r.User] = false
		w.torrents[r.InfoHash] = false
		k := peerKey{r.User, r.InfoHash, r.PeerID}
		if w.peers[k] == nil {
			w.peers[k] = &peer{}
			w.order = append(w.order, k)
		}
	}
	if len(w.order) == 0 {
		return nil
	}
	slices.SortFunc(w.order, comparePeers)
	userIDs := make([]int64, 0, len(w.users))
	for u := range w.users {
		userIDs = append(userIDs, int64(u))
	}
	hashes := make([][]byte, 0, len(w.torrents))
	for h := range w.torrents {
		hashes = append(hashes, h[:])
	}
	pu, ph, pi := make([]int64, len(w.order)), make([][]byte, len(w.order)), make([][]byte, len(w.order))
	for i := range w.order {
		k := &w.order[i]
		pu[i], ph[i], pi[i] = int64(k.user), k.ih[:], k.id[:]
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

	// 1. Users, torrents, and the baselines, locked.
	var rt pgx.Batch
	rt.Queue(`SELECT id FROM users WHERE id = ANY($1::int8[])`, userIDs)
	rt.Queue(`SELECT info_hash FROM torrents WHERE info_hash = ANY($1::bytea[])`, hashes)
	rt.Queue(`SELECT p.user_id, p.info_hash, p.peer_id, p.uploaded, p.downloaded, p.remaining, p.key, p.announced_ns, p.stopped
		FROM unnest($1::int8[], $2::bytea[], $3::bytea[]) AS k(user_id, info_hash, peer_id)
		JOIN peers p ON p.user_id = k.user_id AND p.info_hash = k.info_hash AND p.peer_id = k.peer_id
		ORDER BY p.user_id, p.info_hash, p.peer_id
		FOR UPDATE OF p`, pu, ph, pi)
	if err := b.read(ctx, tx, &rt, w); err != nil {
		return err
	}

	// 2. Credit the records, in order.
	w.credit(batch, b.rules)

	// 3. Baselines, history, snatches.
	rt = pgx.Batch{}
	var upd, ins peerColumns
	for _, k := range w.order {
		p := w.peers[k]
		switch {
		case !p.moved:
		case p.stored:
			upd.add(k, p)
		default:
			ins.add(k, p)
		}
	}
	if len(upd.user) > 0 {
		rt.Queue(`UPDATE peers p SET uploaded = v.uploaded, downloaded = v.downloaded, remaining = v.remaining, key = v.key,
			announced_ns = v.announced_ns, stopped = v.stopped, addr = v.addr, port = v.port
		FROM unnest($1::int8[], $2::bytea[], $3::bytea[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::bool[], $10::inet[], $11::int4[])
			AS v(user_id, info_hash, peer_id, uploaded, downloaded, remaining, key, announced_ns, stopped, addr, port)
		WHERE p.user_id = v.user_id AND p.info_hash = v.info_hash AND p.peer_id = v.peer_id`, upd.args()...)
	}
	inserted := -1
	if len(ins.user) > 0 {
		rt.Queue(`WITH ins AS (
			INSERT INTO peers (user_id, info_hash, peer_id, uploaded, downloaded, remaining, key, announced_ns, stopped, addr, port)
			SELECT * FROM unnest($1::int8[], $2::bytea[], $3::bytea[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::bool[], $10::inet[], $11::int4[])
			ORDER BY 1, 2, 3
			ON CONFLICT (user_id, info_hash, peer_id) DO NOTHING
			RETURNING 1)
		SELECT count(*) FROM ins`, ins.args()...).QueryRow(func(row pgx.Row) error { return row.Scan(&inserted) })
	}
	pairs := slices.SortedFunc(mapKeys(w.history), comparePairs)
	var hc historyColumns
	var sc snatchColumns
	for _, k := range pairs {
		s := w.history[k]
		hc.add(k, s)
		if s.completes {
			sc.user = append(sc.user, int64(k.user))
			sc.ih = append(sc.ih, k.ih[:])
			sc.at = append(sc.at, time.Unix(0, s.completedAt))
		}
	}
	if len(hc.user) > 0 {
		rt.Queue(`INSERT INTO history AS h (user_id, info_hash, uploaded, downloaded, raw_uploaded, raw_downloaded, seed_time, first_seen, last_seen)
			SELECT * FROM unnest($1::int8[], $2::bytea[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::timestamptz[], $9::timestamptz[])
			ORDER BY 1, 2
			ON CONFLICT (user_id, info_hash) DO UPDATE SET
				uploaded = `+satSum("h.uploaded", "EXCLUDED.uploaded")+`,
				downloaded = `+satSum("h.downloaded", "EXCLUDED.downloaded")+`,
				raw_uploaded = `+satSum("h.raw_uploaded", "EXCLUDED.raw_uploaded")+`,
				raw_downloaded = `+satSum("h.raw_downloaded", "EXCLUDED.raw_downloaded")+`,
				seed_time = `+satSum("h.seed_time", "EXCLUDED.seed_time")+`,
				first_seen = LEAST(h.first_seen, EXCLUDED.first_seen),
				last_seen = GREATEST(h.last_seen, EXCLUDED.last_seen)`,
			hc.user, hc.ih, hc.up, hc.down, hc.rawUp, hc.rawDown, hc.seed, hc.first, hc.last)
	}
	if len(sc.user) > 0 {
		rt.Queue(`INSERT INTO snatches (user_id, info_hash, completed_at)
			SELECT * FROM unnest($1::int8[], $2::bytea[], $3::timestamptz[])
			ORDER BY 1, 2
			ON CONFLICT (user_id, info_hash) DO NOTHING
			RETURNING user_id, info_hash`, sc.user, sc.ih, sc.at).Query(func(rows pgx.Rows) error {
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
	if inserted >= 0 && inserted != len(ins.user) {
		return errConflict
	}

	// 4. Totals.
	rt = pgx.Batch{}
	var uc, tc totalColumns
	for _, u := range slices.Sorted(mapKeys(w.userSum)) {
		uc.add(int64(u), nil, w.userSum[u])
	}
	for _, h := range slices.SortedFunc(mapKeys(w.torSum), func(a, b tracker.InfoHash) int { return bytes.Compare(a[:], b[:]) }) {
		tc.add(0, h[:], w.torSum[h])
	}
	if len(uc.id) > 0 {
		rt.Queue(`INSERT INTO user_totals AS t (user_id, uploaded, downloaded, raw_uploaded, raw_downloaded, snatches)
			SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[])
			ORDER BY 1
			ON CONFLICT (user_id) DO UPDATE SET
				uploaded = `+satSum("t.uploaded", "EXCLUDED.uploaded")+`,
				downloaded = `+satSum("t.downloaded", "EXCLUDED.downloaded")+`,
				raw_uploaded = `+satSum("t.raw_uploaded", "EXCLUDED.raw_uploaded")+`,
				raw_downloaded = `+satSum("t.raw_downloaded", "EXCLUDED.raw_downloaded")+`,
				snatches = t.snatches + EXCLUDED.snatches`,
			uc.id, uc.up, uc.down, uc.rawUp, uc.rawDown, uc.snatches)
	}
	if len(tc.hash) > 0 {
		rt.Queue(`INSERT INTO torrent_totals AS t (info_hash, uploaded, downloaded, snatches)
			SELECT * FROM unnest($1::bytea[], $2::int8[], $3::int8[], $4::int8[])
			ORDER BY 1
			ON CONFLICT (info_hash) DO UPDATE SET
				uploaded = `+satSum("t.uploaded", "EXCLUDED.uploaded")+`,
				downloaded = `+satSum("t.downloaded", "EXCLUDED.downloaded")+`,
				snatches = t.snatches + EXCLUDED.snatches`,
			tc.hash, tc.up, tc.down, tc.snatches)
	}
	if rt.Len() > 0 {
		if err := tx.SendBatch(ctx, &rt).Close(); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// satSum is SQL for a + b, saturating at the largest bigint (b is never
// negative).
func satSum(a, b string) string {
	return "CASE WHEN " + a + " > 9223372036854775807 - " + b + " THEN 9223372036854775807 ELSE " + a + " + " + b + " END"
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// read runs the first round trip: which users and torrents exist, and the
// baselines.
func (b *Backend) read(ctx context.Context, tx pgx.Tx, rt *pgx.Batch, w *work) error {
	res := tx.SendBatch(ctx, rt)
	defer res.Close()
	rows, _ := res.Query()
	var id int64
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error {
		w.users[uint64(id)] = true
		return nil
	}); err != nil {
		return err
	}
	rows, _ = res.Query()
	var h []byte
	if _, err := pgx.ForEachRow(rows, []any{&h}, func() error {
		w.torrents[tracker.InfoHash(h)] = true
		return nil
	}); err != nil {
		return err
	}
	rows, _ = res.Query()
	var pid []byte
	var key int64
	var bl accounting.Baseline
	if _, err := pgx.ForEachRow(rows, []any{&id, &h, &pid, &bl.Uploaded, &bl.Downloaded, &bl.Left, &key, &bl.Time, &bl.Stopped}, func() error {
		p := w.peers[peerKey{uint64(id), tracker.InfoHash(h), tracker.PeerID(pid)}]
		if p == nil {
			return errors.New("postgres: a baseline the batch did not ask for")
		}
		bl.Key = uint32(key)
		p.b, p.known, p.stored = bl, true, true
		return nil
	}); err != nil {
		return err
	}
	return res.Close()
}

// credit applies accounting.Credit to the records of the batch's users,
// in order, and sums what they add.
func (w *work) credit(batch []accounting.Record, rules accounting.Rules) {
	w.history = make(map[pairKey]*sums)
	w.userSum = make(map[uint64]*sums)
	w.torSum = make(map[tracker.InfoHash]*sums)
	for i := range batch {
		r := &batch[i]
		if r.User > math.MaxInt64 || !w.users[r.User] {
			continue // a user the database does not hold: nothing to credit
		}
		p := w.peers[peerKey{r.User, r.InfoHash, r.PeerID}]
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
		pk := pairKey{r.User, r.InfoHash}
		h := w.history[pk]
		if h == nil {
			h = &sums{first: r.Time, last: r.Time}
			w.history[pk] = h
		}
		h.add(&d)
		h.seed = satAdd(h.seed, seed)
		h.first, h.last = min(h.first, r.Time), max(h.last, r.Time)
		if d.Snatch && !h.completes {
			h.completes, h.completedAt = true, r.Time
		}
		if d.Up|d.Down|d.RawUp|d.RawDown != 0 {
			sumOf(w.userSum, r.User).add(&d)
			if w.torrents[r.InfoHash] {
				sumOf(w.torSum, r.InfoHash).add(&d)
			}
		}
	}
}

// snatched counts a snatch the database did not hold yet.
func (w *work) snatched(user uint64, h tracker.InfoHash) {
	sumOf(w.userSum, user).snatches++
	if w.torrents[h] {
		sumOf(w.torSum, h).snatches++
	}
}

func sumOf[K comparable](m map[K]*sums, k K) *sums {
	s := m[k]
	if s == nil {
		s = &sums{}
		m[k] = s
	}
	return s
}

// peerColumns are baselines to write, a slice per column.
type peerColumns struct {
	user                                 []int64
	ih, id                               [][]byte
	up, down, left, key, announced, port []int64
	stopped                              []bool
	addr                                 []netip.Addr
}

func (c *peerColumns) add(k peerKey, p *peer) {
	c.user = append(c.user, int64(k.user))
	c.ih = append(c.ih, k.ih[:])
	c.id = append(c.id, k.id[:])
	c.up = append(c.up, p.b.Uploaded)
	c.down = append(c.down, p.b.Downloaded)
	c.left = append(c.left, p.b.Left)
	c.key = append(c.key, int64(p.b.Key))
	c.announced = append(c.announced, p.b.Time)
	c.stopped = append(c.stopped, p.b.Stopped)
	c.addr = append(c.addr, p.addr.Addr())
	c.port = append(c.port, int64(p.addr.Port()))
}

func (c *peerColumns) args() []any {
	return []any{c.user, c.ih, c.id, c.up, c.down, c.left, c.key, c.announced, c.stopped, c.addr, c.port}
}

// historyColumns are additions to history rows.
type historyColumns struct {
	user                           []int64
	ih                             [][]byte
	up, down, rawUp, rawDown, seed []int64
	first, last                    []time.Time
}

func (c *historyColumns) add(k pairKey, s *sums) {
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

// totalColumns are additions to users' or torrents' totals.
type totalColumns struct {
	id                                 []int64
	hash                               [][]byte
	up, down, rawUp, rawDown, snatches []int64
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
