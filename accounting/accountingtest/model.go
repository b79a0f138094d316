package accountingtest

import (
	"bytes"
	"slices"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
)

// Model is the ledger computed the plain way: [accounting.Credit] over Go
// maps, record after record. It is what a backend must hold after the same
// records.
type Model struct {
	Rules    accounting.Rules
	Base     map[PeerKey]accounting.Baseline
	Users    map[uint64]*accounting.UserTotals
	Torrents map[tracker.InfoHash]*accounting.TorrentTotals
	History  map[HistKey]*accounting.History
}

// PeerKey names a baseline.
type PeerKey struct {
	User     uint64
	InfoHash tracker.InfoHash
	PeerID   tracker.PeerID
}

// HistKey names a user's history on a torrent.
type HistKey struct {
	User     uint64
	InfoHash tracker.InfoHash
}

// NewModel returns an empty model.
func NewModel(rules accounting.Rules) *Model {
	return &Model{
		Rules:    rules,
		Base:     make(map[PeerKey]accounting.Baseline),
		Users:    make(map[uint64]*accounting.UserTotals),
		Torrents: make(map[tracker.InfoHash]*accounting.TorrentTotals),
		History:  make(map[HistKey]*accounting.History),
	}
}

// Apply applies batch the way a backend's Apply must.
func (m *Model) Apply(batch []accounting.Record) {
	for i := range batch {
		r := &batch[i]
		k := PeerKey{r.User, r.InfoHash, r.PeerID}
		b, known := m.Base[k]
		d := accounting.Credit(b, known, r, m.Rules)
		m.Base[k] = d.Baseline
		if d.Stale {
			continue
		}
		u := m.Users[r.User]
		if u == nil {
			u = &accounting.UserTotals{ID: r.User}
			m.Users[r.User] = u
		}
		t := m.Torrents[r.InfoHash]
		if t == nil {
			t = &accounting.TorrentTotals{InfoHash: r.InfoHash}
			m.Torrents[r.InfoHash] = t
		}
		h := m.History[HistKey{r.User, r.InfoHash}]
		at := time.Unix(0, r.Time)
		if h == nil {
			h = &accounting.History{InfoHash: r.InfoHash, FirstSeen: at, LastSeen: at}
			m.History[HistKey{r.User, r.InfoHash}] = h
		}
		u.Uploaded += d.Up
		u.Downloaded += d.Down
		u.RawUploaded += d.RawUp
		u.RawDownloaded += d.RawDown
		t.Uploaded += d.Up
		t.Downloaded += d.Down
		h.Uploaded += d.Up
		h.Downloaded += d.Down
		h.RawUploaded += d.RawUp
		h.RawDownloaded += d.RawDown
		h.SeedTime += d.SeedTime
		if at.Before(h.FirstSeen) {
			h.FirstSeen = at
		}
		if at.After(h.LastSeen) {
			h.LastSeen = at
		}
		if d.Snatch && h.CompletedAt.IsZero() {
			h.CompletedAt = at
			u.Snatches++
			t.Snatches++
		}
	}
}

func (m *Model) ttl() int64 {
	if m.Rules.PeerTTL == 0 {
		return int64(45 * time.Minute)
	}
	return int64(m.Rules.PeerTTL)
}

// active reports whether baseline b counts as a live peer at now.
func (m *Model) active(b accounting.Baseline, now int64) bool {
	return !b.Stopped && now-b.Time <= m.ttl()
}

// live counts the live peers at now among the baselines whose keys match.
func (m *Model) live(now time.Time, match func(PeerKey) bool) (seeding, leeching int64) {
	for k, b := range m.Base {
		if match(k) && m.active(b, now.UnixNano()) {
			if b.Left == 0 {
				seeding++
			} else {
				leeching++
			}
		}
	}
	return seeding, leeching
}

// User returns what Reports.User should return at now.
func (m *Model) User(id uint64, now time.Time) (accounting.UserTotals, bool) {
	u := m.Users[id]
	if u == nil {
		return accounting.UserTotals{}, false
	}
	t := *u
	t.Seeding, t.Leeching = m.live(now, func(k PeerKey) bool { return k.User == id })
	return t, true
}

// Torrent returns what Reports.Torrent should return at now.
func (m *Model) Torrent(h tracker.InfoHash, now time.Time) (accounting.TorrentTotals, bool) {
	tt := m.Torrents[h]
	if tt == nil {
		return accounting.TorrentTotals{}, false
	}
	t := *tt
	t.Seeders, t.Leechers = m.live(now, func(k PeerKey) bool { return k.InfoHash == h })
	return t, true
}

// UserTorrents returns what Reports.UserTorrents should return at now,
// sorted by info hash.
func (m *Model) UserTorrents(id uint64, now time.Time) []accounting.History {
	var out []accounting.History
	for k, h := range m.History {
		if k.User != id {
			continue
		}
		c := *h
		sd, lc := m.live(now, func(pk PeerKey) bool { return pk.User == id && pk.InfoHash == k.InfoHash })
		c.Active = sd+lc > 0
		out = append(out, c)
	}
	SortHistory(out)
	return out
}

// SortHistory sorts rows by info hash.
func SortHistory(rows []accounting.History) {
	slices.SortFunc(rows, func(a, b accounting.History) int { return bytes.Compare(a.InfoHash[:], b.InfoHash[:]) })
}
