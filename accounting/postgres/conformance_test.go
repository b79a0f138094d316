package postgres

import (
	"testing"

	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/accountingtest"
)

func TestConformance(t *testing.T) {
	dsn := requireServer(t).DSN("postgres")
	accountingtest.TestBackend(t, func(t *testing.T, rules accounting.Rules) accounting.Backend {
		return openBackend(t, dsn, newSchema(), rules)
	}, accountingtest.Reopen(func(t *testing.T, old accounting.Backend) accounting.Backend {
		b := old.(*Backend)
		b.Close()
		return openBackend(t, dsn, b.schema, b.rules)
	}))
}
