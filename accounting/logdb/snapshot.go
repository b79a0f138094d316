package logdb

import (
	"bufio"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"sync"

	"github.com/annuaire/tracker/accounting"
)

// A snapshot holds the whole ledger as of the start of a log generation:
//
//	"annuaire logdb S" | schema u32 | next log generation u64 |
//	directory version u64 | users, torrents, histories, baselines u32 |
//	the rows of each table, in row order |
//	reasons: count u32, then row u32 | length u32 | reason |
//	CRC-32C of everything before u32
//
// It is written to snapshot.tmp, synced and renamed over snapshot, so that
// a crash leaves the old one or the new one. Migrations from older schema
// versions will read the old layout and write a new snapshot the same
// way: running one twice does what running it once did.

const (
	snapMagic      = "annuaire logdb S"
	snapName       = "snapshot"
	snapTmpName    = "snapshot.tmp"
	snapHeaderSize = 16 + 4 + 8 + 8 + 4*4
)

// schemaVersion is the version of the files this build writes.
const schemaVersion = 1

type crcWriter struct {
	w        *bufio.Writer
	crc      hash.Hash32
	buf      []byte
	progress func() // called after each block of rows, if not nil
}

func (c *crcWriter) flush() error {
	c.crc.Write(c.buf)
	_, err := c.w.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// freeze begins a snapshot of s that log generation next will follow.
// Until thaw, the rows change as usual: the snapshot gets them as they
// were now.
func (s *state) freeze(next uint64) *snapshotHeader {
	s.saved.Store(0)
	s.users.freeze(&s.saved)
	s.torrents.freeze(&s.saved)
	s.hist.freeze(&s.saved)
	s.peers.freeze(&s.saved)
	return &snapshotHeader{next: next, version: s.version, reasons: maps.Clone(s.reasons)}
}

func (s *state) thaw() {
	s.users.snap, s.torrents.snap, s.hist.snap, s.peers.snap = nil, nil, nil, nil
	s.saved.Store(0)
}

// snapshotHeader is what a snapshot holds besides the rows.
type snapshotHeader struct {
	next, version uint64
	reasons       map[uint32]string
}

// snapshotBlock is how many rows a snapshot writes at a time, holding the
// lock that keeps them from changing.
var snapshotBlock uint32 = 4096

// writeSnapshot writes the snapshot that s was frozen for to w. It holds
// l (a read lock of s) while it reads rows, and calls progress (if not
// nil) after each block of them.
func (s *state) writeSnapshot(w io.Writer, hdr *snapshotHeader, l sync.Locker, progress func()) error {
	c := &crcWriter{w: bufio.NewWriterSize(w, 1<<20), crc: crc32.New(castagnoli), buf: make([]byte, 0, 1<<20), progress: progress}
	c.buf = append(c.buf, snapMagic...)
	c.buf = a32(c.buf, schemaVersion)
	c.buf = a64(c.buf, hdr.next)
	c.buf = a64(c.buf, hdr.version)
	for _, n := range [...]uint32{s.users.snap.n, s.torrents.snap.n, s.hist.snap.n, s.peers.snap.n} {
		c.buf = a32(c.buf, n)
	}
	err := errors.Join(
		writeFrozen(c, s.users, (*userRow).append, l),
		writeFrozen(c, s.torrents, (*torrentRow).append, l),
		writeFrozen(c, s.hist, (*histRow).append, l),
		writeFrozen(c, s.peers, (*peerRow).append, l),
	)
	if err != nil {
		return err
	}
	c.buf = a32(c.buf, uint32(len(hdr.reasons)))
	for row, reason := range hdr.reasons {
		c.buf = a32(c.buf, row)
		c.buf = a32(c.buf, uint32(len(reason)))
		c.buf = append(c.buf, reason...)
	}
	if err := c.flush(); err != nil {
		return err
	}
	c.buf = a32(c.buf, c.crc.Sum32())
	if _, err := c.w.Write(c.buf); err != nil {
		return err
	}
	return c.w.Flush()
}

func writeFrozen[K comparable, T any](c *crcWriter, t *table[K, T], enc func(*T, []byte) []byte, l sync.Locker) error {
	for t.snap.cursor < t.snap.n {
		l.Lock()
		c.buf = t.appendFrozen(c.buf, min(t.snap.cursor+snapshotBlock, t.snap.n), enc)
		l.Unlock()
		if c.progress != nil {
			c.progress()
		}
		if err := c.flush(); err != nil {
			return err
		}
	}
	return nil
}

type crcReader struct {
	r   *bufio.Reader
	crc hash.Hash32
	buf []byte
}

// next returns the next n bytes.
func (c *crcReader) next(n int) ([]byte, error) {
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	b := c.buf[:n]
	if _, err := io.ReadFull(c.r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	c.crc.Write(b)
	return b, nil
}

// readSnapshot reads a snapshot into a new state and returns the log
// generation that follows it.
func readSnapshot(f *os.File, rules accounting.Rules) (_ *state, next uint64, err error) {
	c := &crcReader{r: bufio.NewReaderSize(f, 1<<20), crc: crc32.New(castagnoli)}
	b, err := c.next(snapHeaderSize)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: snapshot header: %v", ErrCorrupt, err)
	}
	if string(b[:16]) != snapMagic {
		return nil, 0, fmt.Errorf("%w: not a snapshot", ErrCorrupt)
	}
	d := dec{b[16:]}
	if v := d.u32(); v > schemaVersion {
		return nil, 0, fmt.Errorf("%w: the snapshot has schema version %d; this build reads up to %d", ErrSchema, v, schemaVersion)
	} else if v < 1 {
		return nil, 0, fmt.Errorf("%w: schema version %d", ErrCorrupt, v)
	}
	next = d.u64()
	s := newState(rules)
	defer func() {
		if err != nil {
			s.free()
		}
	}()
	s.version = d.u64()
	nu, nt, nh, np := d.u32(), d.u32(), d.u32(), d.u32()
	if err := errors.Join(s.users.reserve(int(nu)), s.torrents.reserve(int(nt)), s.hist.reserve(int(nh)), s.peers.reserve(int(np))); err != nil {
		return nil, 0, err
	}
	err = errors.Join(
		readTable(c, s.users, nu, userRowSize, (*userRow).decode),
		readTable(c, s.torrents, nt, torrentRowSize, (*torrentRow).decode),
		readTable(c, s.hist, nh, histRowSize, (*histRow).decode),
		readTable(c, s.peers, np, peerRowSize, (*peerRow).decode),
	)
	if err != nil {
		return nil, 0, err
	}
	if err := s.checkLinks(); err != nil {
		return nil, 0, err
	}
	b, err = c.next(4)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: snapshot: %v", ErrCorrupt, err)
	}
	for n := (&dec{b}).u32(); n > 0; n-- {
		b, err := c.next(8)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: snapshot: %v", ErrCorrupt, err)
		}
		d := dec{b}
		row, size := d.u32(), d.u32()
		if row >= nt || size > maxFrame {
			return nil, 0, fmt.Errorf("%w: snapshot: bad reason", ErrCorrupt)
		}
		reason, err := c.next(int(size))
		if err != nil {
			return nil, 0, fmt.Errorf("%w: snapshot: %v", ErrCorrupt, err)
		}
		s.reasons[row] = string(reason)
	}
	sum := c.crc.Sum32()
	b, err = c.next(4)
	if err != nil || (&dec{b}).u32() != sum {
		return nil, 0, fmt.Errorf("%w: snapshot checksum", ErrCorrupt)
	}
	s.rebuildChanges()
	return s, next, nil
}

// readTable reads n rows of size bytes into t, which has room for them,
// a block at a time.
func readTable[K comparable, T any](c *crcReader, t *table[K, T], n uint32, size int, decode func(*T, *dec)) error {
	for n > 0 {
		k := min(n, snapshotBlock)
		b, err := c.next(int(k) * size)
		if err != nil {
			return fmt.Errorf("%w: snapshot: %v", ErrCorrupt, err)
		}
		for j := range int(k) {
			var r T
			decode(&r, &dec{b[j*size : (j+1)*size]})
			i, added := t.findOrAdd(t.keyOf(&r))
			if !added {
				return fmt.Errorf("%w: a key twice in the snapshot", ErrCorrupt)
			}
			*t.at(i) = r
		}
		n -= k
	}
	return nil
}

// checkLinks checks that every row a row refers to exists, so that a
// damaged snapshot fails to open rather than crashing a report.
func (s *state) checkLinks() error {
	bad := func(what string) error { return fmt.Errorf("%w: snapshot: bad %s link", ErrCorrupt, what) }
	for i := range s.users.n {
		if s.users.at(i).firstHist > s.hist.n {
			return bad("user")
		}
	}
	for i := range s.torrents.n {
		if s.torrents.at(i).firstHist > s.hist.n {
			return bad("torrent")
		}
	}
	for i := range s.hist.n {
		h := s.hist.at(i)
		if h.user >= s.users.n || h.torrent >= s.torrents.n || h.nextOfUser > s.hist.n || h.nextOfTorrent > s.hist.n || h.firstPeer > s.peers.n {
			return bad("history")
		}
	}
	for i := range s.peers.n {
		if p := s.peers.at(i); p.hist >= s.hist.n || p.next > s.peers.n {
			return bad("baseline")
		}
	}
	return nil
}
