package main

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/prom"
	"github.com/annuaire/tracker/redisstore"
	dto "github.com/prometheus/client_model/go"
)

// exportedSeries returns the names of the series the server exports, as
// queries see them (a histogram's _bucket, _sum and _count), and the
// names of the tracker's own metric families.
func exportedSeries(t *testing.T) (series map[string]bool, families []string) {
	tr, err := tracker.New(tracker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	reqs := prom.NewRequests(metricsNamespace)
	reqs.ObserveRequest(tracker.RequestInfo{Protocol: tracker.ProtocolUDP, Op: tracker.OpAnnounce})
	conns, err := tracker.NewConnLimiter(tracker.ConnLimits{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := newRegistry(reqs, tr, conns, func() redisstore.Stats { return redisstore.Stats{} })
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series = make(map[string]bool)
	for _, mf := range mfs {
		name := mf.GetName()
		series[name] = true
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			series[name+"_bucket"], series[name+"_sum"], series[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			series[name+"_sum"], series[name+"_count"] = true, true
		}
		if strings.HasPrefix(name, metricsNamespace+"_") {
			families = append(families, name)
		}
	}
	return series, families
}

// queried is a metric name in a PromQL expression.
var queried = regexp.MustCompile(`\b(?:annuaire|go|process)_[a-zA-Z0-9_]+`)

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title, UID string
		Panels     []struct {
			ID      int
			Type    string
			Title   string
			Targets []struct {
				RefID string
				Expr  string
			}
		}
		Templating struct {
			List []struct {
				Name       string
				Definition string
			}
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard without a title, uid or panels")
	}

	var exprs []string
	for _, v := range dash.Templating.List {
		if v.Definition != "" {
			exprs = append(exprs, v.Definition)
		}
	}
	ids := make(map[int]bool)
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if q.RefID == "" || q.Expr == "" {
				t.Errorf("panel %q: query %+v without refId or expression", p.Title, q)
			}
			exprs = append(exprs, q.Expr)
		}
	}

	series, families := exportedSeries(t)
	used := make(map[string]bool)
	for _, e := range exprs {
		for _, name := range queried.FindAllString(e, -1) {
			used[name] = true
			if !series[name] {
				t.Errorf("the dashboard queries %s, which the server does not export (in %s)", name, e)
			}
		}
	}
	// And the other way round: every metric of the tracker is charted.
	for _, f := range families {
		if !used[f] && !used[f+"_bucket"] {
			t.Errorf("the dashboard does not chart %s", f)
		}
	}
	for _, want := range []string{"annuaire_requests_total", "annuaire_request_duration_seconds_bucket", "go_gc_duration_seconds_count"} {
		if !used[want] {
			t.Errorf("the dashboard does not query %s", want)
		}
	}
}
