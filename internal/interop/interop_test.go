//go:build unix

package interop

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

// size is the content size of the scenarios: 64 pieces, so a download
// takes many requests but little time.
const size = 1 << 20

// placeholder is the announce URL torrents are made with here: each runner
// writes the torrent again with the scenario's tracker.
const placeholder = "http://127.0.0.1:1/announce"

// withOpentracker makes a torrent and starts an opentracker that serves it.
func withOpentracker(t *testing.T, private, hybrid bool) (*Opentracker, *Torrent) {
	t.Helper()
	mk := MakeTorrent
	if hybrid {
		mk = MakeHybridTorrent
	}
	tor := mk(t, t.TempDir(), placeholder, size, private)
	return StartOpentracker(t, tor.TrackerHashes()...), tor
}

// bounded returns a context for one scenario: its own timeout, plus time
// to stop the clients.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func logResult(t *testing.T, res *Result) {
	t.Helper()
	t.Logf("complete in %v; seeder: %d announces, replies %v; leecher: %d announces, replies %v",
		res.Elapsed.Round(time.Millisecond), res.Seeder.Announces, res.Seeder.Replies,
		res.Leecher.Announces, res.Leecher.Replies)
}

// checkSeen checks that a libtorrent session had replies from the tracker
// and no error.
func checkSeen(t *testing.T, who string, seen Seen) {
	t.Helper()
	if len(seen.Replies) == 0 || len(seen.Errors) > 0 {
		t.Errorf("%s saw replies %v, errors %q; want replies and no error", who, seen.Replies, seen.Errors)
	}
}

func TestLibtorrentOpentracker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, scheme, path string
		leecherScheme      string // the leecher's, when not scheme
		private, hybrid    bool
		enc                Encryption
	}{
		{name: "http", scheme: "http", path: "/announce"},
		{name: "udp", scheme: "udp", path: "/announce"},
		// opentracker ignores what follows /announce, over HTTP and in
		// BEP 41 URL data alike.
		{name: "http-passkey-private", scheme: "http", path: "/announce/0123456789abcdef", private: true},
		{name: "udp-passkey", scheme: "udp", path: "/announce/0123456789abcdef"},
		{name: "http-hybrid", scheme: "http", path: "/announce", hybrid: true},
		{name: "udp-hybrid-private", scheme: "udp", path: "/announce", private: true, hybrid: true},
		{name: "http-encrypted", scheme: "http", path: "/announce", enc: EncryptionRequired},
		{name: "udp-plaintext", scheme: "udp", path: "/announce", enc: EncryptionDisabled},
		// Two announce URLs that share swarms: opentracker answers HTTP
		// and UDP on one port.
		{name: "http-seeder-udp-leecher", scheme: "http", path: "/announce", leecherScheme: "udp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ot, tor := withOpentracker(t, tt.private, tt.hybrid)
			sc := Scenario{Tracker: ot.URL(tt.scheme, tt.path), Torrent: tor, Encryption: tt.enc}
			if tt.leecherScheme != "" {
				sc.LeecherTracker = ot.URL(tt.leecherScheme, tt.path)
			}
			res, err := Libtorrent(bounded(t), t, sc)
			if err != nil {
				t.Fatal(err)
			}
			logResult(t, res)
			checkSeen(t, "seeder", res.Seeder)
			checkSeen(t, "leecher", res.Leecher)
			// A hybrid torrent is announced under both of its hashes.
			if want := 3 * len(tor.TrackerHashes()); res.Leecher.Announces != want {
				t.Errorf("leecher sent %d announces; want %d (started, completed, stopped per hash)", res.Leecher.Announces, want)
			}
		})
	}
}

func TestLibtorrentScrapeOpentracker(t *testing.T) {
	t.Parallel()
	for _, scheme := range []string{"http", "udp"} {
		t.Run(scheme, func(t *testing.T) {
			ot, tor := withOpentracker(t, false, false)
			url := ot.URL(scheme, "/announce")
			ctx := bounded(t)
			seeder, err := Seed(ctx, t, Scenario{Tracker: url, Torrent: tor})
			if err != nil {
				t.Fatal(err)
			}
			got, err := LibtorrentScrape(ctx, t, url, tor)
			if err != nil {
				t.Fatal(err)
			}
			if want := (Scrape{Complete: 1}); got != want {
				t.Errorf("scrape with a seeder = %+v; want %+v", got, want)
			}
			seeder.Stop()
			got, err = LibtorrentScrape(ctx, t, url, tor)
			if err != nil {
				t.Fatal(err)
			}
			if want := (Scrape{}); got != want {
				t.Errorf("scrape after the seeder stopped = %+v; want %+v", got, want)
			}
		})
	}
}

func TestAria2Opentracker(t *testing.T) {
	t.Parallel()
	for _, scheme := range []string{"http", "udp"} {
		t.Run(scheme+"-leecher", func(t *testing.T) {
			ot, tor := withOpentracker(t, false, false)
			res, err := Aria2(bounded(t), t, Scenario{Tracker: ot.URL(scheme, "/announce"), Torrent: tor})
			if err != nil {
				t.Fatal(err)
			}
			logResult(t, res)
			checkSeen(t, "seeder", res.Seeder)
		})
		t.Run(scheme+"-seeder", func(t *testing.T) {
			ot, tor := withOpentracker(t, false, false)
			res, err := Aria2Seeder(bounded(t), t, Scenario{Tracker: ot.URL(scheme, "/announce"), Torrent: tor})
			if err != nil {
				t.Fatal(err)
			}
			logResult(t, res)
			checkSeen(t, "leecher", res.Leecher)
		})
	}
}

func TestTransmissionOpentracker(t *testing.T) {
	t.Parallel()
	for _, scheme := range []string{"http", "udp"} {
		t.Run(scheme, func(t *testing.T) {
			ot, tor := withOpentracker(t, false, false)
			res, err := Transmission(bounded(t), t, Scenario{Tracker: ot.URL(scheme, "/announce"), Torrent: tor})
			if err != nil {
				t.Fatal(err)
			}
			logResult(t, res)
			checkSeen(t, "seeder", res.Seeder)
		})
	}
}

// TestLibtorrentReportsTrackerFailure checks that a scenario the tracker
// refuses fails soon, with the tracker's reason in the error.
func TestLibtorrentReportsTrackerFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path string
		listed     bool
		want       string
	}{
		// Debian's opentracker serves whitelisted torrents only.
		{name: "unlisted", path: "/announce", want: "Requested download is not authorized"},
		// libtorrent refuses the query before sending anything.
		{name: "ssrf", path: "/announce?key=abc", listed: true, want: "ssrf_mitigation refused the tracker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tor := MakeTorrent(t, t.TempDir(), placeholder, 64<<10, false)
			var listed [][20]byte
			if tt.listed {
				listed = tor.TrackerHashes()
			}
			ot := StartOpentracker(t, listed...)
			start := time.Now()
			res, err := Libtorrent(bounded(t), t, Scenario{Tracker: ot.URL("http", tt.path), Torrent: tor, Timeout: 45 * time.Second})
			if err == nil {
				t.Fatalf("Libtorrent succeeded; want an error with %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "three times in a row") {
				t.Errorf("Libtorrent error does not say %q and that it gave up:\n%v", tt.want, err)
			}
			if len(res.Leecher.Errors) < 3 {
				t.Errorf("leecher saw tracker errors %q; want at least 3", res.Leecher.Errors)
			}
			t.Logf("failed after %v", time.Since(start).Round(time.Millisecond))
		})
	}
}

func TestDictEntries(t *testing.T) {
	entries, err := dictEntries([]byte("d8:announce3:url4:infod4:name1:xe5:nodesli1eee"))
	want := []entry{{"announce", []byte("3:url")}, {"info", []byte("d4:name1:xe")}, {"nodes", []byte("li1ee")}}
	if err != nil || !reflect.DeepEqual(entries, want) {
		t.Errorf("dictEntries = %q, %v; want %q", entries, err, want)
	}
	for _, in := range []string{"", "le", "d4:infoi1e", "d4:infoi1ee1", "d4:infodee8:announce0:e", "d4:infoi01ee"} {
		if entries, err := dictEntries([]byte(in)); err == nil {
			t.Errorf("dictEntries(%q) = %q; want an error", in, entries)
		}
	}
}

// TestTorrentHashes checks the torrents made here against libtorrent's
// reading of them.
func TestTorrentHashes(t *testing.T) {
	t.Parallel()
	requireLibtorrent(t)
	for _, tt := range []struct {
		name            string
		private, hybrid bool
	}{
		{"v1", false, false}, {"v1-private", true, false}, {"hybrid", false, true}, {"hybrid-private", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mk := MakeTorrent
			if tt.hybrid {
				mk = MakeHybridTorrent
			}
			tor := mk(t, t.TempDir(), placeholder, 100_000, tt.private)
			path, err := writeTorrent(t.TempDir(), tor, "udp://[::1]:6969/announce/PK")
			if err != nil {
				t.Fatal(err)
			}
			out, err := runCommand(t, pythonPath, "-c", `
import json, sys, libtorrent as lt
ti = lt.torrent_info(sys.argv[1])
ih = ti.info_hashes()
print(json.dumps({"v1": str(ih.v1) if ih.has_v1() else "", "v2": str(ih.v2) if ih.has_v2() else "",
    "private": ti.priv(), "size": ti.total_size(), "name": ti.name(),
    "trackers": [t.url for t in ti.trackers()]}))`, path)
			if err != nil {
				t.Fatalf("libtorrent cannot read the torrent: %v\n%s", err, out)
			}
			var got struct {
				V1, V2   string
				Private  bool
				Size     int
				Name     string
				Trackers []string
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			wantV2 := ""
			if tt.hybrid {
				wantV2 = hex.EncodeToString(tor.V2[:])
			}
			if got.V1 != hex.EncodeToString(tor.InfoHash[:]) || got.V2 != wantV2 {
				t.Errorf("libtorrent reads hashes v1 %s, v2 %q; want %x, %q", got.V1, got.V2, tor.InfoHash, wantV2)
			}
			if got.Private != tt.private || got.Size != tor.Size || got.Name != tor.Name {
				t.Errorf("libtorrent reads private %v, size %d, name %q; want %v, %d, %q",
					got.Private, got.Size, got.Name, tt.private, tor.Size, tor.Name)
			}
			if len(got.Trackers) != 1 || got.Trackers[0] != "udp://[::1]:6969/announce/PK" {
				t.Errorf("libtorrent reads trackers %q; want the one written", got.Trackers)
			}
		})
	}
}

func TestScenarioTracker(t *testing.T) {
	t.Parallel()
	tor := MakeTorrent(t, t.TempDir(), "udp://127.0.0.1:6969/announce/PK", 1000, false)
	if got, want := (&Scenario{Torrent: tor}).tracker(), "udp://127.0.0.1:6969/announce/PK"; got != want {
		t.Errorf("tracker of a scenario without Tracker = %q; want the torrent's %q", got, want)
	}
	if got, want := (&Scenario{Torrent: tor, Tracker: "http://[::1]:80/announce"}).tracker(), "http://[::1]:80/announce"; got != want {
		t.Errorf("tracker of a scenario with Tracker = %q; want %q", got, want)
	}
	for _, bad := range []string{"http://192.0.2.1/announce", "wss://127.0.0.1/announce", "udp://localhost:1/announce"} {
		if _, err := (&Scenario{Torrent: tor, Tracker: bad}).check(); err == nil {
			t.Errorf("scenario with tracker %q is accepted; want an error (loopback http or udp only)", bad)
		}
	}
	sc := &Scenario{Torrent: tor, LeecherTracker: "http://127.0.0.1:7070/announce"}
	if sc.oneTracker() == nil {
		t.Error("a scenario with a LeecherTracker passes oneTracker; the runners other than Libtorrent must refuse it")
	}
}

// TestCrashedSilently: only a crash signal before any announce counts as a
// crash of the client that may be retried.
func TestCrashedSilently(t *testing.T) {
	for _, tc := range []struct {
		script    string
		announced bool
		want      bool
	}{
		{"kill -SEGV $$", false, true},
		{"kill -BUS $$", false, true},
		{"kill -SEGV $$", true, false},
		{"kill -KILL $$", false, false},
		{"exit 1", false, false},
		{"exit 0", false, false},
	} {
		s := &ltSession{changed: make(chan struct{})}
		p, err := startProc(t, "sh", exec.Command("/bin/sh", "-c", tc.script), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.p = p
		<-p.done
		if tc.announced {
			s.onLine(`{"ev":"announce","event":2}`)
		}
		if got := s.crashedSilently(); got != tc.want {
			t.Errorf("%q, announced %v: crashedSilently = %v; want %v", tc.script, tc.announced, got, tc.want)
		}
	}
}

// TestRetryCrashes: a session that crashes before any announce is started
// again; one that crashed after announcing, or failed otherwise, is not.
func TestRetryCrashes(t *testing.T) {
	// Each script is one try's process; a try that prints the seeding
	// event succeeds.
	const seeds = `echo '{"ev":"seeding"}'; sleep 5`
	for _, tc := range []struct {
		name    string
		scripts []string
		tries   int
		ok      bool
	}{
		{"crash, then seeds", []string{"kill -SEGV $$", seeds}, 2, true},
		{"three crashes", []string{"kill -SEGV $$", "kill -BUS $$", "kill -ABRT $$", seeds}, 3, false},
		{"crash after an announce", []string{`echo '{"ev":"announce","event":2}'; kill -SEGV $$`, seeds}, 1, false},
		{"exits", []string{"exit 1", seeds}, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tries := 0
			s, err := retryCrashes(t, func() (*ltSession, error) {
				s := &ltSession{changed: make(chan struct{})}
				p, err := startProc(t, "sh", exec.Command("/bin/sh", "-c", tc.scripts[tries]), s.onLine)
				tries++
				s.p = p
				return s, err
			}, func(s *ltSession) error {
				_, err := s.wait(bounded(t), "seeding", false, func(ev event) bool { return ev.Ev == "seeding" })
				return err
			})
			if tries != tc.tries || (err == nil) != tc.ok || s == nil {
				t.Errorf("%d tries, %v, session %v; want %d tries, success %v", tries, err, s, tc.tries, tc.ok)
			}
		})
	}
}
