package main

import (
	"bytes"
	"encoding/json"
	"net"
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
		{"-http", "https://127.0.0.1:1/announce"},
		{"-http", "http://127.0.0.1:1/tracker", "-mode", "scrape"},
		{"-udp", "127.0.0.1:1", "extra"},
		{"-udp", "127.0.0.1:1", "-rate", "-5"},
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
	for _, want := range []string{"Usage:", "-udp HOST:PORT", "-http URL", "-http-close", "-write-hashes FILE", "-server-pid PID", "-duration time"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("loadgen -h does not mention %q", want)
		}
	}
}

func TestWriteHashes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "whitelist.txt")
	if code, _, stderr := runCmd("-write-hashes", file, "-swarms", "25", "-seed", "3"); code != 0 {
		t.Fatalf("loadgen -write-hashes = %d: %s", code, stderr)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 25 || len(lines[0]) != 40 {
		t.Errorf("whitelist has %d lines, the first %q; want 25 hex hashes", len(lines), lines[0])
	}
	other := filepath.Join(t.TempDir(), "other.txt")
	runCmd("-write-hashes", other, "-swarms", "25", "-seed", "4")
	if b2, _ := os.ReadFile(other); bytes.Equal(b, b2) {
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
	out := t.TempDir()
	cmd := exec.Command("scripts/bench-compare.sh",
		"-annuaire-cmd", "scripts/bench-compare.sh -serve-opentracker {udp}",
		"-rounds", "1", "-duration", "1", "-warmup", "0", "-swarms", "100", "-peers", "1000",
		"-prefill-peers", "2000", "-settle", "0", "-modes", "udp-announce,http-close", "-out", out)
	cmd.Dir = "../../.."
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench-compare.sh: %v\n%s", err, b)
	}
	t.Logf("%s", b)
	for _, want := range []string{"udp-announce    opentracker", "http-close      annuaire", "ratio", "RSS B/peer"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("the comparison's output lacks %q", want)
		}
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.json"))
	if len(files) != 4 {
		t.Errorf("%d results kept in -out; want 4 (2 contenders × 2 modes)", len(files))
	}
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
