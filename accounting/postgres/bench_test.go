//go:build unix

package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/accountingtest"
	"github.com/annuaire/tracker/accounting/postgres/pgtest"
	"github.com/jackc/pgx/v5"
)

// The benchmark's database: a server of its own, durable (fsync and
// synchronous commit on, as in production), with the memory and WAL
// settings a tracker's database would get, and the tables of a site with
// benchUsers users, benchTorrents torrents and benchPeers peers, each
// with its history row.
var (
	benchUsers    = envInt("ANNUAIRE_PG_BENCH_USERS", 200_000)
	benchTorrents = envInt("ANNUAIRE_PG_BENCH_TORRENTS", 100_000)
	benchPeers    = envInt("ANNUAIRE_PG_BENCH_PEERS", 500_000)
)

var benchSettings = map[string]string{
	"shared_buffers":     "1GB",
	"max_wal_size":       "8GB",
	"checkpoint_timeout": "30min",
	"wal_buffers":        "64MB",
}

// dsnEnv names a database to run the benchmark against instead of a
// server of its own (its tables go in schema annuaire_bench, filled on
// the first run and kept); the server's processor time is then not
// reported.
const dsnEnv = "ANNUAIRE_PG_BENCH_DSN"

// writersEnv sets Config.Writers (the default if unset).
const writersEnv = "ANNUAIRE_PG_BENCH_WRITERS"

// statsEnv, set to 1, loads pg_stat_statements into the benchmark's
// server and prints, after each run, where the server's time went.
const statsEnv = "ANNUAIRE_PG_BENCH_STATS"

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchDB is the state the benchmark keeps across its runs: the server,
// and every peer's counters.
type benchDB struct {
	srv   *pgtest.Server
	b     *Backend
	peers []benchPeer
	now   int64
	rnd   *rand.Rand
}

type benchPeer struct {
	up, down, left int64
	stopped        bool
}

var (
	benchOnce  sync.Once
	benchState *benchDB
	benchErr   error
)

func benchPeerKey(p int) (uint64, tracker.InfoHash, tracker.PeerID) {
	var h tracker.InfoHash
	binary.BigEndian.PutUint64(h[:], uint64((p*2654435761)>>7%benchTorrents+1))
	copy(h[8:], "annuaire-ih")
	var id tracker.PeerID
	copy(id[:], "-qB4650-")
	binary.BigEndian.PutUint64(id[12:], uint64(p))
	return uint64(p%benchUsers + 1), h, id
}

// openBench starts the server and fills it, once per test binary.
func openBench(b *testing.B) *benchDB {
	requireServer(b)
	benchOnce.Do(func() {
		benchState, benchErr = fillBench()
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchState
}

func fillBench() (*benchDB, error) {
	if os.Getenv(statsEnv) == "1" {
		benchSettings["shared_preload_libraries"] = "pg_stat_statements"
		benchSettings["pg_stat_statements.track"] = "all"
		benchSettings["track_io_timing"] = "on"
	}
	dsn, schema := os.Getenv(dsnEnv), "annuaire_bench"
	var srv *pgtest.Server
	if dsn == "" {
		var err error
		if srv, err = pgtest.Start(pgtest.Config{Settings: benchSettings}); err != nil {
			return nil, err
		}
		dsn, schema = srv.DSN("postgres"), DefaultSchema
	}
	ctx := context.Background()
	backend, err := Open(ctx, Config{DSN: dsn, Schema: schema, Rules: accountingtest.Rules, Writers: envInt(writersEnv, 0)})
	if err != nil {
		if srv != nil {
			srv.Close()
		}
		return nil, err
	}
	db := &benchDB{srv: srv, b: backend, peers: make([]benchPeer, benchPeers), rnd: rand.New(rand.NewPCG(3, 4))}
	start := time.Now()
	db.now = start.Add(-24 * time.Hour).UnixNano()
	for p := range db.peers {
		db.peers[p] = benchPeerAt(p)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SET search_path TO `+schema); err != nil {
		return nil, err
	}
	var have int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&have); err != nil {
		return nil, err
	}
	if have > 0 {
		return db, db.reload(ctx, conn)
	}
	// Users and torrents with SQL, as a site would; then their ledger.
	if _, err := conn.Exec(ctx, `INSERT INTO users (id, passkey)
			SELECT i, lpad(to_hex(i), 32, 'p') FROM generate_series(1, $1::bigint) i`, benchUsers); err != nil {
		return nil, err
	}
	hashes := make([][]any, benchTorrents)
	for i := range hashes {
		var h tracker.InfoHash
		binary.BigEndian.PutUint64(h[:], uint64(i+1))
		copy(h[8:], "annuaire-ih")
		hashes[i] = []any{h[:]}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"torrents"}, []string{"info_hash"}, pgx.CopyFromRows(hashes)); err != nil {
		return nil, err
	}
	at := time.Unix(0, db.now)
	peers := make([][]any, 0, benchPeers)
	hist := map[pairKey]bool{}
	var histRows [][]any
	for p := range benchPeers {
		u, h, id := benchPeerKey(p)
		st := &db.peers[p]
		addr := netip.AddrFrom4([4]byte{10, byte(p >> 16), byte(p >> 8), byte(p)})
		peers = append(peers, []any{int64(u), h[:], id[:], st.up, st.down, st.left, int64(p), db.now, false, addr, int32(6881)})
		if !hist[pairKey{u, h}] {
			hist[pairKey{u, h}] = true
			histRows = append(histRows, []any{int64(u), h[:], st.up, st.down, st.up, st.down, int64(0), at, at})
		}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"peers"},
		[]string{"user_id", "info_hash", "peer_id", "uploaded", "downloaded", "remaining", "key", "announced_ns", "stopped", "addr", "port"},
		pgx.CopyFromRows(peers)); err != nil {
		return nil, err
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"history"},
		[]string{"user_id", "info_hash", "uploaded", "downloaded", "raw_uploaded", "raw_downloaded", "seed_time", "first_seen", "last_seen"},
		pgx.CopyFromRows(histRows)); err != nil {
		return nil, err
	}
	for _, sql := range []string{
		`UPDATE user_totals t SET uploaded = s.up, downloaded = s.down, raw_uploaded = s.up, raw_downloaded = s.down
			FROM (SELECT user_id, sum(uploaded) AS up, sum(downloaded) AS down FROM history GROUP BY user_id) s
			WHERE t.user_id = s.user_id`,
		`UPDATE torrent_totals t SET uploaded = s.up, downloaded = s.down
			FROM (SELECT info_hash, sum(uploaded) AS up, sum(downloaded) AS down FROM history GROUP BY info_hash) s
			WHERE t.info_hash = s.info_hash`,
		`VACUUM ANALYZE`,
		`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`,
		`CHECKPOINT`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(os.Stderr, "benchmark database: %d users, %d torrents, %d peers, %d history rows, filled in %v\n",
		benchUsers, benchTorrents, benchPeers, len(histRows), time.Since(start).Round(time.Millisecond))
	return db, nil
}

// reload reads the counters an earlier run left in the database.
func (db *benchDB) reload(ctx context.Context, conn *pgx.Conn) error {
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(announced_ns), 0) FROM peers`).Scan(&db.now); err != nil {
		return err
	}
	us, hs, ids := make([]int64, len(db.peers)), make([][]byte, len(db.peers)), make([][]byte, len(db.peers))
	for p := range db.peers {
		u, h, id := benchPeerKey(p)
		us[p], hs[p], ids[p] = int64(u), h[:], id[:]
	}
	rows, _ := conn.Query(ctx, `SELECT k.i, p.uploaded, p.downloaded, p.remaining, p.stopped
		FROM unnest($1::int8[], $2::bytea[], $3::bytea[]) WITH ORDINALITY AS k(user_id, info_hash, peer_id, i)
		JOIN peers p ON p.user_id = k.user_id AND p.info_hash = k.info_hash AND p.peer_id = k.peer_id`, us, hs, ids)
	var i int
	var st benchPeer
	_, err := pgx.ForEachRow(rows, []any{&i, &st.up, &st.down, &st.left, &st.stopped}, func() error {
		db.peers[i-1] = st
		return nil
	})
	return err
}

// benchPeerAt returns the counters peer p starts the benchmark with.
func benchPeerAt(p int) benchPeer {
	st := benchPeer{left: 1 << 30}
	if p%3 == 0 {
		st.left = 0 // a seeder
	}
	st.up, st.down = int64(p%1000)<<20, (1<<30)-st.left
	return st
}

// batch returns n announces of random peers, as a tracker receives them
// in a busy second: mostly periodic announces with growing counters,
// some completions, some stops and restarts, and new peers.
func (db *benchDB) batch(n int) []accounting.Record {
	recs := make([]accounting.Record, n)
	for i := range recs {
		db.now += int64(time.Millisecond)
		p := db.rnd.IntN(len(db.peers))
		if db.rnd.IntN(100) == 0 {
			// A new peer.
			db.peers = append(db.peers, benchPeer{left: 1 << 30})
			p = len(db.peers) - 1
		}
		u, h, id := benchPeerKey(p)
		st := &db.peers[p]
		r := accounting.Record{User: u, InfoHash: h, PeerID: id, Key: uint32(p), Time: db.now,
			Addr:     netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(p >> 16), byte(p >> 8), byte(p)}), 6881),
			UpFactor: 1_000_000, DownFactor: 1_000_000}
		switch {
		case p >= benchPeers && st.up == 0 && st.down == 0:
			r.Event = tracker.EventStarted
		case st.stopped:
			*st = benchPeer{left: st.left}
			r.Event = tracker.EventStarted
		case db.rnd.IntN(100) == 0:
			st.stopped = true
			r.Event = tracker.EventStopped
		default:
			st.up += int64(db.rnd.IntN(1 << 20))
			d := min(st.left, int64(db.rnd.IntN(1<<28)))
			st.down += d
			st.left -= d
			if d > 0 && st.left == 0 {
				r.Event = tracker.EventCompleted
			}
		}
		r.Uploaded, r.Downloaded, r.Left = st.up, st.down, st.left
		recs[i] = r
	}
	return recs
}

// closeBench stops the benchmark's server, if it ran.
func closeBench() {
	if benchState != nil {
		benchState.b.Close()
		if benchState.srv != nil {
			benchState.srv.Close()
		}
	}
}

func cpuSelf() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkApply measures sustained flushes: batches of 10,000 announces
// (the Ledger's batch) applied one after the other into tables of
// hundreds of thousands of users and peers, each batch durable when
// Apply returns. records/s is the rate; pg-cpu-µs/record and
// go-cpu-µs/record split the processor time between the server and the
// process that runs the benchmark.
func BenchmarkApply(b *testing.B) {
	db := openBench(b)
	const size = 10_000
	// The batches are made before the clock starts.
	var batches [][]accounting.Record
	for n := 0; n < b.N; n += size {
		batches = append(batches, db.batch(min(size, b.N-n)))
	}
	ctx := context.Background()
	stats := os.Getenv(statsEnv) == "1"
	if stats {
		if _, err := db.b.pool.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
			b.Fatal(err)
		}
	}
	var pg0, pg1 time.Duration
	if db.srv != nil {
		pg0, _ = db.srv.CPUTime()
	}
	self0 := cpuSelf()
	b.ResetTimer()
	start := time.Now()
	for _, batch := range batches {
		if err := db.b.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	if db.srv != nil {
		pg1, _ = db.srv.CPUTime()
	}
	self1 := cpuSelf()
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
	if db.srv != nil {
		b.ReportMetric(float64((pg1-pg0).Microseconds())/float64(b.N), "pg-cpu-µs/record")
	}
	b.ReportMetric(float64((self1-self0).Microseconds())/float64(b.N), "go-cpu-µs/record")
	if stats {
		db.printStats(b)
	}
}

// printStats prints the statements the server spent the most time on
// since the last reset, per record.
func (db *benchDB) printStats(b *testing.B) {
	rows, err := db.b.pool.Query(context.Background(), `SELECT total_exec_time, calls, rows, shared_blks_hit, shared_blks_read,
			shared_blks_dirtied, wal_bytes, blk_read_time, left(regexp_replace(query, '\s+', ' ', 'g'), 90)
		FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12`)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "b.N=%d: ms, calls, rows, blocks hit, read, dirtied, WAL bytes, read ms, statement\n", b.N)
	var ms, readMs float64
	var calls, nrows, hit, read, dirtied int64
	var wal float64
	var q string
	_, err = pgx.ForEachRow(rows, []any{&ms, &calls, &nrows, &hit, &read, &dirtied, &wal, &readMs, &q}, func() error {
		fmt.Fprintf(os.Stderr, "%8.0f %6d %8d %9d %7d %7d %11.0f %6.0f %s\n", ms, calls, nrows, hit, read, dirtied, wal, readMs, q)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
