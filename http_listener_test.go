package tracker

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// limitedServer serves a tracker behind a ConnLimiter on loopback, with
// NewHTTPServer's timeouts.
func limitedServer(t *testing.T, limits ConnLimits) (*ConnLimiter, string) {
	return limitedServerState(t, limits, false)
}

// limitedServerState is limitedServer, telling the limiter the
// connections' states if tracked.
func limitedServerState(t *testing.T, limits ConnLimits, tracked bool) (*ConnLimiter, string) {
	t.Helper()
	cl, err := NewConnLimiter(limits)
	if err != nil {
		t.Fatal(err)
	}
	h, l := httpListenTest(t)
	srv := NewHTTPServer(h)
	if tracked {
		srv.ConnState = cl.ConnState
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(cl.Listener(l)) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return cl, l.Addr().String()
}

// dialFrom opens a connection to addr from the loopback address src ("" for
// any).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// scrapeOn sends a scrape on c and reports whether it was answered.
func scrapeOn(c net.Conn) bool {
	h := httpTestHash(1)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /scrape?info_hash="+httpLT(h[:])+" HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// closedSoon reports whether the server closes c within d.
func closedSoon(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestConnLimiterPerAddr(t *testing.T) {
	cl, addr := limitedServer(t, ConnLimits{PerAddr: 2, MaxConns: Disabled})
	a, b := dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr)
	if !scrapeOn(a) || !scrapeOn(b) {
		t.Fatal("the first two connections from 127.0.0.1 were not served")
	}
	if c := dialFrom(t, "127.0.0.1", addr); !closedSoon(c, 2*time.Second) {
		t.Error("a third connection from 127.0.0.1 was not closed at once")
	}
	if runtime.GOOS == "linux" { // where all of 127/8 is loopback
		if c := dialFrom(t, "127.0.0.2", addr); !scrapeOn(c) {
			t.Error("a connection from another address was not served")
		}
	}
	a.Close()
	waitFor(t, "the closed connection's place is given back", func() bool { return cl.Stats().Open < 2 || runtime.GOOS == "linux" && cl.Stats().Open < 3 })
	if c := dialFrom(t, "127.0.0.1", addr); !scrapeOn(c) {
		t.Error("a connection from 127.0.0.1 after one closed was not served")
	}
	if s := cl.Stats(); s.RefusedPerAddr != 1 || s.RefusedMax != 0 {
		t.Errorf("Stats() = %+v; want 1 refused per address", s)
	}
}

func TestConnLimiterMaxConns(t *testing.T) {
	cl, addr := limitedServer(t, ConnLimits{MaxConns: 3, PressureConns: Disabled})
	for range 3 {
		if c := dialFrom(t, "", addr); !scrapeOn(c) {
			t.Fatal("a connection under MaxConns was not served")
		}
	}
	if c := dialFrom(t, "", addr); !closedSoon(c, 2*time.Second) {
		t.Error("a connection past MaxConns was not closed at once")
	}
	if s := cl.Stats(); s.Open != 3 || s.RefusedMax != 1 || s.MaxConns != 3 {
		t.Errorf("Stats() = %+v; want 3 open, 1 refused past MaxConns", s)
	}
}

// TestConnLimiterEvicts checks that, told the connections' states, a
// limiter at MaxConns gives a new connection from an address holding
// fewer than the average the place of the one idle longest, or of one
// silent for a second, and never of one in a request.
func TestConnLimiterEvicts(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs 127.0.0.0/8 on loopback")
	}
	cl, addr := limitedServerState(t, ConnLimits{MaxConns: 3, PressureConns: Disabled}, true)
	var conns []net.Conn
	idle := func(n int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d connections idle", n), func() bool {
			cl.mu.Lock()
			defer cl.mu.Unlock()
			k := 0
			for c := cl.idle.head; c != nil; c = c.next {
				k++
			}
			return k == n
		})
	}
	for k := range 3 {
		c := dialFrom(t, "127.0.0.1", addr)
		if !scrapeOn(c) {
			t.Fatal("a connection under MaxConns was not served")
		}
		// Idle in the order they were dialed: a server's goroutine
		// marks its connection idle a moment after the reply.
		idle(k + 1)
		conns = append(conns, c)
	}
	// conns[1] is in a request, whose body the server waits for: it is
	// not idle.
	io.WriteString(conns[1], "POST /scrape HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n")
	idle(2)
	// 127.0.0.1 holds all three: it may not take another's place.
	if c := dialFrom(t, "127.0.0.1", addr); !closedSoon(c, 500*time.Millisecond) {
		t.Error("a connection from the address holding the most was not closed at once")
	}
	for i, want := range []int{0, 2} {
		idle(2)
		c := dialFrom(t, fmt.Sprintf("127.0.0.%d", 2+i), addr)
		if !scrapeOn(c) {
			t.Fatal("a new connection at MaxConns was not served")
		}
		if !closedSoon(conns[want], 2*time.Second) {
			t.Fatalf("connection %d, idle longest, was not closed", want)
		}
	}
	// Now 127.0.0.2 and 127.0.0.3 hold idle connections, 127.0.0.1 one in
	// a request: the next two take the places of the idle ones, and then,
	// none being idle, a connection is closed at once.
	idle(2)
	a := dialFrom(t, "127.0.0.4", addr)
	idle(1)
	b := dialFrom(t, "127.0.0.5", addr)
	idle(0)
	if c := dialFrom(t, "127.0.0.6", addr); !closedSoon(c, 500*time.Millisecond) {
		t.Error("a connection at MaxConns with none idle was not closed at once")
	}
	// A silent connection gives its place after a second.
	time.Sleep(freshEvictable)
	if c := dialFrom(t, "127.0.0.7", addr); !scrapeOn(c) {
		t.Error("a new connection did not take the place of a silent one")
	}
	if !closedSoon(a, time.Second) {
		t.Error("the connection silent longest was not closed")
	}
	if closedSoon(conns[1], 100*time.Millisecond) || closedSoon(b, 100*time.Millisecond) {
		t.Error("a connection in a request, or silent for less time, was closed")
	}
	if s := cl.Stats(); s.Evicted != 5 || s.RefusedMax != 2 {
		t.Errorf("Stats() = %+v; want 5 evicted, 2 refused", s)
	}
}

// TestConnLimiterPressure checks that under pressure idle and new
// connections are closed after the pressure timeout, not net/http's idle
// timeout (60 s) or header timeout (5 s), and that without pressure they
// are not.
func TestConnLimiterPressure(t *testing.T) {
	_, addr := limitedServer(t, ConnLimits{MaxConns: Disabled, PressureConns: 2, PressureTimeout: 200 * time.Millisecond})
	idle := dialFrom(t, "", addr)
	if !scrapeOn(idle) {
		t.Fatal("not served")
	}
	io.WriteString(idle, "GE") // the start of a request that never comes
	if closedSoon(idle, time.Second) {
		t.Fatal("without pressure, an idle connection was closed within a second")
	}
	// One more connection: pressure. A new connection that sends nothing,
	// and one going idle now, are closed after the pressure timeout.
	began := time.Now()
	if silent := dialFrom(t, "", addr); !closedSoon(silent, 3*time.Second) {
		t.Fatal("under pressure, a connection that sends nothing was left open for 3 s")
	}
	busy := dialFrom(t, "", addr)
	if !scrapeOn(busy) {
		t.Fatal("not served")
	}
	if !closedSoon(busy, 3*time.Second) {
		t.Fatal("under pressure, an idle connection was left open for 3 s")
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("under pressure, connections closed after %v; want about 200ms each", d)
	}
}

func TestConnBudget(t *testing.T) {
	for _, tc := range []struct{ limit, want int }{
		{0, 0},
		{100, 50},
		{256, 192},
		{1024, 896},
		{65536, 64512},
		{1 << 20, 1<<20 - 1024},
	} {
		if got := connBudget(tc.limit); got != tc.want {
			t.Errorf("connBudget(%d) = %d; want %d", tc.limit, got, tc.want)
		}
	}
	cl, err := NewConnLimiter(ConnLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if n := fdLimit(); n > 0 && (cl.maxConns != connBudget(n) || cl.pressure != cl.maxConns/2 || cl.perAddr != 128) {
		t.Errorf("defaults with a limit of %d descriptors: %+v", n, cl.Stats())
	}
	for _, bad := range []ConnLimits{{IPv6Prefix: 200}, {PressureTimeout: -time.Second}} {
		if _, err := NewConnLimiter(bad); err == nil {
			t.Errorf("NewConnLimiter(%+v) succeeded; want an error", bad)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}
