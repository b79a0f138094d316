package main

// Tests of the real program: the binary is built once, static, and each
// test starts it on loopback ports, learns its addresses from its JSON log,
// and talks to it as clients and operators do.

import (
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binDir    string // made by TestMain
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "annuaire-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// programPath returns the path of the program, built without cgo the first
// time it is asked for.
func programPath(t *testing.T) string {
	t.Helper()
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("the tests send Unix signals")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the program with")
	}
	buildOnce.Do(func() {
		binPath = filepath.Join(binDir, "annuaire")
		cmd := exec.Command(goCmd, "build", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is the program running.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	log    *logWatcher
	exited chan struct{} // closed once the process is reaped
	err    error         // of Wait, once exited is closed
}

// start runs the program with args and only the variables of env, and
// waits until it is ready. The process is killed, if still running, and
// reaped when the test ends.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := startNoWait(t, env, args...)
	p.log.waitFor(t, p.exited, 1, "ready", nil)
	return p
}

func startNoWait(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(programPath(t), args...)
	cmd.Env = append([]string{}, env...) // nothing inherited
	return startCmd(t, cmd)
}

// startCmd starts cmd, the program or a command that runs it in its place
// (exec), logging to the returned proc's watcher.
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{t: t, log: newLogWatcher(), exited: make(chan struct{}), cmd: cmd}
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		p.cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("process %d not reaped after SIGKILL", p.cmd.Process.Pid)
		}
	})
	return p
}

// signal sends sig to the process.
func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// wait waits at most timeout for the process to end, and returns its exit
// status.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("the process did not exit within %v; log:\n%s", timeout, p.log.text())
	}
	if ee, ok := errors.AsType[*exec.ExitError](p.err); ok {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatal(p.err)
	}
	return 0
}

// addr returns the only address the process listens on for protocol.
func (p *proc) addr(protocol string) string {
	p.t.Helper()
	a := p.log.addrs()[protocol]
	if len(a) != 1 {
		p.t.Fatalf("%s listeners: %v; want one", protocol, a)
	}
	return a[0]
}

// loopback is how every test starts the program, on port 0 of each
// protocol, logging JSON, and shutting down without a grace period (the
// tests that need one give it).
var loopback = []string{"-http", "127.0.0.1:0", "-udp", "127.0.0.1:0", "-metrics", "127.0.0.1:0", "-log-format", "json", "-shutdown-grace", "0"}

func TestBinaryIsStatic(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("checks an ELF file")
	}
	f, err := elf.Open(programPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v program header: it is not static", p.Type)
		}
	}
}

func TestServeHTTPAndUDP(t *testing.T) {
	p := start(t, nil, loopback...)
	httpAddr, udpAddr, metrics := p.addr("http"), p.addr("udp"), "http://"+p.addr("metrics")
	httpGet(t, metrics+"/healthz", 200)
	httpGet(t, metrics+"/readyz", 200)

	hash := hash20("swarm-a")
	body := announceHTTP(t, httpAddr, "/announce", hash, hash20("peer-http"), 6881, 100)
	if interval(body) <= 0 {
		t.Fatalf("HTTP announce: %q; want a reply with an interval", body)
	}
	// A seeder over UDP, from the same address: it gets the leecher.
	r := newUDPClient(t, udpAddr).announce(hash, hash20("peer-udp"), 6882, 0, "")
	if r.err != "" || r.interval == 0 || r.seeders != 1 || r.leechers != 1 || len(r.peers) != 6 {
		t.Fatalf("UDP announce: %+v; want 1 seeder, 1 leecher and one IPv4 peer", r)
	}
	if peerPort := int(r.peers[4])<<8 | int(r.peers[5]); peerPort != 6881 {
		t.Errorf("UDP announce: peer port %d; want 6881", peerPort)
	}

	want := []string{
		`annuaire_requests_total{op="announce",outcome="ok",protocol="http"} 1`,
		`annuaire_requests_total{op="announce",outcome="ok",protocol="udp"} 1`,
		`annuaire_requests_total{op="connect",outcome="ok",protocol="udp"} 1`,
		`annuaire_request_duration_seconds_count{op="announce",protocol="udp"} 1`,
		`annuaire_peers 2`,
		`annuaire_seeders 1`,
		`annuaire_swarms 1`,
		`annuaire_announces_total 2`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	}
	waitUntil(t, "/metrics shows both announces", func() bool {
		m := httpGet(t, metrics+"/metrics", 200)
		for _, w := range want {
			if !strings.Contains(m, "\n"+w) {
				return false
			}
		}
		return true
	})
	if got := httpGet(t, metrics+"/debug/pprof/", 404); got == "" {
		t.Error("/debug/pprof/ without -pprof: empty 404")
	}

	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM; want 0; log:\n%s", code, p.log.text())
	}
	p.log.waitFor(t, nil, 1, "stopped", nil)
	// Nothing per request above debug: the log holds start-up and shutdown.
	for _, rec := range p.log.find("", nil) {
		t.Errorf("log record without a message: %v", rec)
	}
	for _, line := range strings.Split(p.log.text(), "\n") {
		if strings.Contains(line, "announce?") || strings.Contains(line, "peer-") {
			t.Errorf("a request reached the log: %s", line)
		}
	}
}

func TestPprof(t *testing.T) {
	p := start(t, nil, append(loopback, "-pprof")...)
	if body := httpGet(t, "http://"+p.addr("metrics")+"/debug/pprof/", 200); !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/: %.200q; want the index of profiles", body)
	}
	httpGet(t, "http://"+p.addr("metrics")+"/debug/pprof/heap?debug=1", 200)
	p.signal(syscall.SIGINT)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGINT; want 0", code)
	}
}

func TestPasskeysReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "passkeys")
	const alice, bob = "aliceAAAAAAAAAAAAAAAAAAAAAAAAAAA", "bobBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	// Files are replaced as operators should: a new file renamed over the
	// old one.
	write := func(content string) {
		tmp := filepath.Join(dir, "passkeys.new")
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write("# passkey user\n" + alice + " 1\n")
	p := start(t, nil, append(loopback, "-passkeys", file)...)
	httpAddr, udpAddr := p.addr("http"), p.addr("udp")
	if rec := p.log.waitFor(t, nil, 1, "configuration", nil); rec["mode"] != "private" || rec["passkeys"] != 1.0 {
		t.Errorf("configuration: %v; want mode private and 1 passkey", rec)
	}

	hash := hash20("private-swarm")
	announce := func(passkey string) string {
		return announceHTTP(t, httpAddr, "/announce/"+passkey, hash, hash20("peer-"+passkey[:3]), 6881, 1)
	}
	accepted := func(who, passkey string) {
		t.Helper()
		if body := announce(passkey); interval(body) <= 0 {
			t.Errorf("%s's passkey: %q; want it accepted", who, body)
		}
	}
	refused := func(who, passkey string) {
		t.Helper()
		if body := announce(passkey); !strings.Contains(body, "invalid passkey") {
			t.Errorf("%s's passkey: %q; want it refused", who, body)
		}
	}
	accepted("alice", alice)
	refused("bob", bob)
	if r := newUDPClient(t, udpAddr).announce(hash, hash20("udp-alice"), 6890, 1, "/announce/"+alice); r.err != "" {
		t.Errorf("UDP announce with alice's passkey: error %q", r.err)
	}
	if r := newUDPClient(t, udpAddr).announce(hash, hash20("udp-bob"), 6891, 1, "/announce/"+bob); r.err != "invalid passkey" {
		t.Errorf("UDP announce with bob's passkey: %+v; want the error \"invalid passkey\"", r)
	}

	// Bob replaces alice.
	write(bob + " 2\n")
	p.signal(syscall.SIGHUP)
	p.log.waitFor(t, nil, 1, "reloaded", map[string]any{"list": "passkeys", "count": 1})
	accepted("bob", bob)
	refused("alice", alice)

	// A malformed file is refused whole: bob's passkey stays valid.
	write(alice + " 1\nnot/a/passkey\n")
	p.signal(syscall.SIGHUP)
	rec := p.log.waitFor(t, nil, 1, "reload failed; the previous list stays in force", map[string]any{"list": "passkeys"})
	if rec["level"] != "ERROR" || !strings.Contains(fmt.Sprint(rec["err"]), "passkeys:2:") {
		t.Errorf("reload of a malformed file logged %v; want an error naming line 2", rec)
	}
	accepted("bob", bob)
	refused("alice", alice)

	// An unreadable file too.
	os.Remove(file)
	p.signal(syscall.SIGHUP)
	p.log.waitFor(t, nil, 2, "reload failed; the previous list stays in force", map[string]any{"list": "passkeys"})
	accepted("bob", bob)

	// The peers announced before the reloads are all still there.
	if body := httpGet(t, "http://"+p.addr("metrics")+"/metrics", 200); !strings.Contains(body, "\nannuaire_peers 3\n") {
		t.Errorf("after the reloads, /metrics does not show 3 peers:\n%s", grep(body, "annuaire_peers"))
	}

	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM; want 0", code)
	}
	if log := p.log.text(); strings.Contains(log, alice) || strings.Contains(log, bob) {
		t.Errorf("a passkey was logged:\n%s", log)
	}
}

// grep returns the lines of s that contain substr.
func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestEnvironment(t *testing.T) {
	dir := t.TempDir()
	torrents := filepath.Join(dir, "torrents")
	listed := hash20("listed-torrent")
	if err := os.WriteFile(torrents, []byte(fmt.Sprintf("%x # the only one\n", listed)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"ANNUAIRE_HTTP=127.0.0.1:0",
		"ANNUAIRE_UDP=", // set and empty: no UDP
		"ANNUAIRE_LOG_FORMAT=json",
		"ANNUAIRE_TORRENTS=" + torrents,
		"ANNUAIRE_TRACKER_ID=tracker-7",
		"ANNUAIRE_INTERVAL=1h", // the command line wins
		"ANNUAIRE_TRUSTED_PROXY=10.0.0.0/8,192.0.2.1",
	}
	p := start(t, env, "-interval", "2m")
	if udp := p.log.addrs()["udp"]; len(udp) != 0 {
		t.Errorf("UDP listeners %v with ANNUAIRE_UDP empty; want none", udp)
	}
	rec := p.log.waitFor(t, nil, 1, "configuration", nil)
	if rec["interval"] != "2m0s" || rec["torrents"] != 1.0 || rec["tracker_id"] != "tracker-7" ||
		fmt.Sprint(rec["trusted_proxies"]) != "[10.0.0.0/8 192.0.2.1/32]" {
		t.Errorf("configuration %v; want interval 2m0s, 1 torrent, tracker id tracker-7, 2 trusted proxies", rec)
	}

	body := announceHTTP(t, p.addr("http"), "/announce", listed, hash20("peer-1"), 6881, 1)
	if n := interval(body); n < 120 || n > 132 {
		t.Errorf("announce reply %q: interval %d; want 120 to 132 (2m and up to a tenth of jitter)", body, n)
	}
	if !strings.Contains(body, "10:tracker id9:tracker-7") {
		t.Errorf("announce reply %q: want tracker id tracker-7", body)
	}
	body = announceHTTP(t, p.addr("http"), "/announce", hash20("other-torrent"), hash20("peer-1"), 6881, 1)
	if !strings.Contains(body, "unregistered torrent") {
		t.Errorf("announce of an unlisted torrent: %q; want \"unregistered torrent\"", body)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d; want 0", code)
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	malformed := filepath.Join(dir, "malformed")
	if err := os.WriteFile(malformed, []byte("good\nbad 12 extra\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unreadable := filepath.Join(dir, "missing")
	// Addresses some other socket holds.
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()

	free := []string{"-http", "127.0.0.1:0", "-udp", "127.0.0.1:0"}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"unknown flag", nil, []string{"-nope"}, 2, "flag provided but not defined: -nope"},
		{"bad duration", nil, []string{"-interval", "soon"}, 2, `invalid value "soon" for flag -interval`},
		{"interval out of range", nil, []string{"-interval", "100ms"}, 2, "-interval 100ms: want between 1s and 14h"},
		{"argument", nil, []string{"serve"}, 2, `unexpected argument "serve"`},
		{"nothing to serve", nil, []string{"-http", "", "-udp", ""}, 2, "nothing to serve"},
		{"pprof without metrics", nil, []string{"-pprof"}, 2, "-pprof needs -metrics"},
		{"short key", nil, []string{"-conn-id-key", "00112233"}, 2, "-conn-id-key: 4 bytes: want at least 16"},
		{"bad proxy", nil, []string{"-trusted-proxy", "10.0.0.0/40"}, 2, `-trusted-proxy "10.0.0.0/40"`},
		{"bad env value", []string{"ANNUAIRE_RATE_LIMIT=fast"}, nil, 2, `ANNUAIRE_RATE_LIMIT="fast": invalid value for -rate-limit`},
		{"env out of range", []string{"ANNUAIRE_SHUTDOWN_TIMEOUT=-1s"}, nil, 2, "ANNUAIRE_SHUTDOWN_TIMEOUT -1s: want a positive duration"},
		{"secret env value", []string{"ANNUAIRE_CONN_ID_KEY=not-hex-at-all-secret"}, nil, 2, "ANNUAIRE_CONN_ID_KEY: not a hex string"},
		{"unreadable passkeys", nil, append(free, "-passkeys", unreadable), 1, "-passkeys: open " + unreadable},
		{"malformed passkeys", nil, append(free, "-passkeys", malformed), 1, "-passkeys: " + malformed + ":2: more than a passkey"},
		{"unreadable torrents", nil, append(free, "-torrents", unreadable), 1, "-torrents: open " + unreadable},
		{"malformed torrents", nil, append(free, "-torrents", malformed), 1, "-torrents: " + malformed + ":1: info hash"},
		{"https without a certificate", nil, []string{"-https", "127.0.0.1:0"}, 2, "-https needs -tls-cert and -tls-key"},
		{"certificate without https", nil, []string{"-tls-cert", "c", "-tls-key", "k"}, 2, "-tls-cert and -tls-key need -https"},
		{"unreadable certificate", nil, append(free, "-https", "127.0.0.1:0", "-tls-cert", unreadable, "-tls-key", unreadable), 1, "-tls-cert " + unreadable},
		{"unreadable key file", nil, append(free, "-conn-id-key-file", unreadable), 1, "-conn-id-key-file: open " + unreadable},
		{"bad address", nil, []string{"-http", "127.0.0.1:http-alt-nope", "-udp", ""}, 1, "-http: listen tcp"},
		{"HTTP address in use", nil, []string{"-http", tcp.Addr().String(), "-udp", ""}, 1, "address already in use"},
		{"UDP address in use", nil, []string{"-http", "", "-udp", udp.LocalAddr().String()}, 1, "address already in use"},
		{"metrics address in use", nil, append(free, "-metrics", tcp.Addr().String()), 1, "-metrics: listen tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startNoWait(t, tc.env, tc.args...)
			code := p.wait(15 * time.Second)
			out := strings.TrimSuffix(p.log.text(), "\n")
			if code != tc.code {
				t.Errorf("exit status %d; want %d", code, tc.code)
			}
			if strings.Contains(out, "\n") || !strings.HasPrefix(out, "annuaire: ") || !strings.Contains(out, tc.want) {
				t.Errorf("stderr:\n%s\nwant one line \"annuaire: ...%s...\"", out, tc.want)
			}
			if strings.Contains(out, "not-hex-at-all-secret") {
				t.Errorf("the key was printed: %s", out)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	cmd := exec.Command(programPath(t), "-h")
	cmd.Env = []string{"ANNUAIRE_HTTP=this is not read"}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("-h: %v; want exit status 0", err)
	}
	if stderr.Len() > 0 {
		t.Errorf("-h wrote to stderr: %q", stderr.String())
	}
	help := stdout.String()
	f := newFlags(new(config))
	f.fs.VisitAll(func(fl *flag.Flag) {
		if !strings.Contains(help, "\n  -"+fl.Name+" ") && !strings.Contains(help, "\n  -"+fl.Name+"  ") {
			t.Errorf("help does not list -%s", fl.Name)
		}
		if !strings.Contains(help, envName(fl.Name)) {
			t.Errorf("help does not name %s", envName(fl.Name))
		}
	})
	for _, s := range []string{"SIGHUP", "SIGTERM", "default :6969", "default 10s", "Exit status"} {
		if !strings.Contains(help, s) {
			t.Errorf("help does not mention %q", s)
		}
	}
	for i, line := range strings.Split(help, "\n") {
		if len(line) > 80 {
			t.Errorf("help line %d is %d characters long: %q", i+1, len(line), line)
		}
	}
}

// TestProxyHeader checks -client-ip-header and -allow-private-addrs behind
// a trusted proxy on loopback.
func TestProxyHeader(t *testing.T) {
	for _, allow := range []bool{false, true} {
		args := append(loopback, "-trusted-proxy", "127.0.0.1", "-client-ip-header", "X-Real-IP")
		if allow {
			args = append(args, "-allow-private-addrs")
		}
		p := start(t, nil, args...)
		hash := hash20("proxied")
		announce := func(realIP string) string {
			t.Helper()
			peer := hash20("proxied-" + realIP)
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/announce?info_hash=%s&peer_id=%s&port=6881&left=1",
				p.addr("http"), escapeAll(hash[:]), escapeAll(peer[:])), nil)
			req.Header.Set("X-Forwarded-For", "203.0.113.66") // passed on from the client: not believed
			req.Header.Set("X-Real-IP", realIP)
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return string(body)
		}
		if body := announce("198.51.100.7"); !strings.Contains(body, "11:external ip4:\xc6\x33\x64\x07") {
			t.Errorf("announce with X-Real-IP 198.51.100.7: %q; want it as the external ip", body)
		}
		body := announce("10.1.2.3")
		if allow && !strings.Contains(body, "11:external ip4:\x0a\x01\x02\x03") {
			t.Errorf("-allow-private-addrs: announce with X-Real-IP 10.1.2.3: %q; want it accepted", body)
		}
		if !allow && !strings.Contains(body, "peer address not allowed") {
			t.Errorf("announce with X-Real-IP 10.1.2.3: %q; want it refused", body)
		}
		p.signal(syscall.SIGTERM)
		if code := p.wait(15 * time.Second); code != 0 {
			t.Errorf("exit status %d; want 0", code)
		}
	}
}
