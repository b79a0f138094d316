package prom

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRequests(t *testing.T) {
	m := NewRequests("annuaire")
	m.ObserveRequest(tracker.RequestInfo{Protocol: "udp", Op: "announce", Duration: 20 * time.Microsecond})
	m.ObserveRequest(tracker.RequestInfo{Protocol: "udp", Op: "announce", Duration: 30 * time.Microsecond})
	m.ObserveRequest(tracker.RequestInfo{Protocol: "http", Op: "scrape", Failure: "rate_limited", Duration: time.Millisecond})
	want := `
# HELP annuaire_requests_total Requests answered, by protocol, operation and outcome (ok or the failure kind).
# TYPE annuaire_requests_total counter
annuaire_requests_total{op="announce",outcome="ok",protocol="udp"} 2
annuaire_requests_total{op="scrape",outcome="rate_limited",protocol="http"} 1
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "annuaire_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m, "annuaire_request_duration_seconds"); n != 2 {
		t.Errorf("%d duration series; want 2", n)
	}
	r := tracker.RequestInfo{Protocol: "udp", Op: "announce", Duration: time.Microsecond}
	if a := testing.AllocsPerRun(100, func() { m.ObserveRequest(r) }); a != 0 {
		t.Errorf("ObserveRequest allocates %.0f times per call; want 0", a)
	}
}

func TestStatsCollector(t *testing.T) {
	tr, err := tracker.New(tracker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for i, left := range []int64{0, 10, 10} {
		_, err := tr.Announce(context.Background(), &tracker.AnnounceRequest{
			InfoHash: tracker.InfoHash{1},
			PeerID:   tracker.PeerID{byte(i)},
			Addr:     netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 6881),
			Left:     left,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	tr.Announce(context.Background(), &tracker.AnnounceRequest{}) // a bad request
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewStatsCollector("annuaire", tr))
	want := `
# HELP annuaire_announces_total Announces answered successfully.
# TYPE annuaire_announces_total counter
annuaire_announces_total 3
# HELP annuaire_leechers Leechers (partial seeds included) held by the store.
# TYPE annuaire_leechers gauge
annuaire_leechers 2
# HELP annuaire_peers Peers held by the store.
# TYPE annuaire_peers gauge
annuaire_peers 3
# HELP annuaire_seeders Seeders held by the store.
# TYPE annuaire_seeders gauge
annuaire_seeders 1
# HELP annuaire_swarms Swarms held by the store.
# TYPE annuaire_swarms gauge
annuaire_swarms 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "annuaire_announces_total", "annuaire_leechers", "annuaire_peers", "annuaire_seeders", "annuaire_swarms"); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "annuaire_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == "bad_request" && m.GetCounter().GetValue() != 1 {
				t.Errorf("bad_request failures = %v; want 1", m.GetCounter().GetValue())
			}
		}
		return
	}
	t.Error("no annuaire_failures_total")
}
