package logdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/annuaire/tracker/accounting"
)

// A log file holds what happened since a snapshot, one frame per
// transaction:
//
//	header: "annuaire logdb L" | schema u32 | generation u64 |
//	        PeerTTL, SeedGap, ReplayWindow i64 | CRC-32C of the above u32
//	frame:  length u32 | CRC-32C of the payload u32 | payload
//	payload: op u8, then the op's fields
//
// A log is replayed with the Rules of its header: the Rules a database is
// opened with apply to the log it starts, so that a replay gives what the
// live ledger gave.

const (
	logMagic      = "annuaire logdb L"
	logHeaderSize = 16 + 4 + 8 + 3*8 + 4
	maxFrame      = 1 << 30
)

// Ops of a frame.
const (
	opApply      = 1 // count u32, records
	opPutUser    = 2 // id u64, flags u8, factors u16 u16, passkey length u8, passkey
	opPutTorrent = 3 // info hash, factors u16 u16, flags u8, reason length u32, reason
)

func logName(gen uint64) string { return fmt.Sprintf("log-%016x", gen) }

// logGens returns the generations of the log files in dir, in order.
func logGens(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var gens []uint64
	for _, e := range ents {
		hex, ok := strings.CutPrefix(e.Name(), "log-")
		if !ok || len(hex) != 16 {
			continue
		}
		g, err := strconv.ParseUint(hex, 16, 64)
		if err != nil {
			continue
		}
		gens = append(gens, g)
	}
	slices.Sort(gens)
	return gens, nil
}

func appendLogHeader(b []byte, gen uint64, rules accounting.Rules) []byte {
	b = append(b, logMagic...)
	b = a32(b, schemaVersion)
	b = a64(b, gen)
	b = a64(b, uint64(rules.PeerTTL))
	b = a64(b, uint64(rules.SeedGap))
	b = a64(b, uint64(rules.ReplayWindow))
	return a32(b, crc32.Checksum(b, castagnoli))
}

// createLog creates log file gen, durably.
func createLog(dir string, gen uint64, rules accounting.Rules) (*os.File, error) {
	name := filepath.Join(dir, logName(gen))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(appendLogHeader(nil, gen, rules)); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// putFrameHeader fills the first 8 bytes of frame, the header of the
// payload that follows them.
func putFrameHeader(frame []byte) {
	binary.LittleEndian.PutUint32(frame, uint32(len(frame)-8))
	binary.LittleEndian.PutUint32(frame[4:], crc32.Checksum(frame[8:], castagnoli))
}

// replayLog reads log file gen and hands each frame's payload to fn with
// the log's Rules. It returns the size of the file up to the last whole
// frame and the number of frames. A torn or damaged frame ends the log:
// it is an error unless last is set (the log a crash may have cut short).
func replayLog(dir string, gen uint64, last bool, fn func(rules accounting.Rules, payload []byte) error) (size int64, frames int, err error) {
	f, err := os.Open(filepath.Join(dir, logName(gen)))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var hdr [logHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if last && (err == io.EOF || err == io.ErrUnexpectedEOF) {
			return 0, 0, nil // created, not yet durable
		}
		return 0, 0, fmt.Errorf("%w: %s: header: %v", ErrCorrupt, logName(gen), err)
	}
	d := dec{hdr[:]}
	var magic [16]byte
	d.take(magic[:])
	version, g := d.u32(), d.u64()
	rules := accounting.Rules{PeerTTL: time.Duration(d.i64()), SeedGap: time.Duration(d.i64()), ReplayWindow: time.Duration(d.i64())}
	switch {
	case string(magic[:]) != logMagic || crc32.Checksum(hdr[:logHeaderSize-4], castagnoli) != d.u32():
		if last {
			return 0, 0, nil
		}
		return 0, 0, fmt.Errorf("%w: %s: bad header", ErrCorrupt, logName(gen))
	case version > schemaVersion:
		return 0, 0, fmt.Errorf("%w: %s has schema version %d; this build reads up to %d", ErrSchema, logName(gen), version, schemaVersion)
	case g != gen:
		return 0, 0, fmt.Errorf("%w: %s says it is generation %d", ErrCorrupt, logName(gen), g)
	}
	size = logHeaderSize
	var payload []byte
	for {
		var fh [8]byte
		n, err := io.ReadFull(r, fh[:])
		if err == io.EOF {
			return size, frames, nil
		}
		bad := err
		length, sum := binary.LittleEndian.Uint32(fh[:]), binary.LittleEndian.Uint32(fh[4:])
		if bad == nil && length > maxFrame {
			bad = fmt.Errorf("frame of %d bytes", length)
		}
		if bad == nil {
			payload = slices.Grow(payload[:0], int(length))[:length]
			if _, err := io.ReadFull(r, payload); err != nil {
				bad = err
			} else if crc32.Checksum(payload, castagnoli) != sum {
				bad = errors.New("checksum mismatch")
			}
		}
		if bad != nil {
			if last {
				return size, frames, nil
			}
			return 0, 0, fmt.Errorf("%w: %s at offset %d (%d bytes read): %v", ErrCorrupt, logName(gen), size, n, bad)
		}
		if err := fn(rules, payload); err != nil {
			return 0, 0, fmt.Errorf("%s at offset %d: %w", logName(gen), size, err)
		}
		size += 8 + int64(length)
		frames++
	}
}

// applyPayload applies a frame's payload to s. recs is scratch space.
func (s *state) applyPayload(payload []byte, recs *[]accounting.Record) error {
	if len(payload) == 0 {
		return fmt.Errorf("%w: empty frame", ErrCorrupt)
	}
	d := dec{payload[1:]}
	switch payload[0] {
	case opApply:
		if len(d.b) < 4 {
			return fmt.Errorf("%w: short batch", ErrCorrupt)
		}
		n := int(d.u32())
		if len(d.b) != n*recordSize {
			return fmt.Errorf("%w: batch of %d records in %d bytes", ErrCorrupt, n, len(d.b))
		}
		if err := s.reserve(n); err != nil {
			return err
		}
		*recs = slices.Grow((*recs)[:0], n)[:n]
		for i := range *recs {
			decodeRecord(&d, &(*recs)[i])
		}
		for i := range *recs {
			s.apply(&(*recs)[i])
		}
	case opPutUser:
		if len(d.b) < 8+1+4+1 || len(d.b) != 8+1+4+1+int(d.b[13]) || d.b[13] > maxPasskey {
			return fmt.Errorf("%w: bad user", ErrCorrupt)
		}
		u := accounting.User{ID: d.u64()}
		flags := d.u8()
		u.Deleted, u.CanLeech = flags&deleted != 0, flags&canLeech != 0
		u.UpFactor, u.DownFactor = d.u16(), d.u16()
		n := d.u8()
		u.Passkey = string(d.b[:n])
		if err := s.users.reserve(1); err != nil {
			return err
		}
		s.putUser(&u)
	case opPutTorrent:
		if len(d.b) < 20+4+1+4 || uint64(len(d.b)) != 20+4+1+4+uint64(binary.LittleEndian.Uint32(d.b[25:])) {
			return fmt.Errorf("%w: bad torrent", ErrCorrupt)
		}
		var t accounting.Torrent
		d.take(t.InfoHash[:])
		t.UpFactor, t.DownFactor = d.u16(), d.u16()
		t.Deleted = d.u8()&deleted != 0
		n := d.u32()
		t.Reason = string(d.b[:n])
		if err := s.torrents.reserve(1); err != nil {
			return err
		}
		s.putTorrent(&t)
	default:
		return fmt.Errorf("%w: unknown op %d", ErrCorrupt, payload[0])
	}
	return nil
}

func appendApply(b []byte, batch []accounting.Record) []byte {
	b = append(b, opApply)
	b = a32(b, uint32(len(batch)))
	for i := range batch {
		b = appendRecord(b, &batch[i])
	}
	return b
}

func appendPutUser(b []byte, u *accounting.User) []byte {
	var flags uint8
	if u.Deleted {
		flags |= deleted
	}
	if u.CanLeech {
		flags |= canLeech
	}
	b = append(b, opPutUser)
	b = a64(b, u.ID)
	b = append(b, flags)
	b = a16(b, u.UpFactor)
	b = a16(b, u.DownFactor)
	b = append(b, uint8(len(u.Passkey)))
	return append(b, u.Passkey...)
}

func appendPutTorrent(b []byte, t *accounting.Torrent) []byte {
	var flags uint8
	if t.Deleted {
		flags |= deleted
	}
	b = append(b, opPutTorrent)
	b = append(b, t.InfoHash[:]...)
	b = a16(b, t.UpFactor)
	b = a16(b, t.DownFactor)
	b = append(b, flags)
	b = a32(b, uint32(len(t.Reason)))
	return append(b, t.Reason...)
}
