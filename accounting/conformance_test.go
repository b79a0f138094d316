package accounting_test

import (
	"testing"

	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/accountingtest"
)

func TestMemoryBackendConformance(t *testing.T) {
	accountingtest.TestBackend(t, func(t *testing.T, rules accounting.Rules) accounting.Backend {
		b := accounting.NewMemoryBackend(rules)
		t.Cleanup(func() { b.Close() })
		return b
	})
}
