// Package announceurl finds the passkey in the path and query of an
// announce URL, as private trackers lay it out:
//
//	/announce/<passkey>          UNIT3D style
//	/<passkey>/announce          common
//	/announce.php?passkey=<pk>   TBDev style: a passkey parameter anywhere in the query
//
// and in the scrape URLs clients derive from those by replacing "announce"
// with "scrape" (/scrape/<passkey>, /<passkey>/scrape).
//
// The same function serves the HTTP front-end (its request path) and the
// UDP front-end (BEP 41 URL data, which carries the path and query of a
// udp:// announce URL).
package announceurl

// AppendPasskey appends the passkey found in pathAndQuery to dst and
// returns the extended slice, with ok reporting whether a non-empty
// passkey was found. The path layouts are tried first, then the query's
// passkey parameter. The passkey is percent-decoded: %XX in either case
// gives the byte, a '%' not followed by two hex digits stays as it is, and
// '+' stays '+' (it is not a space in a path or a raw query). It allocates
// nothing when dst has room for the passkey.
func AppendPasskey(dst, pathAndQuery []byte) (_ []byte, ok bool) {
	pk, ok := find(pathAndQuery)
	if !ok {
		return dst, false
	}
	return appendUnescaped(dst, pk), true
}

// Passkey is AppendPasskey for a string. It returns a substring of
// pathAndQuery, without allocating, when the passkey holds no escapes.
func Passkey(pathAndQuery string) (string, bool) {
	pk, ok := find(pathAndQuery)
	if !ok {
		return "", false
	}
	if !hasEscape(pk) {
		return pk, true
	}
	return string(appendUnescaped(make([]byte, 0, len(pk)), pk)), true
}

// find returns the passkey of s, still escaped.
func find[S ~string | ~[]byte](s S) (S, bool) {
	path, query := s, s[:0]
	if i := indexByte(s, '?'); i >= 0 {
		path, query = s[:i], s[i+1:]
	}
	for _, verb := range [...]string{"announce", "scrape"} {
		// /announce/<pk>
		if len(path) > len(verb)+2 && path[0] == '/' && hasPrefix(path[1:], verb) && path[1+len(verb)] == '/' {
			if pk := path[2+len(verb):]; indexByte(pk, '/') < 0 {
				return pk, true
			}
		}
		// /<pk>/announce
		if n := len(path) - len(verb) - 1; n > 1 && path[0] == '/' && path[n] == '/' && hasSuffix(path, verb) {
			if pk := path[1:n]; indexByte(pk, '/') < 0 {
				return pk, true
			}
		}
	}
	for len(query) > 0 {
		param := query
		if i := indexByte(query, '&'); i >= 0 {
			param, query = query[:i], query[i+1:]
		} else {
			query = query[:0]
		}
		const key = "passkey="
		if hasPrefix(param, key) && len(param) > len(key) {
			return param[len(key):], true
		}
	}
	return s[:0], false
}

func indexByte[S ~string | ~[]byte](s S, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func hasPrefix[S ~string | ~[]byte](s S, prefix string) bool {
	return len(s) >= len(prefix) && string(s[:len(prefix)]) == prefix
}

func hasSuffix[S ~string | ~[]byte](s S, suffix string) bool {
	return len(s) >= len(suffix) && string(s[len(s)-len(suffix):]) == suffix
}

func hasEscape(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && isHex(s[i+1]) && isHex(s[i+2]) {
			return true
		}
	}
	return false
}

func appendUnescaped[S ~string | ~[]byte](dst []byte, s S) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
		}
		dst = append(dst, c)
	}
	return dst
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
