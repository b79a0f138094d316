//go:build linux

package loadgen

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const opentrackerBin = "/usr/bin/opentracker"

// startOpentracker starts opentracker on a free loopback port with the
// workload's hashes as its whitelist, and stops it when the test ends.
func startOpentracker(t *testing.T, w Workload) (addr string, pid int) {
	t.Helper()
	if _, err := os.Stat(opentrackerBin); err != nil {
		t.Skipf("%s is not installed (apt-get install opentracker): no run against opentracker", opentrackerBin)
	}
	if os.Geteuid() != 0 {
		t.Skip("opentracker must start as root to chroot into its rootdir, where it reads the whitelist")
	}
	dir := t.TempDir()
	// opentracker reads the whitelist after dropping to tracker.user.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "whitelist.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHashes(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		conf := filepath.Join(dir, "opentracker.conf")
		err := os.WriteFile(conf, fmt.Appendf(nil,
			"listen.tcp_udp %s\naccess.whitelist /whitelist.txt\ntracker.rootdir %s\ntracker.user nobody\n", addr, dir), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd := exec.Command(opentrackerBin, "-f", conf)
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if waitListening(addr, exited) {
			t.Cleanup(stop)
			if err := w.WaitWhitelist(addr, 10*time.Second); err != nil {
				t.Fatalf("opentracker on %s: %v: %s", addr, err, out.Bytes())
			}
			return addr, cmd.Process.Pid
		}
		stop()
		if attempt == 2 {
			t.Fatalf("opentracker did not start on %s: %s", addr, out.Bytes())
		}
	}
}

// freePort returns a loopback port free for both TCP and UDP.
func freePort(t *testing.T) int {
	t.Helper()
	for range 10 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// waitListening waits until addr accepts TCP connections, for 5 seconds
// at most or until the process exits.
func waitListening(addr string, exited <-chan error) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func TestAgainstOpentracker(t *testing.T) {
	w := Workload{Swarms: 200, Peers: 2000, ScrapeHashes: 5}
	addr, pid := startOpentracker(t, w)
	check := func(t *testing.T, res *Result) {
		t.Helper()
		var all Counts
		all.add(&res.Prefill)
		all.add(&res.Counts)
		if all.Malformed != 0 || all.Failures != 0 {
			t.Errorf("%d malformed replies and %d failures from opentracker; want none", all.Malformed, all.Failures)
		}
		if res.Rate <= 0 || all.OK < all.Requests*9/10 {
			t.Errorf("%d valid replies to %d requests, %.0f/s; want nearly all valid", all.OK, all.Requests, res.Rate)
		}
	}
	base := Config{Workload: w, Timeout: time.Second, Warmup: 200 * time.Millisecond}

	t.Run("udp announce", func(t *testing.T) {
		cfg := base
		cfg.UDP, cfg.Prefill, cfg.Duration, cfg.ServerPID = addr, true, 2*time.Second, pid
		res := runGenerator(t, cfg)
		check(t, res)
		if res.Prefill.OK != 2000 || res.PrefillRate <= 0 {
			t.Errorf("prefill: %d peers accepted at %.0f/s; want 2000", res.Prefill.OK, res.PrefillRate)
		}
		if res.ServerCPU <= 0 || res.RSSBefore <= 0 || res.RSSAfter <= 0 || res.ClientCPU <= 0 {
			t.Errorf("server CPU %v, RSS %d then %d, generator CPU %v: want all measured",
				res.ServerCPU, res.RSSBefore, res.RSSAfter, res.ClientCPU)
		}
	})
	t.Run("udp scrape", func(t *testing.T) {
		cfg := base
		cfg.UDP, cfg.Mode, cfg.Duration = addr, Scrape, 500*time.Millisecond
		check(t, runGenerator(t, cfg))
	})
	t.Run("http keep-alive", func(t *testing.T) {
		cfg := base
		cfg.HTTP, cfg.Conns, cfg.Duration = "http://"+addr+"/announce", 16, 2*time.Second
		res := runGenerator(t, cfg)
		check(t, res)
		// opentracker closes every connection after one reply.
		if res.Reconnects == 0 {
			t.Errorf("no reconnects over %d requests; opentracker closes every connection", res.Requests)
		}
	})
	t.Run("http new connection", func(t *testing.T) {
		cfg := base
		cfg.HTTP, cfg.HTTPClose, cfg.Conns, cfg.Duration = "http://"+addr+"/announce", true, 16, 500*time.Millisecond
		check(t, runGenerator(t, cfg))
	})
	t.Run("http scrape", func(t *testing.T) {
		cfg := base
		cfg.HTTP, cfg.Mode, cfg.Conns, cfg.Duration = "http://"+addr+"/announce", Scrape, 16, 500*time.Millisecond
		check(t, runGenerator(t, cfg))
	})
}
