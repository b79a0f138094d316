package loadgen

import "bytes"

// A strict bencode scanner (PROTOCOL.md §1) that checks replies without
// allocating: canonical integers and lengths, dict keys in strictly
// ascending order, no trailing data.

const maxBencodeDepth = 100

// bInt parses the integer at b[i:]. It returns the value and the index
// after it.
func bInt(b []byte, i int) (v int64, end int, ok bool) {
	if i >= len(b) || b[i] != 'i' {
		return 0, 0, false
	}
	i++
	neg := false
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		d := int64(b[i] - '0')
		if v > (1<<63-1-d)/10 {
			return 0, 0, false // overflow
		}
		v = v*10 + d
		i++
	}
	n := i - start
	switch {
	case n == 0 || i >= len(b) || b[i] != 'e':
		return 0, 0, false
	case n > 1 && b[start] == '0': // leading zero
		return 0, 0, false
	case neg && v == 0: // -0
		return 0, 0, false
	}
	if neg {
		v = -v
	}
	return v, i + 1, true
}

// bCount parses a non-negative integer at b[i:]; found is ok.
func bCount(b []byte, i int) (found bool, end int, ok bool) {
	v, end, ok := bInt(b, i)
	ok = ok && v >= 0
	return ok, end, ok
}

// bString parses the byte string at b[i:]. It returns the string (a
// sub-slice of b) and the index after it.
func bString(b []byte, i int) (s []byte, end int, ok bool) {
	start := i
	n := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		if n > len(b) {
			return nil, 0, false
		}
		n = n*10 + int(b[i]-'0')
		i++
	}
	switch {
	case i == start || i >= len(b) || b[i] != ':':
		return nil, 0, false
	case i-start > 1 && b[start] == '0':
		return nil, 0, false
	case n > len(b)-i-1:
		return nil, 0, false
	}
	i++
	return b[i : i+n], i + n, true
}

// bSkip checks the value at b[i:] and returns the index after it.
func bSkip(b []byte, i, depth int) (end int, ok bool) {
	if i >= len(b) || depth > maxBencodeDepth {
		return 0, false
	}
	switch c := b[i]; {
	case c == 'i':
		_, end, ok = bInt(b, i)
		return end, ok
	case c >= '0' && c <= '9':
		_, end, ok = bString(b, i)
		return end, ok
	case c == 'l':
		i++
		for i < len(b) && b[i] != 'e' {
			if i, ok = bSkip(b, i, depth+1); !ok {
				return 0, false
			}
		}
		if i >= len(b) {
			return 0, false
		}
		return i + 1, true
	case c == 'd':
		d := dictIter{b: b, i: i + 1}
		for d.next() {
			if d.i, ok = bSkip(b, d.i, depth+1); !ok {
				return 0, false
			}
		}
		return d.end()
	}
	return 0, false
}

// dictIter walks the keys of a dict; the caller consumes each value and
// stores the index after it in i.
//
//	d := dictIter{b: b, i: start + 1}
//	for d.next() { ...; d.i = indexAfterValue }
//	end, ok := d.end()
type dictIter struct {
	b        []byte
	i        int
	key      []byte
	prev     []byte
	bad      bool
	n        int
	anyOrder bool // accept keys in any order
}

// next reads the next key into d.key, checking the order of keys. It
// returns false at the end of the dict or on an error, which end reports.
func (d *dictIter) next() bool {
	if d.bad || d.i >= len(d.b) {
		d.bad = true
		return false
	}
	if d.b[d.i] == 'e' {
		return false
	}
	key, end, ok := bString(d.b, d.i)
	if !ok || (d.n > 0 && !d.anyOrder && bytes.Compare(d.prev, key) >= 0) {
		d.bad = true
		return false
	}
	d.prev, d.key, d.i = key, key, end
	d.n++
	return true
}

// end returns the index after the dict, once next has returned false.
func (d *dictIter) end() (int, bool) {
	if d.bad || d.i >= len(d.b) || d.b[d.i] != 'e' {
		return 0, false
	}
	return d.i + 1, true
}

// checkHTTPAnnounce checks an announce reply body: a dict with a failure
// reason, or with interval, complete, incomplete and compact peers (a
// string of peerSize-byte entries; peers6 entries are 18 bytes).
func checkHTTPAnnounce(b []byte) outcome {
	if len(b) == 0 || b[0] != 'd' {
		return outMalformed
	}
	var failure, interval, complete, incomplete, peers bool
	d := dictIter{b: b, i: 1}
	for d.next() {
		var ok bool
		switch string(d.key) {
		case "failure reason":
			_, d.i, ok = bString(b, d.i)
			failure = ok
		case "interval":
			interval, d.i, ok = bCount(b, d.i)
		case "complete":
			complete, d.i, ok = bCount(b, d.i)
		case "incomplete":
			incomplete, d.i, ok = bCount(b, d.i)
		case "peers", "peers6":
			var p []byte
			p, d.i, ok = bString(b, d.i)
			size := 6
			if len(d.key) == 6 {
				size = 18
			}
			ok = ok && len(p)%size == 0
			peers = peers || (ok && size == 6)
		default:
			d.i, ok = bSkip(b, d.i, 1)
		}
		if !ok {
			return outMalformed
		}
	}
	if end, ok := d.end(); !ok || end != len(b) {
		return outMalformed
	}
	switch {
	case failure:
		return outFailure
	case interval && complete && incomplete && peers:
		return outOK
	}
	return outMalformed
}

// checkHTTPScrape checks a scrape reply body: a dict whose files dict has
// an entry for each of the want hashes (each a dict with integers
// complete and incomplete), or a failure reason.
func checkHTTPScrape(b []byte, want [][20]byte) outcome {
	if len(b) == 0 || b[0] != 'd' {
		return outMalformed
	}
	failure, files := false, -1
	d := dictIter{b: b, i: 1}
	for d.next() {
		var ok bool
		switch string(d.key) {
		case "failure reason":
			_, d.i, ok = bString(b, d.i)
			failure = ok
		case "files":
			files, d.i, ok = checkScrapeFiles(b, d.i, want)
		default:
			d.i, ok = bSkip(b, d.i, 1)
		}
		if !ok {
			return outMalformed
		}
	}
	if end, ok := d.end(); !ok || end != len(b) {
		return outMalformed
	}
	switch {
	case failure:
		return outFailure
	case files == len(want):
		return outOK
	}
	return outMalformed
}

// checkScrapeFiles checks the files dict at b[i:]. It returns how many of
// its entries are for hashes in want, and the index after it; an entry
// for any other hash, or twice for one, is an error. The entries may come
// in any order: opentracker lists them in the order of the request, and
// clients (libtorrent) accept that.
func checkScrapeFiles(b []byte, i int, want [][20]byte) (found, end int, ok bool) {
	if i >= len(b) || b[i] != 'd' {
		return 0, 0, false
	}
	var seen [(maxScrapeHashes + 63) / 64]uint64
	d := dictIter{b: b, i: i + 1, anyOrder: true}
	for d.next() {
		k := hashIndex(want, d.key)
		if k < 0 || seen[k/64]&(1<<(k%64)) != 0 || d.i >= len(b) || b[d.i] != 'd' {
			return 0, 0, false
		}
		seen[k/64] |= 1 << (k % 64)
		var complete, incomplete bool
		e := dictIter{b: b, i: d.i + 1}
		for e.next() {
			switch string(e.key) {
			case "complete":
				complete, e.i, ok = bCount(b, e.i)
			case "incomplete":
				incomplete, e.i, ok = bCount(b, e.i)
			case "downloaded":
				_, e.i, ok = bCount(b, e.i)
			default:
				e.i, ok = bSkip(b, e.i, 3)
			}
			if !ok {
				return 0, 0, false
			}
		}
		if d.i, ok = e.end(); !ok || !complete || !incomplete {
			return 0, 0, false
		}
		found++
	}
	end, ok = d.end()
	return found, end, ok
}

// hashIndex returns the index of key in want, or -1.
func hashIndex(want [][20]byte, key []byte) int {
	if len(key) != 20 {
		return -1
	}
	for k := range want {
		if string(want[k][:]) == string(key) {
			return k
		}
	}
	return -1
}
