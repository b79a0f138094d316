package accountingtest_test

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/accountingtest"
)

// naive is a second backend, written apart from the memory backend, with
// flaws that can be switched on: the suite must pass it sound and fail
// each flaw.
type naive struct {
	rules accounting.Rules
	flaw  string

	mu       sync.Mutex
	version  uint64
	users    map[uint64]accounting.User
	torrents map[tracker.InfoHash]accounting.Torrent
	changed  map[any]uint64 // user id or info hash: version of its last change
	base     map[peerKey]accounting.Baseline
	ut       map[uint64]accounting.UserTotals
	tt       map[tracker.InfoHash]accounting.TorrentTotals
	hist     map[rowKey]accounting.History
	snatched map[any]bool
}

type peerKey struct {
	rowKey
	id tracker.PeerID
}

type rowKey struct {
	user uint64
	ih   tracker.InfoHash
}

// The flaws.
const (
	// cachedBaselines reads the baselines a batch needs, then computes
	// and writes the credits apart: two transactions can credit one
	// peer's bytes against the same baseline.
	cachedBaselines = "cached-baselines"
	// snatchPerPeer counts a snatch per peer rather than per user and
	// torrent.
	snatchPerPeer = "snatch-per-peer"
)

func newNaive(rules accounting.Rules, flaw string) *naive {
	return &naive{
		rules: rules, flaw: flaw,
		users: map[uint64]accounting.User{}, torrents: map[tracker.InfoHash]accounting.Torrent{},
		changed: map[any]uint64{}, base: map[peerKey]accounting.Baseline{},
		ut: map[uint64]accounting.UserTotals{}, tt: map[tracker.InfoHash]accounting.TorrentTotals{},
		hist: map[rowKey]accounting.History{}, snatched: map[any]bool{},
	}
}

func (n *naive) Apply(ctx context.Context, batch []accounting.Record) error {
	n.mu.Lock()
	if n.flaw == cachedBaselines {
		cache := map[peerKey]accounting.Baseline{}
		for _, r := range batch {
			k := peerKey{rowKey{r.User, r.InfoHash}, r.PeerID}
			if b, ok := n.base[k]; ok {
				cache[k] = b
			}
		}
		n.mu.Unlock()
		time.Sleep(50 * time.Microsecond) // a round trip to the database
		n.mu.Lock()
		for i := range batch {
			r := &batch[i]
			k := peerKey{rowKey{r.User, r.InfoHash}, r.PeerID}
			b, known := cache[k]
			d := accounting.Credit(b, known, r, n.rules)
			cache[k] = d.Baseline
			n.add(r, d)
		}
		n.mu.Unlock()
		return nil
	}
	defer n.mu.Unlock()
	for i := range batch {
		r := &batch[i]
		k := peerKey{rowKey{r.User, r.InfoHash}, r.PeerID}
		b, known := n.base[k]
		n.add(r, accounting.Credit(b, known, r, n.rules))
	}
	return nil
}

// add adds what d credits for r. The caller holds n.mu.
func (n *naive) add(r *accounting.Record, d accounting.Delta) {
	if _, ok := n.users[r.User]; !ok {
		return
	}
	k := peerKey{rowKey{r.User, r.InfoHash}, r.PeerID}
	n.base[k] = d.Baseline
	if d.Stale {
		return
	}
	at := time.Unix(0, r.Time)
	h, seen := n.hist[k.rowKey]
	if !seen {
		h = accounting.History{InfoHash: r.InfoHash, FirstSeen: at, LastSeen: at}
	}
	h.Uploaded, h.Downloaded = h.Uploaded+d.Up, h.Downloaded+d.Down
	h.RawUploaded, h.RawDownloaded = h.RawUploaded+d.RawUp, h.RawDownloaded+d.RawDown
	h.SeedTime += d.SeedTime
	if at.After(h.LastSeen) {
		h.LastSeen = at
	}
	u, t := n.ut[r.User], n.tt[r.InfoHash]
	u.Uploaded, u.Downloaded = u.Uploaded+d.Up, u.Downloaded+d.Down
	u.RawUploaded, u.RawDownloaded = u.RawUploaded+d.RawUp, u.RawDownloaded+d.RawDown
	t.Uploaded, t.Downloaded = t.Uploaded+d.Up, t.Downloaded+d.Down
	var once any = k.rowKey
	if n.flaw == snatchPerPeer {
		once = k
	}
	if d.Snatch && !n.snatched[once] {
		n.snatched[once] = true
		if h.CompletedAt.IsZero() {
			h.CompletedAt = at
		}
		u.Snatches++
		t.Snatches++
	}
	n.hist[k.rowKey], n.ut[r.User] = h, u
	if _, ok := n.torrents[r.InfoHash]; ok {
		n.tt[r.InfoHash] = t
	}
}

func (n *naive) PutUser(ctx context.Context, u accounting.User) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.version++
	n.changed[u.ID] = n.version
	if u.Deleted {
		delete(n.users, u.ID)
		delete(n.ut, u.ID)
		return nil
	}
	n.users[u.ID] = u
	return nil
}

func (n *naive) PutTorrent(ctx context.Context, t accounting.Torrent) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.version++
	n.changed[t.InfoHash] = n.version
	n.torrents[t.InfoHash] = t
	return nil
}

func (n *naive) Changes(ctx context.Context, since uint64) ([]accounting.User, []accounting.Torrent, uint64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var users []accounting.User
	var torrents []accounting.Torrent
	for key, v := range n.changed {
		if v <= since {
			continue
		}
		switch key := key.(type) {
		case uint64:
			u, ok := n.users[key]
			if !ok {
				u = accounting.User{ID: key, Deleted: true}
			}
			users = append(users, u)
		case tracker.InfoHash:
			torrents = append(torrents, n.torrents[key])
		}
	}
	return users, torrents, n.version, nil
}

// live counts the active peers matching keep: seeding and leeching.
func (n *naive) live(keep func(peerKey) bool) (seed, leech int64) {
	for k, b := range n.base {
		if !keep(k) || b.Stopped || time.Since(time.Unix(0, b.Time)) > n.rules.PeerTTL {
			continue
		}
		if b.Left == 0 {
			seed++
		} else {
			leech++
		}
	}
	return seed, leech
}

func (n *naive) User(ctx context.Context, id uint64) (accounting.UserTotals, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.users[id]; !ok {
		return accounting.UserTotals{}, accounting.ErrNotFound
	}
	u := n.ut[id]
	u.ID = id
	u.Seeding, u.Leeching = n.live(func(k peerKey) bool { return k.user == id })
	return u, nil
}

func (n *naive) UserTorrents(ctx context.Context, id uint64) ([]accounting.History, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.users[id]; !ok {
		return nil, accounting.ErrNotFound
	}
	rows := []accounting.History{}
	for _, k := range slices.Collect(maps.Keys(n.hist)) {
		if k.user == id {
			h := n.hist[k]
			s, l := n.live(func(p peerKey) bool { return p.rowKey == k })
			h.Active = s+l > 0
			rows = append(rows, h)
		}
	}
	return rows, nil
}

func (n *naive) Torrent(ctx context.Context, ih tracker.InfoHash) (accounting.TorrentTotals, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.torrents[ih]; !ok {
		return accounting.TorrentTotals{}, accounting.ErrNotFound
	}
	t := n.tt[ih]
	t.InfoHash = ih
	t.Seeders, t.Leechers = n.live(func(k peerKey) bool { return k.ih == ih })
	return t, nil
}

func (n *naive) Close() error { return nil }

const flawEnv = "ACCOUNTINGTEST_FLAW"

// TestNaiveBackend runs the suite on the naive backend: sound, it passes;
// with the flaw named in the environment (see TestSuiteFailsFlaws), it
// must fail.
func TestNaiveBackend(t *testing.T) {
	flaw := os.Getenv(flawEnv)
	accountingtest.TestBackend(t, func(t *testing.T, rules accounting.Rules) accounting.Backend {
		return newNaive(rules, flaw)
	}, accountingtest.Announces(4000))
}

// TestSuiteFailsFlaws runs the suite, in a child process, on backends
// with a flaw each, and checks that the subtests meant to catch the flaw
// fail.
func TestSuiteFailsFlaws(t *testing.T) {
	if os.Getenv(flawEnv) != "" {
		t.Skip("the child process runs TestNaiveBackend only")
	}
	for _, tc := range []struct {
		flaw string
		fail []string
	}{
		{cachedBaselines, []string{"ConcurrentPeer"}},
		{snatchPerPeer, []string{"SnatchOnce"}},
	} {
		t.Run(tc.flaw, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestNaiveBackend$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), flawEnv+"="+tc.flaw)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a backend with the flaw %s:\n%s", tc.flaw, out)
			}
			for _, name := range tc.fail {
				if !strings.Contains(string(out), "--- FAIL: TestNaiveBackend/"+name+" ") {
					t.Errorf("with the flaw %s, subtest %s did not fail:\n%s", tc.flaw, name, out)
				}
			}
		})
	}
}
