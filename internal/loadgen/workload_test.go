package loadgen

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"math"
	"strings"
	"testing"

	"github.com/annuaire/tracker/internal/udpwire"
)

func mustWorkload(t testing.TB, w Workload) Workload {
	t.Helper()
	w, err := w.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults: %v", err)
	}
	return w
}

func TestWorkloadDefaults(t *testing.T) {
	w := mustWorkload(t, Workload{})
	want := Workload{
		Swarms: 10_000, Peers: 100_000, PrefillPeers: 100_000, NumWant: 50,
		SeederPct: 10, StartedPct: 8, CompletedPct: 2, ScrapeHashes: 1,
		PeerIDPrefix: "-LG0100-",
	}
	if w != want {
		t.Errorf("Workload{}.withDefaults() = %+v; want %+v", w, want)
	}
	none := mustWorkload(t, Workload{SeederPct: -1, StartedPct: -1, CompletedPct: -1})
	if none.SeederPct != 0 || none.StartedPct != 0 || none.CompletedPct != 0 {
		t.Errorf("negative percentages = %v, %v, %v; want 0", none.SeederPct, none.StartedPct, none.CompletedPct)
	}
}

func TestWorkloadInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    Workload
		want string
	}{
		{"negative swarms", Workload{Swarms: -1}, "swarms"},
		{"too many peers per swarm", Workload{Swarms: 1, Peers: maxPortsPerSwarm + 1}, "distinct ports"},
		{"seeders", Workload{SeederPct: 101}, "seeders"},
		{"events", Workload{StartedPct: 60, CompletedPct: 50}, "at most 100"},
		{"scrape hashes", Workload{Swarms: 5, ScrapeHashes: 6}, "scrape hashes"},
		{"prefix", Workload{PeerIDPrefix: strings.Repeat("x", 21)}, "prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.w.withDefaults()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("withDefaults(%+v) = %v; want an error about %q", tc.w, err, tc.want)
			}
		})
	}
}

func TestWorkloadDeterministic(t *testing.T) {
	a := mustWorkload(t, Workload{Seed: 7})
	b := mustWorkload(t, Workload{Seed: 7})
	c := mustWorkload(t, Workload{Seed: 8})
	if a.InfoHash(3) != b.InfoHash(3) || a.PeerID(99) != b.PeerID(99) || a.Key(5) != b.Key(5) {
		t.Error("same seed, different values")
	}
	if a.InfoHash(3) == c.InfoHash(3) || a.PeerID(99) == c.PeerID(99) {
		t.Error("different seeds, same values")
	}
	hashes := map[[20]byte]bool{}
	for s := range a.Swarms {
		hashes[a.InfoHash(s)] = true
	}
	if len(hashes) != a.Swarms {
		t.Errorf("%d distinct info hashes over %d swarms", len(hashes), a.Swarms)
	}
	id := a.PeerID(12345)
	if !bytes.HasPrefix(id[:], []byte("-LG0100-")) {
		t.Errorf("PeerID = %q; want the client prefix", id)
	}
}

func TestWorkloadPortsUniquePerSwarm(t *testing.T) {
	w := mustWorkload(t, Workload{Swarms: 7, Peers: 7000})
	type key struct {
		swarm int
		port  uint16
	}
	seen := map[key]int{}
	for i := range w.Peers {
		k := key{w.Swarm(i), w.Port(i)}
		if j, dup := seen[k]; dup {
			t.Fatalf("peers %d and %d share swarm %d and port %d", j, i, k.swarm, k.port)
		}
		seen[k] = i
		if w.Port(i) < firstPort {
			t.Fatalf("Port(%d) = %d", i, w.Port(i))
		}
	}
}

func TestWorkloadMix(t *testing.T) {
	w := mustWorkload(t, Workload{})
	seeders := 0
	for i := range w.Peers {
		if w.Seeder(i) {
			seeders++
			if _, left, _ := w.transfer(request{peer: i}); left != 0 {
				t.Fatalf("seeder %d has left=%d", i, left)
			}
		}
	}
	if got := float64(seeders) / float64(w.Peers); math.Abs(got-0.10) > 0.01 {
		t.Errorf("seeders = %.3f of peers; want 0.10", got)
	}

	p := newPicker(&w, 0, false, nil)
	const n = 200_000
	events := map[uint32]int{}
	for range n {
		r, ok := p.next()
		if !ok || r.peer < 0 || r.peer >= w.Peers || r.swarm != w.Swarm(r.peer) {
			t.Fatalf("next() = %+v, %v", r, ok)
		}
		events[r.event]++
	}
	for ev, want := range map[uint32]float64{udpwire.EventNone: 0.90, udpwire.EventStarted: 0.08, udpwire.EventCompleted: 0.02} {
		if got := float64(events[ev]) / n; math.Abs(got-want) > 0.005 {
			t.Errorf("event %d: %.4f of announces; want %.2f", ev, got, want)
		}
	}
	if _, left, _ := w.transfer(request{peer: 1, event: udpwire.EventCompleted}); left != 0 {
		t.Errorf("completed announce has left=%d; want 0", left)
	}
}

func TestPickerPrefill(t *testing.T) {
	w := mustWorkload(t, Workload{Swarms: 10, Peers: 100, PrefillPeers: 250})
	c := &prefillCounter{n: int64(w.PrefillPeers)}
	p1, p2 := newPicker(&w, 0, true, c), newPicker(&w, 1, true, c)
	seen := map[int]bool{}
	for {
		r1, ok1 := p1.next()
		r2, ok2 := p2.next()
		for _, r := range []struct {
			r  request
			ok bool
		}{{r1, ok1}, {r2, ok2}} {
			if !r.ok {
				continue
			}
			if r.r.event != udpwire.EventStarted || seen[r.r.peer] {
				t.Fatalf("prefill request %+v: want each peer once, started", r.r)
			}
			seen[r.r.peer] = true
		}
		if !ok1 && !ok2 {
			break
		}
	}
	if len(seen) != 250 {
		t.Errorf("prefill announced %d peers; want 250", len(seen))
	}
}

func TestWriteHashes(t *testing.T) {
	w := Workload{Swarms: 3, Seed: 42}
	var buf bytes.Buffer
	if err := w.WriteHashes(&buf); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	n := 0
	for sc.Scan() {
		h, err := hex.DecodeString(sc.Text())
		if err != nil || len(h) != 20 || [20]byte(h) != w.InfoHash(n) {
			t.Errorf("line %d = %q; want the hex of InfoHash(%d)", n, sc.Text(), n)
		}
		n++
	}
	if n != 3 {
		t.Errorf("%d lines; want 3", n)
	}
}

// TestChurn: a churning run announces peers the prefill never did, each in
// a random swarm, on ports that stay clear of the prefill's.
func TestChurn(t *testing.T) {
	w := mustWorkload(t, Workload{Swarms: 100, Peers: 1000, PrefillPeers: 5000, Churn: true})
	p := newPicker(&w, 0, false, nil)
	swarms := map[int]bool{}
	for range 2000 {
		r, ok := p.next()
		if !ok || r.peer < 5000 || r.peer >= 6000 || r.event != udpwire.EventStarted {
			t.Fatalf("churn request %+v, %v: want a started announce of a peer in [5000, 6000)", r, ok)
		}
		swarms[r.swarm] = true
		if port := w.Port(r.peer); port < firstPort+50 {
			t.Fatalf("churn peer %d on port %d, among the prefill's (1024 to 1073)", r.peer, port)
		}
	}
	if len(swarms) < 90 {
		t.Errorf("2000 churn announces reached %d swarms of 100; want them spread", len(swarms))
	}
	if _, err := (Workload{Swarms: 10, PrefillPeers: 400_000, Churn: true}).withDefaults(); err == nil {
		t.Errorf("churn with 40,000 prefilled peers per swarm accepted: no ports left")
	}
}
