package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PutUser implements accounting.Directory. A passkey another user holds
// is an error that wraps accounting.ErrPasskeyInUse; an id over the
// largest bigint, or a value the table's constraints refuse, an
// *accounting.ValidationError. Deleting a user deletes its totals,
// history, snatches and baselines.
func (b *Backend) PutUser(ctx context.Context, u accounting.User) error {
	if u.ID > math.MaxInt64 {
		return &accounting.ValidationError{Field: "id", Reason: "over 9223372036854775807, the largest PostgreSQL bigint"}
	}
	if u.Deleted {
		_, err := b.pool.Exec(ctx, `DELETE FROM users WHERE id = $1`, int64(u.ID))
		return wrap(err)
	}
	_, err := b.pool.Exec(ctx, `INSERT INTO users (id, passkey, can_leech, up_factor, down_factor) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET passkey = EXCLUDED.passkey, can_leech = EXCLUDED.can_leech,
			up_factor = EXCLUDED.up_factor, down_factor = EXCLUDED.down_factor`,
		int64(u.ID), u.Passkey, u.CanLeech, int16(u.UpFactor), int16(u.DownFactor))
	return putError(err)
}

// PutTorrent implements accounting.Directory.
func (b *Backend) PutTorrent(ctx context.Context, t accounting.Torrent) error {
	_, err := b.pool.Exec(ctx, `INSERT INTO torrents (info_hash, up_factor, down_factor, deleted, reason) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (info_hash) DO UPDATE SET up_factor = EXCLUDED.up_factor, down_factor = EXCLUDED.down_factor,
			deleted = EXCLUDED.deleted, reason = EXCLUDED.reason`,
		t.InfoHash[:], int16(t.UpFactor), int16(t.DownFactor), t.Deleted, t.Reason)
	return putError(err)
}

var _ accounting.BulkDirectory = (*Backend)(nil)

// PutUsers implements accounting.BulkDirectory: one statement for all of
// users, each put as PutUser puts it (a user with Deleted set is
// deleted). Each id must appear once.
func (b *Backend) PutUsers(ctx context.Context, users []accounting.User) error {
	var ids, gone []int64
	var passkeys []string
	var leech []bool
	var up, down []int16
	for _, u := range users {
		if u.ID > math.MaxInt64 {
			return &accounting.ValidationError{Field: "id", Reason: "over 9223372036854775807, the largest PostgreSQL bigint"}
		}
		if u.Deleted {
			gone = append(gone, int64(u.ID))
			continue
		}
		ids, passkeys, leech = append(ids, int64(u.ID)), append(passkeys, u.Passkey), append(leech, u.CanLeech)
		up, down = append(up, int16(u.UpFactor)), append(down, int16(u.DownFactor))
	}
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return wrap(err)
	}
	defer tx.Rollback(context.Background())
	if len(gone) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM users WHERE id = ANY($1)`, gone); err != nil {
			return wrap(err)
		}
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO users (id, passkey, can_leech, up_factor, down_factor)
			SELECT * FROM unnest($1::int8[], $2::text[], $3::bool[], $4::int2[], $5::int2[])
			ON CONFLICT (id) DO UPDATE SET passkey = EXCLUDED.passkey, can_leech = EXCLUDED.can_leech,
				up_factor = EXCLUDED.up_factor, down_factor = EXCLUDED.down_factor`,
			ids, passkeys, leech, up, down); err != nil {
			return putError(err)
		}
	}
	return wrap(tx.Commit(ctx))
}

// PutTorrents implements accounting.BulkDirectory: one statement for all
// of torrents, each put as PutTorrent puts it. Each info hash must appear
// once.
func (b *Backend) PutTorrents(ctx context.Context, torrents []accounting.Torrent) error {
	if len(torrents) == 0 {
		return nil
	}
	hashes := make([][]byte, len(torrents))
	up, down := make([]int16, len(torrents)), make([]int16, len(torrents))
	deleted, reasons := make([]bool, len(torrents)), make([]string, len(torrents))
	for i := range torrents {
		t := &torrents[i]
		hashes[i], up[i], down[i], deleted[i], reasons[i] = t.InfoHash[:], int16(t.UpFactor), int16(t.DownFactor), t.Deleted, t.Reason
	}
	_, err := b.pool.Exec(ctx, `INSERT INTO torrents (info_hash, up_factor, down_factor, deleted, reason)
		SELECT * FROM unnest($1::bytea[], $2::int2[], $3::int2[], $4::bool[], $5::text[])
		ON CONFLICT (info_hash) DO UPDATE SET up_factor = EXCLUDED.up_factor, down_factor = EXCLUDED.down_factor,
			deleted = EXCLUDED.deleted, reason = EXCLUDED.reason`,
		hashes, up, down, deleted, reasons)
	return putError(err)
}

// putError turns the violations of the tables' constraints into the
// accounting package's errors.
func putError(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return wrap(err)
	}
	switch {
	case pe.Code == "23505" && pe.ConstraintName == "users_passkey_key":
		return fmt.Errorf("postgres: %w", accounting.ErrPasskeyInUse)
	case pe.Code == "23514": // check_violation
		field, ok := checks[pe.ConstraintName]
		if !ok {
			field = pe.ConstraintName
		}
		return &accounting.ValidationError{Field: field, Reason: pe.Message}
	}
	return wrap(err)
}

// checks names the field each constraint checks, as the Ledger names
// them.
var checks = map[string]string{
	"users_id_check":             "id",
	"users_passkey_check":        "passkey",
	"users_up_factor_check":      "upload_factor",
	"users_down_factor_check":    "download_factor",
	"torrents_info_hash_check":   "info_hash",
	"torrents_up_factor_check":   "upload_factor",
	"torrents_down_factor_check": "download_factor",
	"torrents_reason_check":      "reason",
}

// Changes implements accounting.Directory. The version is a transaction
// id: rows carry the id of the transaction that last wrote them (set by
// a trigger, whoever writes), and Changes(since) returns the rows written
// by transactions from since on, with the oldest transaction still
// running when it read them as the next version. A transaction that
// commits late is so read on a later call, never missed; a row may come
// twice, which changes nothing.
func (b *Backend) Changes(ctx context.Context, since uint64) (users []accounting.User, torrents []accounting.Torrent, version uint64, err error) {
	if since > math.MaxInt64 {
		return nil, nil, 0, fmt.Errorf("postgres: version %d out of range", since)
	}
	tx, err := b.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, 0, wrap(err)
	}
	defer tx.Rollback(context.Background())
	var xmin int64
	if err := tx.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&xmin); err != nil {
		return nil, nil, 0, wrap(err)
	}
	v := int64(since)
	var rt pgx.Batch
	if since > 0 {
		rt.Queue(`SELECT id FROM deleted_users WHERE version >= $1`, v).Query(func(rows pgx.Rows) error {
			var id int64
			_, err := pgx.ForEachRow(rows, []any{&id}, func() error {
				users = append(users, accounting.User{ID: uint64(id), Deleted: true})
				return nil
			})
			return err
		})
		rt.Queue(`SELECT info_hash FROM deleted_torrents WHERE version >= $1`, v).Query(func(rows pgx.Rows) error {
			var h []byte
			_, err := pgx.ForEachRow(rows, []any{&h}, func() error {
				// A torrent deleted from the table is refused as
				// unregistered.
				torrents = append(torrents, accounting.Torrent{InfoHash: tracker.InfoHash(h), Deleted: true})
				return nil
			})
			return err
		})
	}
	rt.Queue(`SELECT id, passkey, can_leech, up_factor, down_factor FROM users WHERE version >= $1`, v).Query(func(rows pgx.Rows) error {
		var id int64
		var u accounting.User
		var up, down int16
		_, err := pgx.ForEachRow(rows, []any{&id, &u.Passkey, &u.CanLeech, &up, &down}, func() error {
			u.ID, u.UpFactor, u.DownFactor = uint64(id), uint16(up), uint16(down)
			users = append(users, u)
			return nil
		})
		return err
	})
	rt.Queue(`SELECT info_hash, up_factor, down_factor, deleted, reason FROM torrents WHERE version >= $1`, v).Query(func(rows pgx.Rows) error {
		var h []byte
		var t accounting.Torrent
		var up, down int16
		_, err := pgx.ForEachRow(rows, []any{&h, &up, &down, &t.Deleted, &t.Reason}, func() error {
			t.InfoHash, t.UpFactor, t.DownFactor = tracker.InfoHash(h), uint16(up), uint16(down)
			torrents = append(torrents, t)
			return nil
		})
		return err
	})
	if err := tx.SendBatch(ctx, &rt).Close(); err != nil {
		return nil, nil, 0, wrap(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, nil, 0, wrap(err)
	}
	if since > 0 && len(users) == 0 && len(torrents) == 0 {
		// Nothing new: the same version, so that a caller sees no
		// change where there is none.
		return nil, nil, since, nil
	}
	return users, torrents, uint64(xmin), nil
}
