// Command embed is a tracker inside an existing net/http service: the
// service keeps its own routes (/ and /api/status here) and its own
// http.Server, mounts the tracker's handler next to them, serves UDP
// announces on a socket of its own, and shuts both down on one path.
//
//	go run ./embed -http :8080 -udp :6969
//
// Clients announce to http://HOST:8080/tracker/announce or
// udp://HOST:6969/announce; /api/status shows the tracker's counters.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/annuaire/tracker"
)

func main() {
	// A signal cancels the context; run then shuts everything down.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, then shuts down. ready, if not nil, is
// told the addresses once both listeners are up.
func run(ctx context.Context, args []string, logOut io.Writer, ready func(httpAddr, udpAddr net.Addr)) error {
	fs := flag.NewFlagSet("embed", flag.ContinueOnError)
	httpAddr := fs.String("http", ":8080", "the service's HTTP address")
	udpAddr := fs.String("udp", ":6969", "the tracker's UDP address")
	fs.SetOutput(logOut)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log := slog.New(slog.NewTextHandler(logOut, nil))

	// The tracker: swarms in memory, the service's logger.
	t, err := tracker.New(tracker.Config{Logger: log})
	if err != nil {
		return err
	}
	defer t.Close() // on early returns; the shutdown path closes it too

	// The tracker's handler matches /announce and /scrape at the root of
	// the path, so it is mounted under /tracker/ with StripPrefix.
	th, err := t.NewHTTPHandler(tracker.HTTPConfig{Logger: log})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Welcome. This service also tracks torrents: announce to http://%s/tracker/announce\n", r.Host)
	})
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(t.Stats())
	})
	mux.Handle("/tracker/", http.StripPrefix("/tracker", th))

	// The service's own server, with the timeouts any public server needs.
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	hl, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return err
	}
	defer hl.Close() // in case of an early return; Shutdown closes it too

	// UDP on a socket the service opens and owns: the server reads it, and
	// the service closes it once the server is shut down.
	conn, err := net.ListenPacket("udp", *udpAddr)
	if err != nil {
		return err
	}
	defer conn.Close() // idem
	us, err := t.NewUDPServer(tracker.UDPConfig{})
	if err != nil {
		return err
	}

	var serving sync.WaitGroup
	failed := make(chan error, 2)
	serving.Go(func() {
		if err := srv.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			failed <- fmt.Errorf("http: %w", err)
		}
	})
	serving.Go(func() {
		if err := us.Serve(conn); !errors.Is(err, tracker.ErrServerClosed) {
			failed <- fmt.Errorf("udp: %w", err)
		}
	})
	log.Info("serving", "http", hl.Addr().String(), "udp", conn.LocalAddr().String())
	if ready != nil {
		ready(hl.Addr(), conn.LocalAddr())
	}

	// One shutdown path, whatever ends the service: a signal or a
	// front-end that fails.
	var failure error
	select {
	case <-ctx.Done():
	case failure = <-failed:
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Both front-ends drain at once: HTTP stops accepting and finishes the
	// requests being handled, UDP stops reading and answers the datagrams
	// its readers hold. Past the deadline, they are closed.
	var draining sync.WaitGroup
	draining.Go(func() {
		if srv.Shutdown(shutdownCtx) != nil {
			srv.Close()
		}
	})
	draining.Go(func() {
		if us.Shutdown(shutdownCtx) != nil {
			us.Close()
		}
	})
	draining.Wait()
	serving.Wait()
	conn.Close() // UDPServer.Serve leaves its socket to the caller
	t.Close()    // no front-end is left to call it
	log.Info("stopped")
	return failure
}
