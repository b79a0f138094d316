package postgres

import (
	"context"
	"fmt"

	"github.com/annuaire/tracker/accounting"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultSchema is the PostgreSQL schema the tables live in when
// Config.Schema is empty.
const DefaultSchema = "annuaire"

// Config configures a [Backend].
type Config struct {
	// DSN is the database to use, as a URL
	// (postgres://user:password@host:5432/site?sslmode=verify-full) or
	// as key=value pairs; the PG environment variables fill in what it
	// leaves out (see pgx's ParseConfig).
	DSN string
	// Schema is the PostgreSQL schema that holds the tables, created if
	// missing. If empty, DefaultSchema.
	Schema string
	// Rules are the ledger's rules: every tracker sharing the database
	// must use the same (see accounting.RulesFor).
	Rules accounting.Rules
	// MaxConns bounds the connections the backend opens. If zero, 8.
	MaxConns int32
	// Writers is how many transactions apply one large batch at once,
	// each the records of a share of the users: the server runs each in
	// a process of its own, so a batch uses as many of its processors,
	// and one transaction's round trips overlap another's work. If zero,
	// 3; at most MaxConns.
	Writers int
}

// Backend is an [accounting.Backend] over PostgreSQL. Several trackers
// may share one database, each with its own Backend (and Ledger): a batch
// writes a baseline only over the version it read, so credits stay exact
// whichever tracker a client reaches. Its methods are safe for concurrent
// use.
type Backend struct {
	pool    *pgxpool.Pool
	rules   accounting.Rules
	schema  string
	writers int

	// afterRead, if set, runs in every try of a transaction that applies
	// records, between reading the baselines and writing them (tests).
	afterRead func(lock bool)
}

var _ accounting.Backend = (*Backend)(nil)

// Open connects to the database, creates the schema or migrates it to
// SchemaVersion, and returns the Backend. Trackers starting at once
// take turns to migrate.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Schema == "" {
		cfg.Schema = DefaultSchema
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 8
	}
	if cfg.MaxConns < 0 {
		return nil, fmt.Errorf("postgres: Config.MaxConns %d is negative", cfg.MaxConns)
	}
	if cfg.Writers == 0 {
		cfg.Writers = 3
	}
	if cfg.Writers < 0 || cfg.Writers > int(cfg.MaxConns) {
		return nil, fmt.Errorf("postgres: Config.Writers %d is not between 1 and MaxConns (%d)", cfg.Writers, cfg.MaxConns)
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pc.MaxConns = cfg.MaxConns
	pc.MinConns = 0
	// The tables are found through the search path, set on every
	// connection; statements are prepared and cached per connection.
	pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{cfg.Schema}.Sanitize()
	// A batch's statements each run for milliseconds: compiling them
	// would cost more than it saves.
	pc.ConnConfig.RuntimeParams["jit"] = "off"
	conn, err := pgx.ConnectConfig(ctx, pc.ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	err = migrate(ctx, conn, cfg.Schema)
	conn.Close(context.Background())
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &Backend{pool: pool, rules: cfg.Rules, schema: cfg.Schema, writers: cfg.Writers}, nil
}

// Close closes the backend's connections.
func (b *Backend) Close() error {
	b.pool.Close()
	return nil
}

// Pool returns the backend's connection pool, for a site that reads its
// tables from the same process.
func (b *Backend) Pool() *pgxpool.Pool { return b.pool }

// wrap names the package in err.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("postgres: %w", err)
}
