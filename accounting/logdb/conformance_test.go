package logdb

import (
	"testing"

	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/accountingtest"
)

// TestConformance runs the backend conformance suite; the suite's crash
// test reopens the database as a crash leaves it (no snapshot at close).
func TestConformance(t *testing.T) {
	accountingtest.TestBackend(t, func(t *testing.T, rules accounting.Rules) accounting.Backend {
		db, err := Open(t.TempDir(), rules, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}, accountingtest.Reopen(func(t *testing.T, b accounting.Backend) accounting.Backend {
		old := b.(*DB)
		abandon(old)
		db, err := Open(old.dir, old.rules, old.opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}))
}
