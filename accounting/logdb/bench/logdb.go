package main

import (
	"fmt"
	"time"

	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/logdb"
)

type logDB struct{ *logdb.DB }

func openLogDB(dir string, rules accounting.Rules) (journal, error) {
	db, err := logdb.Open(dir, rules, logdb.Options{})
	return logDB{db}, err
}

func (db logDB) Report() string {
	s := db.Stats()
	return fmt.Sprintf("logdb: %d commits; %d snapshots, the last of %d MiB written in %v; tables %d MiB for %d users, %d torrents, %d histories, %d baselines",
		s.Commits, s.Snapshots, s.SnapshotBytes>>20, s.SnapshotTime.Round(time.Millisecond), s.MemoryBytes>>20, s.Users, s.Torrents, s.Histories, s.Baselines)
}
