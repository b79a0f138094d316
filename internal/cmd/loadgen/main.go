// Command loadgen benchmarks a BitTorrent tracker over UDP (BEP 15) or
// HTTP: it prefills the tracker with peers, sends a realistic mix of
// announces or scrapes, checks every reply, and prints the rate, the
// latencies and, given the tracker's process id, the tracker's CPU and
// memory use. See the loadgen package for the method.
//
// Usage:
//
//	loadgen -udp 127.0.0.1:6969 [flags]
//	loadgen -http http://127.0.0.1:6969/announce [flags]
//	loadgen -write-hashes whitelist.txt [workload flags]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/annuaire/tracker/internal/loadgen"
)

const usageText = `loadgen benchmarks a BitTorrent tracker over UDP (BEP 15) or HTTP.

Usage:
  loadgen -udp HOST:PORT [flags]
  loadgen -http http://HOST:PORT/announce [flags]
  loadgen -write-hashes FILE [workload flags]

It announces every peer once (the prefill, reporting peers accepted per
second), then sends the workload for -warmup and measures for -duration:
requests per second, latency percentiles, and errors, timeouts, tracker
failures and malformed replies (every reply is checked). With -server-pid
it also reports the tracker's CPU use over the run and its memory growth
during the prefill (bytes per peer). Info hashes and peer ids derive from
-seed: -write-hashes writes the hashes, one hex per line, as a whitelist
for trackers that serve listed torrents only (opentracker).

The exit status is 2 for bad flags, and 1 when the run fails or more than
0.1% of the replies are malformed.

Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		udp          = fs.String("udp", "", "`HOST:PORT` of a UDP tracker")
		httpURL      = fs.String("http", "", "announce `URL` of an HTTP tracker; passkey forms such as /announce/PK work")
		scrapeURL    = fs.String("scrape-url", "", "HTTP scrape `URL` (default: the announce URL with its first \"announce\" replaced by \"scrape\")")
		mode         = fs.String("mode", "announce", "what the run sends: `announce` or scrape")
		scrapeHashes = fs.Int("scrape-hashes", 1, "info hashes per scrape request, at most 74")
		httpClose    = fs.Bool("http-close", false, "open a new HTTP connection per request (Connection: close), as qBittorrent and µTorrent do")

		swarms       = fs.Int("swarms", loadgen.DefaultSwarms, "number of torrents")
		peers        = fs.Int("peers", loadgen.DefaultPeers, "number of distinct peers the run announces as")
		prefillPeers = fs.Int("prefill-peers", 0, "number of peers the prefill announces (default: -peers)")
		numwant      = fs.Int("numwant", loadgen.DefaultNumWant, "peers asked for; -1 for the tracker's default")
		seeders      = fs.Float64("seeders", loadgen.DefaultSeederPct, "`percent` of peers that are seeders (left=0)")
		started      = fs.Float64("started", loadgen.DefaultStartedPct, "`percent` of run announces with event=started")
		completed    = fs.Float64("completed", loadgen.DefaultCompletedPct, "`percent` of run announces with event=completed")
		seed         = fs.Uint64("seed", 1, "seed of the info hashes, peer ids and keys")

		inflight = fs.Int("inflight", loadgen.DefaultInFlight, "UDP requests in flight, over all sockets")
		sockets  = fs.Int("sockets", loadgen.DefaultSockets, "UDP sockets")
		conns    = fs.Int("conns", loadgen.DefaultConns, "concurrent HTTP connections")
		rate     = fs.Float64("rate", 0, "send the run (not the prefill) at `N` requests per second, whether replies\ncome or not (within -inflight or -conns), to measure latencies at a chosen\nload; 0 sends as fast as replies free slots")

		duration = durationFlag(fs, "duration", loadgen.DefaultDuration, "length of the measured run")
		warmup   = durationFlag(fs, "warmup", 2*time.Second, "load before measuring")
		timeout  = durationFlag(fs, "timeout", loadgen.DefaultTimeout, "time a request waits for its reply before it counts as a timeout")
		prefill  = fs.Bool("prefill", true, "announce every peer once before the run")

		serverPID   = fs.Int("server-pid", 0, "`PID` of the tracker, to report its CPU and memory use (Linux)")
		rssSettle   = durationFlag(fs, "rss-settle", 2*time.Second, "wait after the prefill before reading the tracker's memory (with -server-pid)")
		asJSON      = fs.Bool("json", false, "print the result as JSON")
		cpuProfile  = fs.String("cpuprofile", "", "write the generator's own CPU profile to `FILE`")
		writeHashes = fs.String("write-hashes", "", "write the info hashes to `FILE`, one hex per line (opentracker's whitelist format)")
	)
	fs.Usage = func() {} // errors are reported in one line below
	fail := func(code int, format string, a ...any) int {
		msg := strings.TrimPrefix(fmt.Sprintf(format, a...), "loadgen: ")
		fmt.Fprintf(stderr, "loadgen: %s\n", msg)
		return code
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageText)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		return fail(2, "%v (see loadgen -h)", err)
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected argument %q (see loadgen -h)", fs.Arg(0))
	}
	m, err := loadgen.ParseMode(*mode)
	if err != nil {
		return fail(2, "%v", err)
	}
	if *numwant == 0 || *numwant < -1 {
		return fail(2, "numwant %d: want a positive number, or -1", *numwant)
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"swarms", *swarms}, {"peers", *peers}, {"scrape-hashes", *scrapeHashes},
		{"inflight", *inflight}, {"sockets", *sockets}, {"conns", *conns}} {
		if v.n <= 0 {
			return fail(2, "-%s %d: must be positive", v.name, v.n)
		}
	}
	if *prefillPeers < 0 {
		return fail(2, "-prefill-peers %d: must not be negative", *prefillPeers)
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"duration", *duration}, {"timeout", *timeout}} {
		if d.d <= 0 {
			return fail(2, "-%s %v: must be positive", d.name, d.d)
		}
	}
	// In the library a zero percentage means the default; here it means none.
	pct := func(v float64) float64 {
		if v == 0 {
			return -1
		}
		return v
	}
	cfg := loadgen.Config{
		Workload: loadgen.Workload{
			Swarms:       *swarms,
			Peers:        *peers,
			PrefillPeers: *prefillPeers,
			NumWant:      *numwant,
			SeederPct:    pct(*seeders),
			StartedPct:   pct(*started),
			CompletedPct: pct(*completed),
			ScrapeHashes: *scrapeHashes,
			Seed:         *seed,
		},
		UDP:       *udp,
		HTTP:      *httpURL,
		ScrapeURL: *scrapeURL,
		Mode:      m,
		HTTPClose: *httpClose,
		Sockets:   *sockets,
		InFlight:  *inflight,
		Conns:     *conns,
		Rate:      *rate,
		Timeout:   *timeout,
		Duration:  *duration,
		Warmup:    *warmup,
		Prefill:   *prefill,
		ServerPID: *serverPID,
		RSSSettle: *rssSettle,
	}
	if *writeHashes != "" {
		if err := writeHashFile(*writeHashes, &cfg.Workload); err != nil {
			return fail(2, "%v", err)
		}
		if *udp == "" && *httpURL == "" {
			return 0
		}
	}
	g, err := loadgen.New(cfg)
	if err != nil {
		return fail(2, "%v", err)
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fail(2, "%v", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(2, "%v", err)
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := g.Run(ctx)
	if res != nil {
		if *asJSON {
			b, _ := json.Marshal(res)
			fmt.Fprintf(stdout, "%s\n", b)
		} else {
			fmt.Fprintln(stdout, res)
		}
	}
	if err != nil {
		return fail(1, "%v", err)
	}
	if share := res.MalformedShare(); share > 0.001 {
		return fail(1, "%.2f%% of the replies were malformed", 100*share)
	}
	return 0
}

func writeHashFile(name string, w *loadgen.Workload) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := w.WriteHashes(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return f.Close()
}

// seconds is a duration flag that also takes a bare number of seconds:
// -duration 2 is -duration 2s.
type seconds struct{ d *time.Duration }

func (s seconds) String() string {
	if s.d == nil {
		return ""
	}
	return s.d.String()
}

func (s seconds) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		*s.d = time.Duration(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("want a duration such as 2s or 500ms, or a number of seconds")
	}
	*s.d = d
	return nil
}

func durationFlag(fs *flag.FlagSet, name string, value time.Duration, usage string) *time.Duration {
	d := new(time.Duration)
	*d = value
	fs.Var(seconds{d}, name, usage+" (`time`: a duration such as 2s, or seconds)")
	return d
}
