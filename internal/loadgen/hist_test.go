package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/annuaire/tracker/internal/udpwire"
)

func TestHistIndexBounds(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, math.MaxUint64} {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d after %d", v, i, prev)
		}
		prev = i
		lo, hi := histBounds(i)
		if v < lo || v > hi {
			t.Errorf("histIndex(%d) = %d, whose bounds are [%d, %d]", v, i, lo, hi)
		}
		if v >= histSub && float64(hi-lo+1)/float64(lo) > 1.0/histHalf+1e-9 {
			t.Errorf("bucket %d = [%d, %d] is wider than 1/%d of its values", i, lo, hi, histHalf)
		}
	}
	// The buckets tile the values without gaps.
	for i := 1; i < histBuckets; i++ {
		_, hi := histBounds(i - 1)
		lo, _ := histBounds(i)
		if lo != hi+1 {
			t.Fatalf("bucket %d starts at %d, bucket %d ends at %d", i, lo, i-1, hi)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h histogram
	vals := make([]time.Duration, 100_000)
	for i := range vals {
		// Log-normal around 1 ms, like network latencies.
		vals[i] = time.Duration(math.Exp(r.NormFloat64()*0.8) * float64(time.Millisecond))
		h.record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := vals[int(q*float64(len(vals)))-1]
		got := h.quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.01 {
			t.Errorf("quantile(%v) = %v; want %v within 1%%", q, got, want)
		}
	}
	if h.n != uint64(len(vals)) || time.Duration(h.max) != vals[len(vals)-1] || time.Duration(h.min) != vals[0] {
		t.Errorf("n, min, max = %d, %v, %v; want %d, %v, %v", h.n, time.Duration(h.min), time.Duration(h.max),
			len(vals), vals[0], vals[len(vals)-1])
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all histogram
	for i := range 1000 {
		d := time.Duration(i) * time.Microsecond
		all.record(d)
		if i%3 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	var m histogram
	m.merge(&a)
	m.merge(&b)
	m.merge(&histogram{})
	if m != all {
		t.Error("merging two halves differs from recording everything")
	}
	var empty histogram
	if empty.quantile(0.5) != 0 || empty.mean() != 0 {
		t.Error("an empty histogram has non-zero quantiles")
	}
	var one histogram
	one.record(-time.Second)
	one.record(3 * time.Second)
	if got := one.quantile(1); got != 3*time.Second {
		t.Errorf("quantile(1) = %v; want the maximum, 3s", got)
	}
	if got := one.quantile(0); got != 0 {
		t.Errorf("quantile(0) = %v; want 0 (negative values count as zero)", got)
	}
}

// The hot paths of the generator allocate nothing per request.
func TestHotPathsDoNotAllocate(t *testing.T) {
	w := mustWorkload(t, Workload{})
	tg, _ := parseHTTPTarget("http://127.0.0.1:6969/announce", false)
	p := newPicker(&w, 0, false, nil)
	fp := newPicker(&w, 0, false, nil)
	fp.flooding(FloodSnatches, 4, 1)
	var h histogram
	var st stats
	buf := make([]byte, 0, 1024)
	hashes := make([][20]byte, 1)
	reply := []byte("d8:completei1e10:downloadedi4e10:incompletei10e8:intervali1851e12:min intervali925e5:peers12:" + peers(2) + "e")
	raw := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 160\r\n\r\n" + string(make([]byte, 160))
	var rr respReader
	conn := &pieceConn{}
	for name, f := range map[string]func(){
		"pick":         func() { p.next() },
		"flood pick":   func() { fp.next() },
		"refusal":      func() { st.refused([]byte("too many requests, slow down")) },
		"udp announce": func() { buf = w.appendUDPAnnounce(buf[:0], 1, 2, request{peer: 5, swarm: 5}) },
		"udp scrape":   func() { buf = w.appendUDPScrape(buf[:0], 1, 2, request{swarm: 5}) },
		"http announce": func() {
			buf = w.appendHTTPAnnounce(buf[:0], tg, request{peer: 5, swarm: 5, event: udpwire.EventStarted})
		},
		"http scrape": func() { buf = w.appendHTTPScrape(buf[:0], tg, request{swarm: 5}, hashes) },
		"check udp":   func() { checkUDPReply(buf[:20], udpwire.ActionAnnounce, 6, 1) },
		"check http":  func() { checkHTTPAnnounce(reply) },
		"record":      func() { h.record(1234567) },
		"read response": func() {
			conn.data, conn.piece = raw, 64
			if _, err := rr.read(conn); err != nil {
				t.Fatal(err)
			}
		},
	} {
		f() // let buffers grow
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per call; want 0", name, n)
		}
	}
}

// The generator's own work per request, system calls aside: pick, build,
// check the reply, record the latency.
func BenchmarkUDPRequestWork(b *testing.B) {
	w := mustWorkload(b, Workload{})
	p := newPicker(&w, 0, false, nil)
	var h histogram
	buf := make([]byte, 0, 128)
	reply := udpReply(udpwire.ActionAnnounce, 12+6*50)
	b.ReportAllocs()
	for b.Loop() {
		r, _ := p.next()
		buf = w.appendUDPAnnounce(buf[:0], 1, 2, r)
		checkUDPReply(reply, udpwire.ActionAnnounce, 6, 1)
		h.record(time.Duration(len(buf)))
	}
}

func BenchmarkHTTPRequestWork(b *testing.B) {
	w := mustWorkload(b, Workload{})
	tg, _ := parseHTTPTarget("http://127.0.0.1:6969/announce", false)
	p := newPicker(&w, 0, false, nil)
	var h histogram
	var rr respReader
	body := "d8:completei1e10:downloadedi4e10:incompletei10e8:intervali1851e12:min intervali925e5:peers300:" + peers(50) + "e"
	raw := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	conn := &pieceConn{}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		r, _ := p.next()
		buf = w.appendHTTPAnnounce(buf[:0], tg, r)
		conn.data, conn.piece = raw, 1<<20
		resp, _ := rr.read(conn)
		checkHTTPAnnounce(resp.body)
		h.record(time.Duration(len(buf)))
	}
}
