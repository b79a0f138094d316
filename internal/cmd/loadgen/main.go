// Command loadgen benchmarks a BitTorrent tracker over UDP (BEP 15) or
// HTTP: it prefills the tracker with peers, sends a realistic mix of
// announces or scrapes, checks every reply, and prints the rate, the
// latencies and, given the tracker's process id, the tracker's CPU and
// memory use. It also floods a tracker, and measures what a flood does to
// the legitimate clients of a UDP tracker (-flood-bench). See the loadgen
// package for the method.
//
// Usage:
//
//	loadgen -udp 127.0.0.1:6969 [flags]
//	loadgen -http http://127.0.0.1:6969/announce [flags]
//	loadgen -udp 127.0.0.1:6969 -flood hashes [flags]
//	loadgen -udp 127.0.0.1:6969 -flood-bench hashes [flags]
//	loadgen -write-hashes whitelist.txt [workload flags]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
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
  loadgen -http https://HOST:PORT/announce [flags]
  loadgen -udp HOST:PORT -flood SHAPE [flags]
  loadgen -udp HOST:PORT -flood-bench SHAPE [flags]
  loadgen -write-hashes FILE [workload flags]
  loadgen -write-users FILE [workload flags]
  loadgen -wait-whitelist HOST:PORT [workload flags]

It announces every peer once (the prefill, reporting peers accepted per
second), then sends the workload for -warmup and measures for -duration:
requests per second, latency percentiles, and errors, timeouts, tracker
failures and malformed replies (every reply is checked). With -server-pid
it also reports the tracker's CPU use over the run and its memory growth
during the prefill (bytes per peer). Info hashes and peer ids derive from
-seed: -write-hashes writes the hashes, one hex per line, as a whitelist
for trackers that serve listed torrents only (opentracker), and
-wait-whitelist waits (10 s at most) until the opentracker at HOST:PORT
serves them: it reads its whitelist after it starts listening.

-flood SHAPE sends made-up announces instead of the workload, as fast as
the requests in flight allow (or at -rate): hashes (a new info hash each
time, event completed, left 0), peers (new peer ids into the first
-flood-swarms swarms) or snatches (a new info hash completed, then stopped).
-from and -sources send it from many addresses: on Linux every address of
127.0.0.0/8 is a loopback address.

-flood-bench SHAPE measures what such a flood does to a UDP tracker: the
workload, prefilled, runs at -rate from -from and -sources for -before,
-duration (during which the flood runs from -flood-from and
-flood-sources), -settle and -after, each with its own figures; a probe
announces a new torrent every -probe-every from -probe-from; the tracker's
memory (-server-pid) and its metrics (-metrics-url) are read throughout.

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
		tlsResume    = fs.Bool("tls-resume", false, "with an https:// URL, resume TLS sessions (session tickets) on new connections, as a browser does")

		swarms       = fs.Int("swarms", loadgen.DefaultSwarms, "number of torrents")
		peers        = fs.Int("peers", loadgen.DefaultPeers, "number of distinct peers the run announces as")
		prefillPeers = fs.Int("prefill-peers", 0, "number of peers the prefill announces (default: -peers)")
		numwant      = fs.Int("numwant", loadgen.DefaultNumWant, "peers asked for; -1 for the tracker's default")
		seeders      = fs.Float64("seeders", loadgen.DefaultSeederPct, "`percent` of peers that are seeders (left=0)")
		started      = fs.Float64("started", loadgen.DefaultStartedPct, "`percent` of run announces with event=started")
		completed    = fs.Float64("completed", loadgen.DefaultCompletedPct, "`percent` of run announces with event=completed")
		churn        = fs.Bool("churn", false, "every run announce is a new peer (one of -peers, none of the prefill's) in a random swarm: almost every announce is a join")
		seed         = fs.Uint64("seed", 1, "seed of the info hashes, peer ids and keys")
		passkeys     = fs.Bool("passkeys", false, "announce as users of a private tracker, peer i as user i+1 with a passkey of its own: in the -http URL where it holds {passkey} (http://HOST:PORT/announce/{passkey}), over UDP as BEP 41 URL data; -write-users writes them")

		inflight = fs.Int("inflight", loadgen.DefaultInFlight, "UDP requests in flight, over all sockets")
		sockets  = fs.Int("sockets", loadgen.DefaultSockets, "UDP sockets")
		conns    = fs.Int("conns", loadgen.DefaultConns, "concurrent HTTP connections")

		duration = durationFlag(fs, "duration", loadgen.DefaultDuration, "length of the measured run (with -flood-bench, of the flood)")
		warmup   = durationFlag(fs, "warmup", 2*time.Second, "load before measuring")
		timeout  = durationFlag(fs, "timeout", loadgen.DefaultTimeout, "time a request waits for its reply before it counts as a timeout")
		prefill  = fs.Bool("prefill", true, "announce every peer once before the run")

		rate    = fs.Float64("rate", 0, "requests per second after the prefill, over all sockets or connections; 0 for as fast as the requests in flight allow")
		from    = fs.String("from", "", "source `ADDR` of the requests (default: the system's choice)")
		sources = fs.Int("sources", 1, "send from this many consecutive addresses from -from (127.0.0.0/8 is all loopback on Linux)")

		flood        = fs.String("flood", "", "send a flood of `SHAPE` instead of the workload: hashes, peers or snatches")
		floodSwarms  = fs.Int("flood-swarms", loadgen.DefaultFloodSwarms, "swarms of the workload a peers flood goes to")
		floodBench   = fs.String("flood-bench", "", "measure the workload's clients before, during and after a flood of `SHAPE`")
		floodFrom    = fs.String("flood-from", "", "with -flood-bench, the flood's first source `ADDR`")
		floodSources = fs.Int("flood-sources", 1, "with -flood-bench, the flood's source addresses")
		floodRate    = fs.Float64("flood-rate", 0, "with -flood-bench, the flood's requests per second; 0 for as fast as it can")
		floodFlight  = fs.Int("flood-inflight", loadgen.DefaultInFlight, "with -flood-bench, the flood's requests in flight (at least one per source)")
		before       = durationFlag(fs, "before", 5*time.Second, "with -flood-bench, the window before the flood")
		settle       = durationFlag(fs, "settle", 30*time.Second, "with -flood-bench, the window after the flood while the tracker settles (its peer TTL and a sweep)")
		after        = durationFlag(fs, "after", 5*time.Second, "with -flood-bench, the last window")
		metricsURL   = fs.String("metrics-url", "", "with -flood-bench, the tracker's Prometheus `URL` (annuaire_peers, _swarms, _failures_total)")
		probeFrom    = fs.String("probe-from", "", "with -flood-bench, the source `ADDR` of the probe that announces new torrents")
		probeEvery   = durationFlag(fs, "probe-every", 250*time.Millisecond, "with -flood-bench, the time between the probe's announces")

		serverPID   = fs.Int("server-pid", 0, "`PID` of the tracker, to report its CPU and memory use (Linux)")
		rssSettle   = durationFlag(fs, "rss-settle", 2*time.Second, "wait after the prefill before reading the tracker's memory (with -server-pid)")
		asJSON      = fs.Bool("json", false, "print the result as JSON")
		cpuProfile  = fs.String("cpuprofile", "", "write the generator's own CPU profile to `FILE`")
		writeHashes = fs.String("write-hashes", "", "write the info hashes to `FILE`, one hex per line (opentracker's whitelist format)")
		writeUsers  = fs.String("write-users", "", "write the users of the peers to `FILE`, a passkey and a user id per line (annuaire's -passkeys format)")
		waitList    = fs.String("wait-whitelist", "", "wait until the opentracker at `HOST:PORT` serves the hashes -write-hashes writes")
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
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if !given["inflight"] {
		*inflight = 0 // the default: 64, and at least one per socket
	}
	var shape, benchShape loadgen.FloodShape
	if *flood != "" {
		if shape, err = loadgen.ParseFloodShape(*flood); err != nil {
			return fail(2, "-flood: %v", err)
		}
	}
	if *floodBench != "" {
		if benchShape, err = loadgen.ParseFloodShape(*floodBench); err != nil {
			return fail(2, "-flood-bench: %v", err)
		}
		switch {
		case shape != loadgen.NoFlood:
			return fail(2, "-flood and -flood-bench: give one")
		case *udp == "":
			return fail(2, "-flood-bench loads a UDP tracker: give -udp")
		}
	}
	addrs := map[string]netip.Addr{}
	for name, v := range map[string]string{"from": *from, "flood-from": *floodFrom, "probe-from": *probeFrom} {
		if v == "" {
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return fail(2, "-%s %q: want an IP address", name, v)
		}
		addrs[name] = a
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"duration", *duration}, {"timeout", *timeout}, {"before", *before}, {"settle", *settle}, {"after", *after}, {"probe-every", *probeEvery}} {
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
			Churn:        *churn,
			ScrapeHashes: *scrapeHashes,
			Seed:         *seed,
			Passkeys:     *passkeys,
		},
		UDP:       *udp,
		HTTP:      *httpURL,
		ScrapeURL: *scrapeURL,
		Mode:      m,
		HTTPClose: *httpClose,
		TLSResume: *tlsResume,
		Sockets:   *sockets,
		InFlight:  *inflight,
		Conns:     *conns,
		Timeout:   *timeout,
		Duration:  *duration,
		Warmup:    *warmup,
		Prefill:   *prefill,
		ServerPID: *serverPID,
		RSSSettle: *rssSettle,

		Source:      addrs["from"],
		Sources:     *sources,
		Rate:        *rate,
		Flood:       shape,
		FloodSwarms: *floodSwarms,
	}
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{{*writeHashes, cfg.Workload.WriteHashes}, {*writeUsers, cfg.Workload.WriteUsers}} {
		if f.name == "" {
			continue
		}
		if err := writeFile(f.name, f.write); err != nil {
			return fail(2, "%v", err)
		}
	}
	if *waitList != "" {
		if err := cfg.Workload.WaitWhitelist(*waitList, 10*time.Second); err != nil {
			return fail(1, "opentracker on %s: %v", *waitList, err)
		}
	}
	if *udp == "" && *httpURL == "" && (*writeHashes != "" || *writeUsers != "" || *waitList != "") {
		return 0
	}
	var bench *loadgen.FloodBench
	if benchShape != loadgen.NoFlood {
		fc := cfg
		fc.Flood, fc.Source, fc.Sources, fc.Rate, fc.InFlight, fc.Sockets = benchShape, addrs["flood-from"], *floodSources, *floodRate, *floodFlight, 0
		bench = &loadgen.FloodBench{
			Legit: cfg, Flood: fc,
			Before: *before, During: *duration, Settle: *settle, After: *after,
			MetricsURL: *metricsURL, Probe: addrs["probe-from"], ProbeEvery: *probeEvery,
		}
		// Checked here, so that a mistake is a usage error.
		if _, err := loadgen.New(fc); err != nil {
			return fail(2, "flood: %v", err)
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
	if bench != nil {
		return runBench(ctx, bench, *asJSON, stdout, fail)
	}
	res, err := g.Run(ctx)
	if res != nil {
		show(stdout, res, *asJSON)
	}
	if err != nil {
		return fail(1, "%v", err)
	}
	if share := res.MalformedShare(); share > 0.001 {
		return fail(1, "%.2f%% of the replies were malformed", 100*share)
	}
	return 0
}

// show prints a result, as one line of JSON or as text.
func show(stdout io.Writer, res fmt.Stringer, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(res)
		fmt.Fprintf(stdout, "%s\n", b)
		return
	}
	fmt.Fprintln(stdout, res)
}

// runBench runs a flood bench and prints its result.
func runBench(ctx context.Context, b *loadgen.FloodBench, asJSON bool, stdout io.Writer, fail func(int, string, ...any) int) int {
	res, err := b.Run(ctx)
	if res != nil {
		show(stdout, res, asJSON)
	}
	if err != nil {
		return fail(1, "%v", err)
	}
	if share := res.Legit.MalformedShare(); share > 0.001 {
		return fail(1, "%.2f%% of the replies to the legitimate load were malformed", 100*share)
	}
	return 0
}

// writeFile writes a file with write.
func writeFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
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
