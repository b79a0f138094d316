package logdb

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/accountingtest"
	"github.com/annuaire/tracker/accounting/logdb/internal/workload"
)

// BenchmarkApply applies batches of 20,000 records (a second of a busy
// tracker) of peers drawn at random among LOGDB_BENCH_PEERS (default
// 200,000) peers of as many users on 0.35 times as many torrents, all of
// which announced once before the measurement. The full-scale run with a
// tracker beside it is the bench command of the README.
func BenchmarkApply(b *testing.B) {
	peers := envInt("LOGDB_BENCH_PEERS", 200_000)
	g := workload.New(workload.Config{Users: peers, Peers: peers, Torrents: peers * 7 / 20, Seed: 1})
	db := open(b, b.TempDir(), Options{})
	ctx := context.Background()
	if err := workload.Fill(ctx, db, g, 50_000); err != nil {
		b.Fatal(err)
	}
	var buf []accounting.Record
	records := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		buf = g.Next(buf[:0], 20_000)
		b.StartTimer()
		if err := db.Apply(ctx, buf); err != nil {
			b.Fatal(err)
		}
		records += len(buf)
	}
	rate := float64(records) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "records/s")
	b.ReportMetric(rate*workload.RowsPerRecord, "rows/s")
	b.ReportMetric(float64(db.Stats().MemoryBytes)/float64(peers), "table-bytes/peer")
}

// TestScale runs the load of the bench command through Apply: by default
// on 20,000 peers for two seconds, checking the totals against the model;
// with LOGDB_SCALE=1, on 2,000,000 peers of 2,000,000 users on 700,000
// torrents at 20,000 records a second for LOGDB_SCALE_SECONDS (default
// 60), logging the figures (the model is skipped: it would not fit).
func TestScale(t *testing.T) {
	if testing.Short() {
		t.Skip("a load of several seconds")
	}
	full := os.Getenv("LOGDB_SCALE") == "1"
	cfg := workload.Config{Users: 20_000, Peers: 20_000, Torrents: 7_000, Seed: 2}
	load := workload.Load{Rate: 20_000, Duration: 2 * time.Second}
	if full {
		cfg = workload.Config{Users: 2_000_000, Peers: 2_000_000, Torrents: 700_000, Seed: 2}
		load.Duration = time.Duration(envInt("LOGDB_SCALE_SECONDS", 60)) * time.Second
	}
	dir := t.TempDir()
	db := open(t, dir, Options{})
	ctx := context.Background()
	var m *accountingtest.Model
	var j workload.Journal = db
	if !full {
		m = accountingtest.NewModel(testRules)
		j = modelled{db, m}
	}
	g := workload.New(cfg)
	if err := workload.Fill(ctx, j, g, 20_000); err != nil {
		t.Fatal(err)
	}
	res, err := workload.Run(ctx, j, g, load)
	if err != nil {
		t.Fatal(err)
	}
	rss, peak := workload.RSS()
	s := db.Stats()
	t.Logf("%v", res)
	t.Logf("RSS %d MiB (peak %d MiB); tables %d MiB; files %d MiB; %d commits, %d snapshots",
		rss>>20, peak>>20, s.MemoryBytes>>20, workload.DirSize(dir)>>20, s.Commits, s.Snapshots)
	if res.Records < load.Rate {
		t.Errorf("applied %d records; want at least %d", res.Records, load.Rate)
	}
	if m != nil {
		var want, got int64
		for id, u := range m.Users {
			want += u.Uploaded + u.Downloaded
			tot, err := db.User(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			got += tot.Uploaded + tot.Downloaded
		}
		if got != want {
			t.Errorf("credited %d bytes in all; the model says %d", got, want)
		}
	}
}

// modelled applies every batch to the model too.
type modelled struct {
	*DB
	m *accountingtest.Model
}

func (j modelled) Apply(ctx context.Context, batch []accounting.Record) error {
	j.m.Apply(batch)
	return j.DB.Apply(ctx, batch)
}
