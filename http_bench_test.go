package tracker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// httpBenchRequests returns n announces of known peers of the benchmark
// tracker (see benchPeer), as libtorrent writes them, with the addresses
// they come from.
func httpBenchRequests(n, swarms, per int) (queries, remotes []string) {
	var req AnnounceRequest
	for range n {
		benchPeer(&req, rand.IntN(swarms), rand.IntN(per))
		queries = append(queries, fmt.Sprintf(
			"info_hash=%s&peer_id=%s&port=%d&uploaded=0&downloaded=0&left=%d&corrupt=0&key=%08X&numwant=50&compact=1&no_peer_id=1&supportcrypto=1&redundant=0",
			httpLT(req.InfoHash[:]), httpLT(req.PeerID[:]), req.Addr.Port(), req.Left, rand.Uint32()))
		remotes = append(remotes, netip.AddrPortFrom(req.Addr.Addr(), 50000).String())
	}
	return queries, remotes
}

// BenchmarkHTTPAnnounce measures the handler answering a steady-state
// announce (a known peer re-announcing, numwant 50, compact) with
// 1,000,000 peers in 100,000 swarms, without sockets: a reused request
// whose query and source change each time, and a ResponseWriter that
// discards. What net/http itself costs is not counted.
func BenchmarkHTTPAnnounce(b *testing.B) {
	const swarms, peers = 100_000, 1_000_000
	t := benchTracker(b, swarms, peers)
	h, err := t.NewHTTPHandler(HTTPConfig{})
	if err != nil {
		b.Fatal(err)
	}
	queries, remotes := httpBenchRequests(1024, swarms, peers/swarms)
	httpBenchServe(b, h, "/announce", queries, remotes, "Accept-Encoding", "gzip")
}

// httpBenchServe serves GETs of path with the queries in turn, from the
// remotes in turn, with a qBittorrent User-Agent and the extra header
// name, value pairs, and reports the CPU time and the size of a reply.
func httpBenchServe(b *testing.B, h http.Handler, path string, queries, remotes []string, header ...string) {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.Header.Set("User-Agent", "qBittorrent/5.0.1")
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := &httpNullWriter{hdr: http.Header{}}
	bytes, i := 0, 0
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		r.URL.RawQuery, r.RemoteAddr = queries[i%len(queries)], remotes[i%len(remotes)]
		i++
		w.n = 0
		h.ServeHTTP(w, r)
		bytes += w.n
	}
	if w.code != http.StatusOK {
		b.Fatalf("status %d", w.code)
	}
	reportCPU(b, cpu, i)
	b.ReportMetric(float64(bytes)/float64(i), "B/reply")
}

// BenchmarkHTTPAnnounceParallel is BenchmarkHTTPAnnounce from every core
// at once.
func BenchmarkHTTPAnnounceParallel(b *testing.B) {
	const swarms, peers = 100_000, 1_000_000
	t := benchTracker(b, swarms, peers)
	h, err := t.NewHTTPHandler(HTTPConfig{})
	if err != nil {
		b.Fatal(err)
	}
	queries, remotes := httpBenchRequests(1024, swarms, peers/swarms)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest(http.MethodGet, "/announce", nil)
		w := &httpNullWriter{hdr: http.Header{}}
		i := rand.IntN(1024)
		for pb.Next() {
			r.URL.RawQuery, r.RemoteAddr = queries[i&1023], remotes[i&1023]
			i++
			h.ServeHTTP(w, r)
		}
	})
}

// BenchmarkHTTPScrape measures scrapes of 1 and of 60 hashes (the most
// Transmission asks for at once), plain and gzipped, against the same
// tracker.
func BenchmarkHTTPScrape(b *testing.B) {
	const swarms, peers = 100_000, 1_000_000
	t := benchTracker(b, swarms, peers)
	h, err := t.NewHTTPHandler(HTTPConfig{})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		hashes int
		gzip   bool
	}{{1, false}, {60, false}, {60, true}} {
		b.Run(fmt.Sprintf("hashes=%d/gzip=%v", bc.hashes, bc.gzip), func(b *testing.B) {
			var qs []string
			for range 64 {
				var parts []string
				var req AnnounceRequest
				for range bc.hashes {
					benchPeer(&req, rand.IntN(swarms), 0)
					parts = append(parts, "info_hash="+httpLT(req.InfoHash[:]))
				}
				qs = append(qs, strings.Join(parts, "&"))
			}
			var header []string
			if bc.gzip {
				header = []string{"Accept-Encoding", "gzip"}
			}
			httpBenchServe(b, h, "/scrape", qs, []string{"198.51.100.1:50000"}, header...)
		})
	}
}

// httpFixedStore answers every announce with the same peers, so that a
// benchmark through it measures the front-end alone.
type httpFixedStore struct{ peers []Peer }

func (s httpFixedStore) Announce(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse) error {
	resp.Complete, resp.Incomplete, resp.Downloaded = 10, 40, 100
	resp.Peers = append(resp.Peers, s.peers[:min(req.NumWant, len(s.peers))]...)
	return nil
}

func (s httpFixedStore) Scrape(ctx context.Context, hashes []InfoHash, dst []ScrapeStats) ([]ScrapeStats, error) {
	for range hashes {
		dst = append(dst, ScrapeStats{Complete: 10, Incomplete: 40, Downloaded: 100, Downloaders: 39})
	}
	return dst, nil
}

func (httpFixedStore) Close() error { return nil }

// BenchmarkHTTPFrontEnd measures what the handler itself costs (parsing,
// policy-free core path, encoding 50 compact peers, headers) over a store
// that does no work.
func BenchmarkHTTPFrontEnd(b *testing.B) {
	t, err := New(Config{Store: httpFixedStore{peers: testPeers(200, false, false)}})
	if err != nil {
		b.Fatal(err)
	}
	defer t.Close()
	h, err := t.NewHTTPHandler(HTTPConfig{})
	if err != nil {
		b.Fatal(err)
	}
	queries, remotes := httpBenchRequests(1024, 1000, 10)
	httpBenchServe(b, h, "/announce", queries, remotes)
}
