// Package httpwire reads the request side of the HTTP tracker protocol
// (BEP 3, 23, 48): the layouts of announce and scrape paths, with the
// passkey private trackers put in them, and the query of announces and
// scrapes. The UDP front-end reads BEP 41 URL data, which carries the path
// and query of a udp:// announce URL, with the same functions.
//
// One rule decodes every value: %XX, with hex digits in either case, is
// the byte XX, and every other byte, '+' included, stands for itself (a
// '+' is never a space, and a '%' not followed by two hex digits is a
// '%'). Parameters are separated by '&' and split at their first '=';
// when a parameter other than info_hash in a scrape is repeated, its last
// value counts. Parameter names are matched after decoding.
//
// Parsers read the strings they are given in place and allocate nothing;
// values they return may be substrings of their input.
package httpwire

import (
	"strings"
	"unsafe"
)

// Route is what a request path asks for.
type Route uint8

// The routes.
const (
	NotFound Route = iota
	Announce
	Scrape
)

// ParsePath returns the route of an escaped request path, and the passkey
// the path holds, still escaped, or "" when it holds none. It serves:
//
//	/announce  /announce.php  /announce/<passkey>  /<passkey>/announce
//	/scrape    /scrape.php    /scrape/<passkey>    /<passkey>/scrape
//
// A passkey is one non-empty path segment. Where two layouts could read a
// path (/announce/scrape), /<verb>/<passkey> wins, and announce wins over
// scrape.
func ParsePath(path string) (_ Route, passkey string) {
	switch path {
	case "/announce", "/announce.php":
		return Announce, ""
	case "/scrape", "/scrape.php":
		return Scrape, ""
	}
	if len(path) < 2 || path[0] != '/' {
		return NotFound, ""
	}
	for _, r := range [...]struct {
		route Route
		verb  string
	}{{Announce, "announce"}, {Scrape, "scrape"}} {
		// /<verb>/<passkey>
		if n := len(r.verb) + 2; len(path) > n && strings.HasPrefix(path[1:], r.verb) && path[n-1] == '/' {
			if pk := path[n:]; strings.IndexByte(pk, '/') < 0 {
				return r.route, pk
			}
		}
		// /<passkey>/<verb>
		if n := len(path) - len(r.verb) - 1; n > 1 && path[n] == '/' && strings.HasSuffix(path, r.verb) {
			if pk := path[1:n]; strings.IndexByte(pk, '/') < 0 {
				return r.route, pk
			}
		}
	}
	return NotFound, ""
}

// AppendPasskey appends to dst the decoded passkey of pathAndQuery, a path
// optionally followed by '?' and a query, and reports whether it found a
// non-empty one: the passkey of the path's layout (see [ParsePath]) or
// else the query's passkey parameter (see [QueryPasskey]). It allocates
// nothing when dst has room for the passkey.
func AppendPasskey(dst, pathAndQuery []byte) ([]byte, bool) {
	if len(pathAndQuery) == 0 {
		return dst, false
	}
	// Read in place: nothing of s outlives the call but what is copied to
	// dst.
	s := unsafe.String(&pathAndQuery[0], len(pathAndQuery))
	path, query, _ := strings.Cut(s, "?")
	_, pk := ParsePath(path)
	if pk == "" {
		pk = QueryPasskey(query)
	}
	if pk == "" {
		return dst, false
	}
	return AppendUnescaped(dst, pk), true
}

// QueryPasskey returns the value of a query's passkey parameter, still
// escaped, or "" if it has none.
func QueryPasskey(query string) string {
	var pk string
	for query != "" {
		var k, v string
		k, v, query = NextParam(query)
		if keyOf(k) == keyPasskey {
			pk = v
		}
	}
	return pk
}

// NextParam splits the first parameter off an &-separated query: its key
// and value, both still escaped, and the rest of the query.
func NextParam(q string) (key, value, rest string) {
	param := q
	if i := strings.IndexByte(q, '&'); i >= 0 {
		param, rest = q[:i], q[i+1:]
	}
	key, value, _ = strings.Cut(param, "=")
	return key, value, rest
}

// UnescapeInto decodes s into dst and returns the decoded part of dst, or
// false if it does not fit.
func UnescapeInto(dst []byte, s string) ([]byte, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if n == len(dst) {
			return dst[:n], false
		}
		c := s[i]
		if c == '%' && i+2 < len(s) {
			if hi, lo := hexValue[s[i+1]], hexValue[s[i+2]]; hi|lo < 16 {
				c = hi<<4 | lo
				i += 2
			}
		}
		dst[n] = c
		n++
	}
	return dst[:n], true
}

// AppendUnescaped appends the decoded s to dst.
func AppendUnescaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) {
			if hi, lo := hexValue[s[i+1]], hexValue[s[i+2]]; hi|lo < 16 {
				c = hi<<4 | lo
				i += 2
			}
		}
		dst = append(dst, c)
	}
	return dst
}

// Unescape returns the decoded s: s itself, without allocating, when it
// holds no escape.
func Unescape(s string) string {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && hexValue[s[i+1]]|hexValue[s[i+2]] < 16 {
			return string(AppendUnescaped(make([]byte, 0, len(s)), s))
		}
	}
	return s
}

// hexValue maps a hex digit, in either case, to its value, and any other
// byte to 0xFF.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	for i := range 10 {
		t['0'+i] = byte(i)
	}
	for i := range 6 {
		t['a'+i], t['A'+i] = byte(10+i), byte(10+i)
	}
	return t
}()
