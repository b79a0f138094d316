package accounting

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/annuaire/tracker"
)

// The spool file holds records the backend has not taken yet, oldest
// first: a header, then fixed-size records, each with a checksum. It is
// only appended to, synced before the records it holds count as safe,
// read from the front as the backend takes them, and removed once they
// are all applied.
const (
	spoolMagic   = "annuaire-spool-1"
	spoolRecSize = 112 + 4 // the fields, then a CRC-32C of them
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// spool is the Ledger's spool file. Only the flusher uses it, but for
// Stats, which reads pending through the Ledger's counters.
type spool struct {
	path string
	f    *os.File // nil while there is no file
	size int64    // end of the last whole record
	read int64    // offset of the first record not applied
	buf  []byte
}

// openSpool opens the spool at path if a crash left one. A crash can
// leave the last write torn (that write was never synced, so no one was
// told its records were safe): the file is cut at its first damaged
// record, and cut says how many records, whole or not, were dropped.
func openSpool(path string) (s *spool, cut int, err error) {
	s = &spool{path: path}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return s, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("accounting: spool: %w", err)
	}
	fail := func(err error) (*spool, int, error) {
		f.Close()
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("accounting: spool: %w", err))
	}
	head := make([]byte, len(spoolMagic))
	if _, err := io.ReadFull(f, head); err != nil || string(head) != spoolMagic {
		return fail(fmt.Errorf("accounting: spool %s: not a spool file: move it away", path))
	}
	s.f, s.read, s.size = f, int64(len(spoolMagic)), int64(len(spoolMagic))
	var r Record
	buf := make([]byte, spoolRecSize)
	for s.size+spoolRecSize <= fi.Size() {
		if _, err := f.ReadAt(buf, s.size); err != nil {
			return fail(fmt.Errorf("accounting: spool: %w", err))
		}
		if !decodeRecord(buf, &r) {
			break
		}
		s.size += spoolRecSize
	}
	if s.size != fi.Size() {
		cut = int((fi.Size() - s.size + spoolRecSize - 1) / spoolRecSize)
		if err := f.Truncate(s.size); err != nil {
			return fail(fmt.Errorf("accounting: spool: %w", err))
		}
	}
	if s.pending() == 0 {
		return s, cut, s.remove()
	}
	return s, cut, nil
}

// pending returns how many records the spool holds that are not applied.
func (s *spool) pending() int { return int((s.size - s.read) / spoolRecSize) }

// append writes recs at the end of the spool and syncs it.
func (s *spool) append(recs []Record) error {
	if s.f == nil {
		if err := s.create(); err != nil {
			return err
		}
	}
	s.buf = s.buf[:0]
	for i := range recs {
		s.buf = appendRecord(s.buf, &recs[i])
	}
	if _, err := s.f.WriteAt(s.buf, s.size); err != nil {
		return fmt.Errorf("accounting: spool: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("accounting: spool: %w", err)
	}
	s.size += int64(len(s.buf))
	return nil
}

func (s *spool) create() error {
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("accounting: spool: %w", err)
	}
	if _, err := f.WriteString(spoolMagic); err != nil {
		f.Close()
		return fmt.Errorf("accounting: spool: %w", err)
	}
	s.f, s.size, s.read = f, int64(len(spoolMagic)), int64(len(spoolMagic))
	syncDir(filepath.Dir(s.path))
	return nil
}

// syncDir makes a new file's name durable where the system allows it
// (Windows cannot sync a directory; there it is a no-op).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// next reads up to len(dst) records from the front of the spool into dst.
func (s *spool) next(dst []Record) ([]Record, error) {
	n := min(len(dst), s.pending())
	need := n * spoolRecSize
	if cap(s.buf) < need {
		s.buf = make([]byte, need)
	}
	buf := s.buf[:need]
	if _, err := s.f.ReadAt(buf, s.read); err != nil {
		return nil, fmt.Errorf("accounting: spool: %w", err)
	}
	for i := range n {
		if !decodeRecord(buf[i*spoolRecSize:], &dst[i]) {
			return nil, fmt.Errorf("accounting: spool %s: record at offset %d is damaged", s.path, s.read+int64(i*spoolRecSize))
		}
	}
	return dst[:n], nil
}

// commit marks the first n records applied, and removes the file once
// they all are.
func (s *spool) commit(n int) error {
	s.read += int64(n) * spoolRecSize
	if s.read < s.size {
		return nil
	}
	return s.remove()
}

func (s *spool) remove() error {
	if s.f == nil {
		return nil
	}
	s.f.Close()
	s.f, s.size, s.read = nil, 0, 0
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("accounting: spool: %w", err)
	}
	return nil
}

func (s *spool) close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// appendRecord appends r's encoding, checksum included.
func appendRecord(b []byte, r *Record) []byte {
	start := len(b)
	b = binary.BigEndian.AppendUint64(b, r.User)
	b = append(b, r.InfoHash[:]...)
	b = append(b, r.PeerID[:]...)
	b = binary.BigEndian.AppendUint32(b, r.Key)
	a := r.Addr.Addr()
	var family byte
	switch {
	case a.Is4():
		family = 4
	case a.Is6():
		family = 6
	}
	a16 := a.As16()
	if family == 0 {
		a16 = [16]byte{}
	}
	b = append(b, a16[:]...)
	b = binary.BigEndian.AppendUint16(b, r.Addr.Port())
	b = append(b, family)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Uploaded))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Downloaded))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Left))
	b = append(b, byte(r.Event))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time))
	b = binary.BigEndian.AppendUint32(b, r.UpFactor)
	b = binary.BigEndian.AppendUint32(b, r.DownFactor)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], crcTable))
}

// decodeRecord decodes one record from the front of b into r, and reports
// whether its checksum held.
func decodeRecord(b []byte, r *Record) bool {
	if len(b) < spoolRecSize {
		return false
	}
	b = b[:spoolRecSize]
	body := b[:spoolRecSize-4]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(b[spoolRecSize-4:]) {
		return false
	}
	r.User = binary.BigEndian.Uint64(body)
	copy(r.InfoHash[:], body[8:28])
	copy(r.PeerID[:], body[28:48])
	r.Key = binary.BigEndian.Uint32(body[48:])
	var a16 [16]byte
	copy(a16[:], body[52:68])
	port := binary.BigEndian.Uint16(body[68:])
	switch body[70] {
	case 4:
		r.Addr = netip.AddrPortFrom(netip.AddrFrom16(a16).Unmap(), port)
	case 6:
		r.Addr = netip.AddrPortFrom(netip.AddrFrom16(a16), port)
	default:
		r.Addr = netip.AddrPort{}
	}
	r.Uploaded = int64(binary.BigEndian.Uint64(body[71:]))
	r.Downloaded = int64(binary.BigEndian.Uint64(body[79:]))
	r.Left = int64(binary.BigEndian.Uint64(body[87:]))
	r.Event = tracker.Event(body[95])
	r.Time = int64(binary.BigEndian.Uint64(body[96:]))
	r.UpFactor = binary.BigEndian.Uint32(body[104:])
	r.DownFactor = binary.BigEndian.Uint32(body[108:])
	return true
}
