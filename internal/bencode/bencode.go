// Package bencode is a strict decoder of bencoded data (BEP 3), for
// checking what the tracker writes rather than for reading what clients
// send: the tests of the encoders and the load generator run every reply
// through [Valid].
//
// It accepts only the canonical encoding of exactly one value and rejects
// everything a lenient decoder lets through: leading zeros in integers and
// string lengths, negative zero, empty integers, signs other than a leading
// '-', spaces, integers beyond int64, dictionary keys that are not byte
// strings or are not in strictly ascending raw-byte order (so duplicates
// too), truncated input, unknown type bytes, trailing data, and nesting
// deeper than [MaxDepth].
//
// Failures are [*SyntaxError] values, which callers inspect with
// errors.As.
package bencode

import (
	"bytes"
	"math"
	"strconv"
)

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
	p := parser{b: b}
	if _, err := p.value(0); err != nil {
		return err
	}
	return p.end()
}

// Decode decodes b, which must be exactly one canonical bencoded value (as
// [Valid] checks), into int64, string (the raw bytes), []any and
// map[string]any values. Errors are [*SyntaxError] values.
func Decode(b []byte) (any, error) {
	p := parser{b: b, build: true}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	return v, nil
}

// parser reads one value at b[pos:]. It builds Go values only when build is
// set, so that Valid allocates nothing.
type parser struct {
	b     []byte
	pos   int
	build bool
}

func fail(off int, msg string) error { return &SyntaxError{Offset: off, Msg: msg} }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// end checks that the value just read ended the input.
func (p *parser) end() error {
	if p.pos != len(p.b) {
		return fail(p.pos, "trailing data after the value")
	}
	return nil
}

// value reads the value at p.pos, which sits inside depth containers.
func (p *parser) value(depth int) (any, error) {
	if p.pos >= len(p.b) {
		return nil, fail(p.pos, "unexpected end of input")
	}
	switch c := p.b[p.pos]; {
	case c == 'i':
		n, err := p.integer()
		if err != nil || !p.build {
			return nil, err
		}
		return n, nil
	case isDigit(c):
		s, err := p.str()
		if err != nil || !p.build {
			return nil, err
		}
		return string(s), nil
	case c == 'l':
		return p.list(depth)
	case c == 'd':
		return p.dict(depth)
	default:
		return nil, fail(p.pos, "invalid byte "+strconv.QuoteRune(rune(c))+" at the start of a value")
	}
}

// integer reads i<decimal>e.
func (p *parser) integer() (int64, error) {
	b := p.b
	i := p.pos + 1 // past 'i'
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	switch {
	case i >= len(b):
		return 0, fail(len(b), "unterminated integer")
	case b[i] == 'e':
		return 0, fail(i, "integer has no digits")
	case !isDigit(b[i]):
		return 0, fail(i, "invalid byte "+strconv.QuoteRune(rune(b[i]))+" in integer")
	case b[i] == '0':
		switch {
		case neg:
			return 0, fail(i, "negative zero")
		case i+1 >= len(b):
			return 0, fail(len(b), "unterminated integer")
		case isDigit(b[i+1]):
			return 0, fail(i, "leading zero in integer")
		case b[i+1] != 'e':
			return 0, fail(i+1, "invalid byte "+strconv.QuoteRune(rune(b[i+1]))+" in integer")
		}
		p.pos = i + 2
		return 0, nil
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++ // -9223372036854775808 fits
	}
	var u uint64
	for ; i < len(b) && isDigit(b[i]); i++ {
		d := uint64(b[i] - '0')
		if u > (limit-d)/10 {
			return 0, fail(i, "integer overflows int64")
		}
		u = u*10 + d
	}
	switch {
	case i >= len(b):
		return 0, fail(len(b), "unterminated integer")
	case b[i] != 'e':
		return 0, fail(i, "invalid byte "+strconv.QuoteRune(rune(b[i]))+" in integer")
	}
	p.pos = i + 1
	if neg {
		return int64(-u), nil
	}
	return int64(u), nil
}

// str reads <length>:<bytes> and returns the bytes, a part of p.b.
func (p *parser) str() ([]byte, error) {
	b := p.b
	i := p.pos
	if b[i] == '0' && i+1 < len(b) && isDigit(b[i+1]) {
		return nil, fail(i, "leading zero in string length")
	}
	n := 0
	for ; i < len(b) && isDigit(b[i]); i++ {
		n = n*10 + int(b[i]-'0')
		if n > len(b) {
			return nil, fail(p.pos, "string runs past the end of input")
		}
	}
	switch {
	case i >= len(b):
		return nil, fail(len(b), "unterminated string length")
	case b[i] != ':':
		return nil, fail(i, "invalid byte "+strconv.QuoteRune(rune(b[i]))+" in string length")
	}
	i++
	if n > len(b)-i {
		return nil, fail(p.pos, "string runs past the end of input")
	}
	p.pos = i + n
	return b[i:p.pos], nil
}

// list reads l<values>e.
func (p *parser) list(depth int) (any, error) {
	if depth >= MaxDepth {
		return nil, fail(p.pos, "nesting deeper than "+strconv.Itoa(MaxDepth))
	}
	p.pos++ // past 'l'
	var l []any
	if p.build {
		l = []any{}
	}
	for {
		if p.pos >= len(p.b) {
			return nil, fail(p.pos, "unterminated list")
		}
		if p.b[p.pos] == 'e' {
			p.pos++
			if !p.build {
				return nil, nil
			}
			return l, nil
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.build {
			l = append(l, v)
		}
	}
}

// dict reads d<key value pairs>e, keys in strictly ascending order.
func (p *parser) dict(depth int) (any, error) {
	if depth >= MaxDepth {
		return nil, fail(p.pos, "nesting deeper than "+strconv.Itoa(MaxDepth))
	}
	p.pos++ // past 'd'
	var m map[string]any
	if p.build {
		m = map[string]any{}
	}
	var prev []byte
	first := true
	for {
		if p.pos >= len(p.b) {
			return nil, fail(p.pos, "unterminated dictionary")
		}
		c := p.b[p.pos]
		if c == 'e' {
			p.pos++
			if !p.build {
				return nil, nil
			}
			return m, nil
		}
		if !isDigit(c) {
			return nil, fail(p.pos, "dictionary key is not a byte string")
		}
		at := p.pos
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		if !first {
			switch bytes.Compare(prev, k) {
			case 0:
				return nil, fail(at, "duplicate dictionary key "+strconv.Quote(string(k)))
			case 1:
				return nil, fail(at, "dictionary key "+strconv.Quote(string(k))+" out of order")
			}
		}
		prev, first = k, false
		if p.pos >= len(p.b) {
			return nil, fail(p.pos, "dictionary key without a value")
		}
		if p.b[p.pos] == 'e' {
			return nil, fail(p.pos, "dictionary key without a value")
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.build {
			m[string(k)] = v
		}
	}
}
