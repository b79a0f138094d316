package logdb

import (
	"context"
	"testing"

	"github.com/annuaire/tracker/accounting"
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
