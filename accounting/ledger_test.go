package accounting_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/accountingtest"
	"github.com/annuaire/tracker/trackertest"
)

var (
	ctx     = context.Background()
	discard = slog.New(slog.DiscardHandler)
	rules   = accounting.Rules{PeerTTL: time.Hour, SeedGap: 45 * time.Minute}
)

// env is a tracker over a Ledger over a Flaky memory backend, which
// outlives the Ledger so that tests can read it after Close.
type env struct {
	t  *testing.T
	b  accounting.Backend
	f  *accountingtest.Flaky
	l  *accounting.Ledger
	tr *tracker.Tracker
}

func newEnv(t *testing.T, cfg accounting.Config) *env {
	t.Helper()
	e := &env{t: t, b: accounting.NewMemoryBackend(rules)}
	e.f = accountingtest.NewFlaky(e.b)
	e.f.KeepOpen()
	for id := range uint64(3) {
		if err := e.b.PutUser(ctx, accounting.User{ID: id + 1, Passkey: accountingtest.Passkey(id + 1), CanLeech: true, UpFactor: 100, DownFactor: 100}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.b.PutTorrent(ctx, accounting.Torrent{InfoHash: trackertest.Hash(1), UpFactor: 100, DownFactor: 100}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.b.Close() }) // after the Ledger's Close: cleanups run last first
	e.open(cfg)
	return e
}

func (e *env) open(cfg accounting.Config) {
	e.t.Helper()
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = 5 * time.Millisecond
	}
	if cfg.MaxRetryDelay == 0 {
		cfg.MaxRetryDelay = 20 * time.Millisecond
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = tracker.Disabled
	}
	cfg.Logger = discard
	l, err := accounting.Open(ctx, e.f, cfg)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	tr, err := tracker.New(tracker.Config{Passkeys: l, Torrents: l, Accounting: l, Logger: discard})
	if err != nil {
		e.t.Fatal(err)
	}
	e.l, e.tr = l, tr
	e.t.Cleanup(func() {
		tr.Close()
		l.Close(ctx)
	})
}

// announce makes peer n of user announce torrent ih.
func (e *env) announce(user uint64, ih tracker.InfoHash, n int, up, down, left int64, ev tracker.Event) error {
	req := tracker.AnnounceRequest{
		InfoHash: ih, PeerID: trackertest.ID(n), Addr: trackertest.Addr4(n), Key: uint32(n),
		Uploaded: up, Downloaded: down, Left: left, Event: ev, NumWant: -1,
		Passkey: accountingtest.Passkey(user),
	}
	_, err := e.tr.Announce(ctx, &req)
	return err
}

func (e *env) mustAnnounce(user uint64, n int, up, down, left int64, ev tracker.Event) {
	e.t.Helper()
	if err := e.announce(user, trackertest.Hash(1), n, up, down, left, ev); err != nil {
		e.t.Fatalf("announce of user %d, peer %d: %v", user, n, err)
	}
}

func (e *env) flush() {
	e.t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := e.l.Flush(c); err != nil {
		e.t.Fatalf("Flush: %v", err)
	}
}

func (e *env) totals(id uint64) accounting.UserTotals {
	e.t.Helper()
	u, err := e.b.User(ctx, id)
	if err != nil {
		e.t.Fatalf("User(%d): %v", id, err)
	}
	return u
}

func TestLedgerPolicies(t *testing.T) {
	e := newEnv(t, accounting.Config{})
	id, err := e.l.ValidatePasskey(ctx, accountingtest.Passkey(2))
	if err != nil || id.UserID != 2 {
		t.Fatalf("ValidatePasskey of user 2's passkey = %+v, %v; want user 2", id, err)
	}
	if _, err := e.l.ValidatePasskey(ctx, accountingtest.Passkey(9)); err != tracker.ErrInvalidPasskey {
		t.Errorf("ValidatePasskey of an unknown passkey: %v; want ErrInvalidPasskey", err)
	}
	if err := e.announce(1, trackertest.Hash(2), 1, 0, 0, 10, tracker.EventStarted); !errors.Is(err, tracker.ErrUnregisteredTorrent) {
		t.Errorf("announce of a torrent never registered: %v; want ErrUnregisteredTorrent", err)
	}
	if err := e.l.DeleteTorrent(ctx, trackertest.Hash(1), "dupe of a better release"); err != nil {
		t.Fatal(err)
	}
	err = e.announce(1, trackertest.Hash(1), 1, 0, 0, 10, tracker.EventStarted)
	if te, ok := errors.AsType[*tracker.Error](err); !ok || te.Kind != tracker.KindTorrent || te.Reason != "unregistered torrent: dupe of a better release" {
		t.Errorf("announce of a deleted torrent: %v; want KindTorrent %q", err, "unregistered torrent: dupe of a better release")
	}
	if err := e.l.PutTorrent(ctx, accounting.Torrent{InfoHash: trackertest.Hash(1), UpFactor: 100, DownFactor: 100}); err != nil {
		t.Fatal(err)
	}
	e.mustAnnounce(1, 1, 0, 0, 10, tracker.EventStarted)

	// A user who may not leech may seed, and stop.
	if err := e.l.PutUser(ctx, accounting.User{ID: 3, Passkey: accountingtest.Passkey(3), UpFactor: 100, DownFactor: 100}); err != nil {
		t.Fatal(err)
	}
	if err := e.announce(3, trackertest.Hash(1), 3, 0, 0, 10, tracker.EventStarted); !errors.Is(err, accounting.ErrLeechingDisabled) {
		t.Errorf("leeching with CanLeech false: %v; want ErrLeechingDisabled", err)
	}
	e.mustAnnounce(3, 4, 0, 0, 0, tracker.EventStarted)
	e.mustAnnounce(3, 5, 0, 0, 10, tracker.EventStopped)
}

func TestLedgerDirectory(t *testing.T) {
	e := newEnv(t, accounting.Config{})
	var ve *accounting.ValidationError
	for _, tc := range []struct {
		name string
		u    accounting.User
	}{
		{"short passkey", accounting.User{ID: 5, Passkey: "abc"}},
		{"passkey with a slash", accounting.User{ID: 5, Passkey: "abcdefghijklmnopqrstuvwxyz01234/"}},
		{"id zero", accounting.User{Passkey: accountingtest.Passkey(5)}},
		{"factor over the maximum", accounting.User{ID: 5, Passkey: accountingtest.Passkey(5), UpFactor: accounting.MaxFactor + 1}},
	} {
		if err := e.l.PutUser(ctx, tc.u); !errors.As(err, &ve) {
			t.Errorf("PutUser with a %s: %v; want a *ValidationError", tc.name, err)
		}
	}
	if err := e.l.PutUser(ctx, accounting.User{ID: 5, Passkey: accountingtest.Passkey(1)}); !errors.Is(err, accounting.ErrPasskeyInUse) {
		t.Errorf("PutUser with user 1's passkey: %v; want ErrPasskeyInUse", err)
	}
	if err := e.l.RotatePasskey(ctx, 2, accountingtest.Passkey(1)); !errors.Is(err, accounting.ErrPasskeyInUse) {
		t.Errorf("RotatePasskey to user 1's passkey: %v; want ErrPasskeyInUse", err)
	}
	for _, err := range []error{
		e.l.DeleteUser(ctx, 99),
		e.l.RotatePasskey(ctx, 99, accountingtest.Passkey(99)),
		e.l.DeleteTorrent(ctx, trackertest.Hash(99), ""),
	} {
		if !errors.Is(err, accounting.ErrNotFound) {
			t.Errorf("a change to an unknown user or torrent: %v; want ErrNotFound", err)
		}
	}
	if _, err := e.l.User(ctx, 99); !errors.Is(err, accounting.ErrNotFound) {
		t.Errorf("User(99): %v; want ErrNotFound", err)
	}

	// Rotation: the old passkey stops working at once.
	e.mustAnnounce(2, 2, 100, 0, 0, tracker.EventStarted)
	if err := e.l.RotatePasskey(ctx, 2, accountingtest.Passkey(22)); err != nil {
		t.Fatal(err)
	}
	if err := e.announce(2, trackertest.Hash(1), 2, 200, 0, 0, tracker.EventNone); !errors.Is(err, tracker.ErrInvalidPasskey) {
		t.Errorf("announce with the old passkey: %v; want ErrInvalidPasskey", err)
	}
	if _, err := e.l.ValidatePasskey(ctx, accountingtest.Passkey(22)); err != nil {
		t.Errorf("the new passkey: %v", err)
	}
	if err := e.l.DeleteUser(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.ValidatePasskey(ctx, accountingtest.Passkey(22)); err != tracker.ErrInvalidPasskey {
		t.Errorf("the passkey of a deleted user: %v; want ErrInvalidPasskey", err)
	}
	e.flush()
	if st := e.l.Stats(); st.Users != 2 || st.Torrents != 1 {
		t.Errorf("Stats: %d users, %d torrents; want 2 and 1", st.Users, st.Torrents)
	}

	// Changes made elsewhere arrive with the next poll.
	e2 := newEnv(t, accounting.Config{PollInterval: 10 * time.Millisecond})
	if err := e2.b.PutUser(ctx, accounting.User{ID: 7, Passkey: accountingtest.Passkey(7), CanLeech: true}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := e2.l.ValidatePasskey(ctx, accountingtest.Passkey(7)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a user put in the backend is still unknown to the Ledger after 10 s of polls every 10 ms")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLedgerFactors: the credits carry the torrent's, the user's and the
// global factors in force at each announce.
func TestLedgerFactors(t *testing.T) {
	e := newEnv(t, accounting.Config{})
	if err := e.l.PutUser(ctx, accounting.User{ID: 1, Passkey: accountingtest.Passkey(1), CanLeech: true, UpFactor: 200, DownFactor: 50}); err != nil {
		t.Fatal(err)
	}
	e.mustAnnounce(1, 1, 1000, 1000, 10, tracker.EventStarted) // 2x up, 0.5x down
	if err := e.l.PutTorrent(ctx, accounting.Torrent{InfoHash: trackertest.Hash(1), UpFactor: 100, DownFactor: 0}); err != nil {
		t.Fatal(err)
	}
	e.mustAnnounce(1, 1, 2000, 2000, 10, tracker.EventNone) // freeleech: 2x up, no down
	if err := e.l.SetGlobalFactors(150, 100); err != nil {
		t.Fatal(err)
	}
	e.mustAnnounce(1, 1, 3000, 3000, 10, tracker.EventNone) // 3x up
	if err := e.l.SetGlobalFactors(accounting.MaxFactor+1, 100); err == nil {
		t.Error("SetGlobalFactors over MaxFactor: nil error")
	}
	e.flush()
	if u := e.totals(1); u.Uploaded != 2000+2000+3000 || u.Downloaded != 500 || u.RawUploaded != 3000 || u.RawDownloaded != 3000 {
		t.Errorf("totals %+v; want 7000 up, 500 down, 3000 and 3000 raw", u)
	}
}

// slow is a backend whose transactions take 2 ms, as a commit with an
// fsync does.
type slow struct{ accounting.Backend }

func (s slow) Apply(ctx context.Context, batch []accounting.Record) error {
	time.Sleep(2 * time.Millisecond)
	return s.Backend.Apply(ctx, batch)
}

// TestLedgerGroupCommit: announces that stop a session return only once
// their record is applied, and one Apply serves many of them.
func TestLedgerGroupCommit(t *testing.T) {
	e := newEnv(t, accounting.Config{FlushInterval: time.Hour})
	e.f.Backend = slow{e.b}
	const n = 64
	for i := range n {
		e.mustAnnounce(1, i, 0, 0, 10, tracker.EventNone)
	}
	calls0, _ := e.f.Calls()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := e.announce(1, trackertest.Hash(1), i, 1000, 0, 10, tracker.EventStopped); err != nil {
				t.Error(err)
				return
			}
			// Durable before the reply: the backend has it.
			if u, err := e.b.UserTorrents(ctx, 1); err != nil || len(u) != 1 || u[0].RawUploaded < 1000 {
				t.Errorf("right after a stopped announce returned, the backend has %+v, %v; want its 1000 bytes", u, err)
			}
		})
	}
	wg.Wait()
	calls, _ := e.f.Calls()
	if calls-calls0 > n/4 {
		t.Errorf("%d stopped announces at once took %d Apply calls of 2 ms; want at most a quarter as many (group commit)", n, calls-calls0)
	}
	if u := e.totals(1); u.RawUploaded != n*1000 {
		t.Errorf("uploaded %d; want %d", u.RawUploaded, n*1000)
	}
	// A periodic announce does not wait, and waits for no tick of an
	// hour either once a stopped one needs a flush.
	e.mustAnnounce(1, 100, 500, 0, 10, tracker.EventNone)
	e.mustAnnounce(1, 101, 0, 0, 10, tracker.EventStopped)
	if u := e.totals(1); u.RawUploaded != n*1000+500 {
		t.Errorf("after a stopped announce behind a periodic one: uploaded %d; want %d", u.RawUploaded, n*1000+500)
	}
}

// TestLedgerSpool: during an outage the buffer spills to the spool, the
// backlog shows, and once the backend is back the spool is applied and
// removed.
func TestLedgerSpool(t *testing.T) {
	spool := filepath.Join(t.TempDir(), "spool")
	e := newEnv(t, accounting.Config{Spool: spool, BufferSize: 16, BatchSize: 8})
	e.f.SetDown(true)
	for i := range 100 {
		e.mustAnnounce(1, i%10, int64(i+1)*100, 0, 10, tracker.EventNone)
	}
	e.mustAnnounce(1, 50, 7, 0, 10, tracker.EventStopped) // durable in the spool
	st := e.l.Stats()
	if st.Spooled == 0 || st.Backlog != 101 || st.FlushErrors == 0 || !errors.Is(st.LastError, accountingtest.ErrInjected) {
		t.Errorf("Stats during the outage: %+v; want 101 records in the backlog, some spooled, failures", st)
	}
	if _, err := os.Stat(spool); err != nil {
		t.Errorf("the spool during the outage: %v", err)
	}
	e.f.SetDown(false)
	e.flush()
	if st := e.l.Stats(); st.Backlog != 0 || st.Spooled != 0 || st.Applied != 101 || st.LastError != nil {
		t.Errorf("Stats after the outage: %+v; want 101 applied, no backlog", st)
	}
	if _, err := os.Stat(spool); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the spool once applied: %v; want it removed", err)
	}
	// Peer i%10 last reported (90+i%10+1)*100.
	var want int64 = 7
	for p := range 10 {
		want += int64(91+p) * 100
	}
	if u := e.totals(1); u.RawUploaded != want {
		t.Errorf("uploaded %d; want %d", u.RawUploaded, want)
	}
}

// TestLedgerShared: with Config.Shared, an announce that must be durable
// is answered once its record is applied, never on the spool alone; while
// the backend is down it fails at once, the others are answered, and
// everything recorded is applied once the backend is back.
func TestLedgerShared(t *testing.T) {
	spool := filepath.Join(t.TempDir(), "spool")
	e := newEnv(t, accounting.Config{Spool: spool, BufferSize: 16, BatchSize: 8, Shared: true})
	e.mustAnnounce(1, 1, 100, 0, 10, tracker.EventStarted)
	if st := e.l.Stats(); st.Applied != 1 {
		t.Errorf("after a started: %d applied; want it applied before the reply", st.Applied)
	}
	e.f.SetDown(true)
	for i := range 40 {
		e.mustAnnounce(1, 1, int64(i+2)*100, 0, 10, tracker.EventNone)
	}
	start := time.Now()
	if err := e.announce(1, trackertest.Hash(1), 1, 5000, 0, 10, tracker.EventStopped); !errors.Is(err, accounting.ErrNotDurable) {
		t.Errorf("a stopped while the backend is down: %v; want ErrNotDurable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the stopped failed after %v; want at once", d)
	}
	if st := e.l.Stats(); st.Spooled == 0 || st.Backlog != 41 {
		t.Errorf("Stats during the outage: %+v; want 41 records in the backlog, some spooled", st)
	}
	e.f.SetDown(false)
	e.flush()                                               // the flusher's next try
	e.mustAnnounce(1, 1, 6000, 0, 10, tracker.EventStopped) // the client's retry
	if st := e.l.Stats(); st.Backlog != 0 || st.Applied != 43 {
		t.Errorf("Stats after the retried stopped: %+v; want every record applied before its reply", st)
	}
	if u := e.totals(1); u.RawUploaded != 6000 {
		t.Errorf("uploaded %d; want 6000", u.RawUploaded)
	}
}

// gated is a backend whose Apply waits for a token.
type gated struct {
	accounting.Backend
	tokens chan struct{}
}

func (g gated) Apply(ctx context.Context, batch []accounting.Record) error {
	select {
	case <-g.tokens:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Backend.Apply(ctx, batch)
}

// TestLedgerSharedCatchUp: with Config.Shared, an announce that must be
// durable while the backlog of an outage is being applied fails at once,
// rather than holding its worker until the backlog ahead of it is
// applied; once the backlog is applied, the client's retry is answered
// after its own batch, as usual.
func TestLedgerSharedCatchUp(t *testing.T) {
	spool := filepath.Join(t.TempDir(), "spool")
	e := newEnv(t, accounting.Config{Spool: spool, BufferSize: 16, BatchSize: 8, Shared: true})
	g := gated{Backend: e.b, tokens: make(chan struct{}, 1)}
	e.f.Backend = g
	e.f.SetDown(true)
	e.mustAnnounce(1, 1, 100, 0, 10, tracker.EventNone)
	for i := range 40 {
		e.mustAnnounce(1, 1, int64(i+2)*100, 0, 10, tracker.EventNone)
	}
	// The backend is back, and applies one batch of the backlog, then
	// takes its time with the next.
	e.f.SetDown(false)
	g.tokens <- struct{}{}
	waitFor(t, "a batch applied", func() bool { return e.l.Stats().Applied == 8 })
	start := time.Now()
	release := time.AfterFunc(10*time.Second, func() { close(g.tokens) }) // a failing test ends
	err := e.announce(1, trackertest.Hash(1), 1, 5000, 0, 10, tracker.EventStopped)
	if d := time.Since(start); !errors.Is(err, accounting.ErrNotDurable) || d > 2*time.Second {
		t.Errorf("a stopped behind %d records being applied: %v after %v; want ErrNotDurable at once", e.l.Stats().Backlog, err, d)
	}
	if release.Stop() {
		close(g.tokens)
	}
	e.flush()
	e.mustAnnounce(1, 1, 6000, 0, 10, tracker.EventStopped) // the client's retry
	if st := e.l.Stats(); st.Backlog != 0 || st.Applied != 43 {
		t.Errorf("Stats after the retried stopped: %+v; want every record applied before its reply", st)
	}
	if u := e.totals(1); u.RawUploaded != 6000 {
		t.Errorf("uploaded %d; want 6000", u.RawUploaded)
	}
}

// TestLedgerCatchUpSpills: while the spool of an outage is being applied,
// batch by batch, the records of new announces follow it to the spool
// rather than fill the buffer: announces never wait for room.
func TestLedgerCatchUpSpills(t *testing.T) {
	spool := filepath.Join(t.TempDir(), "spool")
	e := newEnv(t, accounting.Config{Spool: spool, BufferSize: 16, BatchSize: 8})
	g := gated{Backend: e.b, tokens: make(chan struct{}, 64)}
	e.f.Backend = g
	var open sync.Once
	t.Cleanup(func() { open.Do(func() { close(g.tokens) }) }) // before the Ledger's Close
	e.f.SetDown(true)
	up := int64(0)
	for range 40 {
		up += 100
		e.mustAnnounce(1, 1, up, 0, 10, tracker.EventNone)
	}
	e.f.SetDown(false)
	for round := range 10 {
		g.tokens <- struct{}{} // the backend takes one batch
		for range 6 {
			up += 100
			start := time.Now()
			if err := e.announce(1, trackertest.Hash(1), 1, up, 0, 10, tracker.EventNone); err != nil || time.Since(start) > time.Second {
				t.Fatalf("round %d: an announce while the spool is applied: %v after %v; want an answer at once", round, err, time.Since(start))
			}
		}
	}
	open.Do(func() { close(g.tokens) })
	e.flush()
	if st := e.l.Stats(); st.Backlog != 0 || st.Applied != 100 {
		t.Errorf("Stats at the end: %+v; want the 100 records applied", st)
	}
	if u := e.totals(1); u.RawUploaded != up {
		t.Errorf("uploaded %d; want %d", u.RawUploaded, up)
	}
}

// TestLedgerSpoolAtOpen: a spool left by a crash is applied at Open, and
// applying it again (a crash after it was applied, before it was
// removed) changes nothing.
func TestLedgerSpoolAtOpen(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	e := newEnv(t, accounting.Config{Spool: spool, BufferSize: 8, BatchSize: 4})
	e.f.SetDown(true)
	for i := range 40 {
		e.mustAnnounce(1, i%4, int64(i+1)*10, 0, 10, tracker.EventNone)
	}
	e.mustAnnounce(1, 9, 5, 0, 10, tracker.EventStopped)
	expired, cancel := context.WithCancel(ctx)
	cancel()
	if err := e.l.Close(expired); err != nil {
		t.Fatalf("Close with an expired context and a spool: %v; want the records spooled", err)
	}
	saved, err := os.ReadFile(spool)
	if err != nil {
		t.Fatalf("the spool after Close: %v", err)
	}
	// A torn write at the end, as a crash leaves it: cut off.
	if err := os.WriteFile(spool, append(saved, saved[len(saved)-50:]...), 0o600); err != nil {
		t.Fatal(err)
	}
	const want = (37+38+39+40)*10 + 5
	e.f.SetDown(false)
	for range 2 {
		e.open(accounting.Config{Spool: spool})
		if u := e.totals(1); u.RawUploaded != want {
			t.Errorf("uploaded after Open applied the spool: %d; want %d", u.RawUploaded, want)
		}
		if _, err := os.Stat(spool); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the spool after Open: %v; want it removed", err)
		}
		if err := e.l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(spool, saved, 0o600)
	}

	if err := os.WriteFile(spool, []byte("not a spool"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := accounting.Open(ctx, e.f, accounting.Config{Spool: spool}); err == nil {
		t.Error("Open over a file that is not a spool: nil error")
	}
}

// TestLedgerNowhere: with the backend down and the spool unwritable,
// announces that must be durable fail, and all fail once the buffer is
// full: clearly, and nothing is dropped.
func TestLedgerNowhere(t *testing.T) {
	for _, spool := range []string{"", filepath.Join(t.TempDir(), "missing", "spool")} {
		e := newEnv(t, accounting.Config{Spool: spool, BufferSize: 8, BatchSize: 4})
		e.f.SetDown(true)
		var full error
		for i := range 20 {
			if full = e.announce(1, trackertest.Hash(1), 1, int64(i+1)*10, 0, 10, tracker.EventNone); full != nil {
				break
			}
		}
		if te, ok := errors.AsType[*tracker.Error](full); !ok || te.Kind != tracker.KindInternal || !errors.Is(full, accounting.ErrBacklogFull) {
			t.Errorf("spool %q: announces into a full buffer: %v; want ErrBacklogFull, of KindInternal", spool, full)
		}
		if err := e.announce(1, trackertest.Hash(1), 2, 0, 0, 10, tracker.EventStarted); !errors.Is(err, accounting.ErrNotDurable) && !errors.Is(err, accounting.ErrBacklogFull) {
			t.Errorf("spool %q: a started announce: %v; want ErrNotDurable or ErrBacklogFull", spool, err)
		}
		e.f.SetDown(false)
		e.flush()
		if u := e.totals(1); u.RawUploaded != 80 {
			t.Errorf("spool %q: after the outage, uploaded %d; want the 8 records the buffer held, up to 80", spool, u.RawUploaded)
		}
		e.mustAnnounce(1, 1, 1000, 0, 10, tracker.EventStopped)
		if u := e.totals(1); u.RawUploaded != 1000 {
			t.Errorf("spool %q: uploaded %d; want 1000", spool, u.RawUploaded)
		}
	}
}

// TestLedgerClose: Close applies everything, then announces fail.
func TestLedgerClose(t *testing.T) {
	e := newEnv(t, accounting.Config{FlushInterval: time.Hour})
	e.f.FailBefore(2)
	for i := range 30 {
		e.mustAnnounce(1, i, 100, 0, 10, tracker.EventNone)
	}
	if err := e.l.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if u := e.totals(1); u.RawUploaded != 3000 {
		t.Errorf("after Close: uploaded %d; want 3000", u.RawUploaded)
	}
	if err := e.l.Account(ctx, &tracker.AnnounceRequest{}, &tracker.AnnounceResponse{Identity: tracker.Identity{UserID: 1}}, time.Now()); !errors.Is(err, accounting.ErrClosed) {
		t.Errorf("Account after Close: %v; want ErrClosed", err)
	}
	if err := e.l.Close(ctx); !errors.Is(err, accounting.ErrClosed) {
		t.Errorf("a second Close: %v; want ErrClosed", err)
	}
}

func TestLedgerAccountAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	e := newEnv(t, accounting.Config{FlushInterval: time.Hour}) // the flusher idle: it allocates
	req := tracker.AnnounceRequest{InfoHash: trackertest.Hash(1), PeerID: trackertest.ID(1), Addr: trackertest.Addr4(1), Left: 10, NumWant: 10, Passkey: accountingtest.Passkey(1)}
	resp := tracker.AnnounceResponse{Peers: make([]tracker.Peer, 0, 50)}
	if err := e.tr.AnnounceInto(ctx, &req, &resp); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		req.Uploaded += 1000
		if err := e.tr.AnnounceInto(ctx, &req, &resp); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("an announce through the Ledger: %v allocations; want 0", allocs)
	}
}

func TestRulesFor(t *testing.T) {
	for _, tc := range []struct {
		cfg  tracker.Config
		want accounting.Rules
	}{
		{tracker.Config{}, accounting.Rules{PeerTTL: 48 * time.Minute, SeedGap: 49*time.Minute + 30*time.Second}},
		{tracker.Config{AnnounceInterval: 10 * time.Minute, IntervalJitter: tracker.Disabled, MinAnnounceInterval: time.Minute}, accounting.Rules{PeerTTL: 11 * time.Minute, SeedGap: 15 * time.Minute}},
		{tracker.Config{Memory: tracker.MemoryConfig{PeerTTL: time.Hour}}, accounting.Rules{PeerTTL: time.Hour, SeedGap: 49*time.Minute + 30*time.Second}},
	} {
		if got := accounting.RulesFor(tc.cfg); got != tc.want {
			t.Errorf("RulesFor(%+v) = %+v; want %+v", tc.cfg, got, tc.want)
		}
	}
}

// waitFor waits until cond holds, for at most 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
	}
}
