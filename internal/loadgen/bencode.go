package loadgen

import (
	"github.com/annuaire/tracker/internal/bencode"
	"github.com/annuaire/tracker/internal/udpwire"
)

// The checks of HTTP replies read them with the strict scanner of
// internal/bencode: canonical integers and string lengths, dictionary keys
// in strictly ascending order, nesting at most 100 deep, nothing after the
// value. They allocate nothing, so that checking every reply costs little
// next to sending the request.

// checkHTTPAnnounce checks an announce reply body: a dict with a failure
// reason, or with interval, complete, incomplete and compact peers (a
// string of 6-byte entries; peers6 entries, which may come too, are 18
// bytes).
func checkHTTPAnnounce(b []byte) outcome {
	s := bencode.NewScanner(b)
	d, _ := s.Dict()
	var failure, interval, complete, incomplete, peers bool
	for d.Next() {
		ok := true
		switch string(d.Key()) {
		case "failure reason":
			_, failure = s.Bytes()
		case "interval":
			interval = true
			ok = count(&s)
		case "complete":
			complete = true
			ok = count(&s)
		case "incomplete":
			incomplete = true
			ok = count(&s)
		case "peers":
			p, read := s.Bytes()
			peers = true
			ok = !read || len(p)%6 == 0
		case "peers6":
			p, read := s.Bytes()
			ok = !read || len(p)%18 == 0
		} // other values are skipped by Next
		if !ok {
			return outMalformed
		}
	}
	return verdict(&s, failure, interval && complete && incomplete && peers)
}

// verdict is the outcome of a reply once the caller has read its dict: a
// refusal if it has a failure reason, valid if it has all the fields it
// must, provided that the reply is strict bencode and ends there.
func verdict(s *bencode.Scanner, failure, complete bool) outcome {
	switch {
	case !s.End():
		return outMalformed
	case failure:
		return outFailure
	case complete:
		return outOK
	}
	return outMalformed
}

// count reads an integer that counts something: it reports false if the
// integer is negative; the scanner records a value of another type.
func count(s *bencode.Scanner) bool {
	n, _ := s.Int()
	return n >= 0
}

// checkHTTPScrape checks a scrape reply body: a dict whose files dict has
// an entry for each of the want hashes (each a dict with integers
// complete and incomplete), or a failure reason.
func checkHTTPScrape(b []byte, want [][20]byte) outcome {
	s := bencode.NewScanner(b)
	d, _ := s.Dict()
	failure, files := false, -1
	for d.Next() {
		switch string(d.Key()) {
		case "failure reason":
			_, failure = s.Bytes()
		case "files":
			var ok bool
			if files, ok = checkScrapeFiles(&s, want); !ok {
				return outMalformed
			}
		}
	}
	return verdict(&s, failure, files == len(want))
}

// checkScrapeFiles reads the files dict at the cursor of s. It returns how
// many of its entries are for hashes in want; an entry for any other hash,
// or twice for one, is an error. The entries may come in any order:
// opentracker lists them in the order of the request, and clients
// (libtorrent) accept that.
func checkScrapeFiles(s *bencode.Scanner, want [][20]byte) (found int, ok bool) {
	var seen [(udpwire.MaxScrapeHashes + 63) / 64]uint64
	d, _ := s.DictAnyOrder()
	for d.Next() {
		k := hashIndex(want, d.Key())
		if k < 0 || seen[k/64]&(1<<(k%64)) != 0 {
			return 0, false
		}
		seen[k/64] |= 1 << (k % 64)
		var complete, incomplete bool
		e, _ := s.Dict()
		for e.Next() {
			ok := true
			switch string(e.Key()) {
			case "complete":
				complete = true
				ok = count(s)
			case "incomplete":
				incomplete = true
				ok = count(s)
			case "downloaded":
				ok = count(s)
			}
			if !ok {
				return 0, false
			}
		}
		if !complete || !incomplete {
			return 0, false
		}
		found++
	}
	return found, true
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

// failureReason returns the failure reason of a reply body that
// checkHTTPAnnounce or checkHTTPScrape found to be a refusal.
func failureReason(b []byte) []byte {
	s := bencode.NewScanner(b)
	d, _ := s.Dict()
	for d.Next() {
		if string(d.Key()) == "failure reason" {
			r, _ := s.Bytes()
			return r
		}
	}
	return nil
}
