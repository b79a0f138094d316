package tracker_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/annuaire/tracker"
	"github.com/zeebo/bencode"
)

// The HTTP front-end mounted on a program's own mux, next to its other
// routes, once at the root and once under a prefix, and served by the
// convenience server on a loopback port.
func ExampleTracker_NewHTTPHandler() {
	t, err := tracker.New(tracker.Config{IntervalJitter: -1})
	if err != nil {
		panic(err)
	}
	defer t.Close()
	h, err := t.NewHTTPHandler(tracker.HTTPConfig{TrackerID: "example"})
	if err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/announce", h)
	mux.Handle("/scrape", h)
	mux.Handle("/tracker/", http.StripPrefix("/tracker", h))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})

	l, err := net.Listen("tcp", "127.0.0.1:0")
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
	for _, path := range []string{"/announce?", "/tracker/announce?"} {
		if err := bencode.DecodeBytes(get(path+query), &reply); err != nil {
			panic(err)
		}
		fmt.Printf("%s seeders %d, leechers %d, interval %ds, tracker id %q\n",
			strings.TrimSuffix(path, "?"), reply.Complete, reply.Incomplete, reply.Interval, reply.TrackerID)
	}

	// Failures are HTTP 200 with a bencoded reason, which clients show.
	reply.Failure = ""
	if err := bencode.DecodeBytes(get("/announce?info_hash=short"), &reply); err != nil {
		panic(err)
	}
	fmt.Println("failure:", reply.Failure)
	// Output:
	// healthz: ok
	// /announce seeders 1, leechers 0, interval 1800s, tracker id "example"
	// /tracker/announce seeders 1, leechers 0, interval 1800s, tracker id "example"
	// failure: invalid info_hash
}
