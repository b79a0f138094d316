package logdb

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
)

// Every integer on disk is little-endian.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// dec reads fields off the front of b. Callers check lengths first.
type dec struct{ b []byte }

func (d *dec) u64() uint64     { v := binary.LittleEndian.Uint64(d.b); d.b = d.b[8:]; return v }
func (d *dec) i64() int64      { return int64(d.u64()) }
func (d *dec) u32() uint32     { v := binary.LittleEndian.Uint32(d.b); d.b = d.b[4:]; return v }
func (d *dec) u16() uint16     { v := binary.LittleEndian.Uint16(d.b); d.b = d.b[2:]; return v }
func (d *dec) u8() uint8       { v := d.b[0]; d.b = d.b[1:]; return v }
func (d *dec) take(dst []byte) { d.b = d.b[copy(dst, d.b):] }

var (
	a64 = binary.LittleEndian.AppendUint64
	a32 = binary.LittleEndian.AppendUint32
	a16 = binary.LittleEndian.AppendUint16
)

// recordSize is the size of an encoded record. Its address is not kept:
// the ledger does not use it.
const recordSize = 8 + 20 + 20 + 4 + 3*8 + 1 + 8 + 2*4

func appendRecord(b []byte, r *accounting.Record) []byte {
	b = a64(b, r.User)
	b = append(b, r.InfoHash[:]...)
	b = append(b, r.PeerID[:]...)
	b = a32(b, r.Key)
	b = a64(b, uint64(r.Uploaded))
	b = a64(b, uint64(r.Downloaded))
	b = a64(b, uint64(r.Left))
	b = append(b, byte(r.Event))
	b = a64(b, uint64(r.Time))
	b = a32(b, r.UpFactor)
	return a32(b, r.DownFactor)
}

func decodeRecord(d *dec, r *accounting.Record) {
	*r = accounting.Record{User: d.u64()}
	d.take(r.InfoHash[:])
	d.take(r.PeerID[:])
	r.Key = d.u32()
	r.Uploaded, r.Downloaded, r.Left = d.i64(), d.i64(), d.i64()
	r.Event = tracker.Event(d.u8())
	r.Time = d.i64()
	r.UpFactor, r.DownFactor = d.u32(), d.u32()
}

// Encoded row sizes in a snapshot.
const (
	userRowSize    = 8 + 5*8 + 8 + 4 + 2 + 2 + 1 + 1 + maxPasskey
	torrentRowSize = 20 + 2 + 2 + 1 + 4 + 3*8 + 8
	histRowSize    = 6*4 + 8*8
	peerRowSize    = 4 + 20 + 4 + 4 + 4*8 + 1
)

func (u *userRow) append(b []byte) []byte {
	b = a64(b, u.id)
	for _, v := range [...]int64{u.up, u.down, u.rawUp, u.rawDown, u.snatches} {
		b = a64(b, uint64(v))
	}
	b = a64(b, u.version)
	b = a32(b, u.firstHist)
	b = a16(b, u.upFactor)
	b = a16(b, u.downFactor)
	b = append(b, u.flags, u.passkeyLen)
	return append(b, u.passkey[:]...)
}

func (u *userRow) decode(d *dec) {
	u.id = d.u64()
	u.up, u.down, u.rawUp, u.rawDown, u.snatches = d.i64(), d.i64(), d.i64(), d.i64(), d.i64()
	u.version = d.u64()
	u.firstHist = d.u32()
	u.upFactor, u.downFactor = d.u16(), d.u16()
	u.flags, u.passkeyLen = d.u8(), d.u8()
	d.take(u.passkey[:])
}

func (t *torrentRow) append(b []byte) []byte {
	b = append(b, t.hash[:]...)
	b = a16(b, t.upFactor)
	b = a16(b, t.downFactor)
	b = append(b, t.flags)
	b = a32(b, t.firstHist)
	b = a64(b, uint64(t.up))
	b = a64(b, uint64(t.down))
	b = a64(b, uint64(t.snatches))
	return a64(b, t.version)
}

func (t *torrentRow) decode(d *dec) {
	d.take(t.hash[:])
	t.upFactor, t.downFactor = d.u16(), d.u16()
	t.flags = d.u8()
	t.firstHist = d.u32()
	t.up, t.down, t.snatches = d.i64(), d.i64(), d.i64()
	t.version = d.u64()
}

func (h *histRow) append(b []byte) []byte {
	for _, v := range [...]uint32{h.user, h.torrent, h.nextOfUser, h.nextOfTorrent, h.firstPeer, h.flags} {
		b = a32(b, v)
	}
	for _, v := range [...]int64{h.up, h.down, h.rawUp, h.rawDown, h.seed, h.first, h.last, h.completed} {
		b = a64(b, uint64(v))
	}
	return b
}

func (h *histRow) decode(d *dec) {
	h.user, h.torrent, h.nextOfUser, h.nextOfTorrent, h.firstPeer, h.flags = d.u32(), d.u32(), d.u32(), d.u32(), d.u32(), d.u32()
	h.up, h.down, h.rawUp, h.rawDown = d.i64(), d.i64(), d.i64(), d.i64()
	h.seed, h.first, h.last, h.completed = d.i64(), d.i64(), d.i64(), d.i64()
}

func (p *peerRow) append(b []byte) []byte {
	b = a32(b, p.hist)
	b = append(b, p.peer[:]...)
	b = a32(b, p.next)
	b = a32(b, p.key)
	for _, v := range [...]int64{p.up, p.down, p.left, p.time} {
		b = a64(b, uint64(v))
	}
	return append(b, p.flags)
}

func (p *peerRow) decode(d *dec) {
	p.hist = d.u32()
	d.take(p.peer[:])
	p.next, p.key = d.u32(), d.u32()
	p.up, p.down, p.left, p.time = d.i64(), d.i64(), d.i64(), d.i64()
	p.flags = d.u8()
}
