package tracker

// Tests of the UDP server's workers: requests that need a plug-in that
// may block are answered off the readers, with a deadline, within bounds.

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annuaire/tracker/internal/udpwire"
)

// heldValidator is a passkey validator as slow as a site's API can be: it
// holds every call until the test releases it or the call's context ends,
// then refuses the passkey.
type heldValidator struct {
	release chan struct{}
	once    sync.Once
	calls   atomic.Int32
	// deadlines receives, for each call, whether its context had a
	// deadline and how far off it was.
	deadlines chan time.Duration
}

func newHeldValidator() *heldValidator {
	return &heldValidator{release: make(chan struct{}), deadlines: make(chan time.Duration, 100)}
}

func (v *heldValidator) ValidatePasskey(ctx context.Context, pk string) (Identity, error) {
	v.calls.Add(1)
	d := time.Duration(-1)
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	select {
	case v.deadlines <- d:
	default:
	}
	select {
	case <-v.release:
	case <-ctx.Done():
		return Identity{}, ctx.Err()
	}
	return Identity{}, ErrInvalidPasskey
}

// free lets every call, held or to come, through.
func (v *heldValidator) free() { v.once.Do(func() { close(v.release) }) }

// sendAnnounce sends an announce with passkey pk (none if empty) and
// transaction id tx.
func (c *testClient) sendAnnounce(connID uint64, tx uint32, pk string) {
	c.t.Helper()
	a := announcePacket(connID, tx, 1, int(tx), false)
	if pk != "" {
		a.URLData = []byte("/announce/" + pk)
	}
	if _, err := c.c.Write(announceBytes(a)); err != nil {
		c.t.Fatal(err)
	}
}

// replies reads n replies, by transaction id.
func (c *testClient) replies(n int) map[uint32][]byte {
	c.t.Helper()
	got := make(map[uint32][]byte)
	for range n {
		r := c.read()
		h, ok := udpwire.ParseReplyHeader(r)
		if !ok {
			c.t.Fatalf("reply %x", r)
		}
		got[h.TxID] = r
	}
	return got
}

// TestUDPSlowValidator: passkeys checked against a slow site API hold up
// nothing else. The reader hands them to the workers and reads on: valid
// passkeys that an in-memory validator accepts, an announce without a
// passkey and a connect are all answered while the slow checks wait; the
// slow ones are answered once the API replies. The datagrams arrive in one
// batch, as they do on a busy socket.
func TestUDPSlowValidator(t *testing.T) {
	slow := newHeldValidator()
	known := NewPasskeySet()
	known.Set("known", 1)
	tr := newTestTracker(t, Config{Passkeys: AnyPasskey(known, slow)})
	conn := listenLoopback(t, "udp4")
	s := newTestServer(t, tr, UDPConfig{Readers: 1, Batch: 8})
	c := dialServer(t, "udp4", conn.LocalAddr())
	id := s.ids.Issue(time.Now(), netip.MustParseAddr("127.0.0.1"))
	c.sendAnnounce(id, 1, "unknown1")
	c.sendAnnounce(id, 2, "unknown2")
	c.sendAnnounce(id, 3, "known")
	c.sendAnnounce(id, 4, "")
	c.sendAnnounce(id, 5, "known")
	if _, err := c.c.Write(udpwire.AppendConnectRequest(nil, 6)); err != nil {
		t.Fatal(err)
	}
	serve(t, s, conn)
	t.Cleanup(slow.free) // before Shutdown, which waits for the workers

	// Answered while the slow checks wait: read fails after 5 s.
	got := c.replies(4)
	for _, tx := range []uint32{3, 5} {
		parseAnnounceReply(t, got[tx], 6)
	}
	if msg := errorText(t, got[4], 4); msg != errUDPNoPasskey.Reason {
		t.Errorf("announce without passkey: %q; want %q", msg, errUDPNoPasskey.Reason)
	}
	if _, err := udpwire.ParseConnectReply(got[6]); err != nil {
		t.Errorf("connect: reply %x: %v", got[6], err)
	}
	if n := slow.calls.Load(); n > 2 {
		t.Errorf("the slow validator was called %d times; want at most 2", n)
	}
	slow.free()
	got = c.replies(2)
	for _, tx := range []uint32{1, 2} {
		if msg := errorText(t, got[tx], tx); msg != ErrInvalidPasskey.Reason {
			t.Errorf("unknown passkey %d: %q; want %q", tx, msg, ErrInvalidPasskey.Reason)
		}
	}
}

// TestUDPWorkersBusy: when every worker is busy and the queue full, the
// next request that needs a worker is refused at once, with a reply that
// says why; requests that need none still flow.
func TestUDPWorkersBusy(t *testing.T) {
	slow := newHeldValidator()
	tr := newTestTracker(t, Config{Passkeys: slow})
	conn := listenLoopback(t, "udp4")
	s := newTestServer(t, tr, UDPConfig{Readers: 1, Workers: 2, Queue: 1})
	serve(t, s, conn)
	t.Cleanup(slow.free)
	c := dialServer(t, "udp4", conn.LocalAddr())
	id := c.connect()
	// Two workers take two requests, the queue holds a third.
	for tx := range uint32(3) {
		c.sendAnnounce(id, tx+1, "slow")
	}
	c.sendAnnounce(id, 4, "slow")
	if msg := errorText(t, c.read(), 4); msg != ErrBusy.Reason {
		t.Errorf("a request past the queue: %q; want %q", msg, ErrBusy.Reason)
	}
	c.connect()
	if msg := errorText(t, c.roundTrip(announceBytes(announcePacket(id, 5, 1, 5, false))), 5); msg != errUDPNoPasskey.Reason {
		t.Errorf("announce without passkey: %q; want %q", msg, errUDPNoPasskey.Reason)
	}
	if n := tr.Stats().Failures["unavailable"]; n != 1 {
		t.Errorf("%d unavailable failures counted; want 1", n)
	}
	slow.free()
	got := c.replies(3)
	for tx := range uint32(3) {
		if msg := errorText(t, got[tx+1], tx+1); msg != ErrInvalidPasskey.Reason {
			t.Errorf("request %d: %q; want %q", tx+1, msg, ErrInvalidPasskey.Reason)
		}
	}
}

// slowValidator refuses every passkey after a delay it does not cut
// short, as a plug-in that ignores its context would.
type slowValidator struct {
	delay time.Duration
	calls atomic.Int32
}

func (v *slowValidator) ValidatePasskey(ctx context.Context, pk string) (Identity, error) {
	v.calls.Add(1)
	time.Sleep(v.delay)
	return Identity{}, ErrInvalidPasskey
}

// TestUDPDeadline: a worker's request runs with the tracker's deadline,
// counted from its arrival; one still queued when its deadline passes is
// answered "tracker busy" without calling the plug-in.
func TestUDPDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	t.Run("in the plug-in", func(t *testing.T) {
		slow := newHeldValidator()
		tr := newTestTracker(t, Config{Passkeys: slow, RequestTimeout: timeout})
		conn := listenLoopback(t, "udp4")
		serve(t, newTestServer(t, tr, UDPConfig{Readers: 1}), conn)
		t.Cleanup(slow.free)
		c := dialServer(t, "udp4", conn.LocalAddr())
		id := c.connect()
		start := time.Now()
		c.sendAnnounce(id, 1, "slow")
		if msg := errorText(t, c.read(), 1); msg != ErrBusy.Reason {
			t.Errorf("a request past its deadline: %q; want %q", msg, ErrBusy.Reason)
		}
		if d := <-slow.deadlines; d <= 0 || d > timeout {
			t.Errorf("the validator's context ends in %v; want between 0 and %v", d, timeout)
		}
		if d := time.Since(start); d < timeout {
			t.Errorf("answered after %v; want at least the %v deadline", d, timeout)
		}
	})
	t.Run("in the queue", func(t *testing.T) {
		slow := &slowValidator{delay: timeout + 200*time.Millisecond}
		tr := newTestTracker(t, Config{Passkeys: slow, RequestTimeout: timeout})
		conn := listenLoopback(t, "udp4")
		serve(t, newTestServer(t, tr, UDPConfig{Readers: 1, Workers: 1}), conn)
		c := dialServer(t, "udp4", conn.LocalAddr())
		id := c.connect()
		c.sendAnnounce(id, 1, "slow")
		c.sendAnnounce(id, 2, "slow")
		got := c.replies(2)
		// The plug-in chose its answer, late: the client reads it.
		if msg := errorText(t, got[1], 1); msg != ErrInvalidPasskey.Reason {
			t.Errorf("first request: %q; want %q", msg, ErrInvalidPasskey.Reason)
		}
		if msg := errorText(t, got[2], 2); msg != ErrBusy.Reason {
			t.Errorf("queued past its deadline: %q; want %q", msg, ErrBusy.Reason)
		}
		if n := slow.calls.Load(); n != 1 {
			t.Errorf("the validator was called %d times; want 1", n)
		}
	})
}

// remoteStore hides a store's NonBlocker, as a store over the network
// would have none: every announce and scrape goes through the workers.
// Once held is set, its announces wait for release.
type remoteStore struct {
	Store
	held    atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s *remoteStore) Announce(ctx context.Context, req *AnnounceRequest, resp *AnnounceResponse) error {
	if s.held.Load() {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.Store.Announce(ctx, req, resp)
}

// serveOwn runs s on a new loopback socket, as serve does, but leaves it
// to the test to stop s: Serve's result arrives on the channel returned.
func serveOwn(t *testing.T, s *UDPServer) (*testClient, <-chan error) {
	t.Helper()
	conn := listenLoopback(t, "udp4")
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(conn) }()
	return dialServer(t, "udp4", conn.LocalAddr()), errc
}

// serveReturned checks that Serve returns ErrServerClosed within 5 s.
func serveReturned(t *testing.T, errc <-chan error) {
	t.Helper()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v; want ErrServerClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// TestUDPRemoteStore: with a store that may block, announces and scrapes
// are answered by the workers; Shutdown waits for the requests they hold,
// which are answered, and leaves no goroutine behind.
func TestUDPRemoteStore(t *testing.T) {
	mem, err := NewMemoryStore(MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	store := &remoteStore{Store: mem, entered: make(chan struct{}), release: make(chan struct{})}
	tr := newTestTracker(t, Config{Store: store})
	before := runtime.NumGoroutine()
	const workers = 4
	s := newTestServer(t, tr, UDPConfig{Readers: 2, Workers: workers})
	c, errc := serveOwn(t, s)
	id := c.connect()
	for i := range 20 {
		parseAnnounceReply(t, c.roundTrip(announceBytes(announcePacket(id, uint32(i), 1, i, i%2 == 0))), 6)
	}
	if got := udpScrapeReply(t, c.roundTrip(udpwire.AppendScrapeRequest(nil, id, 99, [20]byte{1})), 99); got[0] != [3]uint32{10, 0, 10} {
		t.Errorf("scrape: %v; want 10 seeders and 10 leechers", got)
	}

	store.held.Store(true)
	for i := range workers {
		c.sendAnnounce(id, uint32(100+i), "")
		<-store.entered
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	close(store.release)
	got := c.replies(workers)
	for i := range uint32(workers) {
		parseAnnounceReply(t, got[100+i], 6)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	serveReturned(t, errc)
	waitGoroutines(t, before)
}

// TestUDPCloseCancels: Close cancels the contexts of the requests the
// workers hold, so that Serve returns and no goroutine is left even while
// a plug-in waits on its context.
func TestUDPCloseCancels(t *testing.T) {
	slow := newHeldValidator() // never freed
	tr := newTestTracker(t, Config{Passkeys: slow, RequestTimeout: Disabled})
	before := runtime.NumGoroutine()
	s := newTestServer(t, tr, UDPConfig{Readers: 1, Workers: 2})
	c, errc := serveOwn(t, s)
	id := c.connect()
	c.sendAnnounce(id, 1, "slow")
	c.sendAnnounce(id, 2, "slow")
	if d := <-slow.deadlines; d != -1 {
		t.Errorf("with RequestTimeout disabled, the context ends in %v; want no deadline", d)
	}
	<-slow.deadlines // both calls are held
	s.Close()
	serveReturned(t, errc)
	waitGoroutines(t, before)
}

// TestUDPPoolPanic: a panic in a store called by a worker is recovered
// like one on a reader: the client reads an internal error, the worker
// goes on.
func TestUDPPoolPanic(t *testing.T) {
	var logs lockedBuffer
	tr := newTestTracker(t, Config{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Store: funcStore{announce: func(context.Context, *AnnounceRequest, *AnnounceResponse) error {
			panic("a bug in the store")
		}},
	})
	conn := listenLoopback(t, "udp4")
	serve(t, newTestServer(t, tr, UDPConfig{Readers: 1, Workers: 1}), conn)
	c := dialServer(t, "udp4", conn.LocalAddr())
	id := c.connect()
	for tx := range uint32(3) {
		if msg := errorText(t, c.roundTrip(announceBytes(announcePacket(id, tx, 1, 1, false))), tx); msg != errInternal.Reason {
			t.Errorf("announce %d: %q; want %q", tx, msg, errInternal.Reason)
		}
	}
	if n := tr.Stats().Failures["internal"]; n != 3 {
		t.Errorf("%d internal failures; want 3", n)
	}
	if out := logs.String(); strings.Count(out, "recovered from a panic") != 1 || !strings.Contains(out, "a bug in the store") {
		t.Errorf("log:\n%s\nwant one line about the panic", out)
	}
}
