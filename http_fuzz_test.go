package tracker

import (
	"bufio"
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
	pub := httpNewFixture(f, httpNetHTTP, Config{}, HTTPConfig{
		FullScrape:     true,
		AllowIPParam:   true,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")},
	})
	priv := httpNewFixture(f, httpNetHTTP, Config{Passkeys: PasskeyFunc(func(ctx context.Context, pk string) (Identity, error) {
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

// FuzzFastRequest sends raw request heads to the fast servers of a public
// and of a private tracker: whatever they answer themselves is an
// HTTP/1.1 200 that closes the connection, with the body Content-Length
// says, canonical bencode, and a failure reason the same as net/http's
// for the same request.
func FuzzFastRequest(f *testing.F) {
	proxies := []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}
	keys := NewPasskeySet()
	keys.Set("kpk", 1)
	pub := httpNewFixture(f, httpFast, Config{}, HTTPConfig{FullScrape: true, AllowIPParam: true, TrustedProxies: proxies})
	priv := httpNewFixture(f, httpFast, Config{Passkeys: keys}, HTTPConfig{TrackerID: "t", GzipMinSize: 64, TrustedProxies: proxies})
	lt := httpLT(httpSeedHash[:])
	for i, q := range httpwire.ClientQueries() {
		for _, path := range []string{"/announce", "/announce/kpk", "/kpk/announce", "/announce.php"} {
			f.Add(fastHead("GET", path+"?"+q), uint8(i))
		}
		f.Add(fastHead("HEAD", "/announce.php?passkey=kpk&"+q, "X-Forwarded-For: 198.51.100.1, 192.168.0.1"), uint8(i))
	}
	for _, target := range []string{
		"/scrape?info_hash=" + lt + "&info_hash=" + lt, "/scrape/kpk?info_hash=" + lt, "/kpk/scrape?info_hash=" + lt,
		"/scrape", "/announce/a%2Fb?x=1", "/announce?passkey=" + strings.Repeat("k", 200),
	} {
		f.Add(fastHead("GET", target), uint8(0))
		f.Add(fastHead("GET", target, "Accept-Encoding: x-gzip;q=0.5, *;q=0"), uint8(2))
	}
	remotes := []netip.AddrPort{fastFromClient, netip.MustParseAddrPort("203.0.113.9:1"), netip.MustParseAddrPort("[2001:db8::9]:2")}
	f.Fuzz(func(t *testing.T, head []byte, from uint8) {
		remote := remotes[int(from)%len(remotes)]
		for _, fx := range []*httpFixture{pub, priv} {
			reply, ok := fx.fast.answer(head, remote)
			if !ok {
				continue
			}
			fx.fast.done()
			req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
			if err != nil {
				t.Fatalf("answered %q, which net/http does not read: %v", head, err)
			}
			rd := bufio.NewReader(bytes.NewReader(reply))
			resp, err := http.ReadResponse(rd, req)
			if err != nil {
				t.Fatalf("%q: reply %q: %v", head, reply, err)
			}
			body, err := io.ReadAll(resp.Body)
			switch {
			case err != nil || rd.Buffered() != 0:
				t.Fatalf("%q: reply %q: %v, or bytes after the body", head, reply, err)
			case resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/1.1" || !resp.Close:
				t.Fatalf("%q: reply %q: want 200, HTTP/1.1, Connection: close", head, reply)
			case req.Method == http.MethodHead:
				continue
			case resp.Header.Get("Content-Length") != fmt.Sprint(len(body)):
				t.Fatalf("%q: Content-Length %q for %d bytes", head, resp.Header.Get("Content-Length"), len(body))
			}
			body = httpGunzip(t, resp.Header, body)
			if err := strict.Valid(body); err != nil {
				t.Fatalf("%q: body %q: %v", head, body, err)
			}
			if !bytes.HasPrefix(body, []byte("d14:failure reason")) {
				continue
			}
			// A failure changes nothing: net/http gives the same.
			req.RemoteAddr = remote.String()
			w := httptest.NewRecorder()
			fx.h.ServeHTTP(w, req)
			if theirs := httpGunzip(t, w.Header(), w.Body.Bytes()); !bytes.Equal(theirs, body) {
				t.Fatalf("%q: fast failure %q; net/http %q", head, body, theirs)
			}
		}
	})
}

// httpGunzip returns body decoded when its header says it is gzipped.
func httpGunzip(t *testing.T, h http.Header, body []byte) []byte {
	t.Helper()
	if h.Get("Content-Encoding") != "gzip" {
		return body
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body, err = io.ReadAll(zr); err != nil {
		t.Fatal(err)
	}
	return body
}
