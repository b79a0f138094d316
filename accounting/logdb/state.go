package logdb

import (
	"bytes"
	"cmp"
	"slices"
	"sync/atomic"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
)

// Row flags.
const (
	registered = 1 << iota // put by the site (PutUser, PutTorrent)
	deleted
	canLeech
	snatched
	stopped
)

// none ends a list of rows; links hold row+1.
const none = 0

type userRow struct {
	id                                 uint64
	up, down, rawUp, rawDown, snatches int64
	version                            uint64
	firstHist                          uint32 // the user's history rows, through histRow.nextOfUser
	upFactor, downFactor               uint16
	flags                              uint8
	passkeyLen                         uint8
	passkey                            [maxPasskey]byte
}

// maxPasskey is the longest passkey a user row holds.
const maxPasskey = 32

type torrentRow struct {
	hash                 tracker.InfoHash
	upFactor, downFactor uint16
	flags                uint8
	firstHist            uint32 // the torrent's history rows, through histRow.nextOfTorrent
	up, down, snatches   int64
	version              uint64
}

type histKey struct{ user, torrent uint32 }

type histRow struct {
	histKey
	nextOfUser, nextOfTorrent uint32
	firstPeer                 uint32 // the baselines, through peerRow.next
	flags                     uint32
	up, down, rawUp, rawDown  int64
	seed                      int64
	first, last, completed    int64
}

type peerKey struct {
	hist uint32
	peer tracker.PeerID
}

type peerRow struct {
	peerKey
	next                 uint32
	key                  uint32
	up, down, left, time int64
	flags                uint8
}

// state is the ledger in memory. Its methods do not lock: DB does.
type state struct {
	rules      accounting.Rules
	users      *table[uint64, userRow]
	torrents   *table[tracker.InfoHash, torrentRow]
	hist       *table[histKey, histRow]
	peers      *table[peerKey, peerRow]
	reasons    map[uint32]string // deleted torrents' reasons, by row
	version    uint64            // of the directory
	changes    []change          // in version order; superseded entries are skipped
	superseded int               // entries of changes that are
	saved      atomic.Int64      // bytes of rows kept for the snapshot being written
}

// change is a directory version: the row of a user or a torrent that it
// changed.
type change struct {
	version uint64
	row     uint32
	torrent bool
}

func newState(rules accounting.Rules) *state {
	return &state{
		rules:    rules,
		users:    newTable(func(u *userRow) uint64 { return u.id }),
		torrents: newTable(func(t *torrentRow) tracker.InfoHash { return t.hash }),
		hist:     newTable(func(h *histRow) histKey { return h.histKey }),
		peers:    newTable(func(p *peerRow) peerKey { return p.peerKey }),
		reasons:  make(map[uint32]string),
	}
}

func (s *state) free() {
	s.users.free()
	s.torrents.free()
	s.hist.free()
	s.peers.free()
}

// reserve makes room for n records, so that applying them cannot fail.
func (s *state) reserve(n int) error {
	if err := s.users.reserve(n); err != nil {
		return err
	}
	if err := s.torrents.reserve(n); err != nil {
		return err
	}
	if err := s.hist.reserve(n); err != nil {
		return err
	}
	return s.peers.reserve(n)
}

func (s *state) user(id uint64) (uint32, *userRow) {
	i, added := s.users.findOrAdd(id)
	u := s.users.at(i)
	if added {
		u.id = id
	}
	return i, u
}

func (s *state) torrent(h tracker.InfoHash) (uint32, *torrentRow) {
	i, added := s.torrents.findOrAdd(h)
	t := s.torrents.at(i)
	if added {
		t.hash = h
	}
	return i, t
}

// apply applies one record as accounting.Credit says; reserve must have
// made room for it.
func (s *state) apply(r *accounting.Record) {
	ui, u := s.user(r.User)
	ti, t := s.torrent(r.InfoHash)
	hi, added := s.hist.findOrAdd(histKey{ui, ti})
	pi, fresh := s.peers.findOrAdd(peerKey{hi, r.PeerID})
	s.users.touch(ui)
	s.torrents.touch(ti)
	s.hist.touch(hi)
	s.peers.touch(pi)
	h, p := s.hist.at(hi), s.peers.at(pi)
	if added {
		h.histKey = histKey{ui, ti}
		h.nextOfUser, u.firstHist = u.firstHist, hi+1
		h.nextOfTorrent, t.firstHist = t.firstHist, hi+1
		h.first, h.last = r.Time, r.Time
	}
	if fresh {
		p.peerKey = peerKey{hi, r.PeerID}
		p.next, h.firstPeer = h.firstPeer, pi+1
	}
	b := accounting.Baseline{Uploaded: p.up, Downloaded: p.down, Left: p.left, Key: p.key, Time: p.time, Stopped: p.flags&stopped != 0}
	d := accounting.Credit(b, !fresh, r, s.rules)
	if d.Stale {
		return
	}
	nb := &d.Baseline
	p.up, p.down, p.left, p.key, p.time = nb.Uploaded, nb.Downloaded, nb.Left, nb.Key, nb.Time
	p.flags = 0
	if nb.Stopped {
		p.flags = stopped
	}
	u.up += d.Up
	u.down += d.Down
	u.rawUp += d.RawUp
	u.rawDown += d.RawDown
	t.up += d.Up
	t.down += d.Down
	h.up += d.Up
	h.down += d.Down
	h.rawUp += d.RawUp
	h.rawDown += d.RawDown
	h.seed += int64(d.SeedTime)
	h.first = min(h.first, r.Time)
	h.last = max(h.last, r.Time)
	if d.Snatch && h.flags&snatched == 0 {
		h.flags |= snatched
		h.completed = r.Time
		u.snatches++
		t.snatches++
	}
}

// changed gives the row of a user or a torrent, whose version was old,
// the next directory version.
func (s *state) changed(row uint32, torrent bool, old uint64) uint64 {
	if old != 0 {
		s.superseded++
	}
	s.version++
	s.changes = append(s.changes, change{version: s.version, row: row, torrent: torrent})
	return s.version
}

// putUser applies PutUser; the caller has made room for a row.
func (s *state) putUser(u *accounting.User) {
	i, row := s.user(u.ID)
	s.users.touch(i)
	row.version = s.changed(i, false, row.version)
	row.flags = row.flags&^(deleted|canLeech) | registered
	if u.Deleted {
		row.flags |= deleted
	}
	if u.CanLeech {
		row.flags |= canLeech
	}
	row.upFactor, row.downFactor = u.UpFactor, u.DownFactor
	row.passkey = [maxPasskey]byte{}
	row.passkeyLen = uint8(copy(row.passkey[:], u.Passkey))
}

// putTorrent applies PutTorrent; the caller has made room for a row.
func (s *state) putTorrent(t *accounting.Torrent) {
	i, row := s.torrent(t.InfoHash)
	s.torrents.touch(i)
	row.version = s.changed(i, true, row.version)
	row.flags = row.flags&^deleted | registered
	delete(s.reasons, i)
	if t.Deleted {
		row.flags |= deleted
		if t.Reason != "" {
			s.reasons[i] = t.Reason
		}
	}
	row.upFactor, row.downFactor = t.UpFactor, t.DownFactor
}

// compactChanges drops the superseded entries of the change list once
// they are most of it.
func (s *state) compactChanges() {
	if len(s.changes) < 1024 || s.superseded*2 < len(s.changes) {
		return
	}
	s.changes = slices.DeleteFunc(s.changes, func(c change) bool { return !s.current(c) })
	s.superseded = 0
}

// current reports whether c is the latest change of its row.
func (s *state) current(c change) bool {
	if c.torrent {
		return s.torrents.at(c.row).version == c.version
	}
	return s.users.at(c.row).version == c.version
}

// rebuildChanges rebuilds the change list from the rows' versions.
func (s *state) rebuildChanges() {
	s.changes = s.changes[:0]
	for i := range s.users.n {
		if v := s.users.at(i).version; v != 0 {
			s.changes = append(s.changes, change{version: v, row: i})
		}
	}
	for i := range s.torrents.n {
		if v := s.torrents.at(i).version; v != 0 {
			s.changes = append(s.changes, change{version: v, row: i, torrent: true})
		}
	}
	slices.SortFunc(s.changes, func(a, b change) int { return cmp.Compare(a.version, b.version) })
}

func (s *state) changesSince(since uint64) (users []accounting.User, torrents []accounting.Torrent) {
	i, _ := slices.BinarySearchFunc(s.changes, since+1, func(c change, v uint64) int {
		switch {
		case c.version < v:
			return -1
		case c.version > v:
			return 1
		}
		return 0
	})
	for _, c := range s.changes[i:] {
		if !s.current(c) {
			continue
		}
		if c.torrent {
			t := s.torrents.at(c.row)
			torrents = append(torrents, accounting.Torrent{InfoHash: t.hash, UpFactor: t.upFactor, DownFactor: t.downFactor,
				Deleted: t.flags&deleted != 0, Reason: s.reasons[c.row]})
			continue
		}
		u := s.users.at(c.row)
		users = append(users, accounting.User{ID: u.id, Passkey: string(u.passkey[:u.passkeyLen]), CanLeech: u.flags&canLeech != 0,
			UpFactor: u.upFactor, DownFactor: u.downFactor, Deleted: u.flags&deleted != 0})
	}
	return users, torrents
}

func (s *state) ttl() int64 {
	if s.rules.PeerTTL == 0 {
		return int64(45 * time.Minute)
	}
	return int64(s.rules.PeerTTL)
}

// peersOf counts the live peers of history row h at now.
func (s *state) peersOf(h *histRow, now int64) (seeding, leeching int64) {
	for p := h.firstPeer; p != none; {
		r := s.peers.at(p - 1)
		if r.flags&stopped == 0 && now-r.time <= s.ttl() {
			if r.left == 0 {
				seeding++
			} else {
				leeching++
			}
		}
		p = r.next
	}
	return seeding, leeching
}

func (s *state) userTotals(id uint64, now int64) (accounting.UserTotals, bool) {
	i, ok := s.users.find(id)
	if !ok || s.users.at(i).flags&deleted != 0 {
		return accounting.UserTotals{}, false
	}
	u := s.users.at(i)
	t := accounting.UserTotals{ID: id, Uploaded: u.up, Downloaded: u.down, RawUploaded: u.rawUp, RawDownloaded: u.rawDown, Snatches: u.snatches}
	for h := u.firstHist; h != none; h = s.hist.at(h - 1).nextOfUser {
		sd, lc := s.peersOf(s.hist.at(h-1), now)
		t.Seeding += sd
		t.Leeching += lc
	}
	return t, true
}

func (s *state) userTorrents(id uint64, now int64) ([]accounting.History, bool) {
	i, ok := s.users.find(id)
	if !ok || s.users.at(i).flags&deleted != 0 {
		return nil, false
	}
	out := []accounting.History{}
	for h := s.users.at(i).firstHist; h != none; h = s.hist.at(h - 1).nextOfUser {
		r := s.hist.at(h - 1)
		sd, lc := s.peersOf(r, now)
		e := accounting.History{
			InfoHash: s.torrents.at(r.torrent).hash,
			Uploaded: r.up, Downloaded: r.down, RawUploaded: r.rawUp, RawDownloaded: r.rawDown,
			SeedTime:  time.Duration(r.seed),
			FirstSeen: time.Unix(0, r.first), LastSeen: time.Unix(0, r.last),
			Active: sd+lc > 0,
		}
		if r.flags&snatched != 0 {
			e.CompletedAt = time.Unix(0, r.completed)
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b accounting.History) int { return bytes.Compare(a.InfoHash[:], b.InfoHash[:]) })
	return out, true
}

func (s *state) torrentTotals(h tracker.InfoHash, now int64) (accounting.TorrentTotals, bool) {
	i, ok := s.torrents.find(h)
	if !ok {
		return accounting.TorrentTotals{}, false
	}
	t := s.torrents.at(i)
	out := accounting.TorrentTotals{InfoHash: h, Snatches: t.snatches, Uploaded: t.up, Downloaded: t.down}
	for r := t.firstHist; r != none; r = s.hist.at(r - 1).nextOfTorrent {
		sd, lc := s.peersOf(s.hist.at(r-1), now)
		out.Seeders += sd
		out.Leechers += lc
	}
	return out, true
}
