package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDefaultRateLimit checks that the server limits each address by
// default: a client's burst of 500 requests passes, a flood beyond it is
// refused within the second.
func TestDefaultRateLimit(t *testing.T) {
	p := start(t, nil, loopback...)
	base := "http://" + p.addr("http")
	hash := hash20("rate-limited")
	began := time.Now()
	var passed, refused, firstRefused int
	for i := range 1200 {
		body := httpGet(t, fmt.Sprintf("%s/scrape?info_hash=%s", base, escapeAll(hash[:])), 200)
		switch {
		case strings.Contains(body, "too many requests"):
			refused++
			if firstRefused == 0 {
				firstRefused = i + 1
			}
		case strings.Contains(body, "5:files"):
			passed++
		default:
			t.Fatalf("scrape %d: %q", i+1, body)
		}
	}
	elapsed := time.Since(began)
	t.Logf("1200 scrapes in %v: %d passed, %d refused, the first refusal at %d", elapsed.Round(time.Millisecond), passed, refused, firstRefused)
	if firstRefused > 0 && firstRefused <= 500 {
		t.Errorf("scrape %d refused: within the default burst of 500", firstRefused)
	}
	// 500 at once, then 50 a second.
	if most := 500 + int(50*elapsed.Seconds()) + 1; passed > most || refused == 0 {
		t.Errorf("%d scrapes passed and %d were refused in %v; want at most %d to pass", passed, refused, elapsed, most)
	}
}

var attackDuration = flag.Duration("attack-duration", 4*time.Second, "how long TestDescriptorLimit attacks the server")

// TestDescriptorLimit runs the server with 256 file descriptors while
// clients from eight addresses hold every connection they can: each sends
// one announce and then the start of another that never ends, and opens a
// new connection as soon as the server closes one. The metrics listener
// keeps answering /healthz, and a legitimate client's announces, each on
// a new connection, are answered.
func TestDescriptorLimit(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs 127.0.0.0/8 on loopback and ulimit")
	}
	bin := programPath(t)
	p := startCmd(t, exec.Command("/bin/sh", "-c", `ulimit -n 256 && exec "$0" "$@"`, bin,
		"-http", "127.0.0.1:0", "-udp", "127.0.0.1:0", "-metrics", "127.0.0.1:0", "-log-format", "json",
		"-shutdown-grace", "0", "-rate-limit", "0"))
	p.log.waitFor(t, p.exited, 1, "ready", nil)
	if rec := p.log.waitFor(t, nil, 1, "configuration", nil); rec["max_conns"] != 192.0 {
		t.Fatalf("configuration %v; want max_conns 192 (256 descriptors less 64)", rec)
	}
	httpAddr, metrics := p.addr("http"), "http://"+p.addr("metrics")

	stop := make(chan struct{})
	var attackers sync.WaitGroup
	var held atomic.Int64
	for i := range 400 {
		attackers.Go(func() { holdConns(fmt.Sprintf("127.0.0.%d", 2+i%8), httpAddr, stop, &held) })
	}
	defer func() {
		close(stop)
		attackers.Wait()
	}()
	waitUntil(t, "the attackers hold the connections", func() bool { return held.Load() >= 150 })

	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var announces, answered, checks, healthy int
	var worst time.Duration
	hash := hash20("legit-swarm")
	end := time.Now().Add(*attackDuration)
	for n := 0; time.Now().Before(end); n++ {
		peer := hash20(fmt.Sprint("legit-", n))
		began := time.Now()
		resp, err := client.Get(fmt.Sprintf("http://%s/announce?info_hash=%s&peer_id=%s&port=6881&left=1",
			httpAddr, escapeAll(hash[:]), escapeAll(peer[:])))
		announces++
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if interval(string(body)) > 0 {
				answered++
				worst = max(worst, time.Since(began))
			}
		}
		resp, err = client.Get(metrics + "/healthz")
		checks++
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				healthy++
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("under attack for %v (%d connections held at the end): %d of %d announces answered (slowest %v), %d of %d /healthz answered",
		*attackDuration, held.Load(), answered, announces, worst.Round(time.Millisecond), healthy, checks)
	m := httpGet(t, metrics+"/metrics", 200)
	t.Log(grep(m, "annuaire_http_connections"))
	if healthy != checks {
		t.Errorf("/healthz answered %d times of %d", healthy, checks)
	}
	if answered < announces*9/10 {
		t.Errorf("%d legitimate announces of %d answered; want 90%%", answered, announces)
	}
	if !strings.Contains(m, `annuaire_http_connections_refused_total{reason="max"}`) {
		t.Errorf("/metrics has no refused connections:\n%s", grep(m, "annuaire_http_connections"))
	}
}

// holdConns opens connections from src to addr, one at a time, until stop
// is closed: on each it sends an announce and the first bytes of another,
// and waits for the server to close it.
func holdConns(src, addr string, stop <-chan struct{}, held *atomic.Int64) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	hash, peer := hash20("attack"), hash20("attacker-"+src)
	req := fmt.Sprintf("GET /announce?info_hash=%s&peer_id=%s&port=6881&left=1 HTTP/1.1\r\nHost: t\r\n\r\nGE",
		escapeAll(hash[:]), escapeAll(peer[:]))
	buf := make([]byte, 4096)
	for {
		select {
		case <-stop:
			return
		default:
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		held.Add(1)
		io.WriteString(c, req)
		for {
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			_, err := c.Read(buf)
			if err == nil {
				continue
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				select {
				case <-stop:
				default:
					continue
				}
			}
			break
		}
		c.Close()
		held.Add(-1)
	}
}
