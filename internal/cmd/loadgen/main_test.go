package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/annuaire/tracker/internal/udpwire"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-udp", "127.0.0.1:1", "-http", "http://127.0.0.1:1/announce"},
		{"-bogus"},
		{"-udp", "127.0.0.1:1", "-mode", "stop"},
		{"-udp", "127.0.0.1:1", "-duration", "soon"},
		{"-udp", "127.0.0.1:1", "-duration", "0"},
		{"-udp", "127.0.0.1:1", "-peers", "0"},
		{"-udp", "127.0.0.1:1", "-numwant", "0"},
		{"-udp", "127.0.0.1:1", "-inflight", "2", "-sockets", "4"},
		{"-udp", "127.0.0.1:1", "-seeders", "150"},
		{"-udp", "127.0.0.1:1", "-scrape-hashes", "75"},
		{"-http", "ftp://127.0.0.1:1/announce"},
		{"-http", "http://127.0.0.1:1/announce", "-tls-resume"},
		{"-http", "http://127.0.0.1:1/tracker", "-mode", "scrape"},
		{"-udp", "127.0.0.1:1", "extra"},
		{"-udp", "127.0.0.1:1", "-flood", "ddos"},
		{"-udp", "127.0.0.1:1", "-flood", "hashes", "-mode", "scrape"},
		{"-udp", "127.0.0.1:1", "-flood", "hashes", "-flood-bench", "peers"},
		{"-http", "http://127.0.0.1:1/announce", "-flood-bench", "peers"},
		{"-udp", "127.0.0.1:1", "-flood-bench", "peers", "-flood-sources", "-1"},
		{"-udp", "127.0.0.1:1", "-from", "localhost"},
		{"-udp", "127.0.0.1:1", "-sources", "8"},
		{"-udp", "127.0.0.1:1", "-rate", "-5"},
		{"-udp", "127.0.0.1:1", "-flood-bench", "hashes", "-settle", "0"},
	} {
		code, stdout, stderr := runCmd(args...)
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "loadgen: ") ||
			strings.Contains(stderr, "loadgen: loadgen") {
			t.Errorf("loadgen %q = %d, stdout %q, stderr %q; want 2 and one line of error", args, code, stdout, stderr)
		}
	}
}

func TestHelp(t *testing.T) {
	code, stdout, stderr := runCmd("-h")
	if code != 0 || stderr != "" {
		t.Errorf("loadgen -h = %d, stderr %q; want 0", code, stderr)
	}
	for _, want := range []string{"Usage:", "-udp HOST:PORT", "-http URL", "-http-close", "-write-hashes FILE", "-wait-whitelist HOST:PORT", "-server-pid PID", "-duration time",
		"-flood SHAPE", "-flood-bench SHAPE", "-from ADDR", "-rate", "-metrics-url URL"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("loadgen -h does not mention %q", want)
		}
	}
}

// writeHashes runs loadgen -write-hashes with the workload flags and
// returns what it wrote.
func writeHashes(t *testing.T, flags ...string) []byte {
	t.Helper()
	file := filepath.Join(t.TempDir(), "whitelist.txt")
	if code, _, stderr := runCmd(append([]string{"-write-hashes", file}, flags...)...); code != 0 {
		t.Fatalf("loadgen -write-hashes = %d: %s", code, stderr)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriteHashes(t *testing.T) {
	b := writeHashes(t, "-swarms", "25", "-seed", "3")
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 25 || len(lines[0]) != 40 {
		t.Errorf("whitelist has %d lines, the first %q; want 25 hex hashes", len(lines), lines[0])
	}
	if bytes.Equal(b, writeHashes(t, "-swarms", "25", "-seed", "4")) {
		t.Error("another seed wrote the same hashes")
	}
}

// fakeTracker answers connects, and announces with a valid reply or,
// with malformed, a reply one byte too long.
func fakeTracker(t *testing.T, malformed bool) string {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			h, ok := udpwire.ParseHeader(buf[:n])
			if !ok {
				continue
			}
			var reply []byte
			if h.Action == udpwire.ActionConnect {
				reply = udpwire.AppendConnect(nil, h.TxID, 42)
			} else {
				reply = udpwire.AppendAnnounce(nil, h.TxID, 0, 0, 0)
				reply = udpwire.AppendPeer(reply, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
				if malformed {
					reply = append(reply, 0)
				}
			}
			conn.WriteToUDPAddrPort(reply, from)
		}
	})
	t.Cleanup(func() {
		conn.Close()
		wg.Wait()
	})
	return conn.LocalAddr().String()
}

func TestRunJSON(t *testing.T) {
	addr := fakeTracker(t, false)
	code, stdout, stderr := runCmd("-udp", addr, "-json", "-duration", "0.3", "-warmup", "0.1",
		"-swarms", "10", "-peers", "100", "-sockets", "2", "-inflight", "8")
	if code != 0 {
		t.Fatalf("loadgen = %d: %s", code, stderr)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("output %q is not JSON: %v", stdout, err)
	}
	if res["proto"] != "udp" || res["rate"].(float64) <= 0 || res["prefill_ok"].(float64) != 100 || res["malformed"].(float64) != 0 {
		t.Errorf("result %v: want a UDP run with a positive rate and 100 peers prefilled", res)
	}
}

// TestFloodBenchJSON runs a short flood bench against the fake tracker,
// which answers every announce with no seeder: the probe's torrents read
// as answered but not stored.
func TestFloodBenchJSON(t *testing.T) {
	addr := fakeTracker(t, false)
	code, stdout, stderr := runCmd("-udp", addr, "-json", "-flood-bench", "hashes", "-rate", "500", "-flood-rate", "1000",
		"-before", "0.2", "-duration", "0.3", "-settle", "0.2", "-after", "0.2", "-warmup", "0",
		"-swarms", "10", "-peers", "100", "-probe-every", "0.05")
	if code != 0 {
		t.Fatalf("loadgen = %d: %s", code, stderr)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("output %q is not JSON: %v", stdout, err)
	}
	if res["flood"] != "hashes" || res["during_ok"].(float64) < 100 || res["flood_ok"].(float64) < 200 ||
		res["during_new_not_stored"].(float64) == 0 || res["during_new_served"].(float64) != 0 {
		t.Errorf("result %v: want a hashes flood, the legitimate load answered and the new torrents not stored", res)
	}
}

func TestMalformedExitStatus(t *testing.T) {
	addr := fakeTracker(t, true)
	code, stdout, stderr := runCmd("-udp", addr, "-duration", "0.2", "-warmup", "0", "-prefill=false",
		"-swarms", "10", "-peers", "100")
	if code != 1 || !strings.Contains(stderr, "malformed") || !strings.Contains(stdout, "malformed") {
		t.Errorf("loadgen against a tracker of malformed replies = %d, %q, %q; want 1 and the result", code, stdout, stderr)
	}
}

// TestBenchCompareScript runs scripts/bench-compare.sh in its smallest
// form, opentracker against itself.
func TestBenchCompareScript(t *testing.T) {
	switch {
	case testing.Short():
		t.Skip("a comparison takes seconds")
	case os.Geteuid() != 0:
		t.Skip("the comparison starts opentracker, which must start as root")
	case runtime.NumCPU() < 2:
		t.Skip("the comparison pins the server and the load generator to two cores")
	}
	if _, err := os.Stat("/usr/bin/opentracker"); err != nil {
		t.Skip("/usr/bin/opentracker is not installed")
	}
	runScript(t, 4, []string{"udp-announce    opentracker", "http-close      annuaire", "ratio", "RSS B/peer"},
		"scripts/bench-compare.sh", "-annuaire-cmd", "scripts/bench-compare.sh -serve-opentracker {udp}",
		"-rounds", "1", "-duration", "1", "-warmup", "0", "-swarms", "100", "-peers", "1000",
		"-prefill-peers", "2000", "-settle", "0", "-modes", "udp-announce,http-close")
}

// runScript runs a benchmark script of the repository with args and -out,
// and checks that its output has each of want and that it kept that many
// JSON results.
func runScript(t *testing.T, results int, want []string, script string, args ...string) {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command(script, append(args, "-out", out)...)
	cmd.Dir = "../../.."
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, b)
	}
	t.Logf("%s", b)
	for _, w := range want {
		if !bytes.Contains(b, []byte(w)) {
			t.Errorf("the output of %s lacks %q", script, w)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(out, "*.json")); len(files) != results {
		t.Errorf("%d results kept in -out; want %d", len(files), results)
	}
}

// TestFloodBenchScript runs scripts/flood-bench.sh in a small form: two
// floods, one round, windows of a second, the server built from examples/.
func TestFloodBenchScript(t *testing.T) {
	switch {
	case testing.Short():
		t.Skip("the bench builds the server and takes seconds")
	case runtime.GOOS != "linux":
		t.Skip("the floods come from 127.0.0.0/8, all loopback on Linux only")
	case runtime.NumCPU() < 2:
		t.Skip("the bench pins the server and the load generator to two cores")
	}
	runScript(t, 2, []string{"snatches-1    0       |", "peers-4       0       |", "answered % b/d/a", "RSS MiB"},
		"scripts/flood-bench.sh", "-rounds", "1", "-floods", "snatches-1,peers-4", "-limits", "0",
		"-before", "1", "-during", "1", "-settle", "1", "-after", "1", "-peers", "1000", "-swarms", "100",
		"-rate", "500", "-flood-rate", "2000")
}

func TestSilentTargetOneLine(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	code, _, stderr := runCmd("-udp", conn.LocalAddr().String(), "-timeout", "20ms")
	if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "no reply to connect requests") {
		t.Errorf("loadgen against a silent target = %d, %q; want 1 and one line of error", code, stderr)
	}
}

// TestWaitWhitelist: -wait-whitelist returns once the tracker serves the
// last hash -write-hashes writes with the same flags, and stops the peer
// it announced.
func TestWaitWhitelist(t *testing.T) {
	hashes := strings.Fields(string(writeHashes(t, "-swarms", "25", "-seed", "3")))
	last, err := hex.DecodeString(hashes[len(hashes)-1])
	if err != nil {
		t.Fatal(err)
	}
	// A tracker that refuses every torrent for its first 3 announces, as
	// opentracker does until it has read its whitelist, then serves the
	// last hash only.
	var mu sync.Mutex
	var started, stopped int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		q := r.URL.Query()
		if q.Get("event") == "stopped" {
			stopped++
		} else {
			started++
		}
		if started <= 3 || q.Get("info_hash") != string(last) {
			io.WriteString(w, "d14:failure reason21:requested download is not authorizede")
			return
		}
		io.WriteString(w, "d8:completei1e10:incompletei0e8:intervali1800e5:peers0:e")
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	if code, _, stderr := runCmd("-wait-whitelist", addr, "-swarms", "25", "-seed", "3"); code != 0 {
		t.Fatalf("loadgen -wait-whitelist = %d: %s", code, stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if started != 4 || stopped != 1 {
		t.Errorf("%d started and %d stopped announces; want 4 and 1", started, stopped)
	}
}
