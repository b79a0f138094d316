// Package workload generates the announces of a private tracker's members
// as accounting records, deterministically from a seed, and computes what a
// backend should hold after them with [accounting.Credit] over plain maps.
// Benchmarks, the crash test and the scale command share it.
package workload

import (
	"encoding/binary"
	"math/rand/v2"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
)

// Config sizes a generated population. Peer i belongs to user i mod Users
// and sits on one torrent drawn from its index.
type Config struct {
	Users, Peers, Torrents int
	// Seed makes two generators with the same Config produce the same
	// records.
	Seed uint64
	// Start is the time of the first batch, in Unix nanoseconds. If zero,
	// 2026-01-01.
	Start int64
	// Interval is the time between two batches. If zero, one second.
	Interval time.Duration
}

// Gen produces batches of records. Each peer runs sessions: a started
// announce, periodic ones with growing counters, a completion when a
// leecher's Left reaches zero, a stopped announce, then a new session with
// counters from zero under the same peer id. About one record in a
// thousand is sent twice in a row, as a retried request would be.
type Gen struct {
	cfg  Config
	rng  *rand.Rand
	n    []uint32 // announces of the peer's current session so far
	sess []uint16 // the peer's session number
	now  int64
}

// New returns a generator for cfg.
func New(cfg Config) *Gen {
	if cfg.Start == 0 {
		cfg.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	return &Gen{
		cfg:  cfg,
		rng:  rand.New(rand.NewPCG(cfg.Seed, 0x616e6e75)),
		n:    make([]uint32, cfg.Peers),
		sess: make([]uint16, cfg.Peers),
		now:  cfg.Start,
	}
}

// Config returns the generator's configuration with defaults filled in.
func (g *Gen) Config() Config { return g.cfg }

// Now returns the time of the next batch, in Unix nanoseconds.
func (g *Gen) Now() int64 { return g.now }

// Fill appends a batch of n records in which peers from, from+1, ...
// announce in turn (wrapping around): the way to give every peer a
// baseline before a measurement.
func (g *Gen) Fill(dst []accounting.Record, from, n int) []accounting.Record {
	return g.batch(dst, n, func(j int) int { return (from + j) % g.cfg.Peers })
}

// Next appends a batch of n records of peers drawn at random.
func (g *Gen) Next(dst []accounting.Record, n int) []accounting.Record {
	return g.batch(dst, n, func(int) int { return g.rng.IntN(g.cfg.Peers) })
}

func (g *Gen) batch(dst []accounting.Record, n int, pick func(j int) int) []accounting.Record {
	step := int64(g.cfg.Interval) / int64(max(n, 1))
	for j := range n {
		i := pick(j)
		dst = append(dst, g.announce(i, g.now+int64(j)*step))
		if g.rng.IntN(1000) == 0 {
			dst = append(dst, dst[len(dst)-1])
		}
	}
	g.now += int64(g.cfg.Interval)
	return dst
}

// mix is splitmix64's finalizer: the peer's fixed traits come from it.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// Torrent returns the info hash of torrent t.
func (g *Gen) Torrent(t int) tracker.InfoHash {
	var h tracker.InfoHash
	binary.LittleEndian.PutUint64(h[0:], mix(g.cfg.Seed^uint64(t)<<1))
	binary.LittleEndian.PutUint64(h[8:], mix(uint64(t)))
	binary.LittleEndian.PutUint32(h[16:], uint32(t))
	return h
}

// User returns the user id of user u: ids start at 1.
func (g *Gen) User(u int) uint64 { return uint64(u) + 1 }

// TorrentFactors returns torrent t's factors in percent: every tenth
// torrent is freeleech, every seventeenth has double upload.
func TorrentFactors(t int) (up, down uint16) {
	up, down = 100, 100
	if t%10 == 0 {
		down = 0
	}
	if t%17 == 0 {
		up = 200
	}
	return up, down
}

// UserFactors returns user u's factors in percent: every fiftieth member
// has a personal bonus on upload.
func UserFactors(u int) (up, down uint16) {
	if u%50 == 0 {
		return 150, 100
	}
	return 100, 100
}

func (g *Gen) announce(i int, now int64) accounting.Record {
	h := mix(g.cfg.Seed ^ uint64(i))
	t := int(h % uint64(g.cfg.Torrents))
	u := i % g.cfg.Users
	size := int64(100<<20) + int64(h>>40)<<12 // 100 MiB to 64 GiB
	upRate := int64(h>>20&0xffff) << 10
	downRate := size/int64(4+h>>8&15) + 1 // done in 4 to 19 announces
	seeder := h&3 == 0
	sessionLen := 20 + uint32(h>>12&63)

	tu, td := TorrentFactors(t)
	uu, ud := UserFactors(u)
	r := accounting.Record{
		User:       g.User(u),
		InfoHash:   g.Torrent(t),
		Key:        uint32(mix(h^uint64(g.sess[i]))) | 1,
		Time:       now,
		UpFactor:   accounting.Factor(tu, uu, 100),
		DownFactor: accounting.Factor(td, ud, 100),
	}
	copy(r.PeerID[:], "-qB5010-")
	binary.LittleEndian.PutUint64(r.PeerID[8:], h)
	binary.LittleEndian.PutUint32(r.PeerID[16:], uint32(i))

	k := int64(g.n[i])
	r.Uploaded = k * upRate
	r.Left = 0
	if !seeder {
		r.Downloaded = min(k*downRate, size)
		r.Left = size - r.Downloaded
	}
	switch {
	case k == 0:
		r.Event = tracker.EventStarted
	case uint32(k) >= sessionLen:
		r.Event = tracker.EventStopped
	case !seeder && r.Left == 0 && (k-1)*downRate < size:
		r.Event = tracker.EventCompleted
	}
	if r.Event == tracker.EventStopped {
		g.n[i] = 0
		g.sess[i]++
	} else {
		g.n[i]++
	}
	return r
}
