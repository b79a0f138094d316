package tracker

import (
	"net/http"
	"strings"
	"testing"
)

func TestHTTPGzip(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		var hashes []InfoHash
		var q []string
		for i := range 40 {
			hashes = append(hashes, httpTestHash(100+i))
			q = append(q, "info_hash="+httpLT(hashes[i][:]))
		}
		target := "/scrape?" + strings.Join(q, "&")
		for _, tc := range []struct {
			min     int
			accept  []string
			gzipped bool
		}{
			{0, []string{"Accept-Encoding", "gzip"}, true},
			{0, []string{"Accept-Encoding", "deflate, gzip;q=1.0"}, true},
			{0, []string{"Accept-Encoding", "x-gzip"}, true},
			{0, []string{"Accept-Encoding", "*"}, true},
			{0, []string{"Accept-Encoding", "gzip;q=0"}, false},
			{0, []string{"Accept-Encoding", "gzip; q=0.000, *"}, false},
			{0, []string{"Accept-Encoding", "identity"}, false},
			{0, nil, false},
			{-1, []string{"Accept-Encoding", "gzip"}, false},
			{1 << 20, []string{"Accept-Encoding", "gzip"}, false},
		} {
			f := httpNewFixture(t, via, Config{}, HTTPConfig{GzipMinSize: tc.min})
			w := f.do(http.MethodGet, target, httpRemote(1), tc.accept...)
			m := httpCheckReply(t, target, w)
			if files, _ := m["files"].(map[string]any); len(files) != 40 {
				t.Errorf("GzipMinSize %d, %v: %d files", tc.min, tc.accept, len(files))
			}
			if got := w.Header().Get("Content-Encoding") == "gzip"; got != tc.gzipped {
				t.Errorf("GzipMinSize %d, %v: gzipped %v; want %v", tc.min, tc.accept, got, tc.gzipped)
			}
			if vary := w.Header().Get("Vary"); (vary == "Accept-Encoding") != (tc.min <= 1024 && tc.min >= 0) {
				t.Errorf("GzipMinSize %d: Vary %q", tc.min, vary)
			}
			// A small announce reply is never gzipped.
			w = f.do(http.MethodGet, "/announce?"+httpQuery(hashes[0], httpTestPeerID(1), 6881, 100, ""), httpRemote(1), tc.accept...)
			if w.Header().Get("Content-Encoding") != "" || w.Header().Get("Vary") != "" {
				t.Errorf("announce reply headers %v", w.Header())
			}
		}
	})
}

func TestHTTPAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		lines []string
		want  bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"gzip"}, true},
		{[]string{"GZIP"}, true},
		{[]string{"br", "gzip, deflate"}, true},
		{[]string{"gzip;q=0.5"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip;q=0.0"}, false},
		{[]string{"gzip ; q = 0.001"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"*;q=0.1"}, true},
		{[]string{"*, gzip;q=0"}, false},
		{[]string{"gzipx"}, false},
		{[]string{"deflate"}, false},
	} {
		if got := httpAcceptsGzip(tc.lines); got != tc.want {
			t.Errorf("httpAcceptsGzip(%q) = %v; want %v", tc.lines, got, tc.want)
		}
	}
}
