package main

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/accountingtest"
	"github.com/annuaire/tracker/accounting/logdb/internal/workload"
	bolt "go.etcd.io/bbolt"
)

// sums are the totals of every user added up: what the engines compared
// must agree on, so that they are measured doing the same work.
type sums struct{ up, down, rawUp, rawDown, snatches int64 }

func (s *sqliteJournal) sums(t *testing.T) (r sums) {
	err := s.db.QueryRow(`SELECT sum(up), sum(down), sum(rawup), sum(rawdown), sum(snatches) FROM users`).
		Scan(&r.up, &r.down, &r.rawUp, &r.rawDown, &r.snatches)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (j *boltJournal) sums(t *testing.T) (r sums) {
	err := j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNames[0]).ForEach(func(_, v []byte) error {
			f := func(i int) int64 { return int64(binary.LittleEndian.Uint64(v[8*i:])) }
			r.up, r.down, r.rawUp, r.rawDown, r.snatches = r.up+f(0), r.down+f(1), r.rawUp+f(2), r.rawDown+f(3), r.snatches+f(4)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEnginesAgree(t *testing.T) {
	rules := accounting.Rules{PeerTTL: time.Hour, SeedGap: 45 * time.Minute}
	cfg := workload.Config{Users: 200, Peers: 600, Torrents: 100, Seed: 5}
	m := accountingtest.NewModel(rules)
	g := workload.New(cfg)
	var batches [][]accounting.Record
	batches = append(batches, g.Fill(nil, 0, cfg.Peers))
	for range 30 {
		batches = append(batches, g.Next(nil, 300))
	}
	var want sums
	for _, b := range batches {
		m.Apply(b)
	}
	for _, u := range m.Users {
		want = sums{want.up + u.Uploaded, want.down + u.Downloaded, want.rawUp + u.RawUploaded, want.rawDown + u.RawDownloaded, want.snatches + u.Snatches}
	}
	sq, err := openSQLite(t.TempDir(), rules, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	bo, err := openBolt(t.TempDir(), rules)
	if err != nil {
		t.Fatal(err)
	}
	defer bo.Close()
	lj, err := openLogDB(t.TempDir(), rules)
	if err != nil {
		t.Fatal(err)
	}
	defer lj.Close()
	ctx := context.Background()
	for _, b := range batches {
		for _, j := range []journal{sq, bo, lj} {
			if err := j.Apply(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	var got sums
	for id := range m.Users {
		u, err := lj.(logDB).User(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got = sums{got.up + u.Uploaded, got.down + u.Downloaded, got.rawUp + u.RawUploaded, got.rawDown + u.RawDownloaded, got.snatches + u.Snatches}
	}
	for name, s := range map[string]sums{"sqlite": sq.sums(t), "bolt": bo.sums(t), "logdb": got} {
		if s != want {
			t.Errorf("%s: totals %+v; want %+v", name, s, want)
		}
	}
}
