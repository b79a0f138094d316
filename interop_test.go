//go:build unix

package tracker_test

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/internal/interop"
)

// Real clients against the front-ends, on loopback: each scenario passes
// only if the leecher completes its download with peers learnt from our
// tracker alone (the clients' other peer sources are off).

const interopPasskey = "a3f5c0de91b24e7f8d6a0c1b2e3f4a5b"

// interopTracker is a tracker whose intervals suit a test: clients come
// back within seconds.
func interopTracker(t *testing.T, cfg tracker.Config) *tracker.Tracker {
	t.Helper()
	cfg.AnnounceInterval = 5 * time.Second
	cfg.MinAnnounceInterval = time.Second
	tr, err := tracker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// privateTracker is an interopTracker that needs a passkey and knows
// interopPasskey.
func privateTracker(t *testing.T) *tracker.Tracker {
	keys := tracker.NewPasskeySet()
	keys.Set(interopPasskey, 42)
	return interopTracker(t, tracker.Config{Passkeys: keys})
}

// serveUDP serves tr over UDP on a loopback address of network ("udp4" or
// "udp6") and returns host:port.
func serveUDP(t *testing.T, tr *tracker.Tracker, network string) string {
	t.Helper()
	host := "127.0.0.1"
	if network == "udp6" {
		host = "::1"
	}
	conn, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	srv, err := tr.NewUDPServer(tracker.UDPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(conn) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		conn.Close()
		if err := <-done; !errors.Is(err, tracker.ErrServerClosed) {
			t.Errorf("Serve = %v; want ErrServerClosed", err)
		}
	})
	return conn.LocalAddr().String()
}

func interopContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestInteropUDPLibtorrentPasskey(t *testing.T) {
	t.Parallel()
	tr := privateTracker(t)
	addr := serveUDP(t, tr, "udp4")
	tor := interop.MakeTorrent(t, t.TempDir(), "udp://"+addr+"/announce/"+interopPasskey, 1<<20, true)
	res, err := interop.Libtorrent(interopContext(t), t, interop.Scenario{Torrent: tor})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("libtorrent over UDP with a BEP 41 passkey: downloaded in %v", res.Elapsed)
	s := tr.Stats()
	if s.Announces == 0 || s.Failures["passkey"] != 0 {
		t.Errorf("stats %+v: want announces and no passkey failure", s)
	}
}

func TestInteropUDPLibtorrentWrongPasskey(t *testing.T) {
	t.Parallel()
	tr := privateTracker(t)
	addr := serveUDP(t, tr, "udp4")
	tor := interop.MakeTorrent(t, t.TempDir(), "udp://"+addr+"/announce/0000000000000000ffffffffffffffff", 256<<10, true)
	ctx, cancel := context.WithTimeout(interopContext(t), 40*time.Second)
	defer cancel()
	if _, err := interop.Libtorrent(ctx, t, interop.Scenario{Torrent: tor, Timeout: 30 * time.Second}); err == nil {
		t.Fatal("libtorrent completed a download with a passkey the tracker does not know")
	}
	if n := tr.Stats().Failures["passkey"]; n == 0 {
		t.Error("the tracker counted no passkey failure")
	}
	if s := tr.Stats(); s.Peers != 0 {
		t.Errorf("%d peers joined with a wrong passkey", s.Peers)
	}
}

func TestInteropUDPLibtorrentIPv6(t *testing.T) {
	t.Parallel()
	tr := interopTracker(t, tracker.Config{})
	addr := serveUDP(t, tr, "udp6")
	tor := interop.MakeTorrent(t, t.TempDir(), "udp://"+addr+"/announce", 1<<20, false)
	res, err := interop.Libtorrent(interopContext(t), t, interop.Scenario{Torrent: tor})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("libtorrent over UDP on ::1: downloaded in %v", res.Elapsed)
}

func TestInteropUDPHybrid(t *testing.T) {
	t.Parallel()
	tr := interopTracker(t, tracker.Config{})
	addr := serveUDP(t, tr, "udp4")
	tor := interop.MakeHybridTorrent(t, t.TempDir(), "udp://"+addr+"/announce", 1<<20, false)
	if _, err := interop.Libtorrent(interopContext(t), t, interop.Scenario{Torrent: tor}); err != nil {
		t.Fatal(err)
	}
	// Both hashes were announced, as two swarms.
	hashes := tor.TrackerHashes()
	if len(hashes) != 2 {
		t.Fatalf("hybrid torrent has %d tracker hashes; want 2", len(hashes))
	}
	resp, err := tr.Scrape(context.Background(), &tracker.ScrapeRequest{InfoHashes: []tracker.InfoHash{hashes[0], hashes[1]}})
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range resp.Files {
		if f.Downloaded == 0 && f.Complete == 0 {
			t.Errorf("swarm %d of the hybrid torrent saw nobody: %+v", i, f)
		}
	}
}

func TestInteropUDPAria2(t *testing.T) {
	t.Parallel()
	tr := interopTracker(t, tracker.Config{})
	addr := serveUDP(t, tr, "udp4")
	tor := interop.MakeTorrent(t, t.TempDir(), "udp://"+addr+"/announce", 1<<20, false)
	res, err := interop.Aria2(interopContext(t), t, interop.Scenario{Torrent: tor})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("aria2 over UDP: downloaded in %v", res.Elapsed)
	// aria2 never sends completed: its download still counts, when its
	// left reaches 0.
	st, err := tr.Scrape(context.Background(), &tracker.ScrapeRequest{InfoHashes: []tracker.InfoHash{tor.InfoHash}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Files[0].Downloaded < 1 {
		t.Errorf("scrape after aria2's download: %+v; want downloaded at least 1", st.Files[0])
	}
}

func TestInteropUDPAria2PrivateNeedsHTTP(t *testing.T) {
	t.Parallel()
	tr := privateTracker(t)
	addr := serveUDP(t, tr, "udp4")
	tor := interop.MakeTorrent(t, t.TempDir(), "udp://"+addr+"/announce/"+interopPasskey, 256<<10, true)
	ctx, cancel := context.WithTimeout(interopContext(t), 40*time.Second)
	defer cancel()
	// aria2 sends no BEP 41 URL data: the passkey never reaches the
	// tracker over UDP, which refuses it with a text that says to use
	// HTTP.
	_, err := interop.Aria2(ctx, t, interop.Scenario{Torrent: tor, Timeout: 10 * time.Second})
	if err == nil {
		t.Fatal("aria2 completed over UDP on a private tracker without sending its passkey")
	}
	if n := tr.Stats().Failures["passkey"]; n == 0 {
		t.Errorf("no passkey failure counted; aria2 error: %v", err)
	}
}

// eachListener runs test, in parallel, once with net/http reading every
// request and once behind a FastListener.
func eachListener(t *testing.T, test func(t *testing.T, fast bool)) {
	for _, fast := range []bool{false, true} {
		name := "net-http"
		if fast {
			name = "fast"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, fast)
		})
	}
}

// serveHTTP serves tr over HTTP on a loopback address of network ("tcp4"
// or "tcp6"), behind a FastListener if fast, and returns host:port and
// the FastListener (nil if not fast).
func serveHTTP(t *testing.T, tr *tracker.Tracker, network string, cfg tracker.HTTPConfig, fast bool) (string, *tracker.FastListener) {
	t.Helper()
	host := "127.0.0.1:0"
	if network == "tcp6" {
		host = "[::1]:0"
	}
	l, err := net.Listen(network, host)
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	h, err := tr.NewHTTPHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := tracker.NewHTTPServer(h)
	var fl *tracker.FastListener
	if fast {
		fl = h.NewFastListener(l, nil)
		l = fl
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; !errors.Is(err, tracker.ErrServerClosed) {
			t.Errorf("Serve = %v; want ErrServerClosed", err)
		}
	})
	return l.Addr().String(), fl
}

// answeredFast logs which requests of client fl, if not nil, answered
// itself, and if must, checks that it answered some: the client asks to
// close its connections, and its requests took the fast path.
func answeredFast(t *testing.T, fl *tracker.FastListener, client string, must bool) {
	t.Helper()
	if fl == nil {
		return
	}
	st := fl.Stats()
	t.Logf("%s: %d requests answered by the FastListener, %d connections handed to net/http", client, st.Answered, st.HandedOver)
	if must && runtime.GOOS == "linux" && st.Answered == 0 {
		t.Errorf("%s: the FastListener answered no request itself", client)
	}
}

func TestInteropHTTPLibtorrent(t *testing.T) {
	t.Parallel()
	eachListener(t, func(t *testing.T, fast bool) {
		tr := interopTracker(t, tracker.Config{})
		addr, fl := serveHTTP(t, tr, "tcp4", tracker.HTTPConfig{}, fast)
		tor := interop.MakeTorrent(t, t.TempDir(), "http://"+addr+"/announce", 1<<20, false)
		res, err := interop.Libtorrent(interopContext(t), t, interop.Scenario{Torrent: tor})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("libtorrent over HTTP: downloaded in %v", res.Elapsed)
		answeredFast(t, fl, "libtorrent", true)
	})
}

func TestInteropHTTPLibtorrentPasskey(t *testing.T) {
	t.Parallel()
	eachListener(t, func(t *testing.T, fast bool) {
		tr := privateTracker(t)
		addr, fl := serveHTTP(t, tr, "tcp4", tracker.HTTPConfig{}, fast)
		tor := interop.MakeTorrent(t, t.TempDir(), "http://"+addr+"/announce/"+interopPasskey, 1<<20, true)
		res, err := interop.Libtorrent(interopContext(t), t, interop.Scenario{Torrent: tor})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("libtorrent over HTTP with /announce/<passkey>: downloaded in %v", res.Elapsed)
		answeredFast(t, fl, "libtorrent", true)

		// A wrong passkey: the client reads the failure reason.
		bad := interop.MakeTorrent(t, t.TempDir(), "http://"+addr+"/announce/ffffffffffffffffffffffffffffffff", 256<<10, true)
		ctx, cancel := context.WithTimeout(interopContext(t), 40*time.Second)
		defer cancel()
		_, err = interop.Libtorrent(ctx, t, interop.Scenario{Torrent: bad, Timeout: 30 * time.Second})
		if err == nil {
			t.Fatal("libtorrent completed a download with an unknown passkey")
		}
		if !strings.Contains(err.Error(), "invalid passkey") {
			t.Errorf("libtorrent's error does not carry the failure reason: %v", err)
		}
	})
}

func TestInteropHTTPScrape(t *testing.T) {
	t.Parallel()
	eachListener(t, func(t *testing.T, fast bool) {
		tr := privateTracker(t)
		addr, fl := serveHTTP(t, tr, "tcp4", tracker.HTTPConfig{}, fast)
		url := "http://" + addr + "/announce/" + interopPasskey
		tor := interop.MakeTorrent(t, t.TempDir(), url, 256<<10, true)
		ctx := interopContext(t)
		seeder, err := interop.Seed(ctx, t, interop.Scenario{Torrent: tor})
		if err != nil {
			t.Fatal(err)
		}
		// libtorrent scrapes /scrape/<passkey>.
		got, err := interop.LibtorrentScrape(ctx, t, url, tor)
		if err != nil {
			t.Fatal(err)
		}
		if got.Complete != 1 || got.Incomplete != 0 {
			t.Errorf("scrape with the seeder running = %+v; want 1 seeder, 0 leechers", got)
		}
		seeder.Stop()
		if got, err = interop.LibtorrentScrape(ctx, t, url, tor); err != nil || got.Complete != 0 {
			t.Errorf("scrape after the seeder stopped = %+v, %v; want no seeder", got, err)
		}
		answeredFast(t, fl, "libtorrent", true)
	})
}

func TestInteropHTTPLibtorrentIPv6(t *testing.T) {
	t.Parallel()
	eachListener(t, func(t *testing.T, fast bool) {
		tr := interopTracker(t, tracker.Config{})
		addr, fl := serveHTTP(t, tr, "tcp6", tracker.HTTPConfig{}, fast)
		tor := interop.MakeTorrent(t, t.TempDir(), "http://"+addr+"/announce", 1<<20, false)
		if _, err := interop.Libtorrent(interopContext(t), t, interop.Scenario{Torrent: tor}); err != nil {
			t.Fatal(err)
		}
		answeredFast(t, fl, "libtorrent", true)
	})
}

func TestInteropHTTPAria2(t *testing.T) {
	t.Parallel()
	eachListener(t, func(t *testing.T, fast bool) {
		tr := privateTracker(t)
		addr, fl := serveHTTP(t, tr, "tcp4", tracker.HTTPConfig{}, fast)
		tor := interop.MakeTorrent(t, t.TempDir(), "http://"+addr+"/announce/"+interopPasskey, 1<<20, true)
		if _, err := interop.Aria2(interopContext(t), t, interop.Scenario{Torrent: tor}); err != nil {
			t.Fatal(err)
		}
		if _, err := interop.Aria2Seeder(interopContext(t), t, interop.Scenario{Torrent: tor}); err != nil {
			t.Fatal(err)
		}
		// aria2 never sends completed; its finished download counts anyway.
		st, err := tr.Scrape(context.Background(), &tracker.ScrapeRequest{InfoHashes: []tracker.InfoHash{tor.InfoHash}, Passkey: interopPasskey})
		if err != nil {
			t.Fatal(err)
		}
		if st.Files[0].Downloaded < 2 {
			t.Errorf("downloads counted after two aria2 runs: %+v; want at least 2", st.Files[0])
		}
		answeredFast(t, fl, "aria2", false)
	})
}

func TestInteropHTTPTransmission(t *testing.T) {
	t.Parallel()
	eachListener(t, func(t *testing.T, fast bool) {
		tr := interopTracker(t, tracker.Config{})
		addr, fl := serveHTTP(t, tr, "tcp4", tracker.HTTPConfig{}, fast)
		tor := interop.MakeTorrent(t, t.TempDir(), "http://"+addr+"/announce", 1<<20, false)
		res, err := interop.Transmission(interopContext(t), t, interop.Scenario{Torrent: tor})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Transmission over HTTP: downloaded in %v", res.Elapsed)
		answeredFast(t, fl, "Transmission", false)
	})
}
