package loadgen

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annuaire/tracker/internal/udpwire"
)

func TestFloodPicker(t *testing.T) {
	w := mustWorkload(t, Workload{Swarms: 50, Peers: 500})
	known := map[[20]byte]bool{}
	for s := range w.Swarms {
		known[w.InfoHash(s)] = true
	}
	for _, shape := range []FloodShape{FloodHashes, FloodPeers, FloodSnatches} {
		t.Run(shape.String(), func(t *testing.T) {
			p := newPicker(&w, 0, false, nil)
			p.flooding(shape, 3, 1)
			hashes, ids := map[[20]byte]bool{}, map[[20]byte]bool{}
			var prev request
			for n := range 2000 {
				r, ok := p.next()
				if !ok || r.port < firstPort || r.peer < floodPeerBase {
					t.Fatalf("request %d: %+v, %v: want a made-up peer on a port of its own", n, r, ok)
				}
				h, id := w.InfoHash(r.swarm), w.PeerID(r.peer)
				_, left, _ := w.transfer(r)
				switch shape {
				case FloodPeers:
					if r.swarm >= 3 || r.event != udpwire.EventStarted {
						t.Fatalf("request %d: %+v: want a peer starting in one of the first 3 swarms", n, r)
					}
				case FloodSnatches:
					if n%2 == 1 {
						if r.event != udpwire.EventStopped || r.swarm != prev.swarm || r.peer != prev.peer || r.port != prev.port || left != 0 {
							t.Fatalf("request %d: %+v after %+v: want the same peer stopping, left 0", n, r, prev)
						}
						break
					}
					fallthrough
				case FloodHashes:
					if r.event != udpwire.EventCompleted || left != 0 || known[h] || hashes[h] {
						t.Fatalf("request %d: %+v, left %d: want a new info hash completed, left 0", n, r, left)
					}
					hashes[h] = true
				}
				if shape != FloodSnatches || n%2 == 0 {
					if ids[id] {
						t.Fatalf("request %d: peer id %x drawn twice", n, id)
					}
					ids[id] = true
				}
				prev = r
			}
			// Another salt, other draws.
			q := newPicker(&w, 0, false, nil)
			q.flooding(shape, 3, 2)
			if r, _ := q.next(); ids[w.PeerID(r.peer)] {
				t.Errorf("a flood with another salt drew the same peer id")
			}
		})
	}
	for _, s := range []string{"hashes", "peers", "snatches", "none"} {
		if f, err := ParseFloodShape(s); err != nil || f.String() != s {
			t.Errorf("ParseFloodShape(%q) = %v, %v", s, f, err)
		}
	}
	if _, err := ParseFloodShape("ddos"); err == nil {
		t.Error("ParseFloodShape(\"ddos\") succeeded")
	}
}

// TestPickerSpread: spread over n workers, each picks its own peers, in
// the prefill and in the run, and together they announce every peer once
// in the prefill.
func TestPickerSpread(t *testing.T) {
	w := mustWorkload(t, Workload{Swarms: 10, Peers: 103, PrefillPeers: 250})
	const n = 4
	seen := map[int]bool{}
	for k := range n {
		p := newPicker(&w, k, false, &prefillCounter{n: int64(share(w.PrefillPeers, k, n))})
		p.spread(k, n)
		for {
			r, ok := p.next()
			if !ok {
				break
			}
			if r.peer%n != k || seen[r.peer] || r.peer >= w.PrefillPeers {
				t.Fatalf("worker %d prefill: peer %d", k, r.peer)
			}
			seen[r.peer] = true
		}
		q := newPicker(&w, k, false, nil)
		q.spread(k, n)
		for range 1000 {
			if r, ok := q.next(); !ok || r.peer%n != k || r.peer >= w.Peers {
				t.Fatalf("worker %d run: peer %d, %v", k, r.peer, ok)
			}
		}
	}
	if len(seen) != w.PrefillPeers {
		t.Errorf("the prefill announced %d peers; want %d", len(seen), w.PrefillPeers)
	}
	// More workers than peers: those without any have nothing to send.
	p := newPicker(&w, 200, false, nil)
	p.spread(200, 300)
	if r, ok := p.next(); ok {
		t.Errorf("worker 200 of 300 over 103 peers: %+v; want nothing", r)
	}
}

func TestPacer(t *testing.T) {
	p := &phase{base: time.Now(), gap: 100}
	var pc pacer
	pc.start(p, 0, 1)
	start := pc.due
	if _, ok, _ := pc.take(start-1, 1000); ok {
		t.Error("a request due before its time")
	}
	for i := range 3 {
		due, ok, skipped := pc.take(start+250, 1000)
		if !ok || due != start+int64(i)*100 || skipped != 0 {
			t.Fatalf("take %d = %d, %v, %d; want %d", i, due, ok, skipped, start+int64(i)*100)
		}
	}
	if _, ok, _ := pc.take(start+250, 1000); ok {
		t.Error("a fourth request due at 250")
	}
	// 5,000 behind: the 40 requests more than 1,000 late are skipped.
	due, ok, skipped := pc.take(start+5300, 1000)
	if !ok || skipped != 40 || due != start+4300 {
		t.Errorf("take far behind = %d, %v, %d; want %d, true, 40", due-start, ok, skipped, 4300)
	}
	// Unpaced: always due, now.
	var free pacer
	free.start(&phase{base: time.Now()}, 3, 4)
	if due, ok, skipped := free.take(77, 1); !ok || due != 77 || skipped != 0 {
		t.Errorf("unpaced take = %d, %v, %d", due, ok, skipped)
	}
}

func TestReasons(t *testing.T) {
	var r reasons
	r.add([]byte("too many requests\x00"), 1)
	r.add([]byte("too many requests"), 2)
	for i := range maxReasons + 3 {
		r.add(fmt.Appendf(nil, "reason %d", i), 1)
	}
	if len(r) != maxReasons || r[0] != (Reason{"too many requests", 3}) || r[maxReasons-1] != (Reason{otherReasons, 5}) {
		t.Errorf("reasons = %v; want the first %d apart and the rest as %q", r, maxReasons-1, otherReasons)
	}
	text := []byte("too many requests")
	if n := testing.AllocsPerRun(100, func() { r.add(text, 1) }); n != 0 {
		t.Errorf("counting a known reason: %v allocations", n)
	}
	var m reasons
	m.merge(r)
	m.merge(r)
	if !slices.Equal(m, func() reasons {
		d := slices.Clone(r)
		for i := range d {
			d[i].N *= 2
		}
		return d
	}()) {
		t.Errorf("merged twice: %v", m)
	}
}

func TestAddAddr(t *testing.T) {
	for _, tc := range []struct {
		a    string
		n    uint64
		want string
	}{
		{"127.1.0.1", 0, "127.1.0.1"},
		{"127.1.0.1", 255, "127.1.1.0"},
		{"127.1.255.255", 2, "127.2.0.1"},
		{"2001:db8::fffe", 1, "2001:db8::ffff"},
		{"2001:db8::ff", 256, "2001:db8::1ff"},
	} {
		if got := addAddr(netip.MustParseAddr(tc.a), tc.n); got.String() != tc.want {
			t.Errorf("addAddr(%s, %d) = %v; want %s", tc.a, tc.n, got, tc.want)
		}
	}
	if addrRangeFits(netip.MustParseAddr("255.255.255.250"), 7) || !addrRangeFits(netip.MustParseAddr("255.255.255.250"), 6) {
		t.Error("addrRangeFits is wrong at the end of IPv4")
	}
	if addrRangeFits(netip.MustParseAddr("2001:db8::ffff:ffff:ffff:fffe"), 3) || !addrRangeFits(netip.MustParseAddr("2001:db8::ffff:ffff:ffff:fffe"), 2) {
		t.Error("addrRangeFits is wrong at the end of an IPv6 /64")
	}
}

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(`# HELP annuaire_peers Peers held by the store.
# TYPE annuaire_peers gauge
annuaire_peers 1234
annuaire_peers_total 9
annuaire_swarms 5.6e+06
annuaire_failures_total{kind="rate_limited"} 77 1700000000000
annuaire_failures_total{kind="capacity"} 0
`))
	if err != nil || m.Peers != 1234 || m.Swarms != 5.6e6 || len(m.Failures) != 2 || m.Failures["rate_limited"] != 77 {
		t.Errorf("parseMetrics = %+v, %v", m, err)
	}
}

func TestParseUDPDrops(t *testing.T) {
	text := `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 8551: 0100007F:1B39 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 21737778 2 0000000018e59915 17
 8552: 0100007F:1B39 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 21737779 2 0000000018e59916 3
 9128: 0100007F:9D89 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 21751477 2 00000000fc29b533 100
`
	if n, err := parseUDPDrops([]byte(text), 6969); err != nil || n != 20 {
		t.Errorf("parseUDPDrops = %d, %v; want 20", n, err)
	}
}

// TestUDPFloodAgainstFake: a flood from several loopback addresses, each
// made-up peer from one of them, paced at the rate asked.
func TestUDPFloodAgainstFake(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs 127.0.0.0/8 on loopback")
	}
	w := Workload{Swarms: 10, Peers: 100}
	f := startFakeUDP(t, w, fakeRules{refuse: 10}, 0)
	f.flood.Store(true)
	res := runGenerator(t, Config{
		Workload: w, UDP: f.addr(), Flood: FloodSnatches, Prefill: true, // no prefill for a flood
		Source: netip.MustParseAddr("127.3.0.1"), Sources: 4, Rate: 2000, Duration: time.Second,
	})
	checkAccounting(t, res, &f.fakeCounts, false)
	if res.Prefill.Requests != 0 {
		t.Errorf("a flood prefilled %d peers", res.Prefill.Requests)
	}
	if res.Requests < 1800 || res.Requests > 2200 {
		t.Errorf("%d requests in a second at 2,000 a second", res.Requests)
	}
	if got := f.addrs(); len(got) != 4 {
		t.Errorf("the peers came from %v; want 4 addresses from 127.3.0.1", got)
	}
	if f.twoAddrs > 0 {
		t.Errorf("%d peers came from two addresses", f.twoAddrs)
	}
	if c, s := f.events[udpwire.EventCompleted], f.events[udpwire.EventStopped]; s == 0 || c < s || c > s+4 {
		t.Errorf("%d completed and %d stopped: want them in pairs", c, s)
	}
	if len(res.Reasons) != 1 || res.Reasons[0] != (Reason{"refused", res.Failures}) || res.Failures == 0 {
		t.Errorf("refusals %v; want %d \"refused\"", res.Reasons, res.Failures)
	}
}

// TestHTTPSourcesAgainstFake: connections from several addresses, each
// peer of the workload always from the same one, and the refusals counted
// by their failure reason.
func TestHTTPSourcesAgainstFake(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs 127.0.0.0/8 on loopback")
	}
	w := Workload{Swarms: 10, Peers: 60}
	f := startFakeHTTP(t, w, fakeRules{refuse: 7}, 0, false)
	res := runGenerator(t, Config{
		Workload: w, HTTP: f.srv.URL + "/announce/PK", Prefill: true, Conns: 2,
		Source: netip.MustParseAddr("127.4.0.1"), Sources: 3, Duration: 300 * time.Millisecond,
	})
	checkAccounting(t, res, &f.fakeCounts, false)
	if got := f.addrs(); len(got) != 3 || f.twoAddrs > 0 || f.distinctPeers() != 60 {
		t.Errorf("60 peers from %v, %d from two addresses; want them from 3 addresses, each from one", got, f.twoAddrs)
	}
	if len(res.Reasons) != 1 || res.Reasons[0] != (Reason{"refused", res.Failures}) || res.Failures == 0 {
		t.Errorf("refusals %v; want %d \"refused\"", res.Reasons, res.Failures)
	}
}

// TestWindows: the measured run is split into the windows asked for, each
// with its own counts, and OnWindow marks their edges in order.
func TestWindows(t *testing.T) {
	w := Workload{Swarms: 10, Peers: 100}
	f := startFakeUDP(t, w, fakeRules{}, 0)
	var mu sync.Mutex
	var calls []int
	var times []time.Time
	res := runGenerator(t, Config{
		Workload: w, UDP: f.addr(), Rate: 1000,
		Windows: []Window{{"a", 300 * time.Millisecond}, {"b", 200 * time.Millisecond}},
		OnWindow: func(i int) {
			mu.Lock()
			defer mu.Unlock()
			calls, times = append(calls, i), append(times, time.Now())
		},
	})
	checkAccounting(t, res, &f.fakeCounts, false)
	if !slices.Equal(calls, []int{0, 1, 2}) {
		t.Fatalf("OnWindow calls %v; want 0, 1, 2", calls)
	}
	if d := times[1].Sub(times[0]); d < 280*time.Millisecond || d > 400*time.Millisecond {
		t.Errorf("window a lasted %v; want 300 ms", d)
	}
	if len(res.Windows) != 2 || res.Windows[0].Name != "a" || res.Duration != 500*time.Millisecond {
		t.Fatalf("windows %+v, duration %v", res.Windows, res.Duration)
	}
	a, b := res.Windows[0], res.Windows[1]
	if a.Requests+b.Requests != res.Requests || a.Requests < 250 || a.Requests > 350 || b.Requests < 150 || b.Requests > 250 {
		t.Errorf("windows of %d and %d requests, %d in all; want about 300 and 200", a.Requests, b.Requests, res.Requests)
	}
}

// TestFloodBenchAgainstFake runs a whole flood bench against the fake
// tracker and a fake metrics endpoint.
func TestFloodBenchAgainstFake(t *testing.T) {
	w := Workload{Swarms: 10, Peers: 100}
	f := startFakeUDP(t, w, fakeRules{}, 0)
	f.flood.Store(true) // the probe's torrents too
	var scrapes atomic.Int64
	metrics := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		n := scrapes.Add(1)
		fmt.Fprintf(rw, "annuaire_peers %d\nannuaire_swarms 10\nannuaire_failures_total{kind=\"capacity\"} %d\n", 100+n, 2*n)
	}))
	defer metrics.Close()
	pid := 0
	if runtime.GOOS == "linux" {
		pid = os.Getpid() // a server of sorts
	}
	b := FloodBench{
		Legit:  Config{Workload: w, UDP: f.addr(), Prefill: true, Rate: 500, ServerPID: pid},
		Flood:  Config{Workload: w, Flood: FloodPeers, Rate: 1000},
		Before: 300 * time.Millisecond, During: 400 * time.Millisecond, Settle: 300 * time.Millisecond, After: 300 * time.Millisecond,
		MetricsURL: metrics.URL, ProbeEvery: 50 * time.Millisecond,
	}
	res, err := b.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	f.checkClean(t)
	if len(res.Legit.Windows) != 4 || res.Legit.Windows[1].Name != "during" || res.Flood == nil || res.FloodErr != "" {
		t.Fatalf("legit windows %+v, flood %v %q", res.Legit.Windows, res.Flood, res.FloodErr)
	}
	if n := res.Flood.Requests; n < 300 || n > 500 {
		t.Errorf("the flood sent %d announces in 400 ms at 1,000 a second", n)
	}
	for k, p := range res.Probes {
		if p.Tried < 3 || p.Served != p.Tried {
			t.Errorf("window %d: probe %+v; want every new torrent served", k, p)
		}
	}
	if len(res.Metrics) != 5 || res.Metrics[0].Err != "" || res.Metrics[4].Peers <= res.Metrics[0].Peers || res.PeakPeers < res.Metrics[4].Peers {
		t.Errorf("metrics %+v, peak peers %v", res.Metrics, res.PeakPeers)
	}
	if pid != 0 && (res.RSSBefore == 0 || res.RSSPeak < res.RSSBefore || len(res.ServerCPU) != 4) {
		t.Errorf("RSS %d, %d, %d, CPU %v: want them read", res.RSSBefore, res.RSSPeak, res.RSSAfter, res.ServerCPU)
	}
	j, err := res.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"during_answered_pct":`, `"after_p99_ms":`, `"during_new_served":`, `"flood_sent":`,
		`"before_peers":`, `"settle_failures_capacity":`, `"peak_swarms":10`} {
		if !strings.Contains(string(j), key) {
			t.Errorf("JSON has no %s: %s", key, j)
		}
	}
}

func TestFloodBenchRejects(t *testing.T) {
	for _, b := range []FloodBench{
		{Legit: Config{HTTP: "http://127.0.0.1:1/announce"}, Flood: Config{Flood: FloodHashes}},
		{Legit: Config{UDP: "127.0.0.1:1"}},
		{Legit: Config{UDP: "127.0.0.1:1", Flood: FloodPeers}, Flood: Config{Flood: FloodHashes}},
		{Legit: Config{UDP: "127.0.0.1:1"}, Flood: Config{Flood: FloodHashes}}, // windows of zero length
	} {
		if _, err := b.Run(context.Background()); err == nil {
			t.Errorf("FloodBench %+v ran", b)
		}
	}
}

// TestProbeUnanswered: a probe whose tracker is silent counts its
// announces as unanswered, after three tries.
func TestProbeUnanswered(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	g, err := New(Config{UDP: conn.LocalAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := newProber(g, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.conn.Close()
	start := time.Now()
	if _, _, _, err := pr.announce(g.w.newTorrent(0)); err == nil {
		t.Error("an announce to a silent tracker was answered")
	}
	if d := time.Since(start); d < 3*time.Second || d > 5*time.Second {
		t.Errorf("gave up after %v; want three tries a second apart", d)
	}
}
