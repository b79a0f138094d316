package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"

	"github.com/annuaire/tracker/accounting"
	_ "modernc.org/sqlite"
)

// sqliteJournal is the journal as SQLite tables, through the pure-Go
// modernc.org/sqlite driver: one transaction per batch, WAL with a sync
// per commit, one read and one upsert per row.
type sqliteJournal struct {
	db    *sql.DB
	rules accounting.Rules
}

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS users(id INTEGER PRIMARY KEY, up INTEGER, down INTEGER, rawup INTEGER, rawdown INTEGER, snatches INTEGER);
CREATE TABLE IF NOT EXISTS torrents(hash BLOB PRIMARY KEY, up INTEGER, down INTEGER, snatches INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history(user INTEGER, hash BLOB, up INTEGER, down INTEGER, rawup INTEGER, rawdown INTEGER,
	seed INTEGER, first INTEGER, last INTEGER, completed INTEGER, PRIMARY KEY(user, hash)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS baselines(user INTEGER, hash BLOB, peer BLOB, up INTEGER, down INTEGER, left INTEGER,
	key INTEGER, time INTEGER, stopped INTEGER, PRIMARY KEY(user, hash, peer)) WITHOUT ROWID;
`

func openSQLite(dir string, rules accounting.Rules, cacheMiB int) (*sqliteJournal, error) {
	dsn := fmt.Sprintf("file:%s?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=cache_size(-%d)&_pragma=busy_timeout(5000)",
		filepath.Join(dir, "ledger.sqlite"), cacheMiB<<10)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(sqliteSchema); err != nil {
		db.Close()
		return nil, err
	}
	return &sqliteJournal{db: db, rules: rules}, nil
}

func (s *sqliteJournal) Close() error { return s.db.Close() }

func (s *sqliteJournal) Apply(ctx context.Context, batch []accounting.Record) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	getBase, err := tx.PrepareContext(ctx, `SELECT up, down, left, key, time, stopped FROM baselines WHERE user=? AND hash=? AND peer=?`)
	if err != nil {
		return err
	}
	putBase, err := tx.PrepareContext(ctx, `INSERT INTO baselines VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET
		up=excluded.up, down=excluded.down, left=excluded.left, key=excluded.key, time=excluded.time, stopped=excluded.stopped`)
	if err != nil {
		return err
	}
	getHist, err := tx.PrepareContext(ctx, `SELECT completed FROM history WHERE user=? AND hash=?`)
	if err != nil {
		return err
	}
	putHist, err := tx.PrepareContext(ctx, `INSERT INTO history VALUES(?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET
		up=up+excluded.up, down=down+excluded.down, rawup=rawup+excluded.rawup, rawdown=rawdown+excluded.rawdown,
		seed=seed+excluded.seed, first=min(first, excluded.first), last=max(last, excluded.last), completed=coalesce(completed, excluded.completed)`)
	if err != nil {
		return err
	}
	putUser, err := tx.PrepareContext(ctx, `INSERT INTO users VALUES(?,?,?,?,?,?) ON CONFLICT DO UPDATE SET
		up=up+excluded.up, down=down+excluded.down, rawup=rawup+excluded.rawup, rawdown=rawdown+excluded.rawdown, snatches=snatches+excluded.snatches`)
	if err != nil {
		return err
	}
	putTorrent, err := tx.PrepareContext(ctx, `INSERT INTO torrents VALUES(?,?,?,?) ON CONFLICT DO UPDATE SET
		up=up+excluded.up, down=down+excluded.down, snatches=snatches+excluded.snatches`)
	if err != nil {
		return err
	}
	for i := range batch {
		r := &batch[i]
		var b accounting.Baseline
		known := true
		err := getBase.QueryRowContext(ctx, int64(r.User), r.InfoHash[:], r.PeerID[:]).Scan(&b.Uploaded, &b.Downloaded, &b.Left, &b.Key, &b.Time, &b.Stopped)
		if err == sql.ErrNoRows {
			known = false
		} else if err != nil {
			return err
		}
		d := accounting.Credit(b, known, r, s.rules)
		if d.Stale {
			continue
		}
		nb := d.Baseline
		if _, err := putBase.ExecContext(ctx, int64(r.User), r.InfoHash[:], r.PeerID[:], nb.Uploaded, nb.Downloaded, nb.Left, nb.Key, nb.Time, nb.Stopped); err != nil {
			return err
		}
		snatch := int64(0)
		var completed any
		if d.Snatch {
			var c sql.NullInt64
			err := getHist.QueryRowContext(ctx, int64(r.User), r.InfoHash[:]).Scan(&c)
			if err != nil && err != sql.ErrNoRows {
				return err
			}
			if !c.Valid {
				snatch, completed = 1, r.Time
			}
		}
		if _, err := putHist.ExecContext(ctx, int64(r.User), r.InfoHash[:], d.Up, d.Down, d.RawUp, d.RawDown, int64(d.SeedTime), r.Time, r.Time, completed); err != nil {
			return err
		}
		if _, err := putUser.ExecContext(ctx, int64(r.User), d.Up, d.Down, d.RawUp, d.RawDown, snatch); err != nil {
			return err
		}
		if _, err := putTorrent.ExecContext(ctx, r.InfoHash[:], d.Up, d.Down, snatch); err != nil {
			return err
		}
	}
	return tx.Commit()
}
