package logdb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/accountingtest"
	"github.com/annuaire/tracker/accounting/logdb/internal/workload"
)

// The crash test runs the test binary again as a child that applies
// batches to a database and prints "ack N" once Apply N returned nil,
// kills it with SIGKILL at random moments, and starts it again from the
// batch that was in flight (or, one time in two, from the last
// acknowledged one, applying it twice), as a Ledger would. After every
// kill the database must hold every acknowledged batch, and at the end
// exactly what Credit gives over the sequence applied once.
//
// LOGDB_CRASH_KILLS sets the number of kills (default 8); LOGDB_CRASH_SCALE
// multiplies the population and the batches (default 1).

const crashChildEnv = "LOGDB_CRASH_CHILD"

type crashConfig struct {
	pop               workload.Config
	batches, size     int
	snapshotBytes     int64
	kills             int
	fillBatches       int
	dir               string
	from              int
	maxAcksBeforeKill int
}

func crashSetup() crashConfig {
	scale := envInt("LOGDB_CRASH_SCALE", 1)
	c := crashConfig{
		pop:           workload.Config{Users: 1500 * scale, Peers: 4000 * scale, Torrents: 500 * scale, Seed: 11},
		batches:       150 * scale,
		size:          400,
		snapshotBytes: 300 << 10,
		kills:         envInt("LOGDB_CRASH_KILLS", 8),
	}
	c.fillBatches = c.pop.Peers / c.size
	c.maxAcksBeforeKill = max(3, c.batches/c.kills)
	return c
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// batchesFrom calls fn with batches from, from+1, ... of c's sequence.
func (c crashConfig) batchesFrom(from int, fn func(i int, b []accounting.Record) error) error {
	g := workload.New(c.pop)
	var buf []accounting.Record
	for i := range c.batches {
		if i < c.fillBatches {
			buf = g.Fill(buf[:0], i*c.size, c.size)
		} else {
			buf = g.Next(buf[:0], c.size)
		}
		if i >= from {
			if err := fn(i, buf); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestCrashChild is the child: it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("the crash test's child")
	}
	c := crashSetup()
	from, _ := strconv.Atoi(os.Getenv("LOGDB_CRASH_FROM"))
	db, err := Open(dir, testRules, Options{SnapshotBytes: c.snapshotBytes})
	if err != nil {
		t.Fatal(err)
	}
	err = c.batchesFrom(from, func(i int, b []accounting.Record) error {
		if err := db.Apply(context.Background(), b); err != nil {
			return err
		}
		fmt.Printf("ack %d\n", i)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := crashSetup()
	dir := t.TempDir()
	// What the database must hold after each batch.
	m := accountingtest.NewModel(testRules)
	prints := make([]uint64, c.batches)
	c.batchesFrom(0, func(i int, b []accounting.Record) error {
		m.Apply(b)
		prints[i] = modelPrint(m, c.pop.Users)
		return nil
	})
	end := time.Unix(0, workload.New(c.pop).Now()).Add(time.Duration(c.batches) * time.Second)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	next, last := 0, -1
	midSnapshot := 0 // kills that left a snapshot half written
	for kill := 0; kill <= c.kills; kill++ {
		acks := -1 // run to the end
		if kill < c.kills {
			acks = rng.IntN(c.maxAcksBeforeKill)
		}
		done, acked := runChild(t, dir, next, acks, time.Duration(rng.IntN(3000))*time.Microsecond)
		last = max(last, acked)
		if done {
			break
		}
		if _, err := os.Stat(filepath.Join(dir, snapTmpName)); err == nil {
			midSnapshot++
		}
		// Every acknowledged batch is there; the one in flight may be.
		if kill%2 == 0 {
			db := open(t, dir, Options{})
			got := dbPrint(t, db, c.pop.Users)
			db.Close()
			switch {
			case last >= 0 && got == prints[last]:
			case last+1 < c.batches && got == prints[last+1]:
			case last < 0 && got == modelPrint(accountingtest.NewModel(testRules), c.pop.Users):
			default:
				t.Fatalf("kill %d: the database matches neither batch %d nor %d", kill, last, last+1)
			}
		}
		next = last + 1
		if rng.IntN(2) == 0 && last >= 0 {
			next = last // applied twice
		}
		t.Logf("kill %d after batch %d; starting again from %d", kill, last, next)
	}
	if last != c.batches-1 {
		t.Fatalf("the last child stopped after batch %d of %d", last, c.batches)
	}
	t.Logf("%d kills left a snapshot half written", midSnapshot)
	db := open(t, dir, Options{Now: func() time.Time { return end }})
	compare(t, db, m, end)
}

// runChild runs the child from batch from and kills it once it has
// acknowledged acks batches and delay has passed (never if acks < 0). It
// returns whether the child finished and the last batch it acknowledged.
func runChild(t *testing.T, dir string, from, acks int, delay time.Duration) (done bool, last int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "LOGDB_CRASH_FROM="+strconv.Itoa(from))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	last = from - 1
	killed := false
	if acks == 0 {
		time.Sleep(delay)
		cmd.Process.Kill()
		killed = true
	}
	sc := bufio.NewScanner(out)
	n := 0
	var tail []string
	for sc.Scan() {
		line := sc.Text()
		if s, ok := strings.CutPrefix(line, "ack "); ok {
			last, _ = strconv.Atoi(s)
			n++
			if n == 1 && !killed {
				// The child has the database: another process cannot.
				if db, err := Open(dir, testRules, Options{}); !errors.Is(err, ErrLocked) {
					if err == nil {
						db.Close()
					}
					t.Errorf("Open while the child has the database: %v; want ErrLocked", err)
				}
			}
		} else {
			tail = append(tail, line)
		}
		if !killed && acks >= 0 && n >= acks {
			time.Sleep(delay)
			cmd.Process.Kill()
			killed = true
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if killed && errors.As(err, &exit) {
		return false, last
	}
	if err != nil {
		t.Fatalf("child from batch %d: %v\n%s\n%s", from, err, strings.Join(tail, "\n"), stderr.String())
	}
	return !killed, last
}

// modelPrint and dbPrint digest every user's totals.
func modelPrint(m *accountingtest.Model, users int) uint64 {
	h := fnv.New64a()
	for id := uint64(1); id <= uint64(users); id++ {
		var u accounting.UserTotals
		if p := m.Users[id]; p != nil {
			u = *p
		}
		fmt.Fprintln(h, u.Uploaded, u.Downloaded, u.RawUploaded, u.RawDownloaded, u.Snatches)
	}
	return h.Sum64()
}

func dbPrint(t *testing.T, db *DB, users int) uint64 {
	h := fnv.New64a()
	for id := uint64(1); id <= uint64(users); id++ {
		u, err := db.User(context.Background(), id)
		if err != nil && !errors.Is(err, accounting.ErrNotFound) {
			t.Fatal(err)
		}
		fmt.Fprintln(h, u.Uploaded, u.Downloaded, u.RawUploaded, u.RawDownloaded, u.Snatches)
	}
	return h.Sum64()
}
