package bencode

import (
	"bytes"
	"math"
	"strconv"
	"strings"
)

// A Scanner reads one bencoded value in place, as strictly as [Valid] and
// without allocating: the caller walks the value, reading each part with
// the method of the type it expects, and ends with [Scanner.End].
//
//	s := bencode.NewScanner(reply)
//	d, _ := s.Dict()
//	for d.Next() {
//		switch string(d.Key()) {
//		case "interval":
//			interval, _ = s.Int()
//		case "peers":
//			peers, _ = s.Bytes()
//		} // a value left unread is skipped, and checked all the same
//	}
//	if !s.End() {
//		return s.Err()
//	}
//
// The first failure stops the scan: from then on every method reports
// false, and [Scanner.Err] describes it. A value of another type than the
// one asked for is a failure too. Byte strings and keys are parts of the
// input, valid as long as it is.
type Scanner struct {
	b     []byte
	pos   int
	depth int // containers open at pos
	fail  failure
}

// NewScanner returns a Scanner at the start of b.
func NewScanner(b []byte) Scanner { return Scanner{b: b} }

// Kind is the type of a value, as its first byte tells it.
type Kind uint8

// The kinds of values.
const (
	// KindNone is what [Scanner.Peek] returns where no value can start:
	// at the end of the input or of a container, at a byte that starts
	// no value, after the value at the top, and after a failure.
	KindNone Kind = iota
	KindInt
	KindString
	KindList
	KindDict
)

// Offset returns the index in the input of the next byte to read.
func (s *Scanner) Offset() int { return s.pos }

// Peek returns the kind of the value at the cursor, without reading it.
func (s *Scanner) Peek() Kind {
	if !s.ready() {
		return KindNone
	}
	switch c := s.b[s.pos]; {
	case c == 'i':
		return KindInt
	case isDigit(c):
		return KindString
	case c == 'l':
		return KindList
	case c == 'd':
		return KindDict
	}
	return KindNone
}

// begin reports whether a value of kind k, which starts with the byte c
// ('0' for a byte string), can be read at the cursor, and records the
// failure if not. With KindNone it records why no value starts there.
func (s *Scanner) begin(k Kind, c byte) bool {
	switch {
	case s.fail.kind != errNone:
		return false
	case s.depth == 0 && s.pos > 0:
		s.failAt(s.pos, errTrailing, nil)
		return false
	case s.pos >= len(s.b):
		s.failAt(s.pos, errEOF, nil)
		return false
	}
	got := s.b[s.pos]
	switch {
	case k == KindNone:
	case got == c || (c == '0' && isDigit(got)):
		return true
	case got == 'i' || got == 'l' || got == 'd' || isDigit(got):
		return s.failAt(s.pos, errNotInt+errKind(k-KindInt), nil)
	}
	return s.failAt(s.pos, errStart, s.b[s.pos:s.pos+1])
}

// ready reports whether a value may start at the cursor: the input goes
// on (it does not after a failure), and the value at the top has not been
// read.
func (s *Scanner) ready() bool {
	return s.pos < len(s.b) && (s.depth > 0 || s.pos == 0)
}

// Int reads an integer: i<decimal>e, canonical and within int64.
func (s *Scanner) Int() (int64, bool) {
	if !s.ready() || s.b[s.pos] != 'i' {
		return 0, s.begin(KindInt, 'i')
	}
	b := s.b
	i := s.pos + 1 // past 'i'
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	switch {
	case i >= len(b):
		return 0, s.failAt(len(b), errIntEOF, nil)
	case b[i] == 'e':
		return 0, s.failAt(i, errIntEmpty, nil)
	case !isDigit(b[i]):
		return 0, s.failAt(i, errIntByte, b[i:i+1])
	case b[i] == '0':
		switch {
		case neg:
			return 0, s.failAt(i, errIntNegZero, nil)
		case i+1 >= len(b):
			return 0, s.failAt(len(b), errIntEOF, nil)
		case isDigit(b[i+1]):
			return 0, s.failAt(i, errIntZero, nil)
		case b[i+1] != 'e':
			return 0, s.failAt(i+1, errIntByte, b[i+1:i+2])
		}
		s.pos = i + 2
		return 0, true
	}
	start := i
	var u uint64
	for ; i < len(b) && isDigit(b[i]); i++ {
		u = u*10 + uint64(b[i]-'0')
	}
	if i-start > 18 { // past 18 digits, int64 may overflow
		if at := overflow(b[start:i], neg); at >= 0 {
			return 0, s.failAt(start+at, errIntRange, nil)
		}
	}
	switch {
	case i >= len(b):
		return 0, s.failAt(len(b), errIntEOF, nil)
	case b[i] != 'e':
		return 0, s.failAt(i, errIntByte, b[i:i+1])
	}
	s.pos = i + 1
	if neg {
		return int64(-u), true
	}
	return int64(u), true
}

// overflow returns the index of the digit at which the magnitude in
// digits overflows int64 (neg: the magnitude of a negative int64), or -1.
func overflow(digits []byte, neg bool) int {
	limit := uint64(math.MaxInt64)
	if neg {
		limit++ // -9223372036854775808 fits
	}
	var u uint64
	for i, c := range digits {
		d := uint64(c - '0')
		if u > (limit-d)/10 {
			return i
		}
		u = u*10 + d
	}
	return -1
}

// Bytes reads a byte string: <length>:<bytes>, the length canonical. The
// bytes are a part of the input.
func (s *Scanner) Bytes() ([]byte, bool) {
	if !s.ready() || !isDigit(s.b[s.pos]) {
		return nil, s.begin(KindString, '0')
	}
	b := s.b
	i := s.pos
	if b[i] == '0' && i+1 < len(b) && isDigit(b[i+1]) {
		return nil, s.failAt(i, errLenZero, nil)
	}
	n := 0
	for ; i < len(b) && isDigit(b[i]); i++ {
		n = n*10 + int(b[i]-'0')
		if n > len(b) {
			return nil, s.failAt(s.pos, errStrEOF, nil)
		}
	}
	switch {
	case i >= len(b):
		return nil, s.failAt(len(b), errLenEOF, nil)
	case b[i] != ':':
		return nil, s.failAt(i, errLenByte, b[i:i+1])
	}
	i++
	if n > len(b)-i {
		return nil, s.failAt(s.pos, errStrEOF, nil)
	}
	s.pos = i + n
	return b[i:s.pos], true
}

// Skip reads the value at the cursor, whatever its kind, checking all of it.
func (s *Scanner) Skip() bool {
	if !s.ready() {
		return s.begin(KindNone, 0)
	}
	switch c := s.b[s.pos]; {
	case c == 'i':
		_, ok := s.Int()
		return ok
	case isDigit(c):
		_, ok := s.Bytes()
		return ok
	case c == 'l':
		l, _ := s.List()
		for l.Next() {
		}
	case c == 'd':
		d, _ := s.Dict()
		for d.Next() {
		}
	default:
		return s.begin(KindNone, 0)
	}
	return s.fail.kind == errNone
}

// open enters the list or dictionary at the cursor, which starts with c.
func (s *Scanner) open(k Kind, c byte) bool {
	if !s.ready() || s.b[s.pos] != c || s.depth >= MaxDepth {
		return s.begin(k, c) && s.failAt(s.pos, errDepth, nil)
	}
	s.depth++
	s.pos++
	return true
}

// List enters a list; its elements are read by the caller between calls
// of [List.Next].
func (s *Scanner) List() (List, bool) {
	ok := s.open(KindList, 'l')
	return List{walk{s: s, at: -1, done: !ok}}, ok
}

// Dict enters a dictionary, whose keys must come in strictly ascending
// order; its values are read by the caller between calls of [Dict.Next].
func (s *Scanner) Dict() (Dict, bool) {
	ok := s.open(KindDict, 'd')
	return Dict{w: walk{s: s, at: -1, done: !ok}}, ok
}

// DictAnyOrder enters a dictionary whose keys may come in any order, and
// repeat: the caller checks them. Everything else is as strict as in
// [Scanner.Dict], and the dictionaries inside keep their order.
func (s *Scanner) DictAnyOrder() (Dict, bool) {
	d, ok := s.Dict()
	d.anyOrder = true
	return d, ok
}

// End reports whether everything read was valid, the value at the top has
// been read to its end and nothing follows it in the input.
func (s *Scanner) End() bool {
	switch {
	case s.fail.kind != errNone:
		return false
	case len(s.b) == 0:
		return s.failAt(0, errEOF, nil)
	case s.pos == 0 || s.depth > 0:
		return s.failAt(s.pos, errOpen, nil)
	case s.pos != len(s.b):
		return s.failAt(s.pos, errTrailing, nil)
	}
	return true
}

// Err returns nil if nothing has failed yet, and a [*SyntaxError] for the
// first failure otherwise.
func (s *Scanner) Err() error {
	if s.fail.kind == errNone {
		return nil
	}
	return &SyntaxError{Offset: s.fail.off, Msg: s.fail.msg()}
}

// List walks the elements of a list that a [Scanner] has entered:
//
//	l, _ := s.List()
//	for l.Next() {
//		// read the element with s
//	}
type List struct{ w walk }

// Next moves to the next element, skipping the current one if the caller
// has not read it. It returns false past the end of the list, where the
// scanner has left it, or on a failure.
func (l *List) Next() bool { return l.w.next(errListEOF) }

// Dict walks the keys of a dictionary that a [Scanner] has entered:
//
//	d, _ := s.Dict()
//	for d.Next() {
//		// read the value of d.Key() with s, or leave it to be skipped
//	}
type Dict struct {
	w        walk
	key      []byte
	keyed    bool // a key has been read
	anyOrder bool
}

// Next reads the next key, skipping the value of the current one if the
// caller has not read it, and checks that a value follows. It returns
// false past the end of the dictionary, where the scanner has left it, or
// on a failure.
func (d *Dict) Next() bool {
	if !d.w.next(errDictEOF) {
		return false
	}
	s := d.w.s
	if !isDigit(s.b[s.pos]) {
		return s.failAt(s.pos, errKey, nil)
	}
	at := s.pos
	k, ok := s.Bytes()
	if !ok {
		return false
	}
	if d.keyed && !d.anyOrder {
		switch bytes.Compare(d.key, k) {
		case 0:
			return s.failAt(at, errKeyDup, k)
		case 1:
			return s.failAt(at, errKeyOrder, k)
		}
	}
	d.key, d.keyed = k, true
	if s.pos >= len(s.b) || s.b[s.pos] == 'e' {
		return s.failAt(s.pos, errNoValue, nil)
	}
	d.w.at = s.pos
	return true
}

// walk is where a List or a Dict stands in its container.
type walk struct {
	s    *Scanner
	at   int // offset of the current value; -1 before the first
	done bool
}

// next skips the current value if the caller has not read it, then
// reports whether another one follows, and moves to it: at the
// container's end it leaves the container, and where the input ends
// instead (a failure empties it) it records the failure unterminated.
func (w *walk) next(unterminated errKind) bool {
	s := w.s
	switch {
	case w.done:
		return false
	case w.at == s.pos && !s.Skip():
	case s.pos >= len(s.b):
		s.failAt(s.pos, unterminated, nil)
	case s.b[s.pos] == 'e':
		s.pos++
		s.depth--
	default:
		w.at = s.pos
		return true
	}
	w.done = true
	return false
}

// Key returns the key that [Dict.Next] has read, a part of the input.
func (d *Dict) Key() []byte { return d.key }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// failure is the first thing found wrong, kept without allocating; Err
// turns it into a *SyntaxError.
type failure struct {
	kind errKind
	off  int
	arg  []byte // the byte or the key at fault, a part of the input
}

type errKind uint8

const (
	errNone errKind = iota
	errEOF
	errStart
	errTrailing
	errNotInt // then errNotString, errNotList, errNotDict, in the order of the kinds
	errNotString
	errNotList
	errNotDict
	errIntEOF
	errIntEmpty
	errIntByte
	errIntNegZero
	errIntZero
	errIntRange
	errLenZero
	errLenEOF
	errLenByte
	errStrEOF
	errDepth
	errOpen
	errListEOF
	errDictEOF
	errKey
	errKeyDup
	errKeyOrder
	errNoValue
)

// failAt records the failure, unless one is already recorded, and returns
// false. It empties the input, so that the scan stops wherever it stands:
// no value starts past the end. It is kept out of line, off the paths of
// valid input.
//
//go:noinline
func (s *Scanner) failAt(off int, k errKind, arg []byte) bool {
	if s.fail.kind == errNone {
		s.fail = failure{kind: k, off: off, arg: arg}
		s.b = s.b[:0]
	}
	return false
}

// messages say what each failure is; where one has an argument, the byte
// or the key at fault, quoted, stands in place of the "%".
var messages = [...]string{
	errEOF:        "unexpected end of input",
	errStart:      "invalid byte % at the start of a value",
	errTrailing:   "trailing data after the value",
	errNotInt:     "not an integer",
	errNotString:  "not a byte string",
	errNotList:    "not a list",
	errNotDict:    "not a dictionary",
	errIntEOF:     "unterminated integer",
	errIntEmpty:   "integer has no digits",
	errIntByte:    "invalid byte % in integer",
	errIntNegZero: "negative zero",
	errIntZero:    "leading zero in integer",
	errIntRange:   "integer overflows int64",
	errLenZero:    "leading zero in string length",
	errLenEOF:     "unterminated string length",
	errLenByte:    "invalid byte % in string length",
	errStrEOF:     "string runs past the end of input",
	errDepth:      "nesting deeper than " + strconv.Itoa(MaxDepth),
	errOpen:       "value not read to its end",
	errListEOF:    "unterminated list",
	errDictEOF:    "unterminated dictionary",
	errKey:        "dictionary key is not a byte string",
	errKeyDup:     "duplicate dictionary key %",
	errKeyOrder:   "dictionary key % out of order",
	errNoValue:    "dictionary key without a value",
}

func (f *failure) msg() string {
	switch f.kind {
	case errStart, errIntByte, errLenByte:
		return strings.Replace(messages[f.kind], "%", strconv.QuoteRune(rune(f.arg[0])), 1)
	case errKeyDup, errKeyOrder:
		return strings.Replace(messages[f.kind], "%", strconv.Quote(string(f.arg)), 1)
	}
	return messages[f.kind]
}
