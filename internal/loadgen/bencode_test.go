package loadgen

import (
	"strings"
	"testing"

	"github.com/zeebo/bencode"
)

func peers(n int) string { return strings.Repeat("\x7f\x00\x00\x01\x1a\xe1", n) }

func TestCheckHTTPAnnounce(t *testing.T) {
	// Good replies come from an independent encoder.
	enc := func(v map[string]any) string {
		b, err := bencode.EncodeBytes(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct {
		name string
		body string
		want outcome
	}{
		{"opentracker", "d8:completei1e10:downloadedi4e10:incompletei10e8:intervali1851e12:min intervali925e5:peers12:" + peers(2) + "e", outOK},
		{"encoded", enc(map[string]any{"interval": 1800, "complete": 3, "incomplete": 0, "peers": peers(50)}), outOK},
		{"no peers", enc(map[string]any{"interval": 1800, "complete": 0, "incomplete": 0, "peers": ""}), outOK},
		{"peers6 too", enc(map[string]any{"interval": 1, "complete": 0, "incomplete": 1, "peers": "", "peers6": strings.Repeat("x", 36),
			"tracker id": "t", "warning message": "w", "external ip": "\x7f\x00\x00\x01"}), outOK},
		{"failure", enc(map[string]any{"failure reason": "unregistered torrent", "interval": 1800, "min interval": 900}), outFailure},
		{"failure only", "d14:failure reason3:bade", outFailure},

		{"empty", "", outMalformed},
		{"not a dict", "le", outMalformed},
		{"html", "<html>", outMalformed},
		{"peers not %6", "d8:completei0e10:incompletei0e8:intervali1e5:peers7:1234567e", outMalformed},
		{"peers6 not %18", "d8:completei0e10:incompletei0e8:intervali1e5:peers0:6:peers65:12345e", outMalformed},
		{"dict peers", "d8:completei0e10:incompletei0e8:intervali1e5:peerslee", outMalformed},
		{"no interval", "d8:completei0e10:incompletei0e5:peers0:e", outMalformed},
		{"no complete", "d10:incompletei0e8:intervali1e5:peers0:e", outMalformed},
		{"no incomplete", "d8:completei0e8:intervali1e5:peers0:e", outMalformed},
		{"no peers key", "d8:completei0e10:incompletei0e8:intervali1ee", outMalformed},
		{"only peers6", "d8:completei0e10:incompletei0e8:intervali1e6:peers60:e", outMalformed},
		{"negative count", "d8:completei-1e10:incompletei0e8:intervali1e5:peers0:e", outMalformed},
		{"string count", "d8:complete1:010:incompletei0e8:intervali1e5:peers0:e", outMalformed},
		{"unsorted keys", "d10:incompletei0e8:completei0e8:intervali1e5:peers0:e", outMalformed},
		{"duplicate key", "d8:completei0e8:completei0e10:incompletei0e8:intervali1e5:peers0:e", outMalformed},
		{"leading zero", "d8:completei00e10:incompletei0e8:intervali1e5:peers0:e", outMalformed},
		{"trailing data", "d8:completei0e10:incompletei0e8:intervali1e5:peers0:ee", outMalformed},
		{"unterminated", "d8:completei0e10:incompletei0e8:intervali1e5:peers0:", outMalformed},
		{"truncated string", "d8:completei0e10:incompletei0e8:intervali1e5:peers6:abce", outMalformed},
		{"bad nested value", "d8:completei0e10:incompletei0e8:intervali1e1:xli-0ee5:peers0:e", outMalformed},
		{"failure not a string", "d14:failure reasoni1ee", outMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkHTTPAnnounce([]byte(tc.body)); got != tc.want {
				t.Errorf("checkHTTPAnnounce(%q) = %d; want %d", tc.body, got, tc.want)
			}
		})
	}
}

func TestCheckHTTPScrape(t *testing.T) {
	var h1, h2, h3 [20]byte
	copy(h1[:], "aaaaaaaaaaaaaaaaaaaa")
	copy(h2[:], "bbbbbbbbbbbbbbbbbbbb")
	copy(h3[:], "cccccccccccccccccccc")
	entry := "d8:completei1e10:downloadedi2e10:incompletei3ee"
	file := func(h [20]byte) string { return "20:" + string(h[:]) + entry }
	for _, tc := range []struct {
		name string
		body string
		want [][20]byte
		out  outcome
	}{
		{"one", "d5:filesd" + file(h1) + "ee", [][20]byte{h1}, outOK},
		{"two", "d5:filesd" + file(h1) + file(h2) + "ee", [][20]byte{h2, h1}, outOK},
		{"flags", "d5:filesd" + file(h1) + "e5:flagsd20:min_request_intervali900eee", [][20]byte{h1}, outOK},
		{"failure", "d14:failure reason7:refusede", [][20]byte{h1}, outFailure},

		{"missing entry", "d5:filesd" + file(h1) + "ee", [][20]byte{h1, h2}, outMalformed},
		{"other hash", "d5:filesd" + file(h3) + "ee", [][20]byte{h1}, outMalformed},
		{"no files", "d5:flagsdee", [][20]byte{h1}, outMalformed},
		{"files not a dict", "d5:filesle", [][20]byte{h1}, outMalformed},
		{"short key", "d5:filesd3:abc" + entry + "ee", [][20]byte{h1}, outMalformed},
		{"no complete", "d5:filesd20:" + string(h1[:]) + "d10:incompletei3eeee", [][20]byte{h1}, outMalformed},
		{"no incomplete", "d5:filesd20:" + string(h1[:]) + "d8:completei3eeee", [][20]byte{h1}, outMalformed},
		{"entry not a dict", "d5:filesd20:" + string(h1[:]) + "i1eee", [][20]byte{h1}, outMalformed},
		{"files in request order", "d5:filesd" + file(h2) + file(h1) + "ee", [][20]byte{h2, h1}, outOK},
		{"duplicate file", "d5:filesd" + file(h1) + file(h1) + "ee", [][20]byte{h1, h2}, outMalformed},
		{"unsorted entry", "d5:filesd20:" + string(h1[:]) + "d10:incompletei3e8:completei1eeee", [][20]byte{h1}, outMalformed},
		{"trailing", "d5:filesd" + file(h1) + "eee", [][20]byte{h1}, outMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkHTTPScrape([]byte(tc.body), tc.want); got != tc.out {
				t.Errorf("checkHTTPScrape(%q) = %d; want %d", tc.body, got, tc.out)
			}
		})
	}
}

// The checks allocate nothing, whatever the reply.
func TestChecksDoNotAllocate(t *testing.T) {
	var h [20]byte
	copy(h[:], "aaaaaaaaaaaaaaaaaaaa")
	want := [][20]byte{h}
	file := "d5:filesd20:" + string(h[:]) + "d8:completei1e10:downloadedi2e10:incompletei3eee"
	for _, tc := range []struct {
		name   string
		body   string
		out    outcome
		scrape bool
	}{
		{"announce", "d8:completei1e10:incompletei0e8:intervali1800e5:peers12:" + peers(2) + "e", outOK, false},
		{"failure", "d14:failure reason7:refusede", outFailure, false},
		{"unsorted keys", "d8:intervali1800e8:completei1ee", outMalformed, false},
		{"bad nested value", "d8:completei0e10:incompletei0e8:intervali1e1:xli-0ee5:peers0:e", outMalformed, false},
		{"truncated", "d8:completei1e10:incompl", outMalformed, false},
		{"scrape", file + "e", outOK, true},
		{"scrape trailing", file + "ee", outMalformed, true},
		{"scrape bad entry", "d5:filesd20:" + string(h[:]) + "d8:completei01eeee", outMalformed, true},
	} {
		b := []byte(tc.body)
		check := func() outcome { return checkHTTPAnnounce(b) }
		if tc.scrape {
			check = func() outcome { return checkHTTPScrape(b, want) }
		}
		if got := check(); got != tc.out {
			t.Fatalf("%s: check = %d; want %d", tc.name, got, tc.out)
		}
		if n := testing.AllocsPerRun(100, func() { check() }); n != 0 {
			t.Errorf("%s: the check allocates %v times; want 0", tc.name, n)
		}
	}
}

// announceReply is what an accepted reply must decode to.
type announceReply struct {
	Failure    *string `bencode:"failure reason"`
	Interval   *int64  `bencode:"interval"`
	Complete   *int64  `bencode:"complete"`
	Incomplete *int64  `bencode:"incomplete"`
	Peers      *string `bencode:"peers"`
}

// FuzzCheckHTTPAnnounce checks the scanner against an independent
// decoder: whatever it accepts must decode, with the fields it vouched for.
func FuzzCheckHTTPAnnounce(f *testing.F) {
	f.Add([]byte("d8:completei1e10:downloadedi4e10:incompletei10e8:intervali1851e12:min intervali925e5:peers6:" + peers(1) + "e"))
	f.Add([]byte("d14:failure reason3:bad8:intervali1800ee"))
	f.Add([]byte("d8:completei0e10:incompletei0e8:intervali1e1:xld1:ai1eee5:peers0:e"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := checkHTTPAnnounce(b)
		if out == outMalformed {
			return
		}
		var r announceReply
		if err := bencode.DecodeBytes(b, &r); err != nil {
			t.Fatalf("checkHTTPAnnounce(%q) = %d, but decoding fails: %v", b, out, err)
		}
		switch out {
		case outFailure:
			if r.Failure == nil {
				t.Fatalf("checkHTTPAnnounce(%q) = failure, but no failure reason decodes", b)
			}
		case outOK:
			if r.Interval == nil || r.Complete == nil || r.Incomplete == nil || r.Peers == nil || len(*r.Peers)%6 != 0 {
				t.Fatalf("checkHTTPAnnounce(%q) = ok, but decodes to %+v", b, r)
			}
		}
	})
}

// The checks of HTTP replies run on every reply of a keep-alive round.
func BenchmarkCheckHTTPAnnounce(b *testing.B) {
	body := []byte("d8:completei1e10:downloadedi4e10:incompletei10e8:intervali1851e12:min intervali925e5:peers300:" + peers(50) + "e")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if checkHTTPAnnounce(body) != outOK {
			b.Fatal("reply refused")
		}
	}
}

func BenchmarkCheckHTTPScrape(b *testing.B) {
	want := make([][20]byte, 5)
	body := []byte("d5:filesd")
	for k := range want {
		copy(want[k][:], strings.Repeat(string(rune('a'+k)), 20))
		body = append(body, "20:"+string(want[k][:])+"d8:completei1e10:downloadedi2e10:incompletei3ee"...)
	}
	body = append(body, "e5:flagsd20:min_request_intervali900eee"...)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if checkHTTPScrape(body, want) != outOK {
			b.Fatal("reply refused")
		}
	}
}
