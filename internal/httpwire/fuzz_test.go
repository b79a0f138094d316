package httpwire

import (
	"bytes"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// encodeAnnounce writes the canonical query of a parsed announce: every
// byte of the hash and peer id escaped, numbers in decimal.
func encodeAnnounce(q *AnnounceQuery) string {
	var b strings.Builder
	fmt.Fprintf(&b, "info_hash=%s&peer_id=%s&port=%d&uploaded=%d&downloaded=%d&left=%d&key=%08X",
		escape(q.InfoHash[:], "", true), escape(q.PeerID[:], "", false),
		q.Port, q.Uploaded, q.Downloaded, q.Left, q.Key)
	if q.Event != EventNone {
		b.WriteString("&event=" + [...]string{"", "started", "stopped", "completed", "paused"}[q.Event])
	}
	if q.NumWant >= 0 {
		fmt.Fprintf(&b, "&numwant=%d", q.NumWant)
	}
	if !q.Compact {
		b.WriteString("&compact=0")
	}
	if q.NoPeerID {
		b.WriteString("&no_peer_id=1")
	}
	for _, p := range [...]struct{ k, v string }{{"passkey", q.Passkey}, {"ip", q.IP}, {"ipv4", q.IPv4}, {"ipv6", q.IPv6}} {
		if p.v != "" {
			b.WriteString("&" + p.k + "=" + p.v)
		}
	}
	return b.String()
}

var parseErrors = []error{
	ErrNoInfoHash, ErrNoPeerID, ErrNoPort, ErrNoLeft,
	ErrInfoHash, ErrPeerID, ErrPort, ErrCounter, ErrEvent,
}

// FuzzQuery checks the query parsers: they never panic, fail only with
// their own errors, decode every value the way url.PathUnescape does where
// that accepts it (but never turning '+' into a space), and whatever the
// announce parser accepts parses back to the same query from its canonical
// encoding.
func FuzzQuery(f *testing.F) {
	for _, q := range ClientQueries() {
		f.Add(q)
	}
	f.Add("info_hash=a&info_hash=" + strings.Repeat("%41", 20) + "&passkey=k")
	f.Fuzz(func(t *testing.T, query string) {
		var q AnnounceQuery
		err := ParseAnnounce(query, &q)
		if err != nil && !slices.Contains(parseErrors, err) {
			t.Fatalf("ParseAnnounce(%q) = %v: not a parse failure", query, err)
		}
		if err == nil {
			enc := encodeAnnounce(&q)
			var q2 AnnounceQuery
			if err := ParseAnnounce(enc, &q2); err != nil {
				t.Fatalf("ParseAnnounce(%q) accepted, its encoding %q fails: %v", query, enc, err)
			}
			if q2 != q {
				t.Fatalf("ParseAnnounce(%q) = %+v; from its encoding %q: %+v", query, q, enc, q2)
			}
		}

		// Each value decodes as the standard library's path unescaping
		// does, when that accepts it.
		var want [][20]byte
		wantOK := true
		var passkey string
		for rest := query; rest != ""; {
			var k, v string
			k, v, rest = NextParam(rest)
			buf := make([]byte, len(v))
			got, ok := UnescapeInto(buf, v)
			if !ok {
				t.Fatalf("UnescapeInto(%q) overflowed a buffer of its length", v)
			}
			if std, err := url.PathUnescape(v); err == nil && string(got) != std {
				t.Fatalf("UnescapeInto(%q) = %q; url.PathUnescape gives %q", v, got, std)
			}
			if Unescape(v) != string(got) {
				t.Fatalf("Unescape(%q) = %q; UnescapeInto gives %q", v, Unescape(v), got)
			}
			switch keyOf(k) {
			case keyInfoHash:
				if wantOK && len(got) != 20 {
					wantOK = false
				} else if wantOK {
					want = append(want, [20]byte(got))
				}
			case keyPasskey:
				passkey = v
			}
		}
		if err == nil && q.Passkey != passkey {
			t.Fatalf("ParseAnnounce(%q): passkey %q; the last passkey parameter is %q", query, q.Passkey, passkey)
		}

		hashes, pk, err := ParseScrape[[20]byte](query, nil, 1<<30)
		switch {
		case err != nil && err != ErrInfoHash:
			t.Fatalf("ParseScrape(%q) = %v", query, err)
		case (err == nil) != wantOK:
			t.Fatalf("ParseScrape(%q) = %v; want hashes %x", query, err, want)
		case err == nil && !slices.Equal(hashes, want):
			t.Fatalf("ParseScrape(%q) = %x; want %x", query, hashes, want)
		case err == nil && pk != passkey:
			t.Fatalf("ParseScrape(%q): passkey %q; want %q", query, pk, passkey)
		}
		if got := QueryPasskey(query); got != passkey {
			t.Fatalf("QueryPasskey(%q) = %q; want %q", query, got, passkey)
		}
	})
}

// FuzzPasskey checks that the passkey found in a URL is the same for
// ParsePath and AppendPasskey, is never empty, and comes back the same from
// every layout it can be written in.
func FuzzPasskey(f *testing.F) {
	for _, tt := range passkeyTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		b, ok := AppendPasskey(nil, []byte(in))
		path, query, _ := strings.Cut(in, "?")
		route, pathPK := ParsePath(path)
		want := pathPK
		if want == "" {
			want = QueryPasskey(query)
		}
		switch {
		case ok != (want != "") || string(b) != Unescape(want):
			t.Fatalf("AppendPasskey(%q) = %q, %v; the layouts give %q", in, b, ok, want)
		case ok && len(b) == 0:
			t.Fatalf("AppendPasskey(%q) found an empty passkey", in)
		case !ok && len(b) != 0:
			t.Fatalf("AppendPasskey(%q) = %q but not ok", in, b)
		case len(b) > len(in):
			t.Fatalf("AppendPasskey(%q) = %q, longer than its input", in, b)
		case pathPK != "" && route == NotFound:
			t.Fatalf("ParsePath(%q) = NotFound with passkey %q", path, pathPK)
		}
		// The passkey, escaped, comes back the same from every layout. (A
		// passkey named like a path's fixed word is ambiguous: in
		// /announce/scrape, the /announce/<passkey> layout wins.)
		if ok && string(b) != "announce" && string(b) != "scrape" {
			esc := escape(b, "", true)
			for _, layout := range []string{"/announce/%s", "/%s/scrape", "/announce.php?x=1&passkey=%s&y=2"} {
				u := strings.Replace(layout, "%s", esc, 1)
				if got, ok := AppendPasskey(nil, []byte(u)); !ok || !bytes.Equal(got, b) {
					t.Fatalf("AppendPasskey(%q) = %q, %v; want %q", u, got, ok, b)
				}
			}
		}
	})
}
