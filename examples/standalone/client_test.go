package main

// What the tests share: a reader of the server's JSON log, and the few
// bytes of the tracker protocols a test client needs, written by hand.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// logWatcher is the io.Writer the server logs to. It keeps every line,
// parses the JSON ones, and lets tests wait for a record.
type logWatcher struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every new line
	partial []byte
	lines   []string
	records []map[string]any
}

func newLogWatcher() *logWatcher {
	return &logWatcher{changed: make(chan struct{})}
}

func (w *logWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		w.lines = append(w.lines, line)
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			w.records = append(w.records, rec)
		}
	}
	close(w.changed)
	w.changed = make(chan struct{})
	return len(p), nil
}

// text returns everything logged so far.
func (w *logWatcher) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n") + string(w.partial)
}

// find returns the records with message msg whose fields include match.
func (w *logWatcher) find(msg string, match map[string]any) []map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	var found []map[string]any
	for _, rec := range w.records {
		if rec["msg"] == msg && matches(rec, match) {
			found = append(found, rec)
		}
	}
	return found
}

func matches(rec, match map[string]any) bool {
	for k, v := range match {
		if fmt.Sprint(rec[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

// waitFor waits until n records with message msg and the fields of match
// have been logged, and returns the last of them. exited, if not nil, is
// closed when the server has stopped, which ends the wait early.
func (w *logWatcher) waitFor(t *testing.T, exited <-chan struct{}, n int, msg string, match map[string]any) map[string]any {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		changed := w.changed
		w.mu.Unlock()
		if found := w.find(msg, match); len(found) >= n {
			return found[n-1]
		}
		select {
		case <-changed:
		case <-exited:
			exited = nil // look once more, then give up
			if found := w.find(msg, match); len(found) >= n {
				return found[n-1]
			}
			t.Fatalf("the server stopped before logging %q %v; log:\n%s", msg, match, w.text())
		case <-deadline.C:
			t.Fatalf("timed out waiting for log record %q %v; log:\n%s", msg, match, w.text())
		}
	}
}

// addrs returns the addresses the server logged it listens on, by
// protocol ("http", "udp", "metrics").
func (w *logWatcher) addrs() map[string][]string {
	m := make(map[string][]string)
	for _, rec := range w.find("listening", nil) {
		p, _ := rec["protocol"].(string)
		a, _ := rec["addr"].(string)
		m[p] = append(m[p], a)
	}
	return m
}

// escapeAll percent-encodes every byte, the way clients send binary
// hashes in a query.
func escapeAll(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, "%%%02X", c)
	}
	return sb.String()
}

// announceHTTP sends an announce to the HTTP tracker at addr, on the
// given path ("/announce" or "/announce/<passkey>"), and returns the body.
func announceHTTP(t *testing.T, addr, path string, hash, peer [20]byte, port int, left int64) string {
	t.Helper()
	u := fmt.Sprintf("http://%s%s?info_hash=%s&peer_id=%s&port=%d&uploaded=0&downloaded=0&left=%d&compact=1",
		addr, path, escapeAll(hash[:]), escapeAll(peer[:]), port, left)
	return httpGetWith(t, closingClient, u, http.StatusOK)
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// closingClient opens a connection per request and asks to close it after
// the reply (Connection: close), as most BitTorrent clients do: with
// -http-fast, the listener answers it itself.
var closingClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// httpPaths are the two ways the server answers HTTP requests: with
// -http-fast (the default) and without.
var httpPaths = []struct {
	name string
	args []string
}{
	{"fast", []string{"-http-fast=true"}},
	{"net-http", []string{"-http-fast=false"}},
}

// eachHTTPPath runs test once for each of httpPaths, with the flags that
// choose it.
func eachHTTPPath(t *testing.T, test func(t *testing.T, args []string)) {
	for _, path := range httpPaths {
		t.Run(path.name, func(t *testing.T) { test(t, path.args) })
	}
}

// httpGet fetches url, checks its status and returns the body.
func httpGet(t *testing.T, url string, status int) string {
	t.Helper()
	return httpGetWith(t, httpClient, url, status)
}

// httpGetWith is httpGet with client c.
func httpGetWith(t *testing.T, c *http.Client, url string, status int) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	if resp.StatusCode != status {
		t.Fatalf("GET %s: status %d; want %d (body %q)", url, resp.StatusCode, status, body)
	}
	return string(body)
}

var intervalRE = regexp.MustCompile(`8:intervali(\d+)e`)

// interval returns the interval of a bencoded announce reply, or -1 if it
// has none (a failure).
func interval(body string) int {
	m := intervalRE.FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// The UDP tracker protocol (BEP 15), client side.
const (
	udpProtocolID     = 0x41727101980
	udpActionConnect  = 0
	udpActionAnnounce = 1
	udpActionError    = 3
)

// udpClient talks to a UDP tracker over one socket.
type udpClient struct {
	t    *testing.T
	conn net.Conn
	txID uint32
}

func newUDPClient(t *testing.T, addr string) *udpClient {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &udpClient{t: t, conn: conn}
}

// roundTrip sends req (its transaction id at bytes 12-15 filled in) and
// returns the reply's action and the bytes after its 8-byte header. It
// tries three times, as clients do: loopback may drop a datagram too.
func (c *udpClient) roundTrip(req []byte) (action uint32, body []byte) {
	c.t.Helper()
	c.txID++
	binary.BigEndian.PutUint32(req[12:], c.txID)
	buf := make([]byte, 2048)
	for range 3 {
		if _, err := c.conn.Write(req); err != nil {
			c.t.Fatal(err)
		}
		c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			n, err := c.conn.Read(buf)
			if err != nil {
				break // timed out: send again
			}
			if n < 8 || binary.BigEndian.Uint32(buf[4:]) != c.txID {
				continue // a late reply to an earlier try
			}
			return binary.BigEndian.Uint32(buf), buf[8:n]
		}
	}
	c.t.Fatalf("no UDP reply from %v", c.conn.RemoteAddr())
	return 0, nil
}

// connect returns a connection id.
func (c *udpClient) connect() uint64 {
	c.t.Helper()
	req := binary.BigEndian.AppendUint64(nil, udpProtocolID)
	req = binary.BigEndian.AppendUint32(req, udpActionConnect)
	req = binary.BigEndian.AppendUint32(req, 0)
	action, body := c.roundTrip(req)
	if action != udpActionConnect || len(body) != 8 {
		c.t.Fatalf("connect: action %d, %d bytes; want action 0 and 8 bytes", action, len(body))
	}
	return binary.BigEndian.Uint64(body)
}

// udpReply is an announce reply, or an error.
type udpReply struct {
	err               string // the text of an error reply
	interval          uint32
	leechers, seeders uint32
	peers             []byte // 6 or 18 bytes each
}

// announce connects and announces; urlData, if not empty, goes in a BEP 41
// URL data option (the path of the announce URL, with its passkey).
func (c *udpClient) announce(hash, peer [20]byte, port uint16, left uint64, urlData string) udpReply {
	c.t.Helper()
	return c.announceWith(c.connect(), hash, peer, port, left, urlData)
}

// announceWith announces with connection id id, which another server may
// have issued.
func (c *udpClient) announceWith(id uint64, hash, peer [20]byte, port uint16, left uint64, urlData string) udpReply {
	c.t.Helper()
	req := binary.BigEndian.AppendUint64(nil, id)
	req = binary.BigEndian.AppendUint32(req, udpActionAnnounce)
	req = binary.BigEndian.AppendUint32(req, 0)
	req = append(req, hash[:]...)
	req = append(req, peer[:]...)
	req = binary.BigEndian.AppendUint64(req, 0)    // downloaded
	req = binary.BigEndian.AppendUint64(req, left) // left
	req = binary.BigEndian.AppendUint64(req, 0)    // uploaded
	req = binary.BigEndian.AppendUint32(req, 2)    // event: started
	req = binary.BigEndian.AppendUint32(req, 0)    // ip: the packet's source
	req = binary.BigEndian.AppendUint32(req, 0x1234)
	req = binary.BigEndian.AppendUint32(req, 0xFFFFFFFF) // numwant -1: the default
	req = binary.BigEndian.AppendUint16(req, port)
	if urlData != "" {
		req = append(req, 2, byte(len(urlData))) // option 2: URL data
		req = append(req, urlData...)
		req = append(req, 0) // end of options
	}
	action, body := c.roundTrip(req)
	switch {
	case action == udpActionError:
		return udpReply{err: string(body)}
	case action != udpActionAnnounce || len(body) < 12:
		c.t.Fatalf("announce: action %d, %d bytes", action, len(body))
	}
	return udpReply{
		interval: binary.BigEndian.Uint32(body),
		leechers: binary.BigEndian.Uint32(body[4:]),
		seeders:  binary.BigEndian.Uint32(body[8:]),
		peers:    body[12:],
	}
}

// waitUntil polls cond until it holds, for at most 10 seconds: the
// server reports a request to its metrics just after the reply is sent.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// hash20 returns a 20-byte value made of s, repeated.
func hash20(s string) (h [20]byte) {
	for i := range h {
		h[i] = s[i%len(s)]
	}
	return h
}
