package tracker

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"

	strict "github.com/annuaire/tracker/internal/bencode"
)

// httpSeedHash is the info hash of the seed queries, escaped the way each
// client escapes it.
var httpSeedHash = sha1.Sum([]byte("annuaire fuzz seed"))

// httpSeedQueries are announce queries as real clients send them (see
// PROTOCOL.md, "What real clients send"), plus a few malformed ones.
func httpSeedQueries() []string {
	lt := httpLT(httpSeedHash[:])                           // lowercase hex, !*() raw
	tr := httpEscape(httpSeedHash[:], httpRFC3986Raw, true) // uppercase hex
	ut := httpEscape(httpSeedHash[:], "-", false)           // only [A-Za-z0-9-] raw
	ltID := "-lt20A0-" + httpLT([]byte("\xd3\xa1\x07!~*()\x00\xff+"))
	utID := "-UT354S-" + httpEscape([]byte("\x9a\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b"), "-", false)
	return []string{
		// libtorrent 2.x
		"info_hash=" + lt + "&peer_id=" + ltID + "&port=6881&uploaded=0&downloaded=0&left=1048576&corrupt=0&key=1A2B3C4D&event=started&numwant=200&compact=1&no_peer_id=1&supportcrypto=1&redundant=0",
		// libtorrent, private torrent: trackerid, ipv4 and ipv6
		"info_hash=" + lt + "&peer_id=" + ltID + "&port=6881&uploaded=12&downloaded=34&left=0&corrupt=0&key=1A2B3C4D&numwant=200&compact=1&no_peer_id=1&supportcrypto=1&redundant=0&trackerid=t1&ipv4=192.0.2.1&ipv6=2001%3adb8%3a%3a1",
		// qBittorrent (joal profile)
		"info_hash=" + lt + "&peer_id=-qB4650-" + httpLT([]byte("\x01\x02abcdefghij")) + "&port=8999&uploaded=0&downloaded=0&left=734003200&corrupt=0&key=9A3F21C0&event=started&numwant=200&compact=1&no_peer_id=1&supportcrypto=1&redundant=0",
		// Transmission 4.x: raw peer_id, ipv6
		"info_hash=" + tr + "&peer_id=-TR4060-k8hj0wgej6ch&port=51413&uploaded=0&downloaded=0&left=0&numwant=80&key=6F3A1B2C&compact=1&supportcrypto=1&requirecrypto=1&corrupt=0&event=started&ipv6=2001%3ADB8%3A%3A2",
		// aria2: no port
		"info_hash=" + tr + "&peer_id=A2-1-36-0-" + httpEscape([]byte("\x12\x34\x56\x78\x9a\xbc\xde\xf0\x11\x22"), httpRFC3986Raw, true) + "&uploaded=0&downloaded=0&left=1024&compact=1&key=d2ab34cd&numwant=50&no_peer_id=1&event=started&supportcrypto=1",
		// uTorrent 3.5.4
		"info_hash=" + ut + "&peer_id=" + utID + "&port=41234&uploaded=0&downloaded=0&left=9&corrupt=0&key=ABCDEF01&event=started&numwant=200&compact=1&no_peer_id=1",
		// anacrolix: no numwant, signed decimal key
		"info_hash=" + lt + "&peer_id=-GT0003-abcdefghijkl&port=42069&uploaded=0&downloaded=0&left=100&event=started&key=-12345&compact=1",
		// stopping, partial seed
		"info_hash=" + lt + "&peer_id=" + ltID + "&port=6881&uploaded=1&downloaded=2&left=3&event=stopped&numwant=0",
		"info_hash=" + lt + "&peer_id=" + ltID + "&port=6881&left=3&event=paused&compact=0",
		// malformed
		"info_hash=" + lt[:len(lt)-3] + "&peer_id=x&port=0",
		"info_hash=%zz%2&peer_id=%%%&port=99999999999999999999999&left=-",
		"&&&=&==&info_hash&peer_id=&port",
		"info_hash=" + strings.Repeat("+", 20) + "&peer_id=" + strings.Repeat("%2b", 20) + "&port=1&left=0",
		"",
	}
}

// httpEncodeAnnounce writes the canonical query of a parsed announce:
// every byte of the hash and peer id escaped, numbers in decimal.
func httpEncodeAnnounce(req *AnnounceRequest, q *httpAnnounceQuery) string {
	var b strings.Builder
	fmt.Fprintf(&b, "info_hash=%s&peer_id=%s&port=%d&uploaded=%d&downloaded=%d&left=%d&key=%08X",
		httpEscape(req.InfoHash[:], "", true), httpEscape(req.PeerID[:], "", false),
		q.port, req.Uploaded, req.Downloaded, req.Left, req.Key)
	if req.Event != EventNone {
		b.WriteString("&event=" + req.Event.String())
	}
	if req.NumWant >= 0 {
		fmt.Fprintf(&b, "&numwant=%d", req.NumWant)
	}
	if !q.compact {
		b.WriteString("&compact=0")
	}
	if q.noPeerID {
		b.WriteString("&no_peer_id=1")
	}
	if q.passkey {
		b.WriteString("&passkey=x")
	}
	for _, p := range [...]struct{ k, v string }{{"ip", q.ip}, {"ipv4", q.ipv4}, {"ipv6", q.ipv6}} {
		if p.v != "" {
			b.WriteString("&" + p.k + "=" + p.v)
		}
	}
	return b.String()
}

// httpParseErrors are the failures the query parsers may return.
var httpParseErrors = []error{
	httpErrNoInfoHash, httpErrNoPeerID, httpErrNoPort, httpErrNoLeft,
	ErrInvalidInfoHash, ErrInvalidPeerID, ErrInvalidPort, ErrInvalidCounter, ErrInvalidEvent,
	ErrTooManyInfoHashes,
}

// FuzzQuery checks the query parsers: they never panic, fail only with
// their own client-visible errors, decode every value the way
// url.PathUnescape does where that accepts it (but never turning '+'
// into a space), and whatever the announce parser accepts parses back to
// the same request from its canonical encoding.
func FuzzQuery(f *testing.F) {
	for _, q := range httpSeedQueries() {
		f.Add(q)
	}
	f.Add("info_hash=a&info_hash=" + httpLT(httpSeedHash[:]) + "&passkey=k")
	f.Fuzz(func(t *testing.T, query string) {
		var req AnnounceRequest
		var q httpAnnounceQuery
		err := httpParseAnnounce(query, &req, &q)
		if err != nil && !httpOneOf(err, httpParseErrors) {
			t.Fatalf("httpParseAnnounce(%q) = %v: not a parse failure", query, err)
		}
		if err == nil {
			enc := httpEncodeAnnounce(&req, &q)
			var req2 AnnounceRequest
			var q2 httpAnnounceQuery
			if err := httpParseAnnounce(enc, &req2, &q2); err != nil {
				t.Fatalf("httpParseAnnounce(%q) accepted, its encoding %q fails: %v", query, enc, err)
			}
			if req2 != req || q2 != q {
				t.Fatalf("httpParseAnnounce(%q) = %+v %+v; from its encoding %q: %+v %+v", query, req, q, enc, req2, q2)
			}
		}

		// Each value decodes as the standard library's path unescaping
		// does, when that accepts it.
		var want []InfoHash
		wantOK := true
		for rest := query; rest != ""; {
			var k, v string
			k, v, rest = httpNextParam(rest)
			buf := make([]byte, len(v))
			got, ok := httpUnescapeInto(buf, v)
			if !ok {
				t.Fatalf("httpUnescapeInto(%q) overflowed a buffer of its length", v)
			}
			if std, err := url.PathUnescape(v); err == nil && string(got) != std {
				t.Fatalf("httpUnescapeInto(%q) = %q; url.PathUnescape gives %q", v, got, std)
			}
			if httpKeyOf(k) == httpKeyInfoHash && wantOK {
				if len(got) != 20 {
					wantOK = false
					continue
				}
				want = append(want, InfoHash(got))
			}
		}

		hashes, _, err := httpParseScrape(query, nil, 1<<30)
		switch {
		case err != nil && !errors.Is(err, ErrInvalidInfoHash):
			t.Fatalf("httpParseScrape(%q) = %v", query, err)
		case (err == nil) != wantOK:
			t.Fatalf("httpParseScrape(%q) = %v; want hashes %x", query, err, want)
		case err == nil && !slices.Equal(hashes, want):
			t.Fatalf("httpParseScrape(%q) = %x; want %x", query, hashes, want)
		}
	})
}

func httpOneOf(err error, errs []error) bool {
	for _, e := range errs {
		if err == e {
			return true
		}
	}
	return false
}

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
	for i, q := range httpSeedQueries() {
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
			route, _ := httpRouteOf(u.EscapedPath())
			switch {
			case r.Method != "GET" && r.Method != "HEAD":
				if w.Code != http.StatusMethodNotAllowed {
					t.Fatalf("%s %q: status %d; want 405", r.Method, target, w.Code)
				}
				continue
			case route == httpNotFound:
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
