package httpwire

import (
	"bufio"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// clientHeads returns request heads as real clients send them, for the
// query and host given: the header lines in each client's order, and its
// choice of keep-alive or Connection: close.
func clientHeads(target, host string) map[string]string {
	get := "GET " + target + " HTTP/1.1\r\n"
	return map[string]string{
		// libtorrent's http_connection (qBittorrent, Deluge).
		"libtorrent":  get + "Host: " + host + "\r\nUser-Agent: libtorrent/2.0.9.0\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
		"qBittorrent": get + "Host: " + host + "\r\nUser-Agent: qBittorrent/4.6.7\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
		"uTorrent":    get + "Host: " + host + "\r\nUser-Agent: uTorrent/354(111783378)(44498)\r\nAccept-Encoding: gzip\r\nConnection: Close\r\n\r\n",
		// libcurl's defaults, kept alive.
		"Transmission": get + "Host: " + host + "\r\nUser-Agent: Transmission/3.00\r\nAccept: */*\r\nAccept-Encoding: deflate, gzip, br, zstd\r\n\r\n",
		"aria2":        get + "User-Agent: aria2/1.36.0\r\nAccept: */*\r\nHost: " + host + "\r\nPragma: no-cache\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
		"proxied":      get + "host: " + host + "\r\nx-forwarded-for: 198.51.100.7\r\nX-Forwarded-For: 203.0.113.1, 10.0.0.2\r\nconnection: keep-alive, close\r\n\r\n",
	}
}

func TestParseRequestClients(t *testing.T) {
	q := ClientQueries()[0]
	for name, head := range clientHeads("/announce/pk?"+q, "tracker.example:6969") {
		var r Request
		if !ParseRequest([]byte(head), "X-Forwarded-For", &r) {
			t.Errorf("%s: ParseRequest(%q) = false; want true", name, head)
			continue
		}
		if r.Head || r.Path != "/announce/pk" || r.Query != q {
			t.Errorf("%s: head %v, path %q, query %q", name, r.Head, r.Path, r.Query)
		}
		keepAlive := name == "Transmission"
		if r.Close == keepAlive {
			t.Errorf("%s: Close = %v; want %v", name, r.Close, !keepAlive)
		}
		if name == "proxied" {
			if want := []string{"198.51.100.7", "203.0.113.1, 10.0.0.2"}; !slices.Equal(r.ClientIP, want) || r.UserAgent != "" {
				t.Errorf("proxied: ClientIP %q, UserAgent %q; want %q and none", r.ClientIP, r.UserAgent, want)
			}
		} else if !strings.Contains(head, "User-Agent: "+r.UserAgent+"\r\n") || r.UserAgent == "" ||
			len(r.AcceptEncoding) != strings.Count(head, "Accept-Encoding:") || len(r.ClientIP) != 0 {
			t.Errorf("%s: UserAgent %q, AcceptEncoding %q, ClientIP %q", name, r.UserAgent, r.AcceptEncoding, r.ClientIP)
		}
	}
	var r Request
	if !ParseRequest([]byte("HEAD /scrape? HTTP/1.1\r\nHost:\r\nX-Real-IP:  192.0.2.1 \t\r\n\r\n"), "X-Real-Ip", &r) ||
		!r.Head || r.Path != "/scrape" || r.Query != "" || r.Close || !slices.Equal(r.ClientIP, []string{"192.0.2.1"}) {
		t.Errorf("HEAD with an empty query: %+v", r)
	}
}

func TestParseRequestRefuses(t *testing.T) {
	const ok = "GET /announce?info_hash=x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
	var r Request
	if !ParseRequest([]byte(ok), "", &r) {
		t.Fatalf("ParseRequest(%q) = false", ok)
	}
	for _, head := range []string{
		"",
		ok[:len(ok)-2], // incomplete
		ok + "GET",     // pipelined
		strings.Replace(ok, "HTTP/1.1", "HTTP/1.0", 1), // HTTP/1.0
		strings.Replace(ok, "HTTP/1.1", "HTTP/2.0", 1),
		strings.Replace(ok, "GET", "POST", 1),
		strings.Replace(ok, "GET", "get", 1),
		strings.Replace(ok, "GET /", "GET http://t/", 1), // absolute form
		strings.Replace(ok, "GET /", "GET  /", 1),
		strings.Replace(ok, "/announce", "/ann ounce", 1),
		strings.Replace(ok, "/announce", "/ann#ounce", 1),
		strings.Replace(ok, "/announce", "/ann%zzounce", 1),
		strings.Replace(ok, "/announce", "/announce%4", 1),
		strings.Replace(ok, "/announce", "/ann\xe9ounce", 1),
		strings.Replace(ok, "/announce", "/ann|ounce", 1),
		strings.Replace(ok, "=x", "=x;y", 1),
		strings.Replace(ok, "=x", "=x\x7f", 1),
		strings.Replace(ok, "=x", "=\xe9", 1),
		strings.Replace(ok, "=x", "=x\ty", 1),
		strings.Replace(ok, "Host: t\r\n", "", 1),
		strings.Replace(ok, "Host: t\r\n", "Host: t\r\nHost: t\r\n", 1),
		strings.Replace(ok, "Host: t", "Host: t/x", 1),
		strings.Replace(ok, "Host: t", "Host: t, u", 1),
		strings.Replace(ok, "Host: t", "Host : t", 1),
		strings.Replace(ok, "Host: t", "Ho\"st: t", 1),
		strings.Replace(ok, "Host: t", ": t", 1),
		strings.Replace(ok, "Host: t\r\n", "Host: t\r\n folded\r\n", 1),
		strings.Replace(ok, "Host: t\r\n", "Host: t\n", 1),
		strings.Replace(ok, "Host: t\r\n", "Host: t\rx\r\n", 1),
		strings.Replace(ok, "Host: t\r\n", "Host: t\r\nX: a\x00b\r\n", 1),
		strings.Replace(ok, "Host: t\r\n", "Host: t\r\nNoColon\r\n", 1),
		strings.Replace(ok, "Host: t\r\n", "Host: t\r\nContent-Length: 0\r\n", 1),
		strings.Replace(ok, "Host: t\r\n", "Host: t\r\ntransfer-encoding: chunked\r\n", 1),
		strings.Replace(ok, "Host: t\r\n", "Host: t\r\nExpect: 100-continue\r\n", 1),
		strings.Replace(ok, "Host: t\r\n", "Host: t\r\n"+strings.Repeat("Accept-Encoding: gzip\r\n", MaxHeaderLines+1), 1),
	} {
		if ParseRequest([]byte(head), "", &r) {
			t.Errorf("ParseRequest(%q) = true; want false", head)
		}
	}
	head := strings.Replace(ok, "Host: t\r\n", "Host: t\r\n"+strings.Repeat("X-Real-Ip: 192.0.2.1\r\n", MaxHeaderLines+1), 1)
	if ParseRequest([]byte(head), "X-Real-IP", &r) {
		t.Errorf("ParseRequest with %d lines of the client address header = true; want false", MaxHeaderLines+1)
	}
}

func TestParseRequestAllocs(t *testing.T) {
	b := []byte(clientHeads("/announce?"+ClientQueries()[0], "t:6969")["proxied"])
	var r Request
	if allocs := testing.AllocsPerRun(100, func() { ParseRequest(b, "X-Forwarded-For", &r) }); allocs != 0 {
		t.Errorf("ParseRequest: %v allocations; want 0", allocs)
	}
}

// seen is what net/http's server makes of a request.
type seen struct {
	method, path, query, userAgent string
	close                          bool
	acceptEncoding, clientIP       []string
}

// pipeListener hands connections over a channel to an http.Server.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{} }

// FuzzParseRequest holds ParseRequest to net/http's own server: every head
// it accepts, the server accepts too and reads the same way (method,
// escaped path, query, the headers the tracker reads, whether to close).
func FuzzParseRequest(f *testing.F) {
	for _, q := range ClientQueries() {
		for _, head := range clientHeads("/announce?"+q, "127.0.0.1:6969") {
			f.Add(head)
		}
	}
	for _, head := range clientHeads("/a%2Fb/scrape?info_hash=%41&passkey=k", "[::1]:80") {
		f.Add(head)
	}
	f.Add("HEAD /x?;a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	f.Add("GET /%7e!$&'()*+,;=:@[]/ HTTP/1.1\r\nHost:h\r\nX-Forwarded-For:\t1.2.3.4 ,5.6.7.8\t\r\n\r\n")

	got := make(chan seen, 1)
	l := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- seen{
				method: r.Method, path: r.URL.EscapedPath(), query: r.URL.RawQuery,
				userAgent: r.Header.Get("User-Agent"), close: r.Close,
				acceptEncoding: r.Header["Accept-Encoding"], clientIP: r.Header["X-Forwarded-For"],
			}
		}),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go srv.Serve(l)
	f.Cleanup(func() {
		close(l.done)
		srv.Close()
	})

	f.Fuzz(func(t *testing.T, head string) {
		var r Request
		if !ParseRequest([]byte(head), "X-Forwarded-For", &r) {
			return
		}
		method := "GET"
		if r.Head {
			method = "HEAD"
		}
		mine := seen{method, r.Path, r.Query, r.UserAgent, r.Close, r.AcceptEncoding, r.ClientIP}
		client, server := net.Pipe()
		defer client.Close()
		client.SetDeadline(time.Now().Add(5 * time.Second))
		l.conns <- server
		go io.WriteString(client, head)
		resp, err := http.ReadResponse(bufio.NewReader(client), nil)
		if err != nil {
			t.Fatalf("ParseRequest accepted %q; net/http answered nothing: %v", head, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("ParseRequest accepted %q; net/http answered %s", head, resp.Status)
		}
		theirs := <-got
		if theirs.method != mine.method || theirs.path != mine.path || theirs.query != mine.query ||
			theirs.userAgent != mine.userAgent || theirs.close != mine.close ||
			!slices.Equal(theirs.acceptEncoding, mine.acceptEncoding) || !slices.Equal(theirs.clientIP, mine.clientIP) {
			t.Fatalf("ParseRequest(%q) = %+v; net/http reads %+v", head, mine, theirs)
		}
	})
}
