package tracker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fastHead is the head of a request for target as libtorrent sends it,
// asking to close the connection, with extra header lines.
func fastHead(method, target string, header ...string) []byte {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:6969\r\nUser-Agent: libtorrent/2.0.9.0\r\nAccept-Encoding: gzip\r\n")
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	return []byte(b.String())
}

// fastFromClient is the address the requests of the fast server's tests
// come from.
var fastFromClient = netip.MustParseAddrPort("192.168.1.1:5555")

// TestFastAllocs checks that the fast server answers announces, scrapes
// and failures without allocating, from the request's bytes to the
// reply's, once warm: passkeys and User-Agents included.
func TestFastAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	keys := NewPasskeySet()
	keys.Set("0123456789abcdef0123456789abcdef", 7)
	pub := httpNewFixture(t, httpFast, Config{}, HTTPConfig{TrackerID: "t1",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}})
	priv := httpNewFixture(t, httpFast, Config{Passkeys: keys}, HTTPConfig{})
	h := httpTestHash(21)
	pub.join(h, 1, 60, 100)
	q := httpQuery(h, httpTestPeerID(1), 6881, 100, "event=&numwant=50&no_peer_id=1&supportcrypto=1&redundant=0")
	for _, tc := range []struct {
		name string
		f    *httpFixture
		head []byte
	}{
		{"announce", pub, fastHead("GET", "/announce?"+q)},
		{"announce dict", pub, fastHead("GET", "/announce?"+q+"&compact=0")},
		{"announce via proxy", pub, fastHead("GET", "/announce?"+q, "X-Forwarded-For: 198.51.100.1")},
		{"HEAD", pub, fastHead("HEAD", "/announce?"+q)},
		{"scrape", pub, fastHead("GET", "/scrape?info_hash="+httpLT(h[:])+"&info_hash="+httpLT(h[:]))},
		{"scrape gzip", pub, fastHead("GET", "/scrape?"+strings.Repeat("info_hash="+httpLT(h[:])+"&", 30))},
		{"failure", pub, fastHead("GET", "/announce?info_hash=x")},
		{"passkey", priv, fastHead("GET", "/announce/0123456789abcdef0123456789abcdef?"+q)},
		{"wrong passkey", priv, fastHead("GET", "/announce.php?passkey=%30123456789abcdef0123456789abcdex&"+q)},
	} {
		s := tc.f.fast
		var reply []byte
		var ok bool
		allocs := testing.AllocsPerRun(200, func() {
			reply, ok = s.answer(tc.head, fastFromClient)
			s.done()
		})
		if !ok || !strings.HasPrefix(string(reply), "HTTP/1.1 200 OK\r\n") {
			t.Errorf("%s: answered %v: %.80q", tc.name, ok, reply)
		}
		if allocs != 0 {
			t.Errorf("%s: %v allocations per request; want 0", tc.name, allocs)
		}
	}
}

// keptStrings is a client filter and a passkey validator that answer
// from memory and keep the strings they are given, as a plug-in may.
type keptStrings struct {
	mu       sync.Mutex
	agents   []string
	passkeys []string
}

func (k *keptStrings) AllowClient(_ context.Context, _ PeerID, ua string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.agents = append(k.agents, ua)
	return nil
}

func (k *keptStrings) ValidatePasskey(_ context.Context, pk string) (Identity, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.passkeys = append(k.passkeys, pk)
	return Identity{UserID: 1}, nil
}

func (*keptStrings) NonBlocking() bool { return true }

// TestFastKeptStrings: the fast server reads requests into a buffer it
// reuses, but the strings it gives plug-ins stay as they were sent.
func TestFastKeptStrings(t *testing.T) {
	k := new(keptStrings)
	f := httpNewFixture(t, httpFast, Config{Passkeys: k, Clients: k}, HTTPConfig{})
	h := httpTestHash(22)
	var wantAgents, wantKeys []string
	for i := range 6 {
		c := byte('a' + i)
		pk := strings.Repeat(string(c), 32)
		target := "/announce/" + pk + "?" + httpQuery(h, httpTestPeerID(i), 6881, 10, "")
		if i%2 == 1 { // escaped, in the query
			target = "/announce.php?" + httpQuery(h, httpTestPeerID(i), 6881, 10, "passkey="+strings.Repeat(fmt.Sprintf("%%%02x", c), 32))
		}
		ua := "client/" + strings.Repeat(string(c), i)
		wantKeys, wantAgents = append(wantKeys, pk), append(wantAgents, ua)
		head := "GET " + target + " HTTP/1.1\r\nHost: t\r\nUser-Agent: " + ua + "\r\nConnection: close\r\n\r\n"
		reply, ok := f.fast.answer([]byte(head), fastFromClient)
		if !ok || strings.Contains(string(reply), "failure") {
			t.Fatalf("announce %d: answered %v: %q", i, ok, reply)
		}
		f.fast.done()
	}
	if !slices.Equal(k.passkeys, wantKeys) {
		t.Errorf("passkeys kept: %q; want %q", k.passkeys, wantKeys)
	}
	if !slices.Equal(k.agents, wantAgents) {
		t.Errorf("User-Agents kept: %q; want %q", k.agents, wantAgents)
	}
}

// TestFastHandsOver: the requests the fast server leaves to net/http, it
// leaves having changed nothing: no failure or request counted, no rate
// limit charged.
func TestFastHandsOver(t *testing.T) {
	h := httpTestHash(23)
	q := httpQuery(h, httpTestPeerID(1), 6881, 10, "")
	announce := "GET /announce?" + q + " HTTP/1.1\r\nHost: t\r\n"
	mayBlock := func(context.Context, InfoHash, Identity) error { return nil }
	for _, tc := range []struct {
		name string
		cfg  Config
		hcfg HTTPConfig
		head string
	}{
		{name: "keep-alive", head: announce + "\r\n"},
		{name: "keep-alive said", head: announce + "Connection: keep-alive\r\n\r\n"},
		{name: "HTTP/1.0", head: strings.Replace(announce, "HTTP/1.1", "HTTP/1.0", 1) + "Connection: close\r\n\r\n"},
		{name: "POST", head: strings.Replace(announce, "GET", "POST", 1) + "Connection: close\r\n\r\n"},
		{name: "other path", head: "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"},
		{name: "not whole", head: announce + "Connection: close\r\n"},
		{name: "two requests", head: announce + "Connection: close\r\n\r\n" + announce + "\r\n"},
		{name: "a body", head: announce + "Connection: close\r\nContent-Length: 2\r\n\r\nab"},
		{name: "full scrape", hcfg: HTTPConfig{FullScrape: true}, head: "GET /scrape HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"},
		{name: "a torrent filter that may block", cfg: Config{Torrents: TorrentFunc(mayBlock)}, head: announce + "Connection: close\r\n\r\n"},
		{name: "scrape, a torrent filter that may block", cfg: Config{Torrents: TorrentFunc(mayBlock)},
			head: "GET /scrape?info_hash=" + httpLT(h[:]) + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"},
		{name: "a passkey validator that may block", cfg: Config{Passkeys: PasskeyFunc(func(context.Context, string) (Identity, error) {
			return Identity{UserID: 1}, nil
		})}, head: "GET /announce/k?" + q + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.RateLimit = RateLimitConfig{PerIP: 0.001, IPBurst: 1}
			f := httpNewFixture(t, httpFast, tc.cfg, tc.hcfg)
			if reply, ok := f.fast.answer([]byte(tc.head), fastFromClient); ok {
				t.Fatalf("answered %q; want it left to net/http", reply)
			}
			st := f.tr.Stats()
			for kind, n := range st.Failures {
				if n != 0 {
					t.Errorf("%d %s failures counted", n, kind)
				}
			}
			if st.Announces != 0 || st.Scrapes != 0 {
				t.Errorf("stats %+v: a request was counted", st)
			}
			// The one request the client may make is still its own.
			f.via = httpNetHTTP
			if m := f.get("/announce?"+q, fastFromClient.String()); m["failure reason"] == ErrRateLimited.Reason {
				t.Errorf("the request net/http answers next: %v", m)
			}
		})
	}
}

// fastServe serves h's tracker on a FastListener over a loopback port
// (127.0.0.1), bounded by cl if not nil, with NewHTTPServer's server whose
// Handler is h next to /healthz; it returns the listener, the server and
// the port's address.
func fastServe(t *testing.T, h *HTTPHandler, cl *ConnLimiter, tune func(l *net.TCPListener)) (*FastListener, *http.Server, string) {
	t.Helper()
	l, err := ListenTCP("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(l.(*net.TCPListener))
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	srv := NewHTTPServer(mux)
	if cl != nil {
		srv.ConnState = cl.ConnState
	}
	fl := h.NewFastListener(l, cl)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(fl) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return fl, srv, l.Addr().String()
}

// fastRoundTrip sends the bytes of a request over a new connection from
// src ("" for any) and returns the reply, read until the server closes
// the connection; nil if it sends none.
func fastRoundTrip(t *testing.T, src, addr string, parts ...[]byte) *http.Response {
	t.Helper()
	c := dialFrom(t, src, addr)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for i, p := range parts {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := c.Write(p); err != nil {
			return nil
		}
	}
	rd := bufio.NewReader(c)
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the reply: %v", err)
	}
	resp.Body = io.NopCloser(strings.NewReader(string(body)))
	if _, err := rd.ReadByte(); err != io.EOF {
		t.Fatalf("after the reply: %v; want the connection closed", err)
	}
	return resp
}

func fastBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	if resp == nil {
		t.Fatal("no reply")
	}
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// fastOnLinux is whether FastListeners answer requests themselves here.
var fastOnLinux = runtime.GOOS == "linux"

// TestFastListener serves a tracker on a FastListener over loopback:
// clients that close their connection are answered inside Accept, the
// others by the server, and the clients read the same either way.
func TestFastListener(t *testing.T) {
	before := runtime.NumGoroutine()
	tr := newTestTracker(t, Config{})
	h, err := tr.NewHTTPHandler(HTTPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := NewConnLimiter(ConnLimits{})
	if err != nil {
		t.Fatal(err)
	}
	fl, srv, addr := fastServe(t, h, cl, nil)
	hash := httpTestHash(24)
	announce := func(n int) []byte {
		return fastHead("GET", "/announce?"+httpQuery(hash, httpTestPeerID(n), 6881+n, 10, ""))
	}

	// Answered inside Accept.
	m := httpDecode(t, "announce", []byte(fastBody(t, fastRoundTrip(t, "", addr, announce(1)))))
	if m["incomplete"] != int64(1) || m["failure reason"] != nil {
		t.Fatalf("announce: %v", m)
	}
	want := FastListenerStats{Answered: 1}
	if !fastOnLinux {
		want = FastListenerStats{HandedOver: 1}
	}
	if got := fl.Stats(); got != want {
		t.Errorf("after an announce: %+v; want %+v", got, want)
	}

	// Left to the server: a request that arrives in two parts, another
	// path, another method, a client that keeps its connection.
	head := announce(2)
	resp := fastRoundTrip(t, "", addr, head[:30], head[30:])
	if m := httpDecode(t, "announce in two parts", []byte(fastBody(t, resp))); m["incomplete"] != int64(2) {
		t.Errorf("announce in two parts: %v", m)
	}
	if body := fastBody(t, fastRoundTrip(t, "", addr, []byte("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))); body != "ok" {
		t.Errorf("GET /healthz: %q", body)
	}
	if resp := fastRoundTrip(t, "", addr, []byte("POST /announce HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")); resp == nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /announce: %v", resp)
	}
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	for n := 3; n <= 5; n++ {
		resp, err := client.Get("http://" + addr + "/announce?" + httpQuery(hash, httpTestPeerID(n), 6881+n, 10, ""))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if m := httpDecode(t, "kept-alive announce", body); m["incomplete"] != int64(n) {
			t.Errorf("kept-alive announce %d: %v", n, m)
		}
	}
	client.CloseIdleConnections()
	want = FastListenerStats{Answered: 1, HandedOver: 4}
	if !fastOnLinux {
		want = FastListenerStats{HandedOver: 7}
	}
	if got := fl.Stats(); got != want {
		t.Errorf("after the other requests: %+v; want %+v", got, want)
	}

	// Shut down: every connection gone, its place given back, and no
	// goroutine left.
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the connections to close", func() bool { return cl.Stats().Open == 0 })
	tr.Close()
	waitFor(t, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

// TestFastListenerLimits: a FastListener's limiter counts the connections
// answered inside Accept as those it returns.
func TestFastListenerLimits(t *testing.T) {
	tr := newTestTracker(t, Config{})
	h, err := tr.NewHTTPHandler(HTTPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := NewConnLimiter(ConnLimits{PerAddr: 2})
	if err != nil {
		t.Fatal(err)
	}
	_, _, addr := fastServe(t, h, cl, nil)
	hash := httpTestHash(25)
	announce := fastHead("GET", "/announce?"+httpQuery(hash, httpTestPeerID(1), 6881, 10, ""))
	if fastRoundTrip(t, "127.0.0.2", addr, announce) == nil {
		t.Fatal("no reply from under the cap")
	}
	// Two connections kept open from 127.0.0.2 reach its cap.
	var held []net.Conn
	for range 2 {
		c := dialFrom(t, "127.0.0.2", addr)
		if !scrapeOn(c) {
			t.Fatal("a kept-alive scrape was not answered")
		}
		held = append(held, c)
	}
	if fastRoundTrip(t, "127.0.0.2", addr, announce) != nil {
		t.Error("a connection past the cap of its address was answered")
	}
	if fastRoundTrip(t, "127.0.0.3", addr, announce) == nil {
		t.Error("another address was refused")
	}
	held[0].Close()
	waitFor(t, "the place to be given back", func() bool { return cl.Stats().Open == 1 })
	if fastRoundTrip(t, "127.0.0.2", addr, announce) == nil {
		t.Error("refused once a place was given back")
	}
	if st := cl.Stats(); st.RefusedPerAddr != 1 {
		t.Errorf("limiter stats %+v; want 1 refused for its address", st)
	}
}

// panickyClients is a client filter that panics on the User-Agent
// "boom", as a buggy plug-in might.
type panickyClients struct{}

func (panickyClients) AllowClient(_ context.Context, _ PeerID, ua string) error {
	if ua == "boom" {
		panic("boom")
	}
	return nil
}

func (panickyClients) NonBlocking() bool { return true }

// TestFastListenerPanic: a plug-in that panics costs its client the
// reply, as under net/http, and nothing more.
func TestFastListenerPanic(t *testing.T) {
	var log lockedBuffer
	tr := newTestTracker(t, Config{Clients: panickyClients{}})
	h, err := tr.NewHTTPHandler(HTTPConfig{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_, _, addr := fastServe(t, h, nil, nil)
	q := "/announce?" + httpQuery(httpTestHash(27), httpTestPeerID(1), 6881, 10, "")
	boom := []byte("GET " + q + " HTTP/1.1\r\nHost: t\r\nUser-Agent: boom\r\nConnection: close\r\n\r\n")
	if resp := fastRoundTrip(t, "", addr, boom); resp != nil {
		t.Errorf("a request whose plug-in panicked got a reply: %v", resp)
	}
	if body := fastBody(t, fastRoundTrip(t, "", addr, fastHead("GET", q))); strings.Contains(body, "failure") {
		t.Errorf("the next request: %q", body)
	}
	if !strings.Contains(log.String(), "panic") || !strings.Contains(log.String(), "boom") {
		t.Errorf("log: %q; want the panic", log.String())
	}
}

// TestFastListenerWorkers: with one worker or several, concurrent clients
// of every kind are all answered, each counted once, and Shutdown ends
// every worker.
func TestFastListenerWorkers(t *testing.T) {
	// Every accept that finds the next connection waiting wakes another
	// worker.
	defer func(n int) { fastBusy = n }(fastBusy)
	fastBusy = 1
	for _, workers := range []int{1, 4} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			before := runtime.NumGoroutine()
			tr := newTestTracker(t, Config{})
			h, err := tr.NewHTTPHandler(HTTPConfig{FastWorkers: workers})
			if err != nil {
				t.Fatal(err)
			}
			cl, err := NewConnLimiter(ConnLimits{PerAddr: Disabled})
			if err != nil {
				t.Fatal(err)
			}
			fl, srv, addr := fastServe(t, h, cl, nil)
			if fastOnLinux && len(fl.ws) != workers {
				t.Fatalf("%d workers; want %d", len(fl.ws), workers)
			}
			hash := httpTestHash(27)
			const clients, each = 16, 25
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for c := range clients {
				wg.Go(func() {
					hc := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
					defer hc.CloseIdleConnections()
					for i := range each {
						n := c*each + i
						q := "/announce?" + httpQuery(hash, httpTestPeerID(n), 6881, 10, "")
						var body string
						var err error
						switch n % 3 {
						case 0: // answered inside Accept
							body, err = fastGet(addr, fastHead("GET", q))
						case 1: // in two parts: the server's
							head := fastHead("GET", q)
							body, err = fastGet(addr, head[:20], head[20:])
						default: // kept alive: the server's
							var resp *http.Response
							if resp, err = hc.Get("http://" + addr + q); err == nil {
								var b []byte
								b, err = io.ReadAll(resp.Body)
								resp.Body.Close()
								body = string(b)
							}
						}
						if err != nil {
							errs <- fmt.Errorf("announce %d: %w", n, err)
							return
						}
						if !strings.Contains(body, "8:intervali") || strings.Contains(body, "failure reason") {
							errs <- fmt.Errorf("announce %d: %q", n, body)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if st := tr.Stats(); st.Announces != clients*each {
				t.Errorf("%d announces counted; want %d", st.Announces, clients*each)
			}
			if want := uint64(clients*each+2) / 3; fastOnLinux {
				// A reply is counted once sent. A request sent in two
				// parts is answered inside Accept too when its second
				// part arrived before the first was read (a busy
				// machine).
				waitFor(t, fmt.Sprintf("%d requests answered inside Accept", want), func() bool { return fl.Stats().Answered >= want })
				if got, most := fl.Stats().Answered, 2*want; got > most {
					t.Errorf("%d requests answered inside Accept; want at most %d", got, most)
				}
			}
			if helped := fl.helped.Load(); workers == 1 && helped != 0 {
				t.Errorf("%d connections accepted by other workers than the first, of one", helped)
			}
			if err := srv.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the connections to close", func() bool { return cl.Stats().Open == 0 })
			tr.Close()
			waitFor(t, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
		})
	}
}

// fastGet sends the parts of a request over a new connection, a moment
// apart, and returns the body of the reply.
func fastGet(addr string, parts ...[]byte) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for i, p := range parts {
		if i > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := c.Write(p); err != nil {
			return "", err
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// stallFirst is a client filter that holds its first call until release is
// closed, having closed entered, and takes half a millisecond over every
// other call: a worker that calls it gives its core to another for that
// long.
type stallFirst struct {
	once             sync.Once
	entered, release chan struct{}
}

func (s *stallFirst) AllowClient(context.Context, PeerID, string) error {
	first := false
	s.once.Do(func() {
		first = true
		close(s.entered)
		<-s.release
	})
	if !first {
		time.Sleep(500 * time.Microsecond)
	}
	return nil
}

func (*stallFirst) NonBlocking() bool { return true }

// TestFastListenerWakes: when connections queue up behind the first
// worker, it wakes the others, which take some of them.
func TestFastListenerWakes(t *testing.T) {
	if !fastOnLinux {
		t.Skip("a FastListener answers requests itself on Linux only")
	}
	// Restored once the listener is closed (cleanups run last first).
	t.Cleanup(func(n int) func() { return func() { fastBusy = n } }(fastBusy))
	fastBusy = 1
	stall := &stallFirst{entered: make(chan struct{}), release: make(chan struct{})}
	tr := newTestTracker(t, Config{Clients: stall})
	h, err := tr.NewHTTPHandler(HTTPConfig{FastWorkers: 3})
	if err != nil {
		t.Fatal(err)
	}
	fl, _, addr := fastServe(t, h, nil, nil)
	hash := httpTestHash(28)
	head := func(n int) []byte {
		return fastHead("GET", "/announce?"+httpQuery(hash, httpTestPeerID(n), 6881, 10, ""))
	}
	first := make(chan error, 1)
	go func() {
		_, err := fastGet(addr, head(0))
		first <- err
	}()
	<-stall.entered
	// The first worker is busy: these connections wait in the queue.
	const queued = 64
	conns := make([]net.Conn, queued)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(head(i + 1)); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	time.Sleep(50 * time.Millisecond)
	close(stall.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, c := range conns {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("announce %d: %v", i+1, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), "8:intervali") {
			t.Errorf("announce %d: %q", i+1, body)
		}
	}
	// A reply is counted once sent.
	waitFor(t, "every request to be counted", func() bool { return fl.Stats().Answered == queued+1 })
	if fl.helped.Load() == 0 {
		t.Errorf("the first worker took all %d connections that waited", queued)
	}
	t.Logf("%d of %d connections taken by the other workers", fl.helped.Load(), queued)
}

// TestFastListenerCloseHandsOver: a connection a worker holds for the
// server when the listener is closed still goes to the server's next
// Accept.
func TestFastListenerCloseHandsOver(t *testing.T) {
	if !fastOnLinux {
		t.Skip("a FastListener answers requests itself on Linux only")
	}
	tr := newTestTracker(t, Config{})
	h, err := tr.NewHTTPHandler(HTTPConfig{FastWorkers: 2})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ListenTCP("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := h.NewFastListener(l, nil)
	defer fl.Close()
	addr := l.Addr().String()
	keepAlive := []byte("GET /announce?" + httpQuery(httpTestHash(29), httpTestPeerID(1), 6881, 10, "") + " HTTP/1.1\r\nHost: t\r\n\r\n")
	accepted := func(c net.Conn, err error) net.Conn {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(keepAlive))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, keepAlive) {
			t.Fatalf("the connection handed over replays %q, %v; want %q", got, err, keepAlive)
		}
		return c
	}
	// The first Accept starts the workers.
	a := dialFrom(t, "", addr)
	a.Write(keepAlive)
	defer accepted(fl.Accept()).Close()
	// No Accept waits when this one is taken, then the listener closes.
	b := dialFrom(t, "", addr)
	b.Write(keepAlive)
	waitFor(t, "the second connection to be taken", func() bool { return fl.Stats().HandedOver == 2 })
	fl.Close()
	time.Sleep(100 * time.Millisecond)
	defer accepted(fl.Accept()).Close()
	if c, err := fl.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after the last connection: %v, %v; want net.ErrClosed", c, err)
	}
}
