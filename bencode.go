package tracker

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// The encoders in this file write the tracker's bencoded replies (BEP 3).
// They append to the caller's buffer and allocate nothing when it has room,
// and their output is canonical: dictionary keys in strictly ascending
// raw-byte order, integers without leading zeros, durations in whole
// seconds (truncated). Keys are written pre-encoded, in the order they sort.

// replyOptions are the per-request choices that shape an announce reply.
// The zero value asks for dictionary peers with their ids and no optional
// keys.
type replyOptions struct {
	// Compact packs the peers into byte strings (BEP 23): "peers" holds 6
	// bytes per IPv4 peer (an IPv4-mapped address counts as IPv4) and is
	// always present, "peers6" 18 bytes per IPv6 peer (BEP 7) and is left
	// out when there is none. If false, "peers" is a list of dictionaries
	// holding the peers of both families.
	Compact bool
	// NoPeerID leaves "peer id" out of dictionary peers, as the no_peer_id
	// parameter asks. It has no effect on compact replies.
	NoPeerID bool
	// ExternalIP is sent as "external ip" (BEP 24): the address the tracker
	// sees the client at, as 4 raw bytes for IPv4 (IPv4-mapped included) or
	// 16 for IPv6. The zero Addr leaves the key out.
	ExternalIP netip.Addr
	// TrackerID is sent as "tracker id", for the client to echo back as
	// the trackerid parameter. Empty leaves the key out.
	TrackerID string
}

// appendAnnounce appends the bencoded reply to a successful announce.
// Peers whose address is not valid are left out.
func appendAnnounce(dst []byte, r *AnnounceResponse, o replyOptions) []byte {
	dst = append(dst, "d8:complete"...)
	dst = appendInt(dst, int64(r.Complete))
	dst = append(dst, "10:downloaded"...)
	dst = appendInt(dst, int64(r.Downloaded))
	if a := o.ExternalIP.Unmap(); a.Is4() {
		b := a.As4()
		dst = append(dst, "11:external ip4:"...)
		dst = append(dst, b[:]...)
	} else if a.Is6() {
		b := a.As16()
		dst = append(dst, "11:external ip16:"...)
		dst = append(dst, b[:]...)
	}
	dst = append(dst, "10:incomplete"...)
	dst = appendInt(dst, int64(r.Incomplete))
	dst = append(dst, "8:interval"...)
	dst = appendInt(dst, seconds(r.Interval))
	dst = append(dst, "12:min interval"...)
	dst = appendInt(dst, seconds(r.MinInterval))
	if o.Compact {
		dst = appendCompactPeers(dst, r.Peers)
	} else {
		dst = appendDictPeers(dst, r.Peers, o.NoPeerID)
	}
	if o.TrackerID != "" {
		dst = append(dst, "10:tracker id"...)
		dst = appendString(dst, o.TrackerID)
	}
	if r.Warning != "" {
		dst = append(dst, "15:warning message"...)
		dst = appendString(dst, r.Warning)
	}
	return append(dst, 'e')
}

// appendCompactPeers appends the "peers" key and, when there are IPv6
// peers, the "peers6" key, both in compact form.
func appendCompactPeers(dst []byte, peers []Peer) []byte {
	var n4, n6 int
	for i := range peers {
		switch a := peers[i].Addr.Addr(); {
		case a.Is4() || a.Is4In6():
			n4++
		case a.Is6():
			n6++
		}
	}
	dst = append(dst, "5:peers"...)
	dst = appendLen(dst, 6*n4)
	// Grow once, then write each entry in place.
	off := len(dst)
	dst = slices.Grow(dst, 6*n4)[:off+6*n4]
	for i := range peers {
		ap := peers[i].Addr
		if a := ap.Addr(); a.Is4() || a.Is4In6() {
			*(*[4]byte)(dst[off:]) = a.Unmap().As4()
			binary.BigEndian.PutUint16(dst[off+4:], ap.Port())
			off += 6
		}
	}
	if n6 == 0 {
		return dst
	}
	dst = append(dst, "6:peers6"...)
	dst = appendLen(dst, 18*n6)
	off = len(dst)
	dst = slices.Grow(dst, 18*n6)[:off+18*n6]
	for i := range peers {
		ap := peers[i].Addr
		if a := ap.Addr(); a.Is6() && !a.Is4In6() {
			*(*[16]byte)(dst[off:]) = a.As16()
			binary.BigEndian.PutUint16(dst[off+16:], ap.Port())
			off += 18
		}
	}
	return dst
}

// appendDictPeers appends the "peers" key as a list of dictionaries, IPv4
// and IPv6 peers together. A peer's id is left out when noPeerID is set or
// when the id is all zeros (the store does not know it).
func appendDictPeers(dst []byte, peers []Peer, noPeerID bool) []byte {
	dst = append(dst, "5:peersl"...)
	for i := range peers {
		p := &peers[i]
		a := p.Addr.Addr().Unmap().WithZone("")
		if !a.IsValid() {
			continue
		}
		// The longest text form of an address without a zone is 39 bytes.
		var buf [48]byte
		dst = append(dst, "d2:ip"...)
		dst = appendBytes(dst, a.AppendTo(buf[:0]))
		if !noPeerID && p.ID != (PeerID{}) {
			dst = append(dst, "7:peer id20:"...)
			dst = append(dst, p.ID[:]...)
		}
		dst = append(dst, "4:port"...)
		dst = appendInt(dst, int64(p.Addr.Port()))
		dst = append(dst, 'e')
	}
	return append(dst, 'e')
}

// appendScrape appends the bencoded reply to a scrape (BEP 48): one "files"
// entry per distinct hash, files[i] being the counters of hashes[i], and
// the flags dictionary with min_request_interval. The "files" keys must be
// sorted, so the entries are written in raw-byte order of their hashes,
// whatever the request's order, and a hash asked for twice is written once
// (with its first counters). order is scratch space for the sort; it is
// returned, resliced, so that the caller can keep its capacity for the next
// call. files must be at least as long as hashes.
func appendScrape(dst []byte, hashes []InfoHash, files []ScrapeStats, minInterval time.Duration, order []int) ([]byte, []int) {
	order = order[:0]
	sorted := true
	for i := range hashes {
		if i > 0 && bytes.Compare(hashes[i-1][:], hashes[i][:]) >= 0 {
			sorted = false
		}
		order = append(order, i)
	}
	if !sorted {
		// Ties go to the earlier index, so duplicates keep their first
		// counters.
		slices.SortFunc(order, func(i, j int) int {
			if c := bytes.Compare(hashes[i][:], hashes[j][:]); c != 0 {
				return c
			}
			return cmp.Compare(i, j)
		})
	}
	dst = append(dst, "d5:filesd"...)
	for k, i := range order {
		if k > 0 && hashes[i] == hashes[order[k-1]] {
			continue
		}
		dst = appendScrapeEntry(dst, hashes[i], files[i])
	}
	dst = append(dst, "e5:flagsd20:min_request_interval"...)
	dst = appendInt(dst, seconds(minInterval))
	return append(dst, "ee"...), order
}

// appendScrapeEntry appends one entry of a scrape's "files" dictionary: the
// raw 20-byte hash as the key, then the swarm's counters.
func appendScrapeEntry(dst []byte, h InfoHash, st ScrapeStats) []byte {
	dst = append(dst, "20:"...)
	dst = append(dst, h[:]...)
	dst = append(dst, "d8:complete"...)
	dst = appendInt(dst, int64(st.Complete))
	dst = append(dst, "10:downloaded"...)
	dst = appendInt(dst, int64(st.Downloaded))
	dst = append(dst, "11:downloaders"...)
	dst = appendInt(dst, int64(st.Downloaders))
	dst = append(dst, "10:incomplete"...)
	dst = appendInt(dst, int64(st.Incomplete))
	return append(dst, 'e')
}

// appendFailure appends the bencoded reply to a failed request: e's reason,
// the intervals (clients back off by them, and most ignore "retry in") and,
// when e.RetryIn asks for it, "retry in" (BEP 31) in whole minutes rounded
// up, or "never" for RetryNever.
func appendFailure(dst []byte, e *Error, interval, minInterval time.Duration) []byte {
	dst = append(dst, "d14:failure reason"...)
	dst = appendString(dst, e.Reason)
	dst = append(dst, "8:interval"...)
	dst = appendInt(dst, seconds(interval))
	dst = append(dst, "12:min interval"...)
	dst = appendInt(dst, seconds(minInterval))
	switch {
	case e.RetryIn == RetryNever:
		dst = append(dst, "8:retry in5:never"...)
	case e.RetryIn > 0:
		m := int64(e.RetryIn / time.Minute)
		if e.RetryIn%time.Minute != 0 {
			m++
		}
		dst = append(dst, "8:retry in"...)
		dst = appendInt(dst, m)
	}
	return append(dst, 'e')
}

// seconds returns d in whole seconds, truncated toward zero.
func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// appendInt appends the bencoded integer v.
func appendInt(dst []byte, v int64) []byte {
	dst = append(dst, 'i')
	dst = strconv.AppendInt(dst, v, 10)
	return append(dst, 'e')
}

// appendLen appends the length prefix of an n-byte string.
func appendLen(dst []byte, n int) []byte {
	dst = strconv.AppendInt(dst, int64(n), 10)
	return append(dst, ':')
}

// appendString appends s as a bencoded byte string.
func appendString(dst []byte, s string) []byte {
	return append(appendLen(dst, len(s)), s...)
}

// appendBytes appends b as a bencoded byte string.
func appendBytes(dst, b []byte) []byte {
	return append(appendLen(dst, len(b)), b...)
}
