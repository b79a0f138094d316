package bencode

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	zeebo "github.com/zeebo/bencode"
)

var validTests = []struct {
	name string
	in   string
	want any
}{
	{"zero", "i0e", int64(0)},
	{"positive", "i42e", int64(42)},
	{"negative", "i-7e", int64(-7)},
	{"ten", "i10e", int64(10)},
	{"max int64", "i9223372036854775807e", int64(math.MaxInt64)},
	{"min int64", "i-9223372036854775808e", int64(math.MinInt64)},
	{"empty string", "0:", ""},
	{"string", "4:spam", "spam"},
	{"binary string", "3:\x00\xff\n", "\x00\xff\n"},
	{"string holding bencode", "3:i1e", "i1e"},
	{"empty list", "le", []any{}},
	{"list", "l4:spami1ee", []any{"spam", int64(1)}},
	{"empty dict", "de", map[string]any{}},
	{"dict", "d3:cow3:moo4:spam4:eggse", map[string]any{"cow": "moo", "spam": "eggs"}},
	{"empty key", "d0:i1e1:ai2ee", map[string]any{"": int64(1), "a": int64(2)}},
	{"prefix key first", "d4:peeri1e5:peersi2e6:peers6i3ee", map[string]any{"peer": int64(1), "peers": int64(2), "peers6": int64(3)}},
	{"raw byte order", "d1:Zi1e1:ai2e1:\xffi3ee", map[string]any{"Z": int64(1), "a": int64(2), "\xff": int64(3)}},
	{"nested", "d1:ald1:bleeee", map[string]any{"a": []any{map[string]any{"b": []any{}}}}},
	{"failure", "d14:failure reason7:go away8:intervali1800e12:min intervali900e8:retry in5:nevere",
		map[string]any{"failure reason": "go away", "interval": int64(1800), "min interval": int64(900), "retry in": "never"}},
	{"max depth", strings.Repeat("l", MaxDepth) + strings.Repeat("e", MaxDepth), nested(MaxDepth)},
}

// nested returns n lists, each the only element of the one around it.
func nested(n int) any {
	var v any = []any{}
	for range n - 1 {
		v = []any{v}
	}
	return v
}

var invalidTests = []struct {
	name   string
	in     string
	offset int
}{
	{"empty input", "", 0},
	{"negative zero", "i-0e", 2},
	{"leading zero", "i03e", 1},
	{"negative leading zero", "i-03e", 2},
	{"zeros", "i00e", 1},
	{"empty integer", "ie", 1},
	{"sign only", "i-e", 2},
	{"plus sign", "i+1e", 1},
	{"space before", "i 1e", 1},
	{"space after", "i1 e", 2},
	{"double minus", "i--1e", 2},
	{"hex", "i0x1e", 2},
	{"overflow", "i9223372036854775808e", 19},
	{"negative overflow", "i-9223372036854775809e", 20},
	{"long overflow", "i99999999999999999999999e", 19},
	{"unterminated integer", "i12", 3},
	{"unterminated zero", "i0", 2},
	{"integer cut after i", "i", 1},
	{"string length leading zero", "03:abc", 0},
	{"string length zeros", "00:", 0},
	{"negative string length", "-3:abc", 0},
	{"string length sign", "+3:abc", 0},
	{"string length space", "3 :abc", 1},
	{"string cut", "4:abc", 0},
	{"string length without colon", "1", 1},
	{"string length past end", "3", 0},
	{"huge string length", "99999999999999999999999:a", 0},
	{"unknown type", "x", 0},
	{"space", " i1e", 0},
	{"capital", "I1e", 0},
	{"trailing data", "i1ei2e", 3},
	{"trailing newline", "de\n", 2},
	{"trailing space", "4:spam ", 6},
	{"stray end", "e", 0},
	{"unterminated list", "l", 1},
	{"unterminated list with item", "li1e", 4},
	{"unterminated dict", "d", 1},
	{"unterminated dict with pair", "d1:ai1e", 7},
	{"unterminated nested", "d1:al", 5},
	{"dict key without value", "d1:ae", 4},
	{"dict key at end", "d1:a", 4},
	{"integer key", "di1ei2ee", 1},
	{"list key", "dlei2ee", 1},
	{"unsorted keys", "d1:bi1e1:ai2ee", 7},
	{"duplicate keys", "d1:ai1e1:ai2ee", 7},
	{"longer key first", "d2:aai1e1:ai2ee", 8},
	{"unsorted reply keys", "d8:intervali1800e8:completei1ee", 17},
	{"peers6 before peers", "d6:peers60:5:peers0:e", 11},
	{"unsorted nested", "d1:ad1:bi1e1:ai2eee", 11},
	{"too deep", strings.Repeat("l", MaxDepth+1) + strings.Repeat("e", MaxDepth+1), MaxDepth},
	{"too deep dicts", strings.Repeat("d1:a", MaxDepth) + "dee" + strings.Repeat("e", MaxDepth), 4 * MaxDepth},
}

func TestValid(t *testing.T) {
	for _, tt := range validTests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Valid([]byte(tt.in)); err != nil {
				t.Errorf("Valid(%q) = %v; want nil", tt.in, err)
			}
		})
	}
	for _, tt := range invalidTests {
		t.Run(tt.name, func(t *testing.T) {
			err := Valid([]byte(tt.in))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Valid(%q) = %v; want a *SyntaxError", tt.in, err)
			}
			if se.Offset != tt.offset {
				t.Errorf("Valid(%q) = %v; want offset %d", tt.in, err, tt.offset)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	for _, tt := range validTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode(%q) = %#v, %v; want %#v, nil", tt.in, got, err, tt.want)
			}
		})
	}
	for _, tt := range invalidTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			want := Valid([]byte(tt.in))
			if got != nil || !reflect.DeepEqual(err, want) {
				t.Errorf("Decode(%q) = %#v, %v; want nil, %v", tt.in, got, err, want)
			}
		})
	}
}

func TestSyntaxErrorMessage(t *testing.T) {
	err := Valid([]byte("d1:bi1e1:ai2ee"))
	const want = `bencode: dictionary key "a" out of order at offset 7`
	if err == nil || err.Error() != want {
		t.Errorf("Valid(%q) = %v; want %s", "d1:bi1e1:ai2ee", err, want)
	}
}

func TestValidAllocs(t *testing.T) {
	reply := []byte("d8:completei5e10:downloadedi12e10:incompletei3e8:intervali1800e12:min intervali900e" +
		"5:peersld2:ip9:10.0.0.017:peer id20:-qB4650-abcdefghijkl4:porti6881eee" +
		"6:peers618:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1e")
	if err := Valid(reply); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = Valid(reply) }); n != 0 {
		t.Errorf("Valid(reply) allocates %v times; want 0", n)
	}
}

// replies are of the shapes the tracker sends.
var replies = []string{
	"d8:completei10e10:downloadedi31e10:incompletei4e8:intervali1843e12:min intervali900e5:peers12:\x0a\x00\x00\x01\x1a\xe1\xc0\xa8\x01\x02\xc8\xd5e",
	"d8:completei1e10:downloadedi0e11:external ip4:\xcb\x00\x71\x07" +
		"10:incompletei2e8:intervali1800e12:min intervali900e5:peers0:" +
		"6:peers618:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x1a\xe1" +
		"10:tracker id4:abcd15:warning message10:low ratio!e",
	"d8:completei0e10:downloadedi0e10:incompletei1e8:intervali1800e12:min intervali900e" +
		"5:peersld2:ip8:10.1.2.37:peer id20:-TR4050-0123456789ab4:porti51413eed2:ip11:2001:db8::14:porti6881eeee",
	"d14:failure reason20:unregistered torrent8:intervali1800e12:min intervali900ee",
	"d14:failure reason28:too many requests, slow down8:intervali1800e12:min intervali900e8:retry ini1ee",
	"d5:filesd20:\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14" +
		"d8:completei3e10:downloadedi7e11:downloadersi1e10:incompletei2eee5:flagsd20:min_request_intervali900eee",
}

// seeds are the replies, and edge cases valid and broken.
var seeds = append(slices.Clone(replies),
	"i-9223372036854775808e",
	"i-0e", "i03e", "ie", "i-e", "03:abc", "d1:bi1e1:ai2ee", "d1:ai1e1:ai2ee", "li1e", "de\x00",
	strings.Repeat("l", MaxDepth)+strings.Repeat("e", MaxDepth),
)

func TestRepliesValid(t *testing.T) {
	for _, r := range replies {
		if err := Valid([]byte(r)); err != nil {
			t.Errorf("Valid(%q) = %v; want nil", r, err)
		}
	}
}

// FuzzValid checks that Valid never panics and that whatever it accepts is
// also decoded by zeebo/bencode, whose canonical re-encoding gives back the
// exact input.
func FuzzValid(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Valid(b)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(b) {
				t.Fatalf("Valid(%q) = %v; want a *SyntaxError with offset in [0, %d]", b, err, len(b))
			}
			return
		}
		var v any
		if err := zeebo.DecodeBytes(b, &v); err != nil {
			t.Fatalf("Valid(%q) = nil, but zeebo/bencode fails: %v", b, err)
		}
		out, err := zeebo.EncodeBytes(v)
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("zeebo/bencode re-encodes %q as %q, %v; want the input", b, out, err)
		}
	})
}

// FuzzDecode checks that Decode accepts exactly what Valid accepts, that
// its value is the one zeebo/bencode decodes, and that encoding the value
// canonically gives back the exact input.
func FuzzDecode(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode(b)
		if want := Valid(b); !reflect.DeepEqual(err, want) {
			t.Fatalf("Decode(%q) = _, %v; Valid = %v", b, err, want)
		}
		if err != nil {
			return
		}
		var z any
		if err := zeebo.DecodeBytes(b, &z); err != nil {
			t.Fatalf("Decode(%q) succeeds, but zeebo/bencode fails: %v", b, err)
		}
		if !sameValue(v, z) {
			t.Fatalf("Decode(%q) = %#v; zeebo/bencode decodes %#v", b, v, z)
		}
		if out := appendValue(nil, v); !bytes.Equal(out, b) {
			t.Fatalf("encode(Decode(%q)) = %q; want the input", b, out)
		}
		if out, err := zeebo.EncodeBytes(v); err != nil || !bytes.Equal(out, b) {
			t.Fatalf("zeebo/bencode encodes Decode(%q) as %q, %v; want the input", b, out, err)
		}
	})
}

// sameValue is reflect.DeepEqual, except that a nil list (zeebo/bencode's
// empty list) equals an empty one, and that skipped{} in a, a part that
// FuzzScanner left unread, equals anything.
func sameValue(a, b any) bool {
	switch a := a.(type) {
	case skipped:
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameValue(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			w, ok := b[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}

// appendValue is a canonical encoder of the values Decode returns.
func appendValue(dst []byte, v any) []byte {
	switch v := v.(type) {
	case int64:
		return append(strconv.AppendInt(append(dst, 'i'), v, 10), 'e')
	case string:
		return append(append(strconv.AppendInt(dst, int64(len(v)), 10), ':'), v...)
	case []any:
		dst = append(dst, 'l')
		for _, e := range v {
			dst = appendValue(dst, e)
		}
		return append(dst, 'e')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, 'd')
		for _, k := range keys {
			dst = appendValue(dst, k)
			dst = appendValue(dst, v[k])
		}
		return append(dst, 'e')
	}
	panic("appendValue: unexpected type " + reflect.TypeOf(v).String())
}

func BenchmarkValid(b *testing.B) {
	for _, r := range replies {
		in := []byte(r)
		b.Run(strconv.Itoa(len(in))+"B", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if err := Valid(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
