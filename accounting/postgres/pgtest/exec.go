package pgtest

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// Exec runs sql, one or more statements, in database db as the
// superuser.
func (s *Server) Exec(ctx context.Context, db, sql string) error {
	c, err := pgconn.Connect(ctx, s.DSN(db))
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}
