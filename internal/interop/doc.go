//go:build unix

// Package interop runs real BitTorrent clients against a tracker on
// loopback, to prove that they complete downloads with peers learnt from
// that tracker alone. Tests import it; it does not import the tracker
// package, so the tracker's own tests can. It builds on unix systems only,
// where it runs each client in a process group of its own.
//
// The clients are Debian's: libtorrent 2.0 through its Python module
// (python3-libtorrent, run with /usr/bin/python3), aria2c 1.36 and
// transmission-cli 3.00; scripts/debian-packages.txt lists them. A runner
// skips its test when its client is missing, except under CI (CI set),
// where that fails the test.
//
// A front-end test makes a torrent, serves it, and runs a scenario:
//
//	func TestUDPPasskeyLibtorrent(t *testing.T) {
//		tr := startTracker(t) // the front-end under test, on 127.0.0.1
//		tor := interop.MakeTorrent(t, t.TempDir(), "udp://"+tr.Addr+"/announce/PK", 1<<20, true)
//		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
//		defer cancel()
//		res, err := interop.Libtorrent(ctx, t, interop.Scenario{Torrent: tor})
//		if err != nil {
//			t.Fatal(err) // what failed, tracker errors, the clients' log tails
//		}
//		t.Logf("downloaded in %v; leecher replies %v", res.Elapsed, res.Leecher.Replies)
//	}
//
// [Scenario.Tracker] overrides the torrent's announce URL; each runner
// writes its own copy of the .torrent, so one torrent serves several
// trackers. The runners:
//
//   - [Libtorrent]: a libtorrent seeder, then a libtorrent leecher.
//   - [Aria2]: aria2c leeches from a libtorrent seeder; [Aria2Seeder] the
//     other way round.
//   - [Transmission]: transmission-cli leeches; the libtorrent seeder dials
//     it, because Transmission 3.00 ignores the loopback peers a tracker
//     hands out.
//   - [Seed] keeps a libtorrent seeder running while the test looks at the
//     tracker, for example with [LibtorrentScrape].
//
// Every scenario compares the downloaded file with the original. Each
// client is its own process, in its own process group, started with
// peer sources other than the tracker off (DHT, local peer discovery, peer
// exchange, UPnP and NAT-PMP), listening on the loopback address of the
// tracker's family; the test's cleanup kills whatever is left. Every wait
// is bounded by the context and by [Scenario.Timeout].
//
// Debian's libtorrent 2.0.8 has been seen to die of SIGSEGV on rare
// occasions while it checks its content, before it sends anything to a
// tracker. A libtorrent session that dies of a crash signal before its
// first announce is started again, up to twice, and the crash is logged:
// it says nothing of the tracker under test. A crash after an announce
// fails the scenario.
//
// libtorrent checks tracker URLs with its ssrf_mitigation setting, which
// the sessions keep on: on loopback a tracker path must start with
// /announce, and a URL's query must not hold info_hash, key, peer_id and
// the like. A scenario whose loopback tracker path does not start with
// /announce runs with the setting off, since a real client would meet that
// tracker on a public address, where the rule does not apply. Scrapes run
// with it off too: libtorrent refuses every HTTP scrape of a loopback
// tracker otherwise.
//
// [StartOpentracker] runs opentracker, the reference these runners are
// checked against in this package's tests.
package interop
