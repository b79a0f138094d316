// Package prom exports the figures of an annuaire tracker to Prometheus.
// It lives in its own module so that programs importing the tracker do not
// pull in the Prometheus client.
//
// Two collectors cover it: [Requests], which the front-ends feed through
// [tracker.Config.Observer] (requests by protocol, operation and outcome,
// and their latency), and [NewStatsCollector], which reads
// [tracker.Tracker.Stats] at each scrape (swarms, peers, announces,
// failures by kind).
//
//	reqs := prom.NewRequests("annuaire")
//	t, err := tracker.New(tracker.Config{Observer: reqs})
//	...
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(reqs, prom.NewStatsCollector("annuaire", t))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
package prom

import (
	"sync"

	"github.com/annuaire/tracker"
	"github.com/prometheus/client_golang/prometheus"
)

// Requests counts the requests the front-ends answer and times them. It is
// a [tracker.Observer] and a [prometheus.Collector]; register it once.
type Requests struct {
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu     sync.RWMutex
	counts map[requestKey]prometheus.Counter
	times  map[requestKey]prometheus.Observer
}

type requestKey struct{ protocol, op, outcome string }

var _ tracker.Observer = (*Requests)(nil)

// NewRequests returns the request metrics, named
// <namespace>_requests_total{protocol, op, outcome} (outcome "ok" or the
// failure kind, such as "rate_limited") and
// <namespace>_request_duration_seconds{protocol, op}.
func NewRequests(namespace string) *Requests {
	return &Requests{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "requests_total",
			Help:      "Requests answered, by protocol, operation and outcome (ok or the failure kind).",
		}, []string{"protocol", "op", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "request_duration_seconds",
			Help:      "Time from decoding a request to handing its reply to the socket.",
			// From 5 µs to about 2.6 s.
			Buckets: prometheus.ExponentialBuckets(5e-6, 4, 10),
		}, []string{"protocol", "op"}),
		counts: make(map[requestKey]prometheus.Counter),
		times:  make(map[requestKey]prometheus.Observer),
	}
}

// ObserveRequest implements [tracker.Observer]. After the first request of
// each kind it allocates nothing.
func (m *Requests) ObserveRequest(r tracker.RequestInfo) {
	outcome := r.Failure
	if outcome == "" {
		outcome = "ok"
	}
	k := requestKey{r.Protocol, r.Op, outcome}
	tk := requestKey{r.Protocol, r.Op, ""}
	m.mu.RLock()
	c, okc := m.counts[k]
	h, okh := m.times[tk]
	m.mu.RUnlock()
	if !okc || !okh {
		m.mu.Lock()
		if c, okc = m.counts[k]; !okc {
			c = m.total.WithLabelValues(r.Protocol, r.Op, outcome)
			m.counts[k] = c
		}
		if h, okh = m.times[tk]; !okh {
			h = m.duration.WithLabelValues(r.Protocol, r.Op)
			m.times[tk] = h
		}
		m.mu.Unlock()
	}
	c.Inc()
	h.Observe(r.Duration.Seconds())
}

// Describe implements [prometheus.Collector].
func (m *Requests) Describe(ch chan<- *prometheus.Desc) {
	m.total.Describe(ch)
	m.duration.Describe(ch)
}

// Collect implements [prometheus.Collector].
func (m *Requests) Collect(ch chan<- prometheus.Metric) {
	m.total.Collect(ch)
	m.duration.Collect(ch)
}

// statsCollector turns a tracker's Stats into metrics at each scrape.
type statsCollector struct {
	t                                *tracker.Tracker
	swarms, peers, seeders, leechers *prometheus.Desc
	announces, scrapes, failures     *prometheus.Desc
}

// NewStatsCollector returns a collector that reads t.Stats() at every
// scrape: <namespace>_swarms, _peers, _seeders and _leechers (gauges), and
// _announces_total, _scrapes_total (requests answered successfully) and
// _failures_total{kind} (counters).
func NewStatsCollector(namespace string, t *tracker.Tracker) prometheus.Collector {
	name := func(n string) string { return prometheus.BuildFQName(namespace, "", n) }
	return &statsCollector{
		t:         t,
		swarms:    prometheus.NewDesc(name("swarms"), "Swarms held by the store.", nil, nil),
		peers:     prometheus.NewDesc(name("peers"), "Peers held by the store.", nil, nil),
		seeders:   prometheus.NewDesc(name("seeders"), "Seeders held by the store.", nil, nil),
		leechers:  prometheus.NewDesc(name("leechers"), "Leechers (partial seeds included) held by the store.", nil, nil),
		announces: prometheus.NewDesc(name("announces_total"), "Announces answered successfully.", nil, nil),
		scrapes:   prometheus.NewDesc(name("scrapes_total"), "Scrapes answered successfully.", nil, nil),
		failures:  prometheus.NewDesc(name("failures_total"), "Failed announces and scrapes, by kind.", []string{"kind"}, nil),
	}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.swarms, c.peers, c.seeders, c.leechers, c.announces, c.scrapes, c.failures} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.t.Stats()
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	gauge(c.swarms, s.Swarms)
	gauge(c.peers, s.Peers)
	gauge(c.seeders, s.Seeders)
	gauge(c.leechers, s.Peers-s.Seeders)
	ch <- prometheus.MustNewConstMetric(c.announces, prometheus.CounterValue, float64(s.Announces))
	ch <- prometheus.MustNewConstMetric(c.scrapes, prometheus.CounterValue, float64(s.Scrapes))
	for kind, n := range s.Failures {
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(n), kind)
	}
}
