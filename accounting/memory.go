package accounting

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/annuaire/tracker"
)

// errBackendClosed is returned by a memory backend used after Close.
var errBackendClosed = errors.New("accounting: memory backend closed")

// NewMemoryBackend returns a [Backend] that keeps everything in memory: it
// loses it all when the process ends, so it serves tests, examples and
// trackers that need the rules without the durability. It is the
// reference implementation of the interfaces: Apply applies [Credit] to
// each record under one lock, which makes a batch atomic.
//
// Records of a user the backend does not hold (deleted since the
// announce) credit nothing. Records of a torrent it does not hold credit
// the user and the user's history, not the torrent's totals.
func NewMemoryBackend(rules Rules) Backend {
	return &memBackend{
		rules:    rules,
		users:    map[uint64]*memUser{},
		gone:     map[uint64]uint64{},
		torrents: map[tracker.InfoHash]*memTorrent{},
	}
}

type memBackend struct {
	rules Rules

	mu       sync.Mutex
	closed   bool
	version  uint64
	users    map[uint64]*memUser
	gone     map[uint64]uint64 // deleted user ids, by the version of their deletion
	torrents map[tracker.InfoHash]*memTorrent
}

type memUser struct {
	User
	version uint64
	totals  UserTotals // Seeding and Leeching are counted when read
	rows    map[tracker.InfoHash]*memRow
}

type memTorrent struct {
	Torrent
	version uint64
	totals  TorrentTotals // Seeders and Leechers are counted when read
}

// memRow is a user's history on one torrent, with the baselines of the
// user's peers on it.
type memRow struct {
	History  // Active is computed when read
	snatched bool
	peers    []memPeer
}

type memPeer struct {
	id tracker.PeerID
	b  Baseline
}

func (m *memBackend) lock() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errBackendClosed
	}
	return nil
}

func (m *memBackend) Apply(ctx context.Context, batch []Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	for i := range batch {
		m.apply(&batch[i])
	}
	return nil
}

func (m *memBackend) apply(r *Record) {
	u := m.users[r.User]
	if u == nil {
		return
	}
	row := u.rows[r.InfoHash]
	if row == nil {
		row = &memRow{History: History{InfoHash: r.InfoHash, FirstSeen: time.Unix(0, r.Time)}}
		u.rows[r.InfoHash] = row
	}
	var p *memPeer
	for i := range row.peers {
		if row.peers[i].id == r.PeerID {
			p = &row.peers[i]
		}
	}
	known := p != nil
	if !known {
		row.peers = append(row.peers, memPeer{id: r.PeerID})
		p = &row.peers[len(row.peers)-1]
	}
	d := Credit(p.b, known, r, m.rules)
	p.b = d.Baseline
	if d.Stale {
		return
	}
	h := &row.History
	h.Uploaded += d.Up
	h.Downloaded += d.Down
	h.RawUploaded += d.RawUp
	h.RawDownloaded += d.RawDown
	h.SeedTime += d.SeedTime
	at := time.Unix(0, r.Time)
	h.FirstSeen = minTime(h.FirstSeen, at)
	if at.After(h.LastSeen) {
		h.LastSeen = at
	}
	u.totals.Uploaded += d.Up
	u.totals.Downloaded += d.Down
	u.totals.RawUploaded += d.RawUp
	u.totals.RawDownloaded += d.RawDown
	t := m.torrents[r.InfoHash]
	if t != nil {
		t.totals.Uploaded += d.Up
		t.totals.Downloaded += d.Down
	}
	if d.Snatch && !row.snatched {
		row.snatched = true
		h.CompletedAt = at
		u.totals.Snatches++
		if t != nil {
			t.totals.Snatches++
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (m *memBackend) PutUser(ctx context.Context, u User) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.version++
	if u.Deleted {
		if _, ok := m.users[u.ID]; ok {
			delete(m.users, u.ID)
			m.gone[u.ID] = m.version
		}
		return nil
	}
	delete(m.gone, u.ID)
	mu := m.users[u.ID]
	if mu == nil {
		mu = &memUser{totals: UserTotals{ID: u.ID}, rows: map[tracker.InfoHash]*memRow{}}
		m.users[u.ID] = mu
	}
	mu.User, mu.version = u, m.version
	return nil
}

func (m *memBackend) PutTorrent(ctx context.Context, t Torrent) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.version++
	mt := m.torrents[t.InfoHash]
	if mt == nil {
		mt = &memTorrent{totals: TorrentTotals{InfoHash: t.InfoHash}}
		m.torrents[t.InfoHash] = mt
	}
	mt.Torrent, mt.version = t, m.version
	return nil
}

func (m *memBackend) Changes(ctx context.Context, since uint64) ([]User, []Torrent, uint64, error) {
	if err := m.lock(); err != nil {
		return nil, nil, 0, err
	}
	defer m.mu.Unlock()
	var users []User
	var torrents []Torrent
	for _, u := range m.users {
		if u.version > since {
			users = append(users, u.User)
		}
	}
	if since > 0 {
		for id, v := range m.gone {
			if v > since {
				users = append(users, User{ID: id, Deleted: true})
			}
		}
	}
	for _, t := range m.torrents {
		if t.version > since {
			torrents = append(torrents, t.Torrent)
		}
	}
	return users, torrents, m.version, nil
}

// count adds row's active peers, those that have not stopped and
// announced within the peer TTL, to seeding and leeching.
func (m *memBackend) count(row *memRow, now time.Time, seeding, leeching *int64) {
	for _, p := range row.peers {
		switch {
		case p.b.Stopped || m.rules.PeerTTL > 0 && now.Sub(time.Unix(0, p.b.Time)) > m.rules.PeerTTL:
		case p.b.Left == 0:
			*seeding++
		default:
			*leeching++
		}
	}
}

func (m *memBackend) User(ctx context.Context, id uint64) (UserTotals, error) {
	if err := m.lock(); err != nil {
		return UserTotals{}, err
	}
	defer m.mu.Unlock()
	u := m.users[id]
	if u == nil {
		return UserTotals{}, ErrNotFound
	}
	tot := u.totals
	now := time.Now()
	for _, row := range u.rows {
		m.count(row, now, &tot.Seeding, &tot.Leeching)
	}
	return tot, nil
}

func (m *memBackend) UserTorrents(ctx context.Context, id uint64) ([]History, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	u := m.users[id]
	if u == nil {
		return nil, ErrNotFound
	}
	now := time.Now()
	rows := make([]History, 0, len(u.rows))
	for _, row := range u.rows {
		h := row.History
		var seeding, leeching int64
		m.count(row, now, &seeding, &leeching)
		h.Active = seeding+leeching > 0
		rows = append(rows, h)
	}
	slices.SortFunc(rows, func(a, b History) int { return a.FirstSeen.Compare(b.FirstSeen) })
	return rows, nil
}

func (m *memBackend) Torrent(ctx context.Context, h tracker.InfoHash) (TorrentTotals, error) {
	if err := m.lock(); err != nil {
		return TorrentTotals{}, err
	}
	defer m.mu.Unlock()
	t := m.torrents[h]
	if t == nil {
		return TorrentTotals{}, ErrNotFound
	}
	tot := t.totals
	now := time.Now()
	for _, u := range m.users {
		if row := u.rows[h]; row != nil {
			m.count(row, now, &tot.Seeders, &tot.Leechers)
		}
	}
	return tot, nil
}

func (m *memBackend) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
