package postgres

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/jackc/pgx/v5"
)

// activeSince returns the announce time, in Unix nanoseconds, from which
// a peer that did not stop counts as active.
func (b *Backend) activeSince() int64 {
	if b.rules.PeerTTL <= 0 {
		return math.MinInt64
	}
	return time.Now().UnixNano() - int64(b.rules.PeerTTL)
}

// notFound turns pgx's "no rows" into accounting.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return accounting.ErrNotFound
	}
	return wrap(err)
}

// User implements accounting.Reports.
func (b *Backend) User(ctx context.Context, id uint64) (accounting.UserTotals, error) {
	if id > math.MaxInt64 {
		return accounting.UserTotals{}, accounting.ErrNotFound
	}
	t := accounting.UserTotals{ID: id}
	err := b.pool.QueryRow(ctx, `SELECT coalesce(t.uploaded, 0), coalesce(t.downloaded, 0), coalesce(t.raw_uploaded, 0),
			coalesce(t.raw_downloaded, 0), coalesce(t.snatches, 0),
			(SELECT count(*) FROM peers p WHERE p.user_id = u.id AND NOT p.stopped AND p.announced_ns >= $2 AND p.remaining = 0),
			(SELECT count(*) FROM peers p WHERE p.user_id = u.id AND NOT p.stopped AND p.announced_ns >= $2 AND p.remaining > 0)
		FROM users u LEFT JOIN user_totals t ON t.user_id = u.id
		WHERE u.id = $1`, int64(id), b.activeSince()).
		Scan(&t.Uploaded, &t.Downloaded, &t.RawUploaded, &t.RawDownloaded, &t.Snatches, &t.Seeding, &t.Leeching)
	if err != nil {
		return accounting.UserTotals{}, notFound(err)
	}
	return t, nil
}

// UserTorrents implements accounting.Reports: rows in the order the user
// first announced the torrents.
func (b *Backend) UserTorrents(ctx context.Context, id uint64) ([]accounting.History, error) {
	if id > math.MaxInt64 {
		return nil, accounting.ErrNotFound
	}
	tx, err := b.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, wrap(err)
	}
	defer tx.Rollback(context.Background())
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`, int64(id)).Scan(&exists); err != nil {
		return nil, wrap(err)
	}
	if !exists {
		return nil, accounting.ErrNotFound
	}
	rows, _ := tx.Query(ctx, `SELECT h.info_hash, h.uploaded, h.downloaded, h.raw_uploaded, h.raw_downloaded, h.seed_time,
			h.first_seen, h.last_seen, s.completed_at,
			EXISTS (SELECT 1 FROM peers p WHERE p.user_id = h.user_id AND p.info_hash = h.info_hash AND NOT p.stopped AND p.announced_ns >= $2)
		FROM history h LEFT JOIN snatches s ON s.user_id = h.user_id AND s.info_hash = h.info_hash
		WHERE h.user_id = $1
		ORDER BY h.first_seen, h.info_hash`, int64(id), b.activeSince())
	var out []accounting.History
	var r accounting.History
	var ih []byte
	var seed int64
	var completed *time.Time
	if _, err := pgx.ForEachRow(rows, []any{&ih, &r.Uploaded, &r.Downloaded, &r.RawUploaded, &r.RawDownloaded, &seed,
		&r.FirstSeen, &r.LastSeen, &completed, &r.Active}, func() error {
		r.InfoHash = tracker.InfoHash(ih)
		r.SeedTime = time.Duration(seed) * time.Second
		r.CompletedAt = time.Time{}
		if completed != nil {
			r.CompletedAt = *completed
		}
		out = append(out, r)
		return nil
	}); err != nil {
		return nil, wrap(err)
	}
	if out == nil {
		out = []accounting.History{}
	}
	return out, tx.Commit(ctx)
}

// Torrent implements accounting.Reports.
func (b *Backend) Torrent(ctx context.Context, h tracker.InfoHash) (accounting.TorrentTotals, error) {
	t := accounting.TorrentTotals{InfoHash: h}
	err := b.pool.QueryRow(ctx, `SELECT coalesce(t.snatches, 0), coalesce(t.uploaded, 0), coalesce(t.downloaded, 0),
			(SELECT count(*) FROM peers p WHERE p.info_hash = x.info_hash AND NOT p.stopped AND p.announced_ns >= $2 AND p.remaining = 0),
			(SELECT count(*) FROM peers p WHERE p.info_hash = x.info_hash AND NOT p.stopped AND p.announced_ns >= $2 AND p.remaining > 0)
		FROM torrents x LEFT JOIN torrent_totals t ON t.info_hash = x.info_hash
		WHERE x.info_hash = $1`, h[:], b.activeSince()).
		Scan(&t.Snatches, &t.Uploaded, &t.Downloaded, &t.Seeders, &t.Leechers)
	if err != nil {
		return accounting.TorrentTotals{}, notFound(err)
	}
	return t, nil
}
