// Package postgres is an [accounting.Backend] over PostgreSQL: a private
// tracker's users, torrents and ledger in the site's own database, where
// the site reads and writes them with SQL, and where several tracker
// instances can keep one ledger.
//
//	backend, err := postgres.Open(ctx, postgres.Config{
//		DSN:   "postgres://tracker@db.example/site",
//		Rules: accounting.RulesFor(trackerConfig),
//	})
//	if err != nil {
//		return err
//	}
//	ledger, err := accounting.Open(ctx, backend, accounting.Config{Spool: "/var/lib/annuaire/spool"})
//
// Open creates the tables in their own schema (Config.Schema, annuaire
// by default), or migrates them; the schema_version table records the
// migrations applied. The module's README documents the tables for the
// site: what it may write (users, torrents) and what it only reads
// (totals, history, snatches, baselines).
//
// # Several trackers, one ledger
//
// A batch of announces is applied in transactions that each read the
// baselines of their peers, credit the records with [accounting.Credit]
// in order, and write the baselines, the history, the snatches and the
// totals back with a few set-based statements; a large batch is split by
// user into Config.Writers such transactions, run at once. A transaction
// writes a baseline only if its row is still the version it read; if
// another tracker changed it meanwhile, the transaction is tried again,
// locking the rows it reads (SELECT ... FOR UPDATE). So two trackers
// applying records of the same peer take turns, and the second credits
// against what the first left: a client may reach any tracker, and an
// announce relayed to two of them is credited once. Give
// each of their Ledgers accounting.Config.Shared, so that announces that
// start, complete or stop a session are answered once in the database,
// never on one tracker's spool alone.
//
// # The site's changes
//
// Triggers stamp every row a site writes in users and torrents, and
// record the rows it deletes; [Backend.Changes] returns them, so that
// every Ledger applies them at its next poll (accounting.Config's
// PollInterval, 5 seconds by default).
package postgres
