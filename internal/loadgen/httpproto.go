package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/annuaire/tracker/internal/httpwire"
	"github.com/annuaire/tracker/internal/udpwire"
)

// httpTarget is a parsed announce or scrape URL and the fixed parts of
// its requests.
type httpTarget struct {
	addr   string // host:port to dial
	tls    bool   // over TLS
	prefix []byte // "GET /announce?" (or "...&" when the URL has a query)
	suffix []byte // " HTTP/1.1\r\nHost: ...\r\n\r\n"
	// With a URL that holds {passkey}, prefix ends where the passkey goes
	// and rest follows it.
	rest     []byte
	passkeys bool
}

// userAgent is what the generator calls itself.
const userAgent = "annuaire-loadgen/1.0"

// parseHTTPTarget prepares requests to rawURL. With closeConn, every
// request asks the server to close the connection after replying.
func parseHTTPTarget(rawURL string, closeConn bool) (*httpTarget, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	port := "80"
	switch u.Scheme {
	case "http":
	case "https":
		port = "443"
	default:
		return nil, fmt.Errorf("%q: only http:// and https:// URLs are supported", rawURL)
	}
	if u.Host == "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%q: want http://host[:port]/path[?query]", rawURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	t := &httpTarget{addr: addr, tls: u.Scheme == "https"}
	t.prefix = append(t.prefix, "GET "...)
	t.prefix = append(t.prefix, path...)
	if u.RawQuery != "" || u.ForceQuery {
		t.prefix = append(t.prefix, '?')
		t.prefix = append(t.prefix, u.RawQuery...)
		if u.RawQuery != "" {
			t.prefix = append(t.prefix, '&')
		}
	} else {
		t.prefix = append(t.prefix, '?')
	}
	for _, mark := range []string{passkeyMark, url.PathEscape(passkeyMark)} {
		if before, after, ok := bytes.Cut(t.prefix, []byte(mark)); ok {
			t.prefix, t.rest, t.passkeys = before, after, true
			break
		}
	}
	t.suffix = append(t.suffix, " HTTP/1.1\r\nHost: "...)
	t.suffix = append(t.suffix, u.Host...)
	t.suffix = append(t.suffix, "\r\nUser-Agent: "+userAgent+"\r\n"...)
	if closeConn {
		t.suffix = append(t.suffix, "Connection: close\r\n"...)
	}
	t.suffix = append(t.suffix, "\r\n"...)
	return t, nil
}

// passkeyMark stands for the passkey in a URL of a workload with Passkeys.
const passkeyMark = "{passkey}"

// appendTarget appends the request line of t up to its query, with the
// passkey of peer i's user if t has a place for it.
func (w *Workload) appendTarget(b []byte, t *httpTarget, i int) []byte {
	b = append(b, t.prefix...)
	if t.passkeys {
		b = w.appendPasskey(b, i)
		b = append(b, t.rest...)
	}
	return b
}

// scrapeURL derives the scrape URL from an announce URL as libtorrent
// does: the first "announce" becomes "scrape" (/announce/PK gives
// /scrape/PK, announce.php?passkey=PK gives scrape.php?passkey=PK).
func scrapeURL(announce string) (string, error) {
	u, err := url.Parse(announce)
	if err != nil {
		return "", err
	}
	prefix := u.Scheme + "://" + u.Host
	rest := strings.TrimPrefix(announce, prefix)
	if rest == announce || !strings.Contains(rest, "announce") {
		return "", fmt.Errorf("%q: no \"announce\" in the path to replace with \"scrape\"", announce)
	}
	return prefix + strings.Replace(rest, "announce", "scrape", 1), nil
}

// appendHex8 appends v as 8 uppercase hex digits, the form of libtorrent's
// key.
func appendHex8(dst []byte, v uint32) []byte {
	const hexDigits = "0123456789ABCDEF"
	for shift := 28; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[v>>shift&15])
	}
	return dst
}

// appendHTTPAnnounce appends the announce request of r, with the query
// in the order libtorrent 2.x sends it: info_hash, peer_id, port,
// uploaded, downloaded, left, corrupt, key, event, numwant, then
// compact=1, no_peer_id=1, supportcrypto=1 and redundant.
func (w *Workload) appendHTTPAnnounce(b []byte, t *httpTarget, r request) []byte {
	b = w.appendTarget(b, t, r.peer)
	b = append(b, "info_hash="...)
	h := w.InfoHash(r.swarm)
	b = httpwire.EscapeLibtorrent.Append(b, h[:])
	b = append(b, "&peer_id="...)
	id := w.PeerID(r.peer)
	b = httpwire.EscapeLibtorrent.Append(b, id[:])
	b = append(b, "&port="...)
	b = strconv.AppendUint(b, uint64(w.port(r)), 10)
	downloaded, left, uploaded := w.transfer(r)
	b = append(b, "&uploaded="...)
	b = strconv.AppendInt(b, uploaded, 10)
	b = append(b, "&downloaded="...)
	b = strconv.AppendInt(b, downloaded, 10)
	b = append(b, "&left="...)
	b = strconv.AppendInt(b, left, 10)
	b = append(b, "&corrupt=0&key="...)
	b = appendHex8(b, w.Key(r.peer))
	switch r.event {
	case udpwire.EventStarted:
		b = append(b, "&event=started"...)
	case udpwire.EventCompleted:
		b = append(b, "&event=completed"...)
	case udpwire.EventStopped:
		b = append(b, "&event=stopped"...)
	}
	if w.NumWant >= 0 {
		b = append(b, "&numwant="...)
		b = strconv.AppendInt(b, int64(w.NumWant), 10)
	}
	b = append(b, "&compact=1&no_peer_id=1&supportcrypto=1&redundant=0"...)
	return append(b, t.suffix...)
}

// appendHTTPScrape appends a scrape of ScrapeHashes swarms from r.swarm
// on, and stores their hashes in hashes[:ScrapeHashes] for the check of
// the reply.
func (w *Workload) appendHTTPScrape(b []byte, t *httpTarget, r request, hashes [][20]byte) []byte {
	b = w.appendTarget(b, t, 0)
	for k := range w.ScrapeHashes {
		if k > 0 {
			b = append(b, '&')
		}
		b = append(b, "info_hash="...)
		hashes[k] = w.InfoHash(w.scrapeSwarm(r.swarm, k))
		b = httpwire.EscapeLibtorrent.Append(b, hashes[k][:])
	}
	return append(b, t.suffix...)
}

// errBadResponse marks a response that breaks HTTP framing: it counts as
// malformed.
var errBadResponse = errors.New("loadgen: malformed HTTP response")

// Limits of the response reader.
const (
	respBufSize = 4 << 10
	respMaxSize = 1 << 20
)

// respReader reads HTTP/1.x responses from a connection into a buffer it
// reuses: the status line, the headers it needs (Content-Length,
// Transfer-Encoding, Connection) and a body framed by Content-Length, by
// chunks or by the end of the connection.
type respReader struct {
	buf   []byte // buf[:w] holds what was read of the current response
	w     int
	chunk []byte // the body of a chunked response, reassembled
}

// response is what read returns. body aliases the reader's buffers until
// the next read.
type response struct {
	status    int
	body      []byte
	keepAlive bool // the connection may carry the next request
	gotBytes  bool // at least one byte arrived
}

// more reads at least one more byte, growing the buffer when it is full.
func (rr *respReader) more(c net.Conn) error {
	if rr.w == len(rr.buf) {
		if len(rr.buf) >= respMaxSize {
			return errBadResponse
		}
		nb := make([]byte, max(2*len(rr.buf), respBufSize))
		copy(nb, rr.buf[:rr.w])
		rr.buf = nb
	}
	for {
		n, err := c.Read(rr.buf[rr.w:])
		rr.w += n
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// lineEnd returns the index of the CRLF that ends the line at from,
// reading more as needed.
func (rr *respReader) lineEnd(c net.Conn, from int) (int, error) {
	for {
		if i := bytes.Index(rr.buf[from:rr.w], crlf); i >= 0 {
			return from + i, nil
		}
		if err := rr.more(c); err != nil {
			return 0, err
		}
	}
}

var crlf = []byte("\r\n")

// fillTo reads until buf[:n] is complete.
func (rr *respReader) fillTo(c net.Conn, n int) error {
	if n > respMaxSize {
		return errBadResponse
	}
	for rr.w < n {
		if rr.w == len(rr.buf) && n > len(rr.buf) {
			nb := make([]byte, max(n, 2*len(rr.buf)))
			copy(nb, rr.buf[:rr.w])
			rr.buf = nb
		}
		if err := rr.more(c); err != nil {
			return err
		}
	}
	return nil
}

// read reads one response. Framing errors are errBadResponse; an end of
// stream in mid-response is too, and one before any byte is io.EOF.
func (rr *respReader) read(c net.Conn) (resp response, err error) {
	if rr.buf == nil {
		rr.buf = make([]byte, respBufSize)
	}
	rr.w = 0
	defer func() {
		resp.gotBytes = rr.w > 0
		if err != nil && rr.w > 0 && !isTimeout(err) {
			err = errBadResponse
		}
	}()

	// Status line: HTTP/1.x SSS reason
	end, err := rr.lineEnd(c, 0)
	if err != nil {
		return resp, err
	}
	line := rr.buf[:end]
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return resp, errBadResponse
	}
	resp.keepAlive = line[7] == '1'
	status, ok := parseUint(line[9:12], 10)
	if !ok {
		return resp, errBadResponse
	}
	resp.status = status

	// Headers.
	contentLength, chunked := -1, false
	pos := end + 2
	for {
		end, err := rr.lineEnd(c, pos)
		if err != nil {
			return resp, err
		}
		line := rr.buf[pos:end]
		pos = end + 2
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return resp, errBadResponse
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := parseUint(value, 10)
			if !ok || (contentLength >= 0 && n != contentLength) {
				return resp, errBadResponse
			}
			contentLength = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(value, []byte("chunked")) {
				return resp, errBadResponse // only chunked is expected
			}
			chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				resp.keepAlive = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				resp.keepAlive = true
			}
		}
	}

	// Body.
	switch {
	case chunked:
		resp.body, pos, err = rr.readChunked(c, pos)
		if err != nil {
			return resp, err
		}
	case contentLength >= 0:
		if err := rr.fillTo(c, pos+contentLength); err != nil {
			return resp, err
		}
		resp.body = rr.buf[pos : pos+contentLength]
		pos += contentLength
	default: // delimited by the end of the connection
		for {
			err := rr.more(c)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return resp, err
			}
		}
		resp.body = rr.buf[pos:rr.w]
		resp.keepAlive = false
		return resp, nil
	}
	if rr.w != pos {
		// Bytes beyond the response: never sent without pipelining.
		resp.keepAlive = false
	}
	return resp, nil
}

// readChunked reassembles a chunked body that starts at pos.
func (rr *respReader) readChunked(c net.Conn, pos int) (body []byte, next int, err error) {
	rr.chunk = rr.chunk[:0]
	for {
		end, err := rr.lineEnd(c, pos)
		if err != nil {
			return nil, 0, err
		}
		sizeField := rr.buf[pos:end]
		if i := bytes.IndexByte(sizeField, ';'); i >= 0 {
			sizeField = sizeField[:i]
		}
		size, ok := parseUint(bytes.TrimSpace(sizeField), 16)
		if !ok {
			return nil, 0, errBadResponse
		}
		pos = end + 2
		if size == 0 {
			break
		}
		if len(rr.chunk)+size > respMaxSize {
			return nil, 0, errBadResponse
		}
		if err := rr.fillTo(c, pos+size+2); err != nil {
			return nil, 0, err
		}
		if !bytes.Equal(rr.buf[pos+size:pos+size+2], crlf) {
			return nil, 0, errBadResponse
		}
		rr.chunk = append(rr.chunk, rr.buf[pos:pos+size]...)
		pos += size + 2
	}
	// Trailers, up to an empty line.
	for {
		end, err := rr.lineEnd(c, pos)
		if err != nil {
			return nil, 0, err
		}
		empty := end == pos
		pos = end + 2
		if empty {
			return rr.chunk, pos, nil
		}
	}
}

// parseUint parses a non-empty unsigned number below 2^31 in base 10 or
// 16, without allocating.
func parseUint(b []byte, base int64) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		var d int64
		switch {
		case '0' <= c && c <= '9':
			d = int64(c - '0')
		case base == 16 && 'a' <= c && c <= 'f':
			d = int64(c-'a') + 10
		case base == 16 && 'A' <= c && c <= 'F':
			d = int64(c-'A') + 10
		default:
			return 0, false
		}
		n = n*base + d
		if n >= 1<<31 {
			return 0, false
		}
	}
	return int(n), true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
