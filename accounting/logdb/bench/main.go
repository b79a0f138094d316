// Command bench drives an accounting journal with the announces of a
// private tracker's members and reports records/s, Apply latency, RSS and
// file size. It measures the embedded backend (logdb) and, for
// comparison, the same journal on SQLite (modernc.org/sqlite) and bbolt.
//
//	go run . -engine logdb -users 2000000 -peers 2000000 -torrents 700000 -rate 20000 -duration 2m
//
// With -tracker (the default), a tracker in the same process is sent
// every record as an announce while the journal applies it.
//
// First every peer announces once (the fill, in batches of -fill-batch
// records), then the measured run: -rate records a second in one batch a
// second, or with -rate 0 batches of -batch records back to back.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"time"

	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/logdb/internal/workload"
)

type journal interface {
	workload.Journal
	io.Closer
}

func main() {
	var (
		engine   = flag.String("engine", "logdb", "logdb, sqlite, bolt, or none (the tracker and the load alone)")
		dir      = flag.String("dir", "", "database directory (default: a new temporary one, removed at the end)")
		users    = flag.Int("users", 2_000_000, "users")
		peers    = flag.Int("peers", 2_000_000, "distinct peers")
		torrents = flag.Int("torrents", 700_000, "torrents")
		fillSize = flag.Int("fill-batch", 100_000, "records per batch while filling")
		rate     = flag.Int("rate", 20_000, "records per second, one batch a second; 0 for batches of -batch back to back")
		batch    = flag.Int("batch", 20_000, "records per batch when -rate is 0")
		duration = flag.Duration("duration", time.Minute, "length of the measured run")
		cache    = flag.Int("sqlite-cache", 256, "SQLite page cache, MiB")
		seed     = flag.Uint64("seed", 1, "workload seed")
		withT    = flag.Bool("tracker", true, "announce every record to a tracker in the same process too")
		openOnly = flag.Bool("open", false, "only open the logdb database in -dir (after a crash, say) and report how long it took")
	)
	flag.Parse()
	if *openOnly {
		if err := reopen(*dir); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := run(*engine, *dir, workload.Config{Users: *users, Peers: *peers, Torrents: *torrents, Seed: *seed},
		*fillSize, workload.Load{Rate: *rate, Batch: *batch, Duration: *duration}, *cache, *withT); err != nil {
		log.Fatal(err)
	}
}

func run(engine, dir string, cfg workload.Config, fillSize int, load workload.Load, cacheMiB int, withT bool) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "ledger-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	rules := accounting.Rules{PeerTTL: time.Hour, SeedGap: 45 * time.Minute}
	var (
		j   journal
		err error
	)
	switch engine {
	case "logdb":
		j, err = openLogDB(dir, rules)
	case "sqlite":
		j, err = openSQLite(dir, rules, cacheMiB)
	case "bolt":
		j, err = openBolt(dir, rules)
	case "none":
		j = nopJournal{}
	default:
		return fmt.Errorf("unknown engine %q", engine)
	}
	if err != nil {
		return err
	}
	if withT {
		if j, err = newWithTracker(j); err != nil {
			return err
		}
	}
	defer j.Close()
	ctx := context.Background()
	g := workload.New(cfg)
	fmt.Printf("%s: %d users, %d peers, %d torrents; GOMAXPROCS %d; tracker beside it: %v\n", engine, cfg.Users, cfg.Peers, cfg.Torrents, runtime.GOMAXPROCS(0), withT)
	t0 := time.Now()
	if err := workload.Fill(ctx, j, g, fillSize); err != nil {
		return err
	}
	el := time.Since(t0)
	rss, _ := workload.RSS()
	fmt.Printf("fill: %d records in %v (%.0f records/s); RSS %d MiB, heap %d MiB, files %d MiB\n",
		cfg.Peers, el.Round(time.Millisecond), float64(cfg.Peers)/el.Seconds(), rss>>20, workload.HeapInUse()>>20, workload.DirSize(dir)>>20)
	cpu := workload.CPU()
	res, err := workload.Run(ctx, j, g, load)
	if err != nil {
		return err
	}
	cpu = workload.CPU() - cpu
	rss, peak := workload.RSS()
	size := workload.DirSize(dir)
	fmt.Printf("run: %v\n", res)
	fmt.Printf("run: %.1f commits/s; CPU %.0f%% of a core; RSS %d MiB (peak %d MiB), heap %d MiB; files %d MiB, %.0f bytes per peer\n",
		float64(res.Batches)/res.Elapsed.Seconds(), 100*cpu.Seconds()/res.Elapsed.Seconds(), rss>>20, peak>>20, workload.HeapInUse()>>20, size>>20, float64(size)/float64(cfg.Peers))
	if s, ok := j.(interface{ Report() string }); ok {
		fmt.Println(s.Report())
	}
	return nil
}

// nopJournal applies nothing: with it the command measures the tracker
// and the load generator alone.
type nopJournal struct{}

func (nopJournal) Apply(context.Context, []accounting.Record) error { return nil }
func (nopJournal) Close() error                                     { return nil }
