package postgres

import (
	"context"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
)

// The schema's versions. Each migration runs once, in order, in the
// transaction that records it in schema_version; a tracker finding a
// schema newer than it knows refuses to start. Migrations already
// released are never edited: a change is a new one.
var migrations = []string{
	// 1: users, torrents, the ledger.
	`
CREATE TABLE users (
	id          bigint   PRIMARY KEY CHECK (id > 0),
	passkey     text     NOT NULL UNIQUE CHECK (passkey ~ '^[0-9A-Za-z]{32}$'),
	can_leech   boolean  NOT NULL DEFAULT true,
	up_factor   smallint NOT NULL DEFAULT 100 CHECK (up_factor BETWEEN 0 AND 1000),
	down_factor smallint NOT NULL DEFAULT 100 CHECK (down_factor BETWEEN 0 AND 1000),
	version     bigint   NOT NULL DEFAULT 0
);
CREATE INDEX users_version ON users (version);

CREATE TABLE torrents (
	info_hash   bytea    PRIMARY KEY CHECK (length(info_hash) = 20),
	up_factor   smallint NOT NULL DEFAULT 100 CHECK (up_factor BETWEEN 0 AND 1000),
	down_factor smallint NOT NULL DEFAULT 100 CHECK (down_factor BETWEEN 0 AND 1000),
	deleted     boolean  NOT NULL DEFAULT false,
	reason      text     NOT NULL DEFAULT '' CHECK (octet_length(reason) <= 200 AND reason !~ '[\u0001-\u001f\u007f-\u009f]'),
	version     bigint   NOT NULL DEFAULT 0
);
CREATE INDEX torrents_version ON torrents (version);

-- Rows deleted from users and torrents, so that running trackers learn
-- of it.
CREATE TABLE deleted_users (
	id      bigint PRIMARY KEY,
	version bigint NOT NULL
);
CREATE TABLE deleted_torrents (
	info_hash bytea  PRIMARY KEY,
	version   bigint NOT NULL
);

-- version is the id of the transaction that last wrote the row: Changes
-- reads what transactions at or after the oldest one still running
-- wrote, so that none is missed however late it commits.
CREATE FUNCTION stamp_version() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
	NEW.version := pg_current_xact_id()::text::bigint;
	RETURN NEW;
END $$;

CREATE TABLE user_totals (
	user_id        bigint PRIMARY KEY REFERENCES users ON DELETE CASCADE ON UPDATE CASCADE,
	uploaded       bigint NOT NULL DEFAULT 0,
	downloaded     bigint NOT NULL DEFAULT 0,
	raw_uploaded   bigint NOT NULL DEFAULT 0,
	raw_downloaded bigint NOT NULL DEFAULT 0,
	snatches       bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 80);

CREATE TABLE torrent_totals (
	info_hash  bytea  PRIMARY KEY REFERENCES torrents ON DELETE CASCADE ON UPDATE CASCADE,
	uploaded   bigint NOT NULL DEFAULT 0,
	downloaded bigint NOT NULL DEFAULT 0,
	snatches   bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 80);

-- A user or torrent inserted gets its totals row; one deleted leaves a
-- tombstone, and one inserted again loses it.
CREATE FUNCTION users_changed() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
	IF TG_OP = 'DELETE' OR OLD.id <> NEW.id THEN
		INSERT INTO deleted_users (id, version) VALUES (OLD.id, pg_current_xact_id()::text::bigint)
			ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version;
	END IF;
	IF TG_OP = 'INSERT' THEN
		INSERT INTO user_totals (user_id) VALUES (NEW.id);
	END IF;
	IF TG_OP <> 'DELETE' THEN
		DELETE FROM deleted_users WHERE id = NEW.id;
	END IF;
	RETURN NULL;
END $$;

CREATE FUNCTION torrents_changed() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
	IF TG_OP = 'DELETE' OR OLD.info_hash <> NEW.info_hash THEN
		INSERT INTO deleted_torrents (info_hash, version) VALUES (OLD.info_hash, pg_current_xact_id()::text::bigint)
			ON CONFLICT (info_hash) DO UPDATE SET version = EXCLUDED.version;
	END IF;
	IF TG_OP = 'INSERT' THEN
		INSERT INTO torrent_totals (info_hash) VALUES (NEW.info_hash);
	END IF;
	IF TG_OP <> 'DELETE' THEN
		DELETE FROM deleted_torrents WHERE info_hash = NEW.info_hash;
	END IF;
	RETURN NULL;
END $$;

CREATE TRIGGER users_version BEFORE INSERT OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION stamp_version();
CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OF id OR DELETE ON users FOR EACH ROW EXECUTE FUNCTION users_changed();
CREATE TRIGGER torrents_version BEFORE INSERT OR UPDATE ON torrents FOR EACH ROW EXECUTE FUNCTION stamp_version();
CREATE TRIGGER torrents_changed AFTER INSERT OR UPDATE OF info_hash OR DELETE ON torrents FOR EACH ROW EXECUTE FUNCTION torrents_changed();

CREATE TABLE history (
	user_id        bigint      NOT NULL REFERENCES users ON DELETE CASCADE ON UPDATE CASCADE,
	info_hash      bytea       NOT NULL,
	uploaded       bigint      NOT NULL,
	downloaded     bigint      NOT NULL,
	raw_uploaded   bigint      NOT NULL,
	raw_downloaded bigint      NOT NULL,
	seed_time      bigint      NOT NULL,
	first_seen     timestamptz NOT NULL,
	last_seen      timestamptz NOT NULL,
	PRIMARY KEY (user_id, info_hash)
) WITH (fillfactor = 80);
CREATE INDEX history_info_hash ON history (info_hash);

CREATE TABLE snatches (
	user_id      bigint      NOT NULL REFERENCES users ON DELETE CASCADE ON UPDATE CASCADE,
	info_hash    bytea       NOT NULL,
	completed_at timestamptz NOT NULL,
	PRIMARY KEY (user_id, info_hash)
);
CREATE INDEX snatches_info_hash ON snatches (info_hash);

CREATE TABLE peers (
	user_id      bigint  NOT NULL REFERENCES users ON DELETE CASCADE ON UPDATE CASCADE,
	info_hash    bytea   NOT NULL,
	peer_id      bytea   NOT NULL,
	uploaded     bigint  NOT NULL,
	downloaded   bigint  NOT NULL,
	remaining    bigint  NOT NULL,
	key          bigint  NOT NULL,
	announced_ns bigint  NOT NULL,
	stopped      boolean NOT NULL,
	addr         inet,
	port         integer,
	PRIMARY KEY (user_id, info_hash, peer_id)
) WITH (fillfactor = 70);
CREATE INDEX peers_info_hash ON peers (info_hash);
`,
}

// SchemaVersion is the version of the schema this package creates and
// uses.
var SchemaVersion = len(migrations)

// migrate brings schema up to SchemaVersion. An advisory lock, keyed by
// the schema's name, makes trackers starting at once take turns: the
// first migrates, the others find it done.
func migrate(ctx context.Context, conn *pgx.Conn, schema string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey(schema)); err != nil {
		return err
	}
	q := pgx.Identifier{schema}.Sanitize()
	if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+q); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+q); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    integer     PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return err
	}
	var have int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_version").Scan(&have); err != nil {
		return err
	}
	if have > len(migrations) {
		return fmt.Errorf("schema %s is at version %d, newer than this tracker's %d: upgrade the tracker", schema, have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("migrating schema %s to version %d: %w", schema, v, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_version (version) VALUES ($1)", v); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// lockKey is the advisory lock of a schema's migrations.
func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("annuaire schema " + schema))
	return int64(h.Sum64())
}
