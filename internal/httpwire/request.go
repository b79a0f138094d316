package httpwire

// The head of an HTTP/1.1 request, read in place for a server that answers
// the common request itself and leaves every other one to a general HTTP
// server.

import (
	"strings"
	"unsafe"
)

// Request is the head of a request as [ParseRequest] reads it. Its strings
// alias the bytes parsed: they are valid as long as those bytes are not
// changed.
type Request struct {
	// Head is true for a HEAD request, false for a GET.
	Head bool
	// Close is true when a Connection header holds the token close.
	Close bool
	// Path and Query are the request target's path and query, as sent:
	// still escaped. Query is "" when the target has none.
	Path, Query string
	// UserAgent is the value of the first User-Agent line, "" if none.
	UserAgent string
	// AcceptEncoding holds the value of each Accept-Encoding line, and
	// ClientIP that of each line of the header ParseRequest was asked to
	// collect, in order.
	AcceptEncoding, ClientIP []string
}

// MaxHeaderLines is the most lines of Accept-Encoding, and of the
// collected header, that ParseRequest accepts.
const MaxHeaderLines = 8

// ParseRequest reads into r the head of a request that b holds whole, and
// reports whether it is one that a reader of this head alone can answer as
// a general HTTP/1.1 server would: a GET or HEAD, HTTP/1.1, with an
// origin-form target whose path holds only bytes that need no escaping
// and valid escapes (so that it is the path such a server sees, escaped),
// a query of printable ASCII without ';', one Host line, no body
// (neither Content-Length nor Transfer-Encoding) and no Expect; lines end
// in CRLF, header names are tokens and values hold no control byte but
// tab; b ends with the empty line that ends the head. ipHeader names a
// header whose lines r.ClientIP collects (matched without regard to case;
// "" for none).
//
// When it reports false, r holds nothing of use: the caller passes the
// bytes on to a general server, which answers whatever they hold, an
// error included. ParseRequest allocates nothing once r's slices have
// grown to MaxHeaderLines.
func ParseRequest(b []byte, ipHeader string, r *Request) bool {
	*r = Request{AcceptEncoding: r.AcceptEncoding[:0], ClientIP: r.ClientIP[:0]}
	if len(b) < len("GET / HTTP/1.1\r\nHost:\r\n\r\n") || !strings.HasSuffix(unsafe.String(&b[0], len(b)), "\r\n\r\n") {
		return false
	}
	s := unsafe.String(&b[0], len(b))
	line, s, ok := nextLine(s)
	if !ok || !r.requestLine(line) {
		return false
	}
	hosts := 0
	for {
		line, s, ok = nextLine(s)
		switch {
		case !ok:
			return false
		case line == "":
			// The empty line ends the head, and b with it: nothing was
			// sent after it.
			return s == "" && hosts == 1
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return false
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !validValue(value) {
			return false
		}
		switch {
		case equalFold(name, "Host"):
			hosts++
			if !validHost(value) {
				return false
			}
		case equalFold(name, "Connection"):
			r.Close = r.Close || hasToken(value, "close")
		case equalFold(name, "User-Agent"):
			if r.UserAgent == "" {
				r.UserAgent = value
			}
		case equalFold(name, "Accept-Encoding"):
			if len(r.AcceptEncoding) == MaxHeaderLines {
				return false
			}
			r.AcceptEncoding = append(r.AcceptEncoding, value)
		case equalFold(name, "Content-Length"), equalFold(name, "Transfer-Encoding"), equalFold(name, "Expect"):
			return false
		}
		if ipHeader != "" && equalFold(name, ipHeader) {
			if len(r.ClientIP) == MaxHeaderLines {
				return false
			}
			r.ClientIP = append(r.ClientIP, value)
		}
	}
}

// requestLine reads "GET /target HTTP/1.1" or "HEAD /target HTTP/1.1".
func (r *Request) requestLine(line string) bool {
	switch {
	case strings.HasPrefix(line, "GET /"):
		line = line[len("GET "):]
	case strings.HasPrefix(line, "HEAD /"):
		line, r.Head = line[len("HEAD "):], true
	default:
		return false
	}
	target, ok := strings.CutSuffix(line, " HTTP/1.1")
	if !ok {
		return false
	}
	path, query, _ := strings.Cut(target, "?")
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case c == '%':
			if i+2 >= len(path) || hexValue[path[i+1]]|hexValue[path[i+2]] >= 16 {
				return false
			}
			i += 2
		case !pathByte[c]:
			return false
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c <= ' ' || c >= 0x7F || c == ';' {
			return false
		}
	}
	r.Path, r.Query = path, query
	return true
}

// nextLine splits off the first CRLF-terminated line of s. It reports
// false for a line that holds a CR or LF of its own, or none at all.
func nextLine(s string) (line, rest string, ok bool) {
	i := strings.IndexByte(s, '\n')
	if i < 1 || s[i-1] != '\r' {
		return "", s, false
	}
	line = s[:i-1]
	if strings.IndexByte(line, '\r') >= 0 {
		return "", s, false
	}
	return line, s[i+1:], true
}

// trimOWS trims the spaces and tabs around a header value.
func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// validValue reports whether a header value holds no control byte but
// tab (bytes from 0x80 are obs-text, allowed).
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7F {
			return false
		}
	}
	return true
}

// validHost reports whether a Host value is a plain host name or address,
// with an optional port.
func validHost(s string) bool {
	for i := 0; i < len(s); i++ {
		if !hostByte[s[i]] {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list s holds token, in any
// case.
func hasToken(s, token string) bool {
	for s != "" {
		var part string
		part, s, _ = strings.Cut(s, ",")
		if equalFold(trimOWS(part), token) {
			return true
		}
	}
	return false
}

// isToken reports whether s is an HTTP token (RFC 9110), as header names
// are.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tokenByte[s[i]] {
			return false
		}
	}
	return s != ""
}

// equalFold reports whether s and t are equal in ASCII without regard to
// case.
func equalFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if a, b := s[i], t[i]; a != b && lower(a) != lower(b) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// Byte classes of the request head.
var (
	// pathByte: the bytes a path may hold raw and still be the path a
	// general server reads (escaped as sent): RFC 3986 pchar and '/'.
	pathByte = byteSet("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/[]")
	// tokenByte: RFC 9110 tchar.
	tokenByte = byteSet("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~")
	// hostByte: a host name, an IPv4 address, an IPv6 one in brackets,
	// a port.
	hostByte = byteSet("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._:[]")
)

func byteSet(chars string) (set [256]bool) {
	for i := 0; i < len(chars); i++ {
		set[chars[i]] = true
	}
	return set
}
