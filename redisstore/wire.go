// What travels between the store and its scripts: key names, peer
// records, and the decoding of the scripts' replies.

package redisstore

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/annuaire/tracker"
)

// The address families, which index key names.
const (
	inet4 = 0
	inet6 = 1
)

var familyNames = [2]string{"4", "6"}

func family(ip netip.Addr) int {
	if ip.Is4() {
		return inet4
	}
	return inet6
}

// swarmBase returns the common start of a swarm's key names: the prefix
// and the hash tag, the info hash in unpadded base64url (27 characters,
// never a brace).
func (s *Store) swarmBase(h *tracker.InfoHash) []byte {
	b := make([]byte, 0, len(s.prefix)+2+27+2)
	b = append(b, s.prefix...)
	b = append(b, '{')
	b = base64.RawURLEncoding.AppendEncode(b, h[:])
	return append(b, '}')
}

// The suffixes of a swarm's key names, in the order of the scripts' KEYS
// (see lib.lua): the counters, then per family the peers by last
// announce, their states, and the arrays of records of the seeders, the
// leechers and the partial seeds.
var suffixes = [...]string{"c", "z4", "h4", "a4s", "a4l", "a4p", "z6", "h6", "a6s", "a6l", "a6p"}

// keys returns the keys of a swarm.
func (s *Store) keys(h *tracker.InfoHash) []string {
	base := s.swarmBase(h)
	keys := make([]string, len(suffixes))
	for i, suf := range suffixes {
		keys[i] = string(append(base, suf...))
	}
	return keys
}

// identity returns the 8-byte hash that tells a peer from the others of
// its swarm: its address and port, its user and its peer id (see
// [tracker.Store]). Every instance computes the same hash, so the hash is
// not keyed; SHA-256 keeps anyone from making a peer id whose hash is
// another peer's, and 64 bits keep two peers of one address and port
// apart.
func identity(user uint64, ap netip.AddrPort, id tracker.PeerID) [8]byte {
	var b [8 + 16 + 2 + 20]byte
	binary.LittleEndian.PutUint64(b[:8], user)
	*(*[16]byte)(b[8:24]) = ap.Addr().As16()
	binary.BigEndian.PutUint16(b[24:26], ap.Port())
	*(*[20]byte)(b[26:]) = id
	sum := sha256.Sum256(b[:])
	return [8]byte(sum[:8])
}

// record returns a peer's record in its class's array: its identity, its
// address (4 or 16 bytes) and its port (2 bytes, big-endian).
func record(id [8]byte, ip netip.Addr, port uint16) string {
	b := make([]byte, 0, 8+16+2)
	b = append(b, id[:]...)
	b = append(b, ip.AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, port)
	return string(b)
}

// The lengths of records: identity, address, port.
const (
	record4Len = 8 + 4 + 2
	record6Len = 8 + 16 + 2
)

var errReply = errors.New("malformed reply from Redis")

// parseRecord returns the address in a record of family fam.
func parseRecord(m string, fam int) (netip.AddrPort, error) {
	var ip netip.Addr
	switch {
	case fam == inet4 && len(m) == record4Len:
		ip = netip.AddrFrom4([4]byte([]byte(m[8:12])))
	case fam == inet6 && len(m) == record6Len:
		ip = netip.AddrFrom16([16]byte([]byte(m[8:24])))
	default:
		return netip.AddrPort{}, fmt.Errorf("%w: a record of %d bytes in an IPv%s reply", errReply, len(m), familyNames[fam])
	}
	return netip.AddrPortFrom(ip, binary.BigEndian.Uint16([]byte(m[len(m)-2:]))), nil
}

// count returns a reply's element i as a count.
func count(r []any, i int) (int, error) {
	n, ok := r[i].(int64)
	if !ok || n < 0 || n > 1<<40 {
		return 0, fmt.Errorf("%w: element %d is %T %v, not a count", errReply, i, r[i], r[i])
	}
	return int(n), nil
}

// decodeAnnounce reads the reply of announce.lua into resp, for an
// announcer of family fam. On error resp is as it was.
func decodeAnnounce(v any, fam int, resp *tracker.AnnounceResponse) error {
	r, ok := v.([]any)
	if !ok || len(r) == 0 {
		return fmt.Errorf("%w: %T", errReply, v)
	}
	code, err := count(r, 0)
	switch {
	case err != nil:
		return err
	case code == 1 && len(r) == 1:
		return tracker.ErrTooManyPeers
	case code != 0 || len(r) < 5:
		return fmt.Errorf("%w: status %d with %d elements", errReply, code, len(r))
	}
	var c [4]int // complete, incomplete, downloaded, outcome
	for i := range c {
		if c[i], err = count(r, 1+i); err != nil {
			return err
		}
	}
	if c[3] > 7 || c[3]&3 == 3 {
		return fmt.Errorf("%w: outcome %d", errReply, c[3])
	}
	var records string
	switch len(r) {
	case 5:
	case 6:
		if records, ok = r[5].(string); !ok {
			return fmt.Errorf("%w: peers of type %T", errReply, r[5])
		}
	default:
		return fmt.Errorf("%w: %d elements", errReply, len(r))
	}
	size := record4Len
	if fam == inet6 {
		size = record6Len
	}
	if len(records)%size != 0 {
		return fmt.Errorf("%w: %d bytes of IPv%s records", errReply, len(records), familyNames[fam])
	}
	n := len(resp.Peers)
	for i := 0; i < len(records); i += size {
		ap, err := parseRecord(records[i:i+size], fam)
		if err != nil {
			resp.Peers = resp.Peers[:n]
			return err
		}
		resp.Peers = append(resp.Peers, tracker.Peer{Addr: ap})
	}
	// The script answers in no random order: windows of consecutive
	// records.
	sample := resp.Peers[n:]
	rand.Shuffle(len(sample), func(i, j int) { sample[i], sample[j] = sample[j], sample[i] })
	resp.Complete, resp.Incomplete, resp.Downloaded = c[0], c[1], c[2]
	resp.Outcome = 0
	if c[3]&1 != 0 {
		resp.Outcome |= tracker.OutcomeJoined
	}
	if c[3]&2 != 0 {
		resp.Outcome |= tracker.OutcomeLeft
	}
	if c[3]&4 != 0 {
		resp.Outcome |= tracker.OutcomeCompleted
	}
	return nil
}

// decodeScrape appends the stats in a reply of scrape.lua to dst.
func decodeScrape(v any, dst []tracker.ScrapeStats) ([]tracker.ScrapeStats, error) {
	r, ok := v.([]any)
	if !ok || len(r) != 4 {
		return dst, fmt.Errorf("%w: %T of %d elements", errReply, v, len(r))
	}
	var c [4]int
	for i := range c {
		var err error
		if c[i], err = count(r, i); err != nil {
			return dst, err
		}
	}
	if c[3] > c[1] {
		return dst, fmt.Errorf("%w: %d downloaders among %d leechers", errReply, c[3], c[1])
	}
	return append(dst, tracker.ScrapeStats{Complete: c[0], Incomplete: c[1], Downloaded: c[2], Downloaders: c[3]}), nil
}
