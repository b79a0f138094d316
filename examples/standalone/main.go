// Command annuaire is the standalone annuaire BitTorrent tracker: HTTP and
// UDP announces and scrapes over IPv4 and IPv6, swarms in memory or in a
// Redis shared by several instances, Prometheus metrics, and the access
// lists of a private tracker.
//
// Build a single static binary and run it:
//
//	CGO_ENABLED=0 go -C examples build -o annuaire ./standalone
//	./examples/annuaire -http :6969 -udp :6969 -metrics 127.0.0.1:9100
//
// or, from the examples directory, go run ./standalone -h for every flag.
// Each flag has an environment variable (-rate-limit is
// ANNUAIRE_RATE_LIMIT), which suits containers and systemd units; a flag
// on the command line wins over its variable.
//
// A private tracker gives -passkeys a file of passkeys (and -torrents, if
// it serves only its own torrents); clients announce to
// http://HOST:6969/announce/PASSKEY, or better over -https, since the
// passkey travels in the URL. SIGHUP re-reads both files and the
// certificate of -https, and swaps each whole while announces go on;
// write a new file and rename it over the old one, so that a reload never
// sees half a file. A file that does not parse is logged and the previous
// content stays in force.
//
// With -store redis://HOST:PORT/DB, the swarms live in Redis, and every
// instance started with the same -store and -conn-id-key answers every
// client: put them behind one DNS name or an anycast address. An instance
// checks at start that Redis answers; while Redis is away, announces and
// scrapes fail with a generic error, and service resumes as soon as it is
// back.
//
// SIGINT and SIGTERM shut the server down gracefully: /readyz turns 503
// and everything is served as before for -shutdown-grace, so that load
// balancers move clients away; then the listeners close, every request
// received is answered, kept-alive connections close after their next
// reply (Connection: close), and the program exits 0, within
// -shutdown-timeout; past it, or on a second signal, it stops at once and
// exits 1.
//
// With -metrics, Prometheus reads /metrics (requests by protocol,
// operation and outcome, their latency, swarms and peers, the Redis
// store's calls, failures and latency, the Go runtime and the process);
// grafana-dashboard.json in this directory charts them.
// /healthz answers 200 while the process runs, /readyz 200 while it serves.
//
// Logs go to standard error, as text or JSON (-log-format): the
// configuration at start (never a passkey or a key), the address of each
// listener, reloads and errors. Nothing is logged per request above debug
// level.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := run(context.Background(), process{
		args:      os.Args[1:],
		lookupEnv: os.LookupEnv,
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		signals:   signals,
	})
	if err == nil {
		return
	}
	// One line, whatever the error holds, so that it reads well in a
	// service manager's journal.
	fmt.Fprintln(os.Stderr, "annuaire:", strings.ReplaceAll(err.Error(), "\n", " "))
	if errors.As(err, new(usageError)) {
		os.Exit(2)
	}
	os.Exit(1)
}

// process is what run takes from the operating system. Tests make their
// own, with a fake environment and signals sent over a channel.
type process struct {
	args      []string
	lookupEnv func(string) (string, bool)
	stdout    io.Writer // the help text
	stderr    io.Writer // the log
	// signals carries SIGHUP (reload), and SIGINT or SIGTERM (shut down;
	// the second one stops at once).
	signals <-chan os.Signal
}
