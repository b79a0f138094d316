package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/logdb"
	"github.com/annuaire/tracker/accounting/logdb/internal/workload"
)

type logDB struct{ *logdb.DB }

func openLogDB(dir string, rules accounting.Rules) (journal, error) {
	db, err := logdb.Open(dir, rules, logdb.Options{})
	return logDB{db}, err
}

func (db logDB) Report() string {
	s := db.Stats()
	return fmt.Sprintf("logdb: %d commits; %d snapshots, the last of %d MiB written in %v; waits for snapshots %v; tables %d MiB for %d users, %d torrents, %d histories, %d baselines",
		s.Commits, s.Snapshots, s.SnapshotBytes>>20, s.SnapshotTime.Round(time.Millisecond), s.SnapshotWait.Round(time.Millisecond), s.MemoryBytes>>20, s.Users, s.Torrents, s.Histories, s.Baselines)
}

// reopen opens the database in dir and reports the time it took: reading
// the snapshot, replaying the logs after it and writing a new snapshot.
func reopen(dir string) error {
	var logs int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if info, err := e.Info(); err == nil && strings.HasPrefix(e.Name(), "log-") {
			logs += info.Size()
		}
	}
	start := time.Now()
	db, err := logdb.Open(dir, accounting.Rules{PeerTTL: time.Hour, SeedGap: 45 * time.Minute}, logdb.Options{})
	if err != nil {
		return err
	}
	took := time.Since(start)
	rss, _ := workload.RSS()
	fmt.Printf("opened in %v with %d MiB of logs to replay; RSS %d MiB\n%s\n", took.Round(time.Millisecond), logs>>20, rss>>20, logDB{db}.Report())
	return db.Close()
}
