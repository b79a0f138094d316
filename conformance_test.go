package tracker_test

import (
	"testing"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/trackertest"
)

func TestMemoryStoreConformance(t *testing.T) {
	trackertest.TestStore(t, func(t *testing.T) tracker.Store {
		s, err := tracker.NewMemoryStore(tracker.MemoryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
