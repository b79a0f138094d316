package tracker_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/annuaire/tracker"
	"github.com/zeebo/bencode"
)

// The HTTP front-end of a private tracker mounted on a program's own mux,
// next to its other routes: under a prefix of its own, stripped, it serves
// every passkey layout. It is served by the server of NewHTTPServer on a
// loopback port.
func ExampleTracker_NewHTTPHandler() {
	passkeys := tracker.NewPasskeySet()
	passkeys.Set("0123456789abcdef0123456789abcdef", 42)
	t, err := tracker.New(tracker.Config{Passkeys: passkeys, IntervalJitter: tracker.Disabled})
	if err != nil {
		panic(err)
	}
	defer t.Close()
	h, err := t.NewHTTPHandler(tracker.HTTPConfig{TrackerID: "example"})
	if err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/tracker/", http.StripPrefix("/tracker", h))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})

	l, err := tracker.ListenTCP("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := tracker.NewHTTPServer(mux)
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())
	base := "http://" + l.Addr().String()

	get := func(path string) []byte {
		resp, err := http.Get(base + path)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			panic(err)
		}
		return body
	}
	fmt.Printf("healthz: %s\n", get("/healthz"))

	// Every byte of the hash escaped: the tracker reads '+' as itself, as
	// clients mean it, not as a space (so url.QueryEscape does not fit).
	hash, _ := tracker.ParseInfoHash("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
	var escaped strings.Builder
	for _, c := range hash {
		fmt.Fprintf(&escaped, "%%%02X", c)
	}
	query := "info_hash=" + escaped.String() + "&peer_id=-TR4060-k8hj0wgej6ch&port=51413&left=0&event=started"
	var reply struct {
		Complete   int    `bencode:"complete"`
		Incomplete int    `bencode:"incomplete"`
		Interval   int    `bencode:"interval"`
		Failure    string `bencode:"failure reason"`
		TrackerID  string `bencode:"tracker id"`
	}
	const pk = "0123456789abcdef0123456789abcdef"
	for _, layout := range []string{
		"/tracker/announce/PK?",
		"/tracker/PK/announce?",
		"/tracker/announce.php?passkey=PK&",
		"/tracker/announce?", // no passkey
	} {
		reply.Failure = ""
		target := strings.Replace(layout, "PK", pk, 1) + query
		if err := bencode.DecodeBytes(get(target), &reply); err != nil {
			panic(err)
		}
		if reply.Failure != "" {
			fmt.Printf("%s: failure %q\n", layout, reply.Failure)
			continue
		}
		fmt.Printf("%s: seeders %d, leechers %d, interval %ds, tracker id %q\n",
			layout, reply.Complete, reply.Incomplete, reply.Interval, reply.TrackerID)
	}
	// Output:
	// healthz: ok
	// /tracker/announce/PK?: seeders 1, leechers 0, interval 1800s, tracker id "example"
	// /tracker/PK/announce?: seeders 1, leechers 0, interval 1800s, tracker id "example"
	// /tracker/announce.php?passkey=PK&: seeders 1, leechers 0, interval 1800s, tracker id "example"
	// /tracker/announce?: failure "passkey required: use the announce URL from your account"
}

// A tracker behind a ConnLimiter: a client address holds at most two
// connections, and a third is closed as soon as it is accepted. The
// server's ConnState tells the limiter which connections are idle, so that
// at its bound new clients take the place of idle ones.
func ExampleConnLimiter() {
	t, err := tracker.New(tracker.Config{})
	if err != nil {
		panic(err)
	}
	defer t.Close()
	h, err := t.NewHTTPHandler(tracker.HTTPConfig{})
	if err != nil {
		panic(err)
	}
	cl, err := tracker.NewConnLimiter(tracker.ConnLimits{PerAddr: 2})
	if err != nil {
		panic(err)
	}
	l, err := tracker.ListenTCP("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := tracker.NewHTTPServer(h)
	srv.ConnState = cl.ConnState
	go srv.Serve(cl.Listener(l))
	defer srv.Close()

	for i := range 3 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			panic(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /scrape?info_hash=01234567890123456789 HTTP/1.1\r\nHost: tracker\r\n\r\n")
		status, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			fmt.Printf("connection %d: closed\n", i+1)
			continue
		}
		fmt.Printf("connection %d: %s\n", i+1, strings.TrimSpace(status))
	}
	fmt.Println("refused per address:", cl.Stats().RefusedPerAddr)
	// Output:
	// connection 1: HTTP/1.1 200 OK
	// connection 2: HTTP/1.1 200 OK
	// connection 3: closed
	// refused per address: 1
}
