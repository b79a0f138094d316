// Command passkey runs a private tracker whose passkeys are checked against
// the site's HTTP API, with caching (see siteValidator): the way a site
// plugs its users into the tracker without copying its user table.
//
//	go run ./passkey -api https://example.org/api/tracker/passkeys -http :6969 -udp :6969
//
// Clients announce to http://host:6969/announce/<passkey> (or
// udp://host:6969/announce/<passkey>, for clients that send BEP 41 URL
// data). The site answers GET <api>/<passkey> with {"user_id": N} or 404.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/annuaire/tracker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], nil); err != nil {
		fmt.Fprintln(os.Stderr, "passkey:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done. ready, if not nil, is told the addresses
// it listens on.
func run(ctx context.Context, args []string, ready func(httpAddr, udpAddr net.Addr)) error {
	fs := flag.NewFlagSet("passkey", flag.ContinueOnError)
	api := fs.String("api", "", "base URL of the site's passkey API (required)")
	httpAddr := fs.String("http", ":6969", "HTTP listen address; empty disables")
	udpAddr := fs.String("udp", ":6969", "UDP listen address; empty disables")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *api == "" {
		return errors.New("-api is required")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	t, err := tracker.New(tracker.Config{
		Passkeys:  newSiteValidator(*api, &http.Client{Timeout: 10 * time.Second}),
		RateLimit: tracker.RateLimitConfig{PerIP: 2, PerPasskey: 1},
		Logger:    log,
	})
	if err != nil {
		return err
	}
	defer t.Close()

	errs := make(chan error, 2)
	var hs *http.Server
	var hl, ul net.Addr
	if *httpAddr != "" {
		h, err := t.NewHTTPHandler(tracker.HTTPConfig{Logger: log})
		if err != nil {
			return err
		}
		l, err := tracker.ListenTCP("tcp", *httpAddr)
		if err != nil {
			return err
		}
		hl = l.Addr()
		hs = tracker.NewHTTPServer(h)
		go func() { errs <- hs.Serve(l) }()
	}
	var us *tracker.UDPServer
	if *udpAddr != "" {
		conn, err := net.ListenPacket("udp", *udpAddr)
		if err != nil {
			return err
		}
		defer conn.Close()
		ul = conn.LocalAddr()
		if us, err = t.NewUDPServer(tracker.UDPConfig{}); err != nil {
			return err
		}
		go func() { errs <- us.Serve(conn) }()
	}
	log.Info("serving", "http", hl, "udp", ul, "api", *api)
	if ready != nil {
		ready(hl, ul)
	}
	select {
	case <-ctx.Done():
	case err := <-errs:
		return err
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if hs != nil {
		hs.Shutdown(shutdown)
	}
	if us != nil {
		us.Shutdown(shutdown)
	}
	return nil
}
