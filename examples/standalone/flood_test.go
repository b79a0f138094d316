package main

// Floods against the running server: made-up announces from one loopback
// address, sent by the benchmarks' load generator, while legitimate
// clients from other addresses announce and a probe announces new
// torrents.

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/annuaire/tracker/internal/loadgen"
)

// The store's bounds on the peers of one address, in a swarm and over all
// swarms: the server has no flags for them, so these are its defaults.
const (
	perSwarmAddr = 32
	perAddr      = 50_000
)

// TestFlood floods the server, its rate limit off, from one address with
// each shape the load generator knows, while 16 other addresses announce
// the peers of 100 swarms. Legitimate announces keep being answered;
// the flooding address holds at most 32 peers in each swarm it floods
// and 50,000 in all, whatever it sends; and once it has left tens of
// thousands of swarms that hold only a snatch count, new torrents are
// still served. (The server has no flag for the bound on swarms, 10
// million, so a test cannot fill the store with such swarms in seconds;
// the library's tests cover what happens then.)
func TestFlood(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the flood comes from addresses of 127.0.0.0/8, all loopback on Linux only")
	}
	p := start(t, nil, append(loopback, "-rate-limit", "0")...)
	udpAddr, metrics := p.addr("udp"), "http://"+p.addr("metrics")
	w := loadgen.Workload{Swarms: 100, Peers: 1000, Seed: 11}
	legit := loadgen.Config{
		Workload: w, UDP: udpAddr, Prefill: true, Rate: 400, Timeout: 2 * time.Second,
		Source: netip.MustParseAddr("127.1.0.1"), Sources: 16,
	}
	probed := 0 // the probe's torrents served: each holds a peer
	run := func(shape loadgen.FloodShape, from string, during time.Duration) *loadgen.FloodResult {
		t.Helper()
		b := loadgen.FloodBench{
			Legit:  legit,
			Flood:  loadgen.Config{Workload: w, Flood: shape, Source: netip.MustParseAddr(from), Timeout: 2 * time.Second},
			Before: 300 * time.Millisecond, During: during, Settle: 300 * time.Millisecond, After: 300 * time.Millisecond,
			MetricsURL: metrics + "/metrics", Probe: netip.MustParseAddr("127.2.0.1"), ProbeEvery: 100 * time.Millisecond,
		}
		ctx, cancel := context.WithTimeout(context.Background(), during+30*time.Second)
		defer cancel()
		res, err := b.Run(ctx)
		if err != nil {
			t.Fatalf("%v flood from %s: %v", shape, from, err)
		}
		t.Logf("%v flood from %s:\n%v", shape, from, res)
		legit.Prefill = false // the peers stay for the next floods
		if res.Flood == nil || res.FloodErr != "" {
			t.Fatalf("%v flood from %s: %s", shape, from, res.FloodErr)
		}
		// Legitimate announces are answered in every window, none
		// refused; a datagram lost on a loaded machine may time out.
		for _, win := range res.Legit.Windows {
			if win.Failures > 0 || win.Malformed > 0 || win.AnsweredShare() < 0.99 {
				t.Errorf("%v flood, window %s: legitimate announces: %d sent, %d answered, %d refused (%v), %d malformed, %d timeouts",
					shape, win.Name, win.Requests, win.OK, win.Failures, win.Reasons, win.Malformed, win.Timeouts)
			}
		}
		for k, pc := range res.Probes {
			probed += int(pc.Served)
			if pc.Tried == 0 || pc.Served != pc.Tried {
				t.Errorf("%v flood, window %s: new torrents: %d of %d served, %d not stored, %d refused %v, %d unanswered",
					shape, res.Legit.Windows[k].Name, pc.Served, pc.Tried, pc.NotStored, pc.Refused, pc.Reasons, pc.Unanswered)
			}
		}
		return res
	}
	// Made-up peers into 4 of the legitimate swarms: 32 each are kept.
	res := run(loadgen.FloodPeers, "127.66.0.1", time.Second)
	if res.Flood.OK < 10*4*perSwarmAddr {
		t.Fatalf("the peers flood had %d announces answered: too few to reach the bound", res.Flood.OK)
	}
	if peers, most := res.PeakPeers, w.Peers+probed+4*perSwarmAddr; peers > float64(most) {
		t.Errorf("peers flood: up to %.0f peers held; want at most %d", peers, most)
	}
	for s := range 4 {
		h := w.InfoHash(s)
		body := httpGet(t, fmt.Sprintf("http://%s/scrape?info_hash=%s", p.addr("http"), escapeAll(h[:])), 200)
		held := bencodeInt(body, "complete") + bencodeInt(body, "incomplete")
		if real := w.Peers / w.Swarms; held > real+perSwarmAddr {
			t.Errorf("swarm %d after the peers flood: %d peers; want its %d and at most %d of the flood", s, held, real, perSwarmAddr)
		}
	}

	// A new torrent each time, completed then stopped: no peer is held,
	// every swarm keeps its snatch count, and new torrents are served.
	// (Before the hashes flood, whose swarms past the bound hold nothing
	// and go at the next sweep, while this one's are counted.)
	swarms, before, probedBefore := gauge(t, metrics, "annuaire_swarms"), gauge(t, metrics, "annuaire_peers"), probed
	res = run(loadgen.FloodSnatches, "127.67.0.1", time.Second)
	pairs := int(res.Flood.OK / 2)
	if pairs < 5_000 {
		t.Fatalf("the snatches flood had %d announces answered: too few", res.Flood.OK)
	}
	if now := gauge(t, metrics, "annuaire_swarms"); now < swarms+pairs*99/100 {
		t.Errorf("after %d torrents completed and stopped: %d swarms, %d before; want them kept for their snatch counts", pairs, now, swarms)
	}
	// A completed announce whose stopped one was not sent when the flood
	// ended leaves a peer: one per socket at most.
	if now, most := gauge(t, metrics, "annuaire_peers"), before+probed-probedBefore+loadgen.DefaultSockets; now > most {
		t.Errorf("after the snatches flood: %d peers, %d before; want none of the flood's held", now, before)
	}

	// A new torrent each time, completed: the address's peers stop at
	// 50,000, the announces past them are answered all the same.
	before = gauge(t, metrics, "annuaire_peers")
	res = run(loadgen.FloodHashes, "127.68.0.1", 4*time.Second)
	if res.Flood.OK < perAddr+5_000 {
		t.Fatalf("the hashes flood had %d announces answered: too few to reach the bound of %d", res.Flood.OK, perAddr)
	}
	if peers, most := res.PeakPeers, before+perAddr+probed; peers > float64(most) {
		t.Errorf("hashes flood: up to %.0f peers held; want at most %d (%d before, the bound of %d, the probe's)", peers, most, before, perAddr)
	}
}

// gauge returns the value of an unlabelled metric.
func gauge(t *testing.T, metrics, name string) int {
	t.Helper()
	body := httpGet(t, metrics+"/metrics", 200)
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %q", name, line)
			}
			return int(f)
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// bencodeInt returns the first integer under key in a bencoded body, or 0.
func bencodeInt(body, key string) int {
	k := fmt.Sprintf("%d:%si", len(key), key)
	i := strings.Index(body, k)
	if i < 0 {
		return 0
	}
	rest := body[i+len(k):]
	n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, 'e')])
	return n
}
