package httpwire

import (
	"bytes"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// escape percent-encodes every byte of b but letters, digits and those in
// raw, with hex digits in upper or lower case.
func escape(b []byte, raw string, upper bool) string {
	return NewEscaper(raw, upper).String(b)
}

func TestEscaper(t *testing.T) {
	b := []byte("a+ /\x00~*!()-_.\xff")
	for _, tc := range []struct {
		e    *Escaper
		want string
	}{
		{EscapeLibtorrent, "a%2b%20%2f%00~*!()-_.%ff"},
		{EscapeRFC3986, "a%2B%20%2F%00~%2A%21%28%29-_.%FF"},
	} {
		got := tc.e.String(b)
		if got != tc.want {
			t.Errorf("escape(%q) = %q; want %q", b, got, tc.want)
		}
		if back := Unescape(got); back != string(b) {
			t.Errorf("Unescape(%q) = %q; want %q", got, back, b)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"abcXYZ019", "abcXYZ019"},
		{"-_!.~*()", "-_!.~*()"},
		{"a b+c/d?e=f&g%h", "a%20b%2bc%2fd%3fe%3df%26g%25h"},
		{"\x00\xff\x7f\x80", "%00%ff%7f%80"},
		{"'\"#:;@[]", "%27%22%23%3a%3b%40%5b%5d"},
	} {
		if got := EscapeLibtorrent.String([]byte(tc.in)); got != tc.want {
			t.Errorf("EscapeLibtorrent(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
	// Every byte round-trips through a standard decoder.
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, e := range []*Escaper{EscapeLibtorrent, EscapeRFC3986} {
		if dec, err := url.PathUnescape(e.String(all)); err != nil || dec != string(all) {
			t.Errorf("the escape of every byte does not decode back: %v", err)
		}
	}
}

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		path    string
		route   Route
		passkey string
	}{
		{"/announce", Announce, ""},
		{"/announce.php", Announce, ""},
		{"/scrape", Scrape, ""},
		{"/scrape.php", Scrape, ""},
		{"/announce/abc", Announce, "abc"},
		{"/abc/announce", Announce, "abc"},
		{"/scrape/abc", Scrape, "abc"},
		{"/abc/scrape", Scrape, "abc"},
		{"/announce/a%2Fb", Announce, "a%2Fb"},
		{"/announce/scrape", Announce, "scrape"},
		{"/scrape/announce", Announce, "scrape"},
		{"/announce/announce", Announce, "announce"},
		{"/announce/", NotFound, ""},
		{"//announce", NotFound, ""},
		{"/a/b/scrape", NotFound, ""},
		{"/announce/a/b", NotFound, ""},
		{"/announcex/abc", NotFound, ""},
		{"/abc/announce.php", NotFound, ""},
		{"/announce/abc/", NotFound, ""},
		{"", NotFound, ""},
		{"/", NotFound, ""},
		{"announce", NotFound, ""},
	} {
		route, pk := ParsePath(tc.path)
		if route != tc.route || pk != tc.passkey {
			t.Errorf("ParsePath(%q) = %v, %q; want %v, %q", tc.path, route, pk, tc.route, tc.passkey)
		}
	}
}

var passkeyTests = []struct {
	in   string
	want string
	ok   bool
}{
	{"/announce/abcdef", "abcdef", true},
	{"/announce/abcdef?info_hash=x&passkey=other", "abcdef", true},
	{"/abcdef/announce", "abcdef", true},
	{"/abcdef/announce?x=y", "abcdef", true},
	{"/scrape/abcdef", "abcdef", true},
	{"/abcdef/scrape", "abcdef", true},
	{"/announce.php?passkey=abcdef", "abcdef", true},
	{"/announce?info_hash=%01&passkey=abcdef&numwant=50", "abcdef", true},
	{"/announce?passkey=first&passkey=abcdef", "abcdef", true}, // the last one counts
	{"/announce?pass%6Bey=abcdef", "abcdef", true},             // names are decoded
	{"/announce?passkey=", "", false},
	{"/announce?passkey=abc&passkey=", "", false},
	{"/announce?mypasskey=abc", "", false},
	{"/announce?Passkey=abc", "", false},
	{"/announce", "", false},
	{"/announce/", "", false},
	{"/announce/?passkey=abc", "abc", true},
	{"//announce", "", false},
	{"/announce/a/b", "", false},
	{"/a/b/announce", "", false},
	{"/announcex/abc", "", false},
	{"/abc/announce.php", "", false},
	{"/announce/abc/", "", false},
	{"", "", false},
	{"?", "", false},
	{"/", "", false},
	{"/announce/a%2Fb", "a/b", true},
	{"/announce/a%2fb", "a/b", true},
	{"/announce/%41%62", "Ab", true},
	{"/announce/a+b", "a+b", true},
	{"/announce?passkey=a+b%2B", "a+b+", true},
	{"/announce/a%zzb", "a%zzb", true},
	{"/announce/a%4", "a%4", true},
	{"/announce/a%", "a%", true},
	{"/announce/%00%ff", "\x00\xff", true},
	{"/announce/\xff\x00", "\xff\x00", true},
}

func TestAppendPasskey(t *testing.T) {
	for _, tt := range passkeyTests {
		got, ok := AppendPasskey([]byte("x"), []byte(tt.in))
		if !ok && string(got) != "x" || ok && string(got) != "x"+tt.want || ok != tt.ok {
			t.Errorf("AppendPasskey(x, %q) = %q, %v; want %q, %v", tt.in, got, ok, "x"+tt.want, tt.ok)
		}
	}
}

func TestQueryPasskey(t *testing.T) {
	for _, tc := range []struct{ query, want string }{
		{"passkey=abc", "abc"},
		{"info_hash=x&passkey=a%2Fb&y=1", "a%2Fb"},
		{"passkey=a&passkey=b", "b"},
		{"passkey=a&passkey=", ""},
		{"passkey", ""},
		{"xpasskey=a", ""},
		{"", ""},
	} {
		if got := QueryPasskey(tc.query); got != tc.want {
			t.Errorf("QueryPasskey(%q) = %q; want %q", tc.query, got, tc.want)
		}
	}
}

func TestUnescape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abc", "abc"},
		{"a%2Fb%2f", "a/b/"},
		{"a+b", "a+b"},
		{"%zz%4%", "%zz%4%"},
		{"%00%FF", "\x00\xff"},
		{"", ""},
	} {
		if got := Unescape(tc.in); got != tc.want {
			t.Errorf("Unescape(%q) = %q; want %q", tc.in, got, tc.want)
		}
		buf := make([]byte, len(tc.want))
		if got, ok := UnescapeInto(buf, tc.in); !ok || string(got) != tc.want {
			t.Errorf("UnescapeInto(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
		if len(tc.want) > 0 {
			if _, ok := UnescapeInto(buf[:len(buf)-1], tc.in); ok {
				t.Errorf("UnescapeInto(%q) into %d bytes: fits", tc.in, len(buf)-1)
			}
		}
	}
}

func TestNextParam(t *testing.T) {
	for _, tc := range []struct{ q, k, v, rest string }{
		{"a=1&b=2", "a", "1", "b=2"},
		{"a=1=2", "a", "1=2", ""},
		{"a&b", "a", "", "b"},
		{"=&", "", "", ""},
		{"", "", "", ""},
	} {
		if k, v, rest := NextParam(tc.q); k != tc.k || v != tc.v || rest != tc.rest {
			t.Errorf("NextParam(%q) = %q, %q, %q; want %q, %q, %q", tc.q, k, v, rest, tc.k, tc.v, tc.rest)
		}
	}
}

func TestParseAnnounce(t *testing.T) {
	hash := [20]byte{1, 2, 3, '!', '+', 0xff}
	id := [20]byte{'-', 'q', 'B', '4', '6', '5', '0', '-', 0x80}
	base := "info_hash=" + escape(hash[:], "-_!.~*()", false) + "&peer_id=" + escape(id[:], "-_!.~*()", false) + "&port=6881&left=7"
	for _, tc := range []struct {
		extra string
		check func(*AnnounceQuery) bool
	}{
		{"", func(q *AnnounceQuery) bool {
			return q.InfoHash == hash && q.PeerID == id && q.Port == 6881 && q.Left == 7 && q.NumWant == -1 && q.Compact && !q.NoPeerID && q.Event == EventNone && q.Passkey == ""
		}},
		{"uploaded=1&uploaded=9223372036854775807&downloaded=00012", func(q *AnnounceQuery) bool {
			return q.Uploaded == 1<<63-1 && q.Downloaded == 12
		}},
		{"port=51413", func(q *AnnounceQuery) bool { return q.Port == 51413 }},
		{"event=completed&event=paused", func(q *AnnounceQuery) bool { return q.Event == EventPaused }},
		{"ev%65nt=stopped", func(q *AnnounceQuery) bool { return q.Event == EventStopped }},
		{"event=%73tarted", func(q *AnnounceQuery) bool { return q.Event == EventStarted }},
		{"event=", func(q *AnnounceQuery) bool { return q.Event == EventNone }},
		{"key=1a2b3c4D", func(q *AnnounceQuery) bool { return q.Key == 0x1A2B3C4D }},
		{"key=12345", func(q *AnnounceQuery) bool { return q.Key == 12345 }},
		{"key=-1", func(q *AnnounceQuery) bool { return q.Key == 0xFFFFFFFF }},
		{"key=4294967295", func(q *AnnounceQuery) bool { return q.Key == 0xFFFFFFFF }},
		{"key=%de%ad", func(q *AnnounceQuery) bool { return q.Key == fnv("\xde\xad") }},
		{"compact=0&no_peer_id=1", func(q *AnnounceQuery) bool { return !q.Compact && q.NoPeerID }},
		{"compact=%30&no_peer_id=0", func(q *AnnounceQuery) bool { return !q.Compact && !q.NoPeerID }},
		{"passkey=x&ip=1.2.3.4&ipv4=5.6.7.8&ipv6=%3A%3A1", func(q *AnnounceQuery) bool {
			return q.Passkey == "x" && q.IP == "1.2.3.4" && q.IPv4 == "5.6.7.8" && q.IPv6 == "%3A%3A1"
		}},
		{"passkey=a&passkey=b%2F", func(q *AnnounceQuery) bool { return q.Passkey == "b%2F" }},
		{"numwant=25&numwant=30", func(q *AnnounceQuery) bool { return q.NumWant == 30 }},
		{"numwant=-5", func(q *AnnounceQuery) bool { return q.NumWant == -1 }},
		{"numwant=99999999999", func(q *AnnounceQuery) bool { return q.NumWant == 1<<31-1 }},
		{"numwant=0", func(q *AnnounceQuery) bool { return q.NumWant == 0 }},
		{"left=0", func(q *AnnounceQuery) bool { return q.Left == 0 }},
		{"peer_id=%2D%54%52%34%30%36%30%2D%30%30%30%30%30%30%30%30%30%30%30%31", func(q *AnnounceQuery) bool {
			return string(q.PeerID[:]) == "-TR4060-000000000001"
		}},
		{"peer_id=abcdefghij%zzklmnopq", func(q *AnnounceQuery) bool { // a stray % is a byte
			return string(q.PeerID[:]) == "abcdefghij%zzklmnopq"
		}},
		{"info_hash=++++++++++++++++++++", func(q *AnnounceQuery) bool { // '+' is not a space
			return q.InfoHash == [20]byte(bytes.Repeat([]byte{'+'}, 20))
		}},
	} {
		var q AnnounceQuery
		query := base + "&" + tc.extra
		if err := ParseAnnounce(query, &q); err != nil {
			t.Errorf("ParseAnnounce(%q) = %v", query, err)
			continue
		}
		if !tc.check(&q) {
			t.Errorf("ParseAnnounce(%q) = %+v", query, q)
		}
	}
}

func TestParseAnnounceFailures(t *testing.T) {
	h := strings.Repeat("h", 20)
	p := strings.Repeat("p", 20)
	for _, tc := range []struct {
		query string
		want  error
	}{
		{"peer_id=" + p + "&port=1&left=0", ErrNoInfoHash},
		{"info_hash=short&peer_id=" + p + "&port=1&left=0", ErrInfoHash},
		{"info_hash=" + h + "x&peer_id=" + p + "&port=1&left=0", ErrInfoHash},
		{"info_hash=" + h + "&port=1&left=0", ErrNoPeerID},
		{"info_hash=" + h + "&peer_id=short&port=1&left=0", ErrPeerID},
		{"info_hash=" + h + "&peer_id=" + p + "&left=0", ErrNoPort},
		{"info_hash=" + h + "&peer_id=" + p + "&port=0&left=0", ErrPort},
		{"info_hash=" + h + "&peer_id=" + p + "&port=65536&left=0", ErrPort},
		{"info_hash=" + h + "&peer_id=" + p + "&port=%2B1&left=0", ErrPort},
		{"info_hash=" + h + "&peer_id=" + p + "&port=1", ErrNoLeft},
		{"info_hash=" + h + "&peer_id=" + p + "&port=1&left=-1", ErrCounter},
		{"info_hash=" + h + "&peer_id=" + p + "&port=1&left=0&uploaded=9223372036854775808", ErrCounter},
		{"info_hash=" + h + "&peer_id=" + p + "&port=1&left=0&downloaded=1e3", ErrCounter},
		{"info_hash=" + h + "&peer_id=" + p + "&port=1&left=0&event=finished", ErrEvent},
		{"", ErrNoInfoHash},
	} {
		var q AnnounceQuery
		if err := ParseAnnounce(tc.query, &q); err != tc.want {
			t.Errorf("ParseAnnounce(%q) = %v; want %v", tc.query, err, tc.want)
		}
	}
}

func TestParseScrape(t *testing.T) {
	a, b := strings.Repeat("a", 20), strings.Repeat("%62", 20)
	hashes, pk, err := ParseScrape[[20]byte]("info_hash="+a+"&passkey=k1&x=y&info_hash="+b+"&passkey=k2", nil, 2)
	if err != nil || len(hashes) != 2 || hashes[0] != [20]byte([]byte(a)) || hashes[1] != [20]byte(bytes.Repeat([]byte{'b'}, 20)) || pk != "k2" {
		t.Errorf("ParseScrape = %q, %q, %v", hashes, pk, err)
	}
	if _, _, err := ParseScrape[[20]byte]("info_hash="+a+"&info_hash="+a, nil, 1); err != ErrTooManyHashes {
		t.Errorf("ParseScrape over the limit = %v; want ErrTooManyHashes", err)
	}
	if _, _, err := ParseScrape[[20]byte]("info_hash=abc", nil, 1); err != ErrInfoHash {
		t.Errorf("ParseScrape of a short hash = %v; want ErrInfoHash", err)
	}
	if hashes, pk, err := ParseScrape[[20]byte]("passkey=k", nil, 1); err != nil || len(hashes) != 0 || pk != "k" {
		t.Errorf("ParseScrape without hashes = %q, %q, %v", hashes, pk, err)
	}
}

func TestParseHost(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" for not an address
	}{
		{"192.0.2.1", "192.0.2.1"},
		{"192.0.2.1:80", "192.0.2.1"},
		{"2001:db8::1", "2001:db8::1"},
		{"[2001:db8::1]", "2001:db8::1"},
		{"[2001:db8::1]:80", "2001:db8::1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"fe80::1%eth0", "fe80::1"},
		{"example.com", ""},
		{"192.0.2.1:x", ""},
		{"[2001:db8::1", ""},
		{"", ""},
	} {
		a, ok := ParseHost(tc.in)
		if got := ""; ok {
			got = a.String()
			if got != tc.want {
				t.Errorf("ParseHost(%q) = %v; want %q", tc.in, a, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("ParseHost(%q) failed; want %q", tc.in, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		want netip.Addr
	}{
		{"192.0.2.7", netip.MustParseAddr("192.0.2.7")},
		{"2001%3Adb8%3A%3A2", netip.MustParseAddr("2001:db8::2")},
		{"0.0.0.0", netip.MustParseAddr("0.0.0.0")},
		{"%3A%3A", netip.MustParseAddr("::")},
		{"host.example", netip.Addr{}},
		{strings.Repeat("1", 80), netip.Addr{}},
	} {
		if a, ok := ParseAddrParam(tc.in); a != tc.want || ok != tc.want.IsValid() {
			t.Errorf("ParseAddrParam(%q) = %v, %v; want %v", tc.in, a, ok, tc.want)
		}
	}
}

func TestAllocs(t *testing.T) {
	queries := ClientQueries()
	var q AnnounceQuery
	hashes := make([][20]byte, 0, 8)
	dst := make([]byte, 0, 64)
	urlData := []byte("/announce?info_hash=%01&passkey=ab%2Fcd")
	n := testing.AllocsPerRun(100, func() {
		for _, s := range queries {
			ParseAnnounce(s, &q)
			ParseScrape(s, hashes[:0], 8)
		}
		AppendPasskey(dst[:0], urlData)
		ParsePath("/announce/abcdef")
		Unescape("abcdef")
	})
	if n != 0 {
		t.Errorf("parsing: %v allocations; want 0", n)
	}
}

func BenchmarkParseAnnounce(b *testing.B) {
	query := ClientQueries()[0]
	var q AnnounceQuery
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseAnnounce(query, &q); err != nil {
			b.Fatal(err)
		}
	}
}
