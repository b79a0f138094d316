package tracker

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"iter"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// The built-in access policies of a private or semi-private tracker:
// [PasskeySet], [TorrentList] and [ClientList]. Each holds its list in
// memory, answers without locking or allocating, and can be changed or
// reloaded while announces run.

var (
	_ PasskeyValidator = (*PasskeySet)(nil)
	_ TorrentFilter    = (*TorrentList)(nil)
	_ ClientFilter     = (*ClientList)(nil)
)

// MaxPasskeyLen is the longest passkey a passkey file may hold.
const MaxPasskeyLen = 128

// PasskeySet is a [PasskeyValidator] holding the site's passkeys in memory,
// each with the id of the user it belongs to. It is meant for millions of
// passkeys: it keeps about 18 bytes per passkey after a reload (up to 22 as
// Set adds more), and a lookup takes no lock and allocates nothing.
//
// A PasskeySet does not keep the passkeys themselves: it keeps a 64-bit
// digest of each, computed with a secret key drawn at random when the set is
// created and again at every Replace or Load (hash/maphash). Two different
// passkeys share a digest by chance only: for a passkey an attacker makes
// up, the chance that its digest is one of n stored ones is n/2^64, about
// 1 in 9 trillion with 2,000,000 passkeys. The key never leaves the
// process, so the attacker cannot search for a match offline: each guess is
// a request to the tracker, answered only by accepted or refused. At a
// thousand guesses a second (more than [RateLimitConfig.PerIP] should let
// one address make), a hit takes some 300 years on average; at a hundred
// thousand a second from many addresses, three years, to reach one account
// taken at random. Among the
// site's own passkeys, a shared digest (which would make one user announce
// as another) has a chance of about n²/2^65, 1 in 9 million for 2,000,000
// passkeys, and lasts only until the next reload draws a new key. A lookup
// of an unknown passkey stops after a few probes whatever the passkey, so
// unknown passkeys cost no more than known ones.
//
// A PasskeySet is safe for concurrent use. ValidatePasskey never blocks,
// and sees each change whole: a Set or Delete as soon as it returns, a
// Replace or Load all at once when it returns, never a list half loaded.
// The changing methods are serialized: Set and Delete called while a
// Replace or Load is running wait for it and apply to the new content.
//
// The zero value is an empty set ready to use.
type PasskeySet struct {
	idx digestIndex
}

// NewPasskeySet returns an empty set.
func NewPasskeySet() *PasskeySet { return new(PasskeySet) }

// NonBlocking reports true: a PasskeySet answers from memory (see
// [NonBlocker]).
func (s *PasskeySet) NonBlocking() bool { return true }

// passkeyStride is the slot size of a PasskeySet: digest and user id.
const passkeyStride = 2

// passkeyDigest is the digest a set keeps of passkey. hash/maphash is not a
// cryptographic hash, but it is keyed with a secret seed and its output is
// never shown: a guess learns whether it was accepted, nothing else, so an
// attacker has nothing to analyze and can only try passkeys one by one.
func passkeyDigest(seed maphash.Seed, passkey string) uint64 {
	return fixDigest(maphash.String(seed, passkey))
}

// ValidatePasskey implements [PasskeyValidator]: it returns the identity
// of the passkey's user (an Identity whose UserID is the user id stored
// with it), or ErrInvalidPasskey if the passkey is not in the set.
func (s *PasskeySet) ValidatePasskey(ctx context.Context, passkey string) (Identity, error) {
	if user, ok := s.Lookup(passkey); ok {
		return Identity{UserID: user}, nil
	}
	return Identity{}, ErrInvalidPasskey
}

// Lookup returns the user id stored with passkey, and whether the passkey
// is in the set.
func (s *PasskeySet) Lookup(passkey string) (user uint64, ok bool) {
	st := s.idx.state()
	if st == nil {
		return 0, false
	}
	return st.get(passkeyDigest(st.seed, passkey))
}

// Set adds passkey to the set, for the given user id, or changes the user
// id of a passkey already there. Any string is accepted, but the tracker
// never asks about an empty passkey (it answers ErrPasskeyRequired).
func (s *PasskeySet) Set(passkey string, user uint64) {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	st := s.idx.writable(passkeyStride)
	st.put(passkeyDigest(st.seed, passkey), user)
}

// Delete removes passkey from the set, if it is there.
func (s *PasskeySet) Delete(passkey string) {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	if st := s.idx.cur.Load(); st != nil {
		st.del(passkeyDigest(st.seed, passkey))
	}
}

// Len returns the number of passkeys in the set.
func (s *PasskeySet) Len() int { return s.idx.len() }

// Replace replaces the content of the set with the passkeys and user ids
// of seq; when a passkey comes more than once, the last user id counts.
// The new content is built aside while lookups go on in the old one, then
// swapped in at once.
func (s *PasskeySet) Replace(seq iter.Seq2[string, uint64]) {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	b := newIndexBuilder(passkeyStride)
	seed := b.seed()
	for passkey, user := range seq {
		b.add(passkeyDigest(seed, passkey), user)
	}
	s.idx.cur.Store(b.build())
}

// Load replaces the content of the set with the passkeys read from r, as
// Replace does. It reads all of r first: if r cannot be read or a line is
// malformed, it returns an error and leaves the set as it was.
//
// The file holds one passkey per line, optionally followed by blanks and
// the decimal user id (0 if absent); a field that begins with # starts a
// comment, which runs to the end of the line, and blank lines are ignored:
//
//	# passkey                          user
//	3f786850e387550fdab836ed7e6dc881   1042
//	bd2c4e1a09e9a4b04f1d2b5c6d7e8f90   7  # moderator
//
// A passkey is 1 to MaxPasskeyLen bytes of printable ASCII, without space
// and without the characters / ? & # %, which a URL would have to escape.
// Errors are [*LoadError] values naming the line; they never quote a
// passkey, since they may end up in logs.
func (s *PasskeySet) Load(r io.Reader) error {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	b := newIndexBuilder(passkeyStride)
	seed := b.seed()
	err := readList(r, "passkeys", func(line []byte) error {
		passkey, user, err := parsePasskeyLine(line)
		if err != nil {
			return err
		}
		b.add(fixDigest(maphash.Bytes(seed, passkey)), user)
		return nil
	})
	if err != nil {
		return err
	}
	s.idx.cur.Store(b.build())
	return nil
}

func parsePasskeyLine(line []byte) (passkey []byte, user uint64, err error) {
	passkey, rest := nextField(line)
	if err := checkPasskey(passkey); err != nil {
		return nil, 0, err
	}
	if endOfLine(rest) {
		return passkey, 0, nil
	}
	// The errors below describe the fields without quoting them: a
	// malformed line may hold a second passkey where the user id goes.
	f, rest := nextField(rest)
	user, err = strconv.ParseUint(string(f), 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("the user id (%d bytes) is not a decimal number below 2^64", len(f))
	}
	if !endOfLine(rest) {
		return nil, 0, errors.New("more than a passkey and a user id on the line")
	}
	return passkey, user, nil
}

// checkPasskey checks the passkey's syntax. Its errors tell what is wrong
// without quoting the passkey.
func checkPasskey(p []byte) error {
	if len(p) > MaxPasskeyLen {
		return fmt.Errorf("passkey of %d bytes, longer than %d", len(p), MaxPasskeyLen)
	}
	for i, c := range p {
		if !passkeyByte(c) {
			return fmt.Errorf("invalid character %q at byte %d of the passkey", c, i+1)
		}
	}
	return nil
}

// passkeyByte reports whether c may appear in a passkey: printable ASCII
// that a URL path or query carries as it is.
func passkeyByte(c byte) bool {
	switch c {
	case '/', '?', '&', '#', '%':
		return false
	}
	return c > ' ' && c < 0x7f
}

// TorrentList is a [TorrentFilter] holding a list of info hashes: in an
// allow-list, the torrents served; in a deny-list, the torrents refused.
// Refused torrents get ErrUnregisteredTorrent, whose text makes clients
// such as Transmission stop announcing them. A hybrid torrent (BEP 52) is
// announced under two hashes, its v1 hash and its truncated v2 hash, which
// are two entries of the list: an allow-list that holds only the v1 hash
// answers "unregistered torrent" to every v2 announce of the same torrent
// (libtorrent 2 sends both).
//
// Like [PasskeySet], a TorrentList keeps a keyed 64-bit digest of each
// hash rather than the hash, about 10 bytes per torrent. A hash that is
// not in the list is taken for one that is (served by an allow-list,
// refused by a deny-list) with a chance of n/2^64, 1 in 26 trillion for
// 700,000 torrents. A lookup takes no lock and allocates nothing.
//
// A TorrentList is safe for concurrent use, with the same contract as a
// PasskeySet: lookups never block and see each change whole; Add and
// Remove called during a Replace or Load wait for it and apply to the new
// content.
//
// The zero value is an empty deny-list: it serves every torrent.
type TorrentList struct {
	allow bool // false for a deny-list
	idx   digestIndex
}

// NewTorrentAllowList returns an empty allow-list: a filter that serves
// only the torrents added to it, and none until then.
func NewTorrentAllowList() *TorrentList { return &TorrentList{allow: true} }

// NewTorrentDenyList returns an empty deny-list: a filter that serves every
// torrent but those added to it.
func NewTorrentDenyList() *TorrentList { return new(TorrentList) }

// NonBlocking reports true: a TorrentList answers from memory (see
// [NonBlocker]).
func (l *TorrentList) NonBlocking() bool { return true }

// torrentStride is the slot size of a TorrentList: the digest alone.
const torrentStride = 1

func torrentDigest(seed maphash.Seed, h *InfoHash) uint64 {
	return fixDigest(maphash.Bytes(seed, h[:]))
}

// AllowTorrent implements [TorrentFilter]: it returns nil if the list
// serves h and ErrUnregisteredTorrent if not. The identity is not
// consulted.
func (l *TorrentList) AllowTorrent(ctx context.Context, h InfoHash, id Identity) error {
	if l.Contains(h) != l.allow {
		return ErrUnregisteredTorrent
	}
	return nil
}

// Contains reports whether h is in the list.
func (l *TorrentList) Contains(h InfoHash) bool {
	st := l.idx.state()
	if st == nil {
		return false
	}
	_, ok := st.get(torrentDigest(st.seed, &h))
	return ok
}

// Add adds h to the list.
func (l *TorrentList) Add(h InfoHash) {
	l.idx.mu.Lock()
	defer l.idx.mu.Unlock()
	st := l.idx.writable(torrentStride)
	st.put(torrentDigest(st.seed, &h), 0)
}

// Remove removes h from the list, if it is there.
func (l *TorrentList) Remove(h InfoHash) {
	l.idx.mu.Lock()
	defer l.idx.mu.Unlock()
	if st := l.idx.cur.Load(); st != nil {
		st.del(torrentDigest(st.seed, &h))
	}
}

// Len returns the number of hashes in the list.
func (l *TorrentList) Len() int { return l.idx.len() }

// Replace replaces the content of the list with the hashes of seq. The
// new content is built aside while lookups go on in the old one, then
// swapped in at once.
func (l *TorrentList) Replace(seq iter.Seq[InfoHash]) {
	l.idx.mu.Lock()
	defer l.idx.mu.Unlock()
	b := newIndexBuilder(torrentStride)
	seed := b.seed()
	for h := range seq {
		b.add(torrentDigest(seed, &h), 0)
	}
	l.idx.cur.Store(b.build())
}

// Load replaces the content of the list with the hashes read from r, as
// Replace does. It reads all of r first: if r cannot be read or a line is
// malformed, it returns an error and leaves the list as it was.
//
// The file holds one info hash per line, 40 hexadecimal digits in either
// case; a field that begins with # starts a comment, and blank lines are
// ignored. A v2 hash may also be written whole (64 digits): it is cut to
// the 20 bytes clients announce. Errors are [*LoadError] values naming
// the line.
func (l *TorrentList) Load(r io.Reader) error {
	l.idx.mu.Lock()
	defer l.idx.mu.Unlock()
	b := newIndexBuilder(torrentStride)
	seed := b.seed()
	err := readList(r, "torrents", func(line []byte) error {
		h, err := parseTorrentLine(line)
		if err != nil {
			return err
		}
		b.add(torrentDigest(seed, &h), 0)
		return nil
	})
	if err != nil {
		return err
	}
	l.idx.cur.Store(b.build())
	return nil
}

func parseTorrentLine(line []byte) (InfoHash, error) {
	var h InfoHash
	f, rest := nextField(line)
	if len(f) != 2*len(h) && len(f) != 64 {
		return h, fmt.Errorf("info hash %s: want 40 hex digits (or 64 for a v2 hash), have %d characters", quoteShort(f), len(f))
	}
	var full [32]byte
	if _, err := hex.Decode(full[:len(f)/2], f); err != nil {
		return h, fmt.Errorf("info hash %s: invalid hex digit", quoteShort(f))
	}
	copy(h[:], full[:])
	if !endOfLine(rest) {
		return h, fmt.Errorf("unexpected %s after the info hash", quoteShort(rest))
	}
	return h, nil
}

// ClientList is a [ClientFilter] that admits or refuses client programs by
// the first bytes of their peer ids, such as "-qB4650-" (qBittorrent
// 4.6.5), "-TR3000-" (Transmission 3.00), "-lt0D" (libtorrent 0.13) or
// "M7-" (Mainline 7). In an allow-list, only peer ids that begin with a
// listed prefix may announce; in a deny-list, those are refused. Refused
// clients get ErrClientNotAllowed. The User-Agent is not consulted.
//
// A lookup is a binary search over the sorted prefixes: it costs
// O(log n) whatever the length of the list, takes no lock and allocates
// nothing. A ClientList is safe for concurrent use; Set and Load swap in a
// whole new list at once.
//
// The zero value is an empty deny-list: it admits every client.
type ClientList struct {
	allow bool // false for a deny-list
	cur   atomic.Pointer[prefixSet]
}

// NewClientAllowList returns a filter that admits only the clients whose
// peer id begins with one of prefixes. With no prefix it admits none.
func NewClientAllowList(prefixes ...string) *ClientList {
	l := &ClientList{allow: true}
	l.Set(prefixes...)
	return l
}

// NewClientDenyList returns a filter that refuses the clients whose peer
// id begins with one of prefixes, and admits the others.
func NewClientDenyList(prefixes ...string) *ClientList {
	l := new(ClientList)
	l.Set(prefixes...)
	return l
}

// NonBlocking reports true: a ClientList answers from memory (see
// [NonBlocker]).
func (l *ClientList) NonBlocking() bool { return true }

// AllowClient implements [ClientFilter].
func (l *ClientList) AllowClient(ctx context.Context, id PeerID, userAgent string) error {
	if l.Matches(id) != l.allow {
		return ErrClientNotAllowed
	}
	return nil
}

// Matches reports whether id begins with one of the list's prefixes.
func (l *ClientList) Matches(id PeerID) bool {
	return l.cur.Load().match(&id)
}

// Set replaces the list's prefixes with prefixes; the slice is not kept.
// An empty prefix matches every peer id; one longer than a peer id (20
// bytes) matches none.
func (l *ClientList) Set(prefixes ...string) {
	l.cur.Store(newPrefixSet(prefixes))
}

// Load replaces the list's prefixes with those read from r. It reads all
// of r first: if r cannot be read or a line is malformed, it returns an
// error and leaves the list as it was.
//
// The file holds one prefix per line; a field that begins with # starts a
// comment, and blank lines are ignored. A prefix is either written as it
// is, in printable ASCII without blanks, or as a double-quoted Go string
// for any other bytes ("\x00\x04", "A2 "). A prefix has 1 to 20 bytes.
// Errors are [*LoadError] values naming the line.
func (l *ClientList) Load(r io.Reader) error {
	var prefixes []string
	err := readList(r, "clients", func(line []byte) error {
		p, err := parseClientLine(line)
		if err != nil {
			return err
		}
		prefixes = append(prefixes, p)
		return nil
	})
	if err != nil {
		return err
	}
	l.Set(prefixes...)
	return nil
}

func parseClientLine(line []byte) (string, error) {
	var p string
	var rest []byte
	if line[0] == '"' {
		q, err := strconv.QuotedPrefix(string(line))
		if err != nil {
			return "", fmt.Errorf("invalid quoted prefix %s", quoteShort(line))
		}
		p, _ = strconv.Unquote(q)
		rest = line[len(q):]
		if len(rest) > 0 && !asciiSpace(rest[0]) {
			return "", fmt.Errorf("unexpected %s after the quoted prefix", quoteShort(rest))
		}
		rest = trimBlanks(rest)
	} else {
		var f []byte
		f, rest = nextField(line)
		for _, c := range f {
			if c <= ' ' || c >= 0x7f {
				return "", fmt.Errorf("invalid byte %q in prefix %s: quote the prefix", c, quoteShort(f))
			}
		}
		p = string(f)
	}
	switch {
	case p == "":
		return "", errors.New("empty prefix")
	case len(p) > len(PeerID{}):
		return "", fmt.Errorf("prefix %s is longer than a peer id (%d bytes)", quoteShort([]byte(p)), len(PeerID{}))
	case !endOfLine(rest):
		return "", fmt.Errorf("unexpected %s after the prefix", quoteShort(rest))
	}
	return p, nil
}

// prefixSet is a ClientList's content: the prefixes, sorted, without any
// that begins with another (a peer id that matches the longer matches the
// shorter). In such a list, a prefix of a peer id is always the greatest
// entry not above the peer id, so one binary search finds it.
type prefixSet struct {
	sorted []string
}

func newPrefixSet(prefixes []string) *prefixSet {
	all := slices.Clone(prefixes)
	slices.Sort(all)
	kept := all[:0]
	for _, p := range all {
		if len(p) > len(PeerID{}) {
			continue
		}
		// Sorted, every entry that begins with some kept prefix follows it
		// directly or after other such entries, so comparing with the last
		// kept one is enough.
		if len(kept) > 0 && strings.HasPrefix(p, kept[len(kept)-1]) {
			continue
		}
		kept = append(kept, p)
	}
	return &prefixSet{sorted: slices.Clip(kept)}
}

func (s *prefixSet) match(id *PeerID) bool {
	if s == nil {
		return false
	}
	// Find the first entry above the peer id.
	lo, hi := 0, len(s.sorted)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if string(id[:]) >= s.sorted[m] {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo > 0 && strings.HasPrefix(string(id[:]), s.sorted[lo-1])
}

// LoadError reports a malformed line in a list given to a Load method.
type LoadError struct {
	// List names the list: "passkeys", "torrents" or "clients".
	List string
	// Line is the number of the line, counted from 1.
	Line int
	// Err says what is wrong with it.
	Err error
}

// Error returns the error with the list's name and the line number, as in
// "tracker: passkeys line 12: invalid user id "x"".
func (e *LoadError) Error() string {
	return fmt.Sprintf("tracker: %s line %d: %v", e.List, e.Line, e.Err)
}

// Unwrap returns e.Err.
func (e *LoadError) Unwrap() error { return e.Err }

// maxListLine bounds the length of a line in a list file.
const maxListLine = 64 << 10

var errLineTooLong = fmt.Errorf("line longer than %d bytes", maxListLine)

// readList calls parse with every line of r that holds more than blanks and
// a comment, its leading blanks removed. It stops at the first error.
func readList(r io.Reader, what string, parse func(line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxListLine)
	n := 0
	for sc.Scan() {
		n++
		line := trimBlanks(sc.Bytes())
		if endOfLine(line) {
			continue
		}
		if err := parse(line); err != nil {
			return &LoadError{List: what, Line: n, Err: err}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return &LoadError{List: what, Line: n + 1, Err: errLineTooLong}
		}
		return fmt.Errorf("tracker: reading %s: %w", what, err)
	}
	return nil
}

// asciiSpace reports whether c separates fields.
func asciiSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
}

func trimBlanks(b []byte) []byte {
	for len(b) > 0 && asciiSpace(b[0]) {
		b = b[1:]
	}
	return b
}

// nextField splits b, which begins with a field, into that field and the
// rest with its leading blanks removed.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && !asciiSpace(b[i]) {
		i++
	}
	return b[:i], trimBlanks(b[i:])
}

// endOfLine reports whether rest, with no leading blanks, holds nothing
// but a comment.
func endOfLine(rest []byte) bool {
	return len(rest) == 0 || rest[0] == '#'
}

// quoteShort quotes b for an error message, cut to a readable length.
func quoteShort(b []byte) string {
	const max = 48
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	return strconv.Quote(string(b))
}
