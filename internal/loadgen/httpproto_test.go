package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/annuaire/tracker/internal/httpwire"
	"github.com/annuaire/tracker/internal/udpwire"
)

func TestHTTPAnnounceRequest(t *testing.T) {
	w := mustWorkload(t, Workload{Swarms: 10, Peers: 100})
	tg, err := parseHTTPTarget("http://127.0.0.1:6969/announce", false)
	if err != nil {
		t.Fatal(err)
	}
	r := request{peer: 13, event: udpwire.EventStarted, swarm: 3}
	got := string(w.appendHTTPAnnounce(nil, tg, r))
	h, id := w.InfoHash(3), w.PeerID(13)
	down, left, up := w.transfer(r)
	want := fmt.Sprintf("GET /announce?info_hash=%s&peer_id=%s&port=%d&uploaded=%d&downloaded=%d&left=%d"+
		"&corrupt=0&key=%08X&event=started&numwant=50&compact=1&no_peer_id=1&supportcrypto=1&redundant=0 HTTP/1.1\r\n"+
		"Host: 127.0.0.1:6969\r\nUser-Agent: "+userAgent+"\r\n\r\n",
		httpwire.EscapeLibtorrent.Append(nil, h[:]), httpwire.EscapeLibtorrent.Append(nil, id[:]), w.Port(13), up, down, left, w.Key(13))
	if got != want {
		t.Errorf("announce request =\n%q\nwant\n%q", got, want)
	}

	// A plain announce has no event; a negative numwant leaves it out.
	w.NumWant = -1
	got = string(w.appendHTTPAnnounce(nil, tg, request{peer: 1, swarm: 1}))
	if strings.Contains(got, "event=") || strings.Contains(got, "numwant") {
		t.Errorf("plain announce with NumWant -1 = %q; want no event and no numwant", got)
	}

	// The query parses back to the peer's values.
	line := strings.Fields(got)[1]
	q, err := url.ParseQuery(line[strings.IndexByte(line, '?')+1:])
	if err != nil {
		t.Fatal(err)
	}
	h1, id1 := w.InfoHash(1), w.PeerID(1)
	if q.Get("info_hash") != string(h1[:]) || q.Get("peer_id") != string(id1[:]) || q.Get("compact") != "1" {
		t.Errorf("query %q does not decode to the peer's info hash and id", line)
	}
}

func TestHTTPTargets(t *testing.T) {
	for _, tc := range []struct {
		url, closeMode     string
		addr, prefix, host string
	}{
		{"http://127.0.0.1:6969/announce", "", "127.0.0.1:6969", "GET /announce?", "127.0.0.1:6969"},
		{"http://localhost/announce/abc", "", "localhost:80", "GET /announce/abc?", "localhost"},
		{"http://[::1]:8080/pk/announce", "", "[::1]:8080", "GET /pk/announce?", "[::1]:8080"},
		{"http://127.0.0.1:1/announce.php?passkey=x%2By", "close", "127.0.0.1:1", "GET /announce.php?passkey=x%2By&", "127.0.0.1:1"},
	} {
		tg, err := parseHTTPTarget(tc.url, tc.closeMode != "")
		if err != nil {
			t.Errorf("parseHTTPTarget(%q): %v", tc.url, err)
			continue
		}
		if tg.addr != tc.addr || string(tg.prefix) != tc.prefix {
			t.Errorf("parseHTTPTarget(%q) = %q, %q; want %q, %q", tc.url, tg.addr, tg.prefix, tc.addr, tc.prefix)
		}
		wantSuffix := " HTTP/1.1\r\nHost: " + tc.host + "\r\nUser-Agent: " + userAgent + "\r\n"
		if tc.closeMode != "" {
			wantSuffix += "Connection: close\r\n"
		}
		if wantSuffix += "\r\n"; string(tg.suffix) != wantSuffix {
			t.Errorf("parseHTTPTarget(%q) suffix = %q; want %q", tc.url, tg.suffix, wantSuffix)
		}
	}
	for _, bad := range []string{"ftp://t/announce", "udp://t:1", "http:///announce", "://x"} {
		if _, err := parseHTTPTarget(bad, false); err == nil {
			t.Errorf("parseHTTPTarget(%q) succeeded; want an error", bad)
		}
	}
}

func TestScrapeURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://t:1/announce", "http://t:1/scrape"},
		{"http://t:1/announce/PK", "http://t:1/scrape/PK"},
		{"http://t:1/PK/announce", "http://t:1/PK/scrape"},
		{"http://t:1/announce.php?passkey=PK", "http://t:1/scrape.php?passkey=PK"},
		{"http://announce.example:1/announce", "http://announce.example:1/scrape"},
	} {
		if got, err := scrapeURL(tc.in); err != nil || got != tc.want {
			t.Errorf("scrapeURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := scrapeURL("http://t:1/tracker"); err == nil {
		t.Error(`scrapeURL without "announce" succeeded; want an error`)
	}
}

func TestHTTPScrapeRequest(t *testing.T) {
	w := mustWorkload(t, Workload{Swarms: 10, ScrapeHashes: 2})
	tg, _ := parseHTTPTarget("http://t:1/scrape", false)
	hashes := make([][20]byte, 2)
	got := string(w.appendHTTPScrape(nil, tg, request{swarm: 9}, hashes))
	h9, h0 := w.InfoHash(9), w.InfoHash(0)
	want := "GET /scrape?info_hash=" + string(httpwire.EscapeLibtorrent.Append(nil, h9[:])) + "&info_hash=" + string(httpwire.EscapeLibtorrent.Append(nil, h0[:])) + " HTTP/1.1\r\n"
	if !strings.HasPrefix(got, want) || hashes[0] != h9 || hashes[1] != h0 {
		t.Errorf("scrape request = %q; want it to start with %q", got, want)
	}
}

// pieceConn is a net.Conn that returns its data a few bytes at a time.
type pieceConn struct {
	net.Conn
	data  string
	piece int
	err   error // after the data; io.EOF if nil
}

func (c *pieceConn) Read(b []byte) (int, error) {
	if c.data == "" {
		if c.err != nil {
			return 0, c.err
		}
		return 0, io.EOF
	}
	n := copy(b[:min(len(b), c.piece)], c.data)
	c.data = c.data[n:]
	return n, nil
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestRespReader(t *testing.T) {
	big := strings.Repeat("x", 10_000)
	for _, tc := range []struct {
		name      string
		raw       string
		err       error // after the data
		wantErr   error
		status    int
		body      string
		keepAlive bool
	}{
		{name: "content-length", raw: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
			status: 200, body: "hello", keepAlive: true},
		{name: "no reason phrase", raw: "HTTP/1.1 200\r\ncontent-length: 2\r\n\r\nhi", status: 200, body: "hi", keepAlive: true},
		{name: "connection close", raw: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
			status: 200, body: "hi"},
		{name: "http/1.0", raw: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", status: 200, body: "hi"},
		{name: "http/1.0 keep-alive", raw: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nhi",
			status: 200, body: "hi", keepAlive: true},
		{name: "chunked", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;ext=1\r\n \r\na\r\n0123456789\r\n0\r\n\r\n",
			status: 200, body: "hello 0123456789", keepAlive: true},
		{name: "chunked trailer", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: 1\r\n\r\n",
			status: 200, body: "hi", keepAlive: true},
		{name: "close-delimited", raw: "HTTP/1.1 200 OK\r\n\r\nuntil the end", status: 200, body: "until the end"},
		{name: "large body", raw: "HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n" + big, status: 200, body: big, keepAlive: true},
		{name: "large chunk", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2710\r\n" + big + "\r\n0\r\n\r\n",
			status: 200, body: big, keepAlive: true},
		{name: "status 400", raw: "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", status: 400, keepAlive: true},

		{name: "eof before reply", raw: "", wantErr: io.EOF},
		{name: "reset before reply", raw: "", err: errors.New("reset"), wantErr: errors.New("reset")},
		{name: "timeout mid-reply", raw: "HTTP/1.1 200 OK\r\n", err: timeoutErr{}, wantErr: timeoutErr{}},
		{name: "truncated body", raw: "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhi", wantErr: errBadResponse},
		{name: "truncated headers", raw: "HTTP/1.1 200 OK\r\nContent-Le", wantErr: errBadResponse},
		{name: "not http", raw: "SSH-2.0-OpenSSH\r\n\r\n", wantErr: errBadResponse},
		{name: "bad status", raw: "HTTP/1.1 2x0 OK\r\n\r\n", wantErr: errBadResponse},
		{name: "bad header", raw: "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", wantErr: errBadResponse},
		{name: "bad length", raw: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: errBadResponse},
		{name: "two lengths", raw: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", wantErr: errBadResponse},
		{name: "gzip", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", wantErr: errBadResponse},
		{name: "bad chunk size", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", wantErr: errBadResponse},
		{name: "bad chunk end", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiX\r\n0\r\n\r\n", wantErr: errBadResponse},
		{name: "truncated chunks", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n", wantErr: errBadResponse},
	} {
		for _, piece := range []int{1, 7, 1 << 20} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, piece), func(t *testing.T) {
				var rr respReader
				resp, err := rr.read(&pieceConn{data: tc.raw, piece: piece, err: tc.err})
				if tc.wantErr != nil {
					if err == nil || err.Error() != tc.wantErr.Error() {
						t.Errorf("read = %+v, %v; want error %v", resp, err, tc.wantErr)
					}
					if resp.gotBytes != (tc.raw != "") {
						t.Errorf("gotBytes = %v with %d bytes sent", resp.gotBytes, len(tc.raw))
					}
					return
				}
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if resp.status != tc.status || string(resp.body) != tc.body || resp.keepAlive != tc.keepAlive {
					t.Errorf("read = %d, %.40q, keep-alive %v; want %d, %.40q, %v",
						resp.status, resp.body, resp.keepAlive, tc.status, tc.body, tc.keepAlive)
				}
			})
		}
	}
}

func TestRespReaderReuse(t *testing.T) {
	var rr respReader
	for i := range 3 {
		body := strings.Repeat("b", i*3000)
		raw := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		resp, err := rr.read(&pieceConn{data: raw, piece: 1000})
		if err != nil || string(resp.body) != body {
			t.Fatalf("response %d: %v, body of %d bytes; want %d", i, err, len(resp.body), len(body))
		}
	}
}

func TestIsTimeout(t *testing.T) {
	if !isTimeout(timeoutErr{}) || !isTimeout(fmt.Errorf("x: %w", timeoutErr{})) {
		t.Error("isTimeout(timeout) = false")
	}
	if isTimeout(io.EOF) {
		t.Error("isTimeout(EOF) = true")
	}
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	c1.SetReadDeadline(time.Now())
	_, err := c1.Read(make([]byte, 1))
	if !isTimeout(err) {
		t.Errorf("isTimeout(%v) = false", err)
	}
}
