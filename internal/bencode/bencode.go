// Package bencode is a strict decoder of bencoded data (BEP 3), for
// checking what a tracker writes rather than for reading what clients
// send: the tests of the encoders run every reply through [Valid], and the
// load generator checks every reply it gets with a [Scanner].
//
// It accepts only the canonical encoding of exactly one value and rejects
// everything a lenient decoder lets through: leading zeros in integers and
// string lengths, negative zero, empty integers, signs other than a leading
// '-', spaces, integers beyond int64, dictionary keys that are not byte
// strings or are not in strictly ascending raw-byte order (so duplicates
// too), truncated input, unknown type bytes, trailing data, and nesting
// deeper than [MaxDepth].
//
// [Valid] and [Decode] read a whole value; a [Scanner] reads one in place,
// value by value, for a caller that wants a few fields of a reply without
// allocating. All three apply the same rules, and their failures are
// [*SyntaxError] values, which callers inspect with errors.As.
package bencode

import "strconv"

// MaxDepth is the deepest nesting of lists and dictionaries accepted, as in
// libtorrent: a value may sit inside at most MaxDepth containers.
const MaxDepth = 100

// SyntaxError reports why the input is not one canonical bencoded value.
type SyntaxError struct {
	// Offset is the index of the byte at fault; for truncated input it is
	// the length of the input.
	Offset int
	// Msg says what is wrong, in lowercase.
	Msg string
}

// Error returns the message and the offset.
func (e *SyntaxError) Error() string {
	return "bencode: " + e.Msg + " at offset " + strconv.Itoa(e.Offset)
}

// Valid reports whether b is exactly one canonical bencoded value: it
// returns nil if so, and a [*SyntaxError] otherwise. It allocates nothing
// when b is valid.
func Valid(b []byte) error {
	s := NewScanner(b)
	s.Skip()
	s.End()
	return s.Err()
}

// Decode decodes b, which must be exactly one canonical bencoded value (as
// [Valid] checks), into int64, string (the raw bytes), []any and
// map[string]any values. Errors are [*SyntaxError] values.
func Decode(b []byte) (any, error) {
	s := NewScanner(b)
	v := decode(&s)
	if !s.End() {
		return nil, s.Err()
	}
	return v, nil
}

// decode reads the value at the cursor into Go values. What it returns
// after a failure is meaningless.
func decode(s *Scanner) any {
	switch s.Peek() {
	case KindInt:
		n, _ := s.Int()
		return n
	case KindString:
		b, _ := s.Bytes()
		return string(b)
	case KindList:
		l, _ := s.List()
		v := []any{}
		for l.Next() {
			v = append(v, decode(s))
		}
		return v
	case KindDict:
		d, _ := s.Dict()
		v := map[string]any{}
		for d.Next() {
			v[string(d.Key())] = decode(s)
		}
		return v
	}
	s.Skip() // records why no value starts here
	return nil
}
