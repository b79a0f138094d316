//go:build unix

package main

// Instances of the program sharing their swarms through one Redis: each
// answers the clients of the others, real clients download across them,
// and they ride out Redis going away.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/annuaire/tracker/internal/interop"
	"github.com/annuaire/tracker/internal/redisserver"
)

// sharedKey is the UDP connection-id key the instances of a test share.
const sharedKey = "00112233445566778899aabbccddeeff"

// startOnRedis starts the program with its swarms in srv.
func startOnRedis(t *testing.T, srv *redisserver.Server, extra ...string) *proc {
	t.Helper()
	args := append(slices.Clone(loopback), "-store", srv.URL(), "-conn-id-key", sharedKey)
	return start(t, nil, append(args, extra...)...)
}

var (
	completeRE   = regexp.MustCompile(`8:completei(\d+)e`)
	downloadedRE = regexp.MustCompile(`10:downloadedi(\d+)e`)
	incompleteRE = regexp.MustCompile(`10:incompletei(\d+)e`)
)

// scrapeHTTP scrapes one hash over HTTP and returns its seeders,
// snatches and leechers.
func scrapeHTTP(t *testing.T, addr string, hash [20]byte) (complete, downloaded, incomplete int) {
	t.Helper()
	body := httpGet(t, fmt.Sprintf("http://%s/scrape?info_hash=%s", addr, escapeAll(hash[:])), http.StatusOK)
	counts := make([]int, 3)
	for i, re := range []*regexp.Regexp{completeRE, downloadedRE, incompleteRE} {
		m := re.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("scrape reply %q lacks %s", body, re)
		}
		counts[i], _ = strconv.Atoi(m[1])
	}
	complete, downloaded, incomplete = counts[0], counts[1], counts[2]
	return complete, downloaded, incomplete
}

// hasPeer reports whether a compact IPv4 peer list holds port.
func hasPeer(peers []byte, port uint16) bool {
	for i := 0; i+6 <= len(peers); i += 6 {
		if binary.BigEndian.Uint16(peers[i+4:]) == port {
			return true
		}
	}
	return false
}

var compactPeersRE = regexp.MustCompile(`5:peers(\d+):`)

// httpPeers returns the compact peers of an HTTP announce reply.
func httpPeers(t *testing.T, body string) []byte {
	t.Helper()
	m := compactPeersRE.FindStringSubmatchIndex(body)
	if m == nil {
		t.Fatalf("announce reply %q holds no compact peers", body)
	}
	n, _ := strconv.Atoi(body[m[2]:m[3]])
	return []byte(body[m[1] : m[1]+n])
}

// TestRedisSharedSwarms: two instances on one Redis answer for the same
// swarms, over HTTP and UDP, and accept each other's connection ids.
func TestRedisSharedSwarms(t *testing.T) {
	t.Parallel()
	srv := redisserver.ForTest(t)
	a, b := startOnRedis(t, srv), startOnRedis(t, srv)
	if rec := a.log.waitFor(t, nil, 1, "configuration", nil); rec["store"] != srv.URL() {
		t.Errorf("configuration %v; want store %s", rec, srv.URL())
	}
	hash := hash20("shared-swarm")
	announceHTTP(t, a.addr("http"), "/announce", hash, hash20("seeder"), 6881, 0)
	body := announceHTTP(t, b.addr("http"), "/announce", hash, hash20("leecher"), 6882, 100)
	if !strings.Contains(body, "8:completei1e") || !strings.Contains(body, "10:incompletei1e") || !hasPeer(httpPeers(t, body), 6881) {
		t.Errorf("leecher's announce to B: %q; want the seeder that announced to A", body)
	}
	// A connection id from A is good at B.
	id := newUDPClient(t, a.addr("udp")).connect()
	r := newUDPClient(t, b.addr("udp")).announceWith(id, hash, hash20("udp-leecher"), 6883, 50, "")
	if r.err != "" || r.seeders != 1 || r.leechers != 2 || !hasPeer(r.peers, 6881) || !hasPeer(r.peers, 6882) {
		t.Errorf("UDP announce to B with A's connection id: %+v; want 1 seeder, 2 leechers, both other peers", r)
	}
	for _, p := range []*proc{a, b} {
		if c, d, i := scrapeHTTP(t, p.addr("http"), hash); c != 1 || d != 0 || i != 2 {
			t.Errorf("scrape of %s: complete %d, downloaded %d, incomplete %d; want 1, 0, 2", p.addr("http"), c, d, i)
		}
	}
	waitUntil(t, "A's /metrics shows the store's calls", func() bool {
		m := httpGet(t, "http://"+a.addr("metrics")+"/metrics", http.StatusOK)
		return strings.Contains(m, "\n"+`annuaire_store_calls_total{op="announce"} 1`+"\n") &&
			strings.Contains(m, "\n"+`annuaire_store_calls_total{op="scrape"} 1`+"\n") &&
			strings.Contains(m, "\n"+`annuaire_store_failures_total{cause="unavailable",op="announce"} 0`+"\n") &&
			strings.Contains(m, "\nannuaire_store_call_duration_seconds_count{op=\"announce\"} 1\n")
	})
	// Without a shared key, an instance says what it costs.
	c := start(t, nil, append(slices.Clone(loopback), "-store", srv.URL())...)
	c.log.waitFor(t, nil, 1, "the UDP connection-id key is random: instances sharing the store refuse each other's connection ids; set -conn-id-key", nil)
	for _, p := range []*proc{a, b, c} {
		p.signal(syscall.SIGTERM)
		if code := p.wait(15 * time.Second); code != 0 {
			t.Errorf("exit status %d after SIGTERM; want 0; log:\n%s", code, p.log.text())
		}
	}
}

// TestRedisStartError: an instance whose Redis does not answer stops at
// start, saying so on one line, without the password.
func TestRedisStartError(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	p := startNoWait(t, nil, "-http", "127.0.0.1:0", "-udp", "", "-store", "redis://user:hunter2@"+addr+"/0")
	if code := p.wait(30 * time.Second); code != 1 {
		t.Errorf("exit status %d; want 1", code)
	}
	out := strings.TrimSpace(p.log.text())
	if want := "annuaire: -store redis://user:xxxxx@" + addr + "/0: "; !strings.HasPrefix(out, want) || strings.Contains(out, "\n") {
		t.Errorf("stderr %q; want one line starting %q", out, want)
	}
	if strings.Contains(out, "hunter2") {
		t.Errorf("the password was printed: %s", out)
	}
}

// TestRedisLibtorrent: a libtorrent seeder announcing to one instance and
// a leecher announcing to the other complete a download; each instance's
// scrape shows what the other heard, and, with a seeder at one and a
// session that downloaded at the other both running, counts both.
func TestRedisLibtorrent(t *testing.T) {
	t.Parallel()
	srv := redisserver.ForTest(t)
	a, b := startOnRedis(t, srv), startOnRedis(t, srv)
	urlA := "http://" + a.addr("http") + "/announce"
	urlB := "udp://" + b.addr("udp") + "/announce"
	tor := interop.MakeTorrent(t, t.TempDir(), urlA, 1<<20, false)
	hash := tor.TrackerHashes()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A seeder that stays while another instance is scraped.
	sd, err := interop.Seed(ctx, t, interop.Scenario{Tracker: urlA, Torrent: tor})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := interop.LibtorrentScrape(ctx, t, urlB, tor)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Complete != 1 || sc.Incomplete != 0 {
		t.Errorf("libtorrent's scrape of B: %+v; want the seeder that announced to A", sc)
	}
	sd.Stop()

	res, err := interop.Libtorrent(ctx, t, interop.Scenario{Tracker: urlA, LeecherTracker: urlB, Torrent: tor})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("downloaded in %v; seeder replies %v, leecher replies %v", res.Elapsed, res.Seeder.Replies, res.Leecher.Replies)
	// The leecher completed at B; both count the snatch.
	for _, p := range []*proc{a, b} {
		if _, d, _ := scrapeHTTP(t, p.addr("http"), hash); d != 1 {
			t.Errorf("%s's scrape after the download: downloaded %d; want the leecher's completion at B", p.addr("http"), d)
		}
	}

	// Both at once: a seeder at A, and a libtorrent session at B that
	// starts from nothing, downloads from it and stays as a seeder. A
	// scrape of either instance counts both.
	sd, err = interop.Seed(ctx, t, interop.Scenario{Tracker: urlA, Torrent: tor})
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Stop()
	empty := *tor
	empty.ContentDir = t.TempDir()
	lc, err := interop.Seed(ctx, t, interop.Scenario{Tracker: urlB, Torrent: &empty})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Stop()
	want, err := os.ReadFile(filepath.Join(tor.ContentDir, tor.Name))
	if err != nil {
		t.Fatal(err)
	}
	// libtorrent seeds once every piece has passed its hash check, which
	// it computes before its writes to the file are all done: the file
	// may trail for a moment.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, err := os.ReadFile(filepath.Join(empty.ContentDir, tor.Name))
		if err == nil && bytes.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the download at B differs from the seeder's content 10 s after it seeds (%d bytes, %v)", len(got), err)
		}
	}
	for _, u := range []string{urlA, urlB, "udp://" + a.addr("udp") + "/announce", "http://" + b.addr("http") + "/announce"} {
		sc, err := interop.LibtorrentScrape(ctx, t, u, tor)
		if err != nil {
			t.Fatal(err)
		}
		if sc.Complete != 2 || sc.Incomplete != 0 {
			t.Errorf("libtorrent's scrape of %s: %+v; want the seeder at A and the one that downloaded at B", u, sc)
		}
	}
	for _, p := range []*proc{a, b} {
		if c, d, i := scrapeHTTP(t, p.addr("http"), hash); c != 2 || d != 2 || i != 0 {
			t.Errorf("scrape of %s: complete %d, downloaded %d, incomplete %d; want 2, 2, 0", p.addr("http"), c, d, i)
		}
	}
}

// outcome is what a request of the outage test got.
type outcome struct {
	start, end time.Time
	ok         bool   // a reply with peers and counts
	failure    string // the tracker's failure reason, when it answered one
	err        error  // no answer
}

// TestRedisOutage kills Redis under load and starts it again, empty: the
// server does not crash, fails requests only while Redis is away, and
// serves again within a second of its return. The outage lasts 2s, or
// what ANNUAIRE_TEST_REDIS_OUTAGE says (go test -run TestRedisOutage with
// ANNUAIRE_TEST_REDIS_OUTAGE=10s, for instance).
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	outage := 2 * time.Second
	if v := os.Getenv("ANNUAIRE_TEST_REDIS_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("ANNUAIRE_TEST_REDIS_OUTAGE=%q: want a positive duration", v)
		}
		outage = d
	}
	srv := redisserver.ForTest(t)
	// The load comes from one address, faster than a client would.
	p := startOnRedis(t, srv, "-rate-limit", "0")
	httpAddr, udpAddr := p.addr("http"), p.addr("udp")

	var (
		mu       sync.Mutex
		outcomes []outcome
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	record := func(o outcome) {
		o.end = time.Now()
		mu.Lock()
		outcomes = append(outcomes, o)
		mu.Unlock()
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				hash, peer := hash20(fmt.Sprintf("swarm-%d", i%16)), hash20(fmt.Sprintf("peer-%d-%d", w, i%100))
				o := outcome{start: time.Now()}
				u := fmt.Sprintf("http://%s/announce?info_hash=%s&peer_id=%s&port=%d&uploaded=0&downloaded=0&left=%d&compact=1",
					httpAddr, escapeAll(hash[:]), escapeAll(peer[:]), 7000+w, i%2)
				resp, err := client.Get(u)
				if err != nil {
					o.err = err
				} else {
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					switch body := string(b); {
					case err != nil:
						o.err = err
					case interval(body) > 0 && !strings.Contains(body, "14:failure reason"):
						o.ok = true
					default:
						o.failure = body
					}
				}
				record(o)
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	wg.Go(func() {
		// UDP: a connect and an announce per round, without retries.
		conn, err := net.Dial("udp", udpAddr)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		buf := make([]byte, 1500)
		exchange := func(req []byte) (uint32, []byte, error) {
			conn.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := conn.Write(req); err != nil {
				return 0, nil, err
			}
			n, err := conn.Read(buf)
			if err != nil || n < 8 {
				return 0, nil, fmt.Errorf("no reply: %v", err)
			}
			return binary.BigEndian.Uint32(buf), buf[8:n], nil
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			o := outcome{start: time.Now()}
			req := binary.BigEndian.AppendUint64(nil, udpProtocolID)
			req = binary.BigEndian.AppendUint32(req, udpActionConnect)
			req = binary.BigEndian.AppendUint32(req, uint32(i))
			action, body, err := exchange(req)
			if err == nil && action == udpActionConnect && len(body) == 8 {
				hash, peer := hash20(fmt.Sprintf("udp-swarm-%d", i%4)), hash20(fmt.Sprintf("udp-peer-%d", i%50))
				req = binary.BigEndian.AppendUint64(nil, binary.BigEndian.Uint64(body))
				req = binary.BigEndian.AppendUint32(req, udpActionAnnounce)
				req = binary.BigEndian.AppendUint32(req, uint32(i))
				req = append(req, hash[:]...)
				req = append(req, peer[:]...)
				req = binary.BigEndian.AppendUint64(req, 0)
				req = binary.BigEndian.AppendUint64(req, 10) // left
				req = binary.BigEndian.AppendUint64(req, 0)
				req = binary.BigEndian.AppendUint32(req, 0)
				req = binary.BigEndian.AppendUint32(req, 0)
				req = binary.BigEndian.AppendUint32(req, 0)
				req = binary.BigEndian.AppendUint32(req, 50)
				req = binary.BigEndian.AppendUint16(req, 9000)
				action, body, err = exchange(req)
			}
			switch {
			case err != nil:
				o.err = err
			case action == udpActionAnnounce:
				o.ok = true
			case action == udpActionError:
				o.failure = "udp: " + string(body)
			default:
				o.err = fmt.Errorf("UDP reply with action %d", action)
			}
			record(o)
			time.Sleep(2 * time.Millisecond)
		}
	})

	time.Sleep(time.Second)
	killed := time.Now()
	srv.Kill()
	time.Sleep(outage)
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now() // Redis answers PING from here on
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()

	var before, during, after, failed int
	firstOK := time.Time{}
	for _, o := range outcomes {
		switch {
		case o.end.Before(killed):
			before++
			if !o.ok {
				t.Errorf("before the outage: %+v; want a reply", o)
			}
		case o.start.After(back.Add(time.Second)):
			after++
			if !o.ok {
				t.Errorf("%v after Redis's return: %+v; want a reply", o.start.Sub(back), o)
			}
		default:
			during++
		}
		if !o.ok {
			failed++
			if o.err != nil {
				t.Errorf("a request got no answer at %v: %v; a failure must be answered", o.start.Sub(killed), o.err)
			}
		}
		if o.ok && o.start.After(back) && (firstOK.IsZero() || o.end.Before(firstOK)) {
			firstOK = o.end
		}
		if d := o.end.Sub(o.start); d > 2*time.Second {
			t.Errorf("a request took %v; the store's timeout bounds it", d)
		}
	}
	t.Logf("%d requests before the outage, %d around it (%d failed), %d after; served again %v after Redis's return",
		before, during, failed, after, firstOK.Sub(back))
	if before == 0 || after == 0 || failed == 0 {
		t.Errorf("before %d, after %d, failed %d: the load did not cover the outage", before, after, failed)
	}
	if firstOK.IsZero() || firstOK.Sub(back) > time.Second {
		t.Errorf("first reply %v after Redis's return; want within a second", firstOK.Sub(back))
	}
	m := httpGet(t, "http://"+p.addr("metrics")+"/metrics", http.StatusOK)
	if !regexp.MustCompile(`\nannuaire_store_failures_total\{cause="(unavailable|timeout)",op="announce"\} [1-9]`).MatchString(m) {
		t.Errorf("/metrics counts no store failure:\n%s", grep(m, "annuaire_store_failures_total"))
	}
	httpGet(t, "http://"+p.addr("metrics")+"/healthz", http.StatusOK)
	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM; want 0", code)
	}
}
