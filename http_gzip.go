package tracker

// Compression of big replies (in practice, scrapes) for clients that
// accept gzip.

import (
	"compress/gzip"
	"strings"
	"sync"
)

// httpBuffer is an io.Writer that appends to b.
type httpBuffer struct{ b []byte }

func (w *httpBuffer) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

var httpGzipWriters sync.Pool // *gzip.Writer

// httpGzip appends the gzipped body to dst.
func httpGzip(dst *httpBuffer, body []byte) {
	zw, _ := httpGzipWriters.Get().(*gzip.Writer)
	if zw == nil {
		zw, _ = gzip.NewWriterLevel(dst, gzip.BestSpeed)
	} else {
		zw.Reset(dst)
	}
	// Writes to an httpBuffer cannot fail.
	zw.Write(body)
	zw.Close()
	zw.Reset(nil) // keep no reference to dst in the pool
	httpGzipWriters.Put(zw)
}

// httpAcceptsGzip reports whether Accept-Encoding header lines accept
// gzip: listed as gzip or x-gzip, or covered by *, with a nonzero q.
func httpAcceptsGzip(lines []string) bool {
	named, star := 0, 0 // 0 absent, 1 refused, 2 accepted
	for _, s := range lines {
		for s != "" {
			var part string
			part, s, _ = strings.Cut(s, ",")
			coding, params, _ := strings.Cut(part, ";")
			coding = strings.TrimSpace(coding)
			v := 2
			if httpQZero(params) {
				v = 1
			}
			switch {
			case strings.EqualFold(coding, "gzip") || strings.EqualFold(coding, "x-gzip"):
				named = max(named, v)
			case coding == "*":
				star = max(star, v)
			}
		}
	}
	if named != 0 {
		return named == 2
	}
	return star == 2
}

// httpQZero reports whether the parameters of a coding set its q to zero.
func httpQZero(params string) bool {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		v = strings.TrimSpace(v)
		if v == "" || v[0] != '0' {
			return false
		}
		return strings.Trim(v[1:], ".0") == ""
	}
	return false
}
