package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// halfRequest opens a connection to the HTTP listener and sends the start
// of an announce, without the end of its headers: a slow client in the
// middle of a request, which a graceful shutdown waits for (net/http gives
// such a client 5 seconds).
func halfRequest(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h, peer := hash20("in-flight"), hash20("slow-peer")
	req := fmt.Sprintf("GET /announce?info_hash=%s&peer_id=%s&port=7000&left=1 HTTP/1.1\r\nHost: tracker\r\n",
		escapeAll(h[:]), escapeAll(peer[:]))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	// The server accepts connections in order: once a later one is
	// answered, this one has been accepted, and a shutdown waits for it
	// rather than resetting it in the listen queue.
	httpGet(t, "http://"+addr+"/", http.StatusNotFound)
	return conn
}

// waitNotReady waits until /readyz, on the metrics listener at base,
// answers 503.
func waitNotReady(t *testing.T, base string) {
	t.Helper()
	waitUntil(t, "/readyz answers 503", func() bool {
		resp, err := httpClient.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
}

func TestShutdownDrains(t *testing.T) {
	p := start(t, nil, append(loopback, "-shutdown-timeout", "20s")...)
	httpAddr, metrics := p.addr("http"), "http://"+p.addr("metrics")
	conn := halfRequest(t, httpAddr)

	p.signal(syscall.SIGTERM)
	p.log.waitFor(t, p.exited, 1, "shutting down", nil)
	waitNotReady(t, metrics)
	httpGet(t, metrics+"/healthz", http.StatusOK) // alive, though not ready
	waitUntil(t, "the HTTP listener is closed", func() bool {
		c, err := net.DialTimeout("tcp", httpAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case <-p.exited:
		t.Fatalf("the process exited while a client was in the middle of a request; log:\n%s", p.log.text())
	default:
	}

	// Once the client is done, the process exits at once, and cleanly.
	conn.Close()
	began := time.Now()
	if code := p.wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d; want 0; log:\n%s", code, p.log.text())
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("exited %v after the last client left; want at once", d.Round(time.Millisecond))
	}
	p.log.waitFor(t, nil, 1, "stopped", nil)
}

func TestShutdownTimeout(t *testing.T) {
	p := start(t, nil, append(loopback, "-shutdown-timeout", "1s")...)
	halfRequest(t, p.addr("http")) // never finished
	began := time.Now()
	p.signal(syscall.SIGTERM)
	code := p.wait(15 * time.Second)
	if code == 0 {
		t.Error("exit status 0 after a shutdown that timed out; want non-zero")
	}
	// net/http gives up on a connection that has not sent its headers
	// after 5 s: the tracker must have stopped before, on its own timeout.
	if d := time.Since(began); d > 4*time.Second {
		t.Errorf("exited %v after SIGTERM; want about 1s", d.Round(time.Millisecond))
	}
	p.log.waitFor(t, nil, 1, "shutdown timed out; stopped anyway", nil)
	if last := lastLine(p.log.text()); !strings.HasPrefix(last, "annuaire: ") {
		t.Errorf("last line %q; want the error", last)
	}
}

func TestSecondSignal(t *testing.T) {
	p := start(t, nil, append(loopback, "-shutdown-timeout", "1m")...)
	halfRequest(t, p.addr("http"))
	p.signal(syscall.SIGTERM)
	p.log.waitFor(t, p.exited, 1, "shutting down", nil)
	began := time.Now()
	p.signal(syscall.SIGINT)
	if code := p.wait(10 * time.Second); code == 0 {
		t.Error("exit status 0 after a second signal; want non-zero")
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("exited %v after the second signal; want at once", d.Round(time.Millisecond))
	}
	p.log.waitFor(t, nil, 1, "second signal: stopping at once", nil)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestIPv6(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	l.Close()
	p := start(t, nil, "-http", "[::1]:0", "-udp", "[::1]:0", "-metrics", "[::1]:0", "-log-format", "json")
	httpAddr, udpAddr := p.addr("http"), p.addr("udp")
	if !strings.HasPrefix(httpAddr, "[::1]:") || !strings.HasPrefix(udpAddr, "[::1]:") {
		t.Fatalf("listening on %s and %s; want [::1]", httpAddr, udpAddr)
	}
	hash := hash20("v6-swarm")
	body := announceHTTP(t, httpAddr, "/announce", hash, hash20("v6-http"), 6881, 1)
	// The external ip (BEP 24) is the client's 16-byte address.
	if interval(body) <= 0 || !strings.Contains(body, "11:external ip16:") {
		t.Fatalf("HTTP announce over IPv6: %q", body)
	}
	r := newUDPClient(t, udpAddr).announce(hash, hash20("v6-udp"), 6882, 1, "")
	if r.err != "" || len(r.peers) != 18 {
		t.Fatalf("UDP announce over IPv6: %+v; want one 18-byte peer", r)
	}
	if got := net.IP(r.peers[:16]); !got.Equal(net.IPv6loopback) {
		t.Errorf("UDP announce over IPv6: peer address %v; want ::1", got)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d; want 0", code)
	}
}

// keepAliveLoad is a load of HTTP/1.1 clients that each keep a connection
// and send announces one after the other, as fast as they are answered. A
// client opens a new connection when the server closes its own after a
// reply that says so (Connection: close), and stops when the server no
// longer accepts connections.
type keepAliveLoad struct {
	addr    string
	stopped chan struct{} // closed to stop the clients
	wg      sync.WaitGroup

	mu       sync.Mutex
	answered int      // requests answered
	after    int      // of which, sent after mark
	lost     []string // requests written and never answered, with why
	closes   int      // replies with Connection: close
	marked   bool
}

func startKeepAliveLoad(t *testing.T, addr string, clients int) *keepAliveLoad {
	l := &keepAliveLoad{addr: addr, stopped: make(chan struct{})}
	for i := range clients {
		l.wg.Go(func() { l.client(i) })
	}
	t.Cleanup(l.stop)
	return l
}

// mark starts counting the requests answered from now on apart.
func (l *keepAliveLoad) mark() {
	l.mu.Lock()
	l.marked = true
	l.mu.Unlock()
}

// stop stops the clients and waits for them.
func (l *keepAliveLoad) stop() {
	select {
	case <-l.stopped:
	default:
		close(l.stopped)
	}
	l.wg.Wait()
}

func (l *keepAliveLoad) client(n int) {
	hash, peer := hash20(fmt.Sprint("load-swarm-", n%8)), hash20(fmt.Sprint("load-peer-", n))
	req := fmt.Sprintf("GET /announce?info_hash=%s&peer_id=%s&port=%d&uploaded=0&downloaded=0&left=1&compact=1 HTTP/1.1\r\nHost: tracker\r\n\r\n",
		escapeAll(hash[:]), escapeAll(peer[:]), 7000+n)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", l.addr, 5*time.Second)
		if err != nil {
			return // the server no longer accepts: done
		}
		rd := bufio.NewReader(conn)
		for {
			select {
			case <-l.stopped:
				conn.Close()
				return
			default:
			}
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(conn, req); err != nil {
				l.lose(fmt.Sprintf("client %d: writing: %v", n, err))
				break
			}
			resp, err := http.ReadResponse(rd, nil)
			if err != nil {
				l.lose(fmt.Sprintf("client %d: reading the reply: %v", n, err))
				break
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || interval(string(body)) <= 0 {
				l.lose(fmt.Sprintf("client %d: reply %q: %v", n, body, err))
				break
			}
			l.mu.Lock()
			l.answered++
			if l.marked {
				l.after++
			}
			if resp.Close {
				l.closes++
			}
			l.mu.Unlock()
			if resp.Close {
				break
			}
		}
		conn.Close()
	}
}

func (l *keepAliveLoad) lose(why string) {
	l.mu.Lock()
	l.lost = append(l.lost, why)
	l.mu.Unlock()
}

// TestShutdownUnderLoad sends SIGTERM to a server busy with 64 keep-alive
// clients: during the grace period every request is answered as before;
// then each connection is closed after a reply that says so, and not one
// request a client wrote is left unanswered.
func TestShutdownUnderLoad(t *testing.T) {
	const clients, grace = 64, time.Second
	p := start(t, nil, append(loopback, "-rate-limit", "0", "-shutdown-grace", grace.String())...)
	metrics := "http://" + p.addr("metrics")
	load := startKeepAliveLoad(t, p.addr("http"), clients)
	time.Sleep(300 * time.Millisecond) // the load is running

	sent := time.Now()
	p.signal(syscall.SIGTERM)
	waitNotReady(t, metrics)
	load.mark()
	// A client the load balancer has not yet moved is served too.
	if body := announceHTTP(t, p.addr("http"), "/announce", hash20("late"), hash20("late-peer"), 6881, 1); interval(body) <= 0 {
		t.Errorf("announce on a new connection during the grace period: %q", body)
	}
	if code := p.wait(20 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM; want 0; log:\n%s", code, p.log.text())
	}
	stopped := time.Since(sent)
	load.stop()
	t.Logf("stopped %v after SIGTERM; %d requests answered, %d after /readyz turned 503, %d with Connection: close, %d lost",
		stopped.Round(time.Millisecond), load.answered, load.after, load.closes, len(load.lost))
	if len(load.lost) > 0 {
		t.Errorf("%d requests written by clients were not answered:\n%s", len(load.lost), strings.Join(load.lost, "\n"))
	}
	if stopped < grace {
		t.Errorf("stopped %v after SIGTERM; want after the grace period of %v", stopped, grace)
	}
	// The grace period serves as before: clients keep their connections.
	if load.after < 100 {
		t.Errorf("%d requests answered during the grace period; want the load to go on", load.after)
	}
	if load.closes < clients {
		t.Errorf("%d replies with Connection: close; want one per client at least (%d)", load.closes, clients)
	}
}
