package tracker

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	strict "github.com/annuaire/tracker/internal/bencode"
	"github.com/annuaire/tracker/internal/httpwire"
)

// httpSeedHash is the info hash the client queries of httpClientQueries
// announce.
var httpSeedHash = sha1.Sum([]byte("annuaire fuzz seed"))

// FuzzRequestPath sends whole requests through handlers of a public and
// of a private tracker: every reply is a 404 for a path the handler does
// not serve, a 405 for a method it does not serve, and otherwise a 200
// with a canonical bencoded body of the length Content-Length says.
func FuzzRequestPath(f *testing.F) {
	pub := httpNewFixture(f, Config{}, HTTPConfig{
		FullScrape:     true,
		AllowIPParam:   true,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")},
	})
	priv := httpNewFixture(f, Config{Passkeys: PasskeyFunc(func(ctx context.Context, pk string) (Identity, error) {
		if strings.HasPrefix(pk, "k") {
			return Identity{UserID: 1, Warning: pk}, nil
		}
		return Identity{}, ErrInvalidPasskey
	})}, HTTPConfig{TrackerID: "t", GzipMinSize: 64})
	lt := httpLT(httpSeedHash[:])
	for i, q := range httpwire.ClientQueries() {
		for _, path := range []string{"/announce", "/announce/kpk", "/kpk/announce", "/announce.php"} {
			f.Add(uint8(i), path+"?"+q, "")
		}
		f.Add(uint8(i), "/announce.php?passkey=kpk&"+q, "198.51.100.1, 192.168.0.1")
	}
	for _, target := range []string{
		"/scrape?info_hash=" + lt + "&info_hash=" + lt,
		"/scrape/kpk?info_hash=" + lt,
		"/kpk/scrape?info_hash=" + lt,
		"/scrape.php?passkey=kpk&info_hash=" + lt,
		"/scrape", "/scrape/kpk", "/", "/announce/", "/announce/a%2Fb?x=1", "/a%2F/announce",
		"/announce?passkey=" + strings.Repeat("k", 200), "*", "/favicon.ico",
	} {
		f.Add(uint8(0), target, "")
		f.Add(uint8(2), target, "[2001:db8::1]:80")
	}
	methods := []string{"GET", "HEAD", "GET", "POST", "PUT", "get"}
	f.Fuzz(func(t *testing.T, m uint8, target, xff string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return // the server answers 400 before any handler
		}
		for _, fx := range []*httpFixture{pub, priv} {
			r := &http.Request{
				Method:     methods[int(m)%len(methods)],
				URL:        u,
				RequestURI: target,
				Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header:     http.Header{"User-Agent": {"fuzz/1.0"}},
				RemoteAddr: []string{"192.168.3.4:5555", "203.0.113.9:1", "[2001:db8::9]:2"}[int(m/8)%3],
			}
			if xff != "" {
				r.Header["X-Forwarded-For"] = []string{xff}
			}
			if m&0x80 != 0 {
				r.Header["Accept-Encoding"] = []string{"gzip"}
			}
			w := httptest.NewRecorder()
			fx.h.ServeHTTP(w, r)
			route, _ := httpwire.ParsePath(u.EscapedPath())
			switch {
			case r.Method != "GET" && r.Method != "HEAD":
				if w.Code != http.StatusMethodNotAllowed {
					t.Fatalf("%s %q: status %d; want 405", r.Method, target, w.Code)
				}
				continue
			case route == httpwire.NotFound:
				if w.Code != http.StatusNotFound {
					t.Fatalf("%s %q: status %d; want 404", r.Method, target, w.Code)
				}
				continue
			case w.Code != http.StatusOK:
				t.Fatalf("%s %q: status %d; want 200", r.Method, target, w.Code)
			}
			body := w.Body.Bytes()
			if w.Header().Get("Content-Length") != fmt.Sprint(len(body)) {
				t.Fatalf("%q: Content-Length %q for %d bytes", target, w.Header().Get("Content-Length"), len(body))
			}
			if w.Header().Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("%q: %v", target, err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatalf("%q: %v", target, err)
				}
			}
			if err := strict.Valid(body); err != nil {
				t.Fatalf("%q: body %q: %v", target, body, err)
			}
		}
	})
}
