package bencode

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// checkFailure checks that s failed at offset with msg.
func checkFailure(t *testing.T, what string, s *Scanner, offset int, msg string) {
	t.Helper()
	var se *SyntaxError
	if err := s.Err(); !errors.As(err, &se) || se.Offset != offset || se.Msg != msg {
		t.Errorf("%s: Err() = %v; want %q at offset %d", what, err, msg, offset)
	}
}

// TestScannerScalars reads integers and byte strings, each the value at
// the top.
func TestScannerScalars(t *testing.T) {
	readInt := func(s *Scanner) (any, bool) {
		n, ok := s.Int()
		return n, ok
	}
	readBytes := func(s *Scanner) (any, bool) {
		b, ok := s.Bytes()
		return string(b), ok
	}
	for _, tt := range []struct {
		in   string
		read func(*Scanner) (any, bool)
		want any // nil where the read fails
	}{
		{"i0e", readInt, int64(0)},
		{"i42e", readInt, int64(42)},
		{"i-7e", readInt, int64(-7)},
		{"i9223372036854775807e", readInt, int64(math.MaxInt64)},
		{"i-9223372036854775808e", readInt, int64(math.MinInt64)},
		{"i1000000000000000000e", readInt, int64(1e18)},
		{"i9223372036854775808e", readInt, nil},
		{"i-9223372036854775809e", readInt, nil},
		{"i-0e", readInt, nil},
		{"i03e", readInt, nil},
		{"ie", readInt, nil},
		{"i-e", readInt, nil},
		{"i+1e", readInt, nil},
		{"i 1e", readInt, nil},
		{"i12", readInt, nil},
		{"0:", readBytes, ""},
		{"3:abc", readBytes, "abc"},
		{"10:abcdefghij", readBytes, "abcdefghij"},
		{"03:abc", readBytes, nil},
		{"4:abc", readBytes, nil},
		{":abc", readBytes, nil},
		{"3abc", readBytes, nil},
		{"99999999999999999999999:x", readBytes, nil},
	} {
		s := NewScanner([]byte(tt.in))
		v, ok := tt.read(&s)
		if ok != (tt.want != nil) || ok && v != tt.want || ok != s.End() {
			t.Errorf("reading %q = %#v, %v, then End: %v; want %#v", tt.in, v, ok, s.Err(), tt.want)
		}
	}
}

// TestScannerMisuse covers reads of the wrong kind, and reading the value
// at the top other than once.
func TestScannerMisuse(t *testing.T) {
	for _, tt := range []struct {
		name   string
		in     string
		read   func(s *Scanner)
		offset int
		msg    string
	}{
		{"int of a string", "4:spam", func(s *Scanner) { s.Int() }, 0, "not an integer"},
		{"string of an int", "i1e", func(s *Scanner) { s.Bytes() }, 0, "not a byte string"},
		{"list of a dict", "de", func(s *Scanner) { s.List() }, 0, "not a list"},
		{"dict of a list", "le", func(s *Scanner) { s.Dict() }, 0, "not a dictionary"},
		{"int of a bad byte", "x", func(s *Scanner) { s.Int() }, 0, "invalid byte 'x' at the start of a value"},
		{"string of nothing", "", func(s *Scanner) { s.Bytes() }, 0, "unexpected end of input"},
		{"int in a dict of a list", "d1:alee", func(s *Scanner) {
			d, _ := s.Dict()
			d.Next()
			s.Int()
		}, 4, "not an integer"},
		{"two reads at the top", "i1ei2e", func(s *Scanner) { s.Int(); s.Int() }, 3, "trailing data after the value"},
		{"a read past the top", "i1e", func(s *Scanner) { s.Int(); s.Skip() }, 3, "trailing data after the value"},
		{"nothing read", "i1e", func(s *Scanner) {}, 0, "value not read to its end"},
		{"dict left open", "d1:ai1ee", func(s *Scanner) {
			d, _ := s.Dict()
			d.Next()
			s.Int()
		}, 7, "value not read to its end"},
	} {
		s := NewScanner([]byte(tt.in))
		tt.read(&s)
		if s.End() {
			t.Errorf("%s: End() = true; want a failure", tt.name)
		}
		checkFailure(t, tt.name, &s, tt.offset, tt.msg)
	}
}

func TestScannerDict(t *testing.T) {
	in := "d8:completei5e10:downloadedi12e10:incompletei3e8:intervali1800e" +
		"5:peersld2:ip8:10.0.0.14:porti6881eee6:peers66:abcdefe"
	s := NewScanner([]byte(in))
	d, ok := s.Dict()
	if !ok {
		t.Fatal(s.Err())
	}
	var keys []string
	got := map[string]any{}
	for d.Next() {
		keys = append(keys, string(d.Key()))
		switch string(d.Key()) {
		case "complete", "interval":
			got[string(d.Key())], _ = s.Int()
		case "peers6":
			b, _ := s.Bytes()
			got["peers6"] = string(b)
		case "peers":
			l, _ := s.List()
			n := 0
			for l.Next() {
				n++ // each dict is skipped, and checked
			}
			got["peers"] = n
		}
	}
	if !s.End() {
		t.Fatal(s.Err())
	}
	wantKeys := []string{"complete", "downloaded", "incomplete", "interval", "peers", "peers6"}
	want := map[string]any{"complete": int64(5), "interval": int64(1800), "peers": 1, "peers6": "abcdef"}
	if !reflect.DeepEqual(keys, wantKeys) || !reflect.DeepEqual(got, want) {
		t.Errorf("keys %q, values %v; want %q, %v", keys, got, wantKeys, want)
	}
	if s.Offset() != len(in) || s.Peek() != KindNone {
		t.Errorf("after End: Offset() = %d, Peek() = %d; want %d, KindNone", s.Offset(), s.Peek(), len(in))
	}
}

// TestScannerSkipsStrictly checks that the values a caller leaves unread
// are held to the same rules as the ones it reads.
func TestScannerSkipsStrictly(t *testing.T) {
	for _, tt := range []struct {
		in     string
		offset int
		msg    string
	}{
		{"d1:ai-0e1:bi1ee", 6, "negative zero"},
		{"d1:ali1ei01ee1:bi1ee", 9, "leading zero in integer"},
		{"d1:ad1:yi1e1:xi1ee1:bi1ee", 11, `dictionary key "x" out of order`},
		{"d1:a" + strings.Repeat("l", MaxDepth) + strings.Repeat("e", MaxDepth) + "1:bi1ee", 4 + MaxDepth - 1, "nesting deeper than 100"},
		{"d1:a20:abc1:bi1ee", 4, "string runs past the end of input"},
		{"d1:bi1e1:ai1ee", 7, `dictionary key "a" out of order`},
	} {
		s := NewScanner([]byte(tt.in))
		d, _ := s.Dict()
		for d.Next() {
			if string(d.Key()) == "b" {
				s.Int()
			}
		}
		if s.End() {
			t.Errorf("%q: End() = true; want a failure", tt.in)
		}
		checkFailure(t, tt.in, &s, tt.offset, tt.msg)
		if err, want := s.Err(), Valid([]byte(tt.in)); !reflect.DeepEqual(err, want) {
			t.Errorf("%q: the scanner fails with %v, Valid with %v", tt.in, err, want)
		}
	}
}

func TestScannerDictAnyOrder(t *testing.T) {
	for _, tt := range []struct {
		in   string
		keys string
		ok   bool
	}{
		{"d1:bi1e1:ai2ee", "ba", true},
		{"d1:ai1e1:ai2ee", "aa", true},
		{"d1:bd1:ai1e1:bi2ee1:ad1:ai1eee", "ba", true},
		{"d1:bd1:bi1e1:ai2eee", "b", false}, // the dicts inside keep their order
		{"d1:bi1e1:ae", "b", false},
	} {
		s := NewScanner([]byte(tt.in))
		d, _ := s.DictAnyOrder()
		var keys []byte
		for d.Next() {
			keys = append(keys, d.Key()...)
		}
		if ok := s.End(); ok != tt.ok || string(keys) != tt.keys {
			t.Errorf("%q: keys %q, End() = %v (%v); want %q, %v", tt.in, keys, ok, s.Err(), tt.keys, tt.ok)
		}
	}
}

func TestScannerList(t *testing.T) {
	s := NewScanner([]byte("l4:spami7eli1eee"))
	l, _ := s.List()
	var got []any
	for l.Next() {
		switch s.Peek() {
		case KindString:
			b, _ := s.Bytes()
			got = append(got, string(b))
		case KindInt:
			n, _ := s.Int()
			got = append(got, n)
		} // the inner list is skipped
	}
	if want := []any{"spam", int64(7)}; !s.End() || !reflect.DeepEqual(got, want) {
		t.Errorf("read %v, End: %v; want %v, nil", got, s.Err(), want)
	}
}

// TestScannerStopsAtFailure checks that the first failure is the one
// reported, and that nothing reads on after it.
func TestScannerStopsAtFailure(t *testing.T) {
	s := NewScanner([]byte("d1:ai03e1:bi1e1:c3:abce"))
	d, _ := s.Dict()
	if !d.Next() {
		t.Fatal(s.Err())
	}
	if _, ok := s.Int(); ok {
		t.Fatal("Int(i03e) succeeded")
	}
	if d.Next() || s.Skip() || s.Peek() != KindNone || s.End() {
		t.Error("the scanner reads on after a failure")
	}
	if _, ok := s.Bytes(); ok {
		t.Error("Bytes after a failure succeeded")
	}
	checkFailure(t, "i03e", &s, 5, "leading zero in integer")
}

func TestScannerAllocs(t *testing.T) {
	good := []byte(replies[1])
	bad := []byte(replies[1][:len(replies[1])-1] + "1:zle") // an unterminated list
	walk := func(b []byte) bool {
		s := NewScanner(b)
		d, _ := s.Dict()
		for d.Next() {
			switch string(d.Key()) {
			case "complete":
				s.Int()
			case "peers6":
				s.Bytes()
			}
		}
		return s.End()
	}
	if !walk(good) || walk(bad) {
		t.Fatal("the test replies are not what they should be")
	}
	for name, b := range map[string][]byte{"valid": good, "malformed": bad} {
		if n := testing.AllocsPerRun(100, func() { walk(b) }); n != 0 {
			t.Errorf("walking the %s reply allocates %v times; want 0", name, n)
		}
	}
}

// skipped stands for a value the reader of FuzzScanner left unread.
type skipped struct{}

// opReader reads a value with a Scanner, choosing each read from a list
// of operations: the kind the value has (as Decode reads it), an integer,
// a byte string, Skip, or, inside a container, leaving the value unread;
// dictionaries may be entered with DictAnyOrder.
type opReader struct {
	s        *Scanner
	ops      []byte
	n        int
	mismatch bool // a read asked for a kind other than the value's
	anyOrder bool // a dictionary was entered with DictAnyOrder
}

func (r *opReader) op() byte {
	if len(r.ops) == 0 {
		return 0
	}
	r.n++
	return r.ops[(r.n-1)%len(r.ops)]
}

// value reads the value at the cursor and returns what it read, as
// Decode would decode it, with skipped{} for the parts left unread.
func (r *opReader) value() any {
	op := r.op()
	have := r.s.Peek()
	want := have
	switch op % 4 {
	case 1:
		want = KindInt
	case 2:
		want = KindString
	case 3:
		r.s.Skip()
		return skipped{}
	}
	if have != KindNone && want != have {
		r.mismatch = true
	}
	switch want {
	case KindInt:
		n, _ := r.s.Int()
		return n
	case KindString:
		b, _ := r.s.Bytes()
		return string(b)
	case KindList:
		l, _ := r.s.List()
		v := []any{}
		for l.Next() {
			if r.op()&8 != 0 {
				v = append(v, skipped{})
			} else {
				v = append(v, r.value())
			}
		}
		return v
	case KindDict:
		var d Dict
		if op&16 != 0 {
			d, _ = r.s.DictAnyOrder()
			r.anyOrder = true
		} else {
			d, _ = r.s.Dict()
		}
		v := map[string]any{}
		for d.Next() {
			if r.op()&8 != 0 {
				v[string(d.Key())] = skipped{}
			} else {
				v[string(d.Key())] = r.value()
			}
		}
		return v
	}
	r.s.Skip() // no value starts here: the failure is recorded
	return nil
}

// FuzzScanner reads inputs with a Scanner, in the ways a list of
// operations chooses, and checks the result against Valid and Decode:
// reads of the right kinds accept exactly what Valid accepts, fail with
// the same error, and read the values Decode decodes; a read of the wrong
// kind fails; a dictionary read in any order fails only where Valid finds
// nothing but keys out of order.
func FuzzScanner(f *testing.F) {
	for _, s := range seeds {
		for _, ops := range []string{"", "\x03", "\x08", "\x10", "\x01\x02", "\x10\x08\x00", "\x00\x01\x00\x02"} {
			f.Add([]byte(s), []byte(ops))
		}
	}
	f.Fuzz(func(t *testing.T, b, ops []byte) {
		s := NewScanner(b)
		r := opReader{s: &s, ops: ops}
		got := r.value()
		ok := s.End()
		err, verr := s.Err(), Valid(b)
		var se *SyntaxError
		switch {
		case ok != (err == nil):
			t.Fatalf("%q: End() = %v, Err() = %v", b, ok, err)
		case ok && s.Offset() != len(b):
			t.Fatalf("%q: End() at offset %d", b, s.Offset())
		case r.mismatch:
			if ok || !errors.As(err, &se) || !strings.HasPrefix(se.Msg, "not a") {
				t.Fatalf("%q read with %x, a kind mismatch: End() = %v, Err() = %v", b, ops, ok, err)
			}
		case r.anyOrder:
			if ok && verr != nil && (!errors.As(verr, &se) || !strings.Contains(se.Msg, "out of order") && !strings.HasPrefix(se.Msg, "duplicate")) {
				t.Fatalf("%q: read in any order, but Valid fails with %v", b, verr)
			}
			if !ok && verr == nil {
				t.Fatalf("%q: read in any order fails with %v, but Valid accepts it", b, err)
			}
		case !reflect.DeepEqual(err, verr):
			t.Fatalf("%q read with %x: Err() = %v; Valid = %v", b, ops, err, verr)
		case ok:
			if v, _ := Decode(b); !sameValue(got, v) {
				t.Fatalf("%q read with %x: %#v; Decode = %#v", b, ops, got, v)
			}
		}
	})
}
