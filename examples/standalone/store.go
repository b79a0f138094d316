package main

// The -store flag: where the swarms are, and the metrics of a Redis store.

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/annuaire/tracker/redisstore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// store is a parsed -store: the memory store (the zero value), or a Redis
// URL.
type store struct {
	redisURL string // empty: the memory store
}

// String returns the store as the log shows it, without a password.
func (s store) String() string {
	if s.redisURL == "" {
		return "memory"
	}
	u, err := url.Parse(s.redisURL)
	if err != nil {
		return "redis" // parseStore accepted it, so this does not happen
	}
	return u.Redacted()
}

// parseStore reads a -store value: "memory", or a redis://, rediss:// or
// unix:// URL that go-redis accepts. Its errors never quote a password.
func parseStore(s string) (store, error) {
	if s == "memory" {
		return store{}, nil
	}
	scheme, _, ok := strings.Cut(s, "://")
	if !ok || (scheme != "redis" && scheme != "rediss" && scheme != "unix") {
		return store{}, errors.New(`want "memory" or a redis://, rediss:// or unix:// URL`)
	}
	u, err := url.Parse(s)
	if err != nil {
		return store{}, errors.New("not a valid URL")
	}
	if _, err := redis.ParseURL(s); err != nil {
		return store{}, fmt.Errorf("%s: %s", u.Redacted(), strings.TrimPrefix(err.Error(), "redis: "))
	}
	return store{redisURL: s}, nil
}

// storeCollector exports a Redis store's figures.
type storeCollector struct {
	stats                     func() redisstore.Stats
	calls, failures, duration *prometheus.Desc
}

// newStoreCollector returns a collector that reads stats at every scrape:
// <namespace>_store_calls_total{op}, _store_failures_total{op, cause}
// (cause timeout, unavailable or error) and
// _store_call_duration_seconds{op}, op being announce or scrape.
func newStoreCollector(namespace string, stats func() redisstore.Stats) *storeCollector {
	name := func(n string) string { return prometheus.BuildFQName(namespace, "store", n) }
	return &storeCollector{
		stats:    stats,
		calls:    prometheus.NewDesc(name("calls_total"), "Calls to the Redis store, failed ones included.", []string{"op"}, nil),
		failures: prometheus.NewDesc(name("failures_total"), "Failed calls to the Redis store, by cause: timeout, unavailable (Redis unreachable) or error.", []string{"op", "cause"}, nil),
		duration: prometheus.NewDesc(name("call_duration_seconds"), "Duration of calls to the Redis store, round trip included.", []string{"op"}, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.calls
	ch <- c.failures
	ch <- c.duration
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for _, op := range []struct {
		name string
		st   redisstore.OpStats
	}{{"announce", s.Announce}, {"scrape", s.Scrape}} {
		st := op.st
		ch <- prometheus.MustNewConstMetric(c.calls, prometheus.CounterValue, float64(st.Calls), op.name)
		for _, f := range []struct {
			cause string
			n     uint64
		}{{"timeout", st.Timeouts}, {"unavailable", st.Unavailable}, {"error", st.Errors}} {
			ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(f.n), op.name, f.cause)
		}
		buckets := make(map[float64]uint64, len(st.Latency.Bounds))
		var count uint64
		for i, n := range st.Latency.Counts {
			count += n
			if i < len(st.Latency.Bounds) {
				buckets[st.Latency.Bounds[i].Seconds()] = count
			}
		}
		ch <- prometheus.MustNewConstHistogram(c.duration, count, st.Latency.Sum.Seconds(), buckets, op.name)
	}
}
