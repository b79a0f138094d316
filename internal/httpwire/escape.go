package httpwire

// Escaper percent-encodes bytes the way one family of clients does: the
// bytes it keeps stand for themselves, every other byte becomes %XX. The
// decoders of this package read what any of them writes. Clients use it;
// the tracker itself never escapes.
type Escaper struct {
	keep [256]bool
	hex  string
}

// The ways real clients escape info hashes and peer ids.
var (
	// EscapeLibtorrent keeps A-Z a-z 0-9 and -_!.~*(), with lowercase hex
	// digits for the rest: libtorrent and the clients built on it
	// (qBittorrent, Deluge).
	EscapeLibtorrent = NewEscaper("-_!.~*()", false)
	// EscapeRFC3986 keeps the unreserved characters of RFC 3986 (A-Z a-z
	// 0-9 and -_.~), with uppercase hex digits: Transmission and aria2.
	EscapeRFC3986 = NewEscaper("-_.~", true)
)

// NewEscaper returns an escaper that keeps letters, digits and the bytes of
// raw, and writes hex digits in upper or lower case.
func NewEscaper(raw string, upper bool) *Escaper {
	e := &Escaper{hex: "0123456789abcdef"}
	if upper {
		e.hex = "0123456789ABCDEF"
	}
	for c := range 256 {
		e.keep[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	for i := range len(raw) {
		e.keep[raw[i]] = true
	}
	return e
}

// Append appends the escaped b to dst.
func (e *Escaper) Append(dst, b []byte) []byte {
	for _, c := range b {
		if e.keep[c] {
			dst = append(dst, c)
		} else {
			dst = append(dst, '%', e.hex[c>>4], e.hex[c&15])
		}
	}
	return dst
}

// String returns the escaped b.
func (e *Escaper) String(b []byte) string {
	return string(e.Append(make([]byte, 0, 3*len(b)), b))
}
