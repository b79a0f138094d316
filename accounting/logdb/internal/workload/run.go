package workload

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/annuaire/tracker/accounting"
)

// Journal is what the load drives: a backend's Apply.
type Journal interface {
	Apply(ctx context.Context, batch []accounting.Record) error
}

// Fill gives every peer of g a baseline, in batches of size records.
func Fill(ctx context.Context, j Journal, g *Gen, size int) error {
	var buf []accounting.Record
	for from := 0; from < g.cfg.Peers; from += size {
		buf = g.Fill(buf[:0], from, min(size, g.cfg.Peers-from))
		if err := j.Apply(ctx, buf); err != nil {
			return fmt.Errorf("filling peers %d to %d: %w", from, from+len(buf), err)
		}
	}
	return nil
}

// Load is a measured run.
type Load struct {
	// Rate is the records per second to offer, in batches of Rate records
	// once a second (a Ledger's flush). If zero, batches of Batch records
	// are applied back to back: the most the backend sustains.
	Rate     int
	Batch    int
	Duration time.Duration
}

// Result is what a measured run saw.
type Result struct {
	Records, Batches int
	Elapsed          time.Duration
	// Latency of Apply calls.
	P50, P99, Max time.Duration
	// Late counts the batches applied after the next one was due.
	Late int
	// PeakRSS is the largest RSS seen after a batch, at batch PeakAt,
	// when the Go heap held PeakHeap bytes.
	PeakRSS, PeakHeap uint64
	PeakAt            int
}

// RecordsPerSec is the records applied per second of the run.
func (r Result) RecordsPerSec() float64 { return float64(r.Records) / r.Elapsed.Seconds() }

// RowsPerRecord is how many rows a record writes: its baseline, its user's
// and its torrent's totals and its history.
const RowsPerRecord = 4

func (r Result) String() string {
	return fmt.Sprintf("%d records in %d batches in %v: %.0f records/s, %.0f rows/s; Apply p50 %v, p99 %v, max %v; %d batches late; RSS at most %d MiB (after batch %d, heap %d MiB)",
		r.Records, r.Batches, r.Elapsed.Round(time.Millisecond), r.RecordsPerSec(), r.RecordsPerSec()*RowsPerRecord,
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond), r.Late, r.PeakRSS>>20, r.PeakAt, r.PeakHeap>>20)
}

// Run applies the records of g to j as l says.
func Run(ctx context.Context, j Journal, g *Gen, l Load) (Result, error) {
	size := l.Batch
	if l.Rate > 0 {
		size = l.Rate
	}
	var (
		buf  []accounting.Record
		lats []time.Duration
		res  Result
	)
	start := time.Now()
	next := start
	for time.Since(start) < l.Duration {
		if l.Rate > 0 {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = next.Add(time.Second)
		}
		buf = g.Next(buf[:0], size)
		t0 := time.Now()
		if err := j.Apply(ctx, buf); err != nil {
			return res, err
		}
		lat := time.Since(t0)
		lats = append(lats, lat)
		if l.Rate > 0 && time.Now().After(next) {
			res.Late++
		}
		res.Records += len(buf)
		res.Batches++
		if rss, _ := RSS(); uint64(rss) > res.PeakRSS {
			res.PeakRSS, res.PeakHeap, res.PeakAt = uint64(rss), HeapInUse(), res.Batches
		}
	}
	res.Elapsed = time.Since(start)
	slices.Sort(lats)
	if n := len(lats); n > 0 {
		res.P50, res.P99, res.Max = lats[n/2], lats[min(n-1, n*99/100)], lats[n-1]
	}
	return res, nil
}

// RSS returns the resident set size of the process and its peak, in
// bytes, or zeros where /proc is not there.
func RSS() (now, peak int64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			now = n << 10
		case "VmHWM:":
			peak = n << 10
		}
	}
	return now, peak
}

// CPU returns the processor time the process has used, user and system,
// or zero where /proc is not there.
func CPU() time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// The fields after the command's name, which ends with ")": utime and
	// stime are the 12th and 13th, in ticks of 1/100 s.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// DirSize returns the bytes of the files under dir.
func DirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// HeapInUse returns the Go heap in use, in bytes.
func HeapInUse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
