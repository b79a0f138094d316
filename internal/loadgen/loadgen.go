package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Mode is what the measured run sends.
type Mode int

const (
	// Announce sends announces: plain ones and the started and completed
	// events, in the proportions of the [Workload].
	Announce Mode = iota
	// Scrape sends scrapes of Workload.ScrapeHashes hashes each.
	Scrape
)

func (m Mode) String() string {
	if m == Scrape {
		return "scrape"
	}
	return "announce"
}

// ParseMode returns the Mode named s: "announce" or "scrape".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "announce":
		return Announce, nil
	case "scrape":
		return Scrape, nil
	}
	return 0, fmt.Errorf("mode %q: want announce or scrape", s)
}

// Config configures a [Generator]. Exactly one of UDP and HTTP names the
// target; every other field may be left zero.
type Config struct {
	// Workload is the simulated population and its requests.
	Workload

	// UDP is the host:port of a BEP 15 tracker.
	UDP string
	// HTTP is the announce URL of an HTTP tracker, passkey forms
	// included: http://host:port/announce, .../announce/PK,
	// .../PK/announce, .../announce.php?passkey=PK.
	HTTP string
	// ScrapeURL is the HTTP scrape URL. If empty, it is HTTP with its first
	// "announce" replaced by "scrape", as libtorrent derives it. It must
	// be on the same host and port as HTTP.
	ScrapeURL string

	// Mode is what the measured run sends; the prefill always announces.
	Mode Mode
	// HTTPClose opens a new connection for every HTTP request and sends
	// Connection: close, as qBittorrent and µTorrent do. If false, the
	// requests go over Conns persistent connections.
	HTTPClose bool

	// Sockets is the number of UDP sockets. If zero, 4.
	Sockets int
	// InFlight is the number of UDP requests kept in flight, over all the
	// sockets. If zero, 64.
	InFlight int
	// Conns is the number of concurrent HTTP connections, each carrying
	// one request at a time. If zero, 64.
	Conns int
	// Rate, when positive, paces the run (not the prefill) at that many
	// requests per second over all the sockets or connections: each sends
	// its share at regular times, whether or not replies have come (an
	// open loop, within InFlight or Conns), so that latencies are measured
	// at a chosen load. Zero sends the next request as soon as a reply
	// frees a slot.
	Rate float64

	// Timeout is how long a request waits for its reply before it counts
	// as a timeout; requests are never sent again. If zero, 1 s.
	Timeout time.Duration
	// Duration is the length of the measured run. If zero, 10 s.
	Duration time.Duration
	// Warmup is the time the run sends before measuring. Zero means none.
	Warmup time.Duration

	// Prefill announces every one of the PrefillPeers peers once, with the
	// started event, before the run.
	Prefill bool

	// ServerPID, if not zero, is the process id of the tracker, on this
	// machine: the result then has its CPU use during the run and its
	// memory growth during the prefill (Linux only).
	ServerPID int
	// RSSSettle is how long to wait after the prefill before reading the
	// server's resident memory, to let it settle. Zero means no wait.
	RSSSettle time.Duration

	// connTTL overrides udpConnTTL in tests.
	connTTL time.Duration
}

// Defaults of a zero Config.
const (
	DefaultSockets  = 4
	DefaultInFlight = 64
	DefaultConns    = 64
	DefaultTimeout  = time.Second
	DefaultDuration = 10 * time.Second
)

// A Generator loads one tracker. Create it with [New]; each [Generator.Run]
// opens its own sockets or connections and closes them before it returns.
// A Generator must not run twice at the same time.
type Generator struct {
	cfg      Config
	w        Workload
	announce *httpTarget
	scrape   *httpTarget
	connTTL  time.Duration
}

// New checks cfg, fills in its defaults and returns a Generator. It does
// no I/O.
func New(cfg Config) (*Generator, error) {
	w, err := cfg.Workload.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	g := &Generator{w: w, connTTL: udpConnTTL}
	if cfg.connTTL > 0 {
		g.connTTL = cfg.connTTL
	}
	if cfg.Sockets == 0 {
		cfg.Sockets = DefaultSockets
	}
	if cfg.InFlight == 0 {
		cfg.InFlight = DefaultInFlight
	}
	if cfg.Conns == 0 {
		cfg.Conns = DefaultConns
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Duration == 0 {
		cfg.Duration = DefaultDuration
	}
	switch {
	case (cfg.UDP == "") == (cfg.HTTP == ""):
		return nil, errors.New("loadgen: set exactly one target, UDP or HTTP")
	case cfg.Mode != Announce && cfg.Mode != Scrape:
		return nil, fmt.Errorf("loadgen: unknown mode %d", cfg.Mode)
	case cfg.Sockets < 0 || cfg.InFlight < 0 || cfg.Conns < 0:
		return nil, errors.New("loadgen: sockets, in-flight requests and connections must be positive")
	case cfg.UDP != "" && cfg.InFlight < cfg.Sockets:
		return nil, fmt.Errorf("loadgen: %d requests in flight over %d sockets: need one per socket at least", cfg.InFlight, cfg.Sockets)
	case cfg.InFlight/cfg.Sockets >= 1<<16:
		return nil, errors.New("loadgen: at most 65535 requests in flight per socket")
	case cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0):
		return nil, fmt.Errorf("loadgen: rate %v: want requests per second, or 0 for none", cfg.Rate)
	case cfg.Timeout < 0 || cfg.Duration < 0 || cfg.Warmup < 0 || cfg.RSSSettle < 0:
		return nil, errors.New("loadgen: durations must not be negative")
	case cfg.ServerPID < 0:
		return nil, fmt.Errorf("loadgen: server pid %d", cfg.ServerPID)
	}
	if cfg.HTTP != "" {
		if g.announce, err = parseHTTPTarget(cfg.HTTP, cfg.HTTPClose); err != nil {
			return nil, fmt.Errorf("loadgen: announce URL %w", err)
		}
		if cfg.ScrapeURL == "" && cfg.Mode == Scrape {
			if cfg.ScrapeURL, err = scrapeURL(cfg.HTTP); err != nil {
				return nil, fmt.Errorf("loadgen: scrape URL: %w", err)
			}
		}
		if cfg.ScrapeURL != "" {
			if g.scrape, err = parseHTTPTarget(cfg.ScrapeURL, cfg.HTTPClose); err != nil {
				return nil, fmt.Errorf("loadgen: scrape URL %w", err)
			}
			if g.scrape.addr != g.announce.addr {
				return nil, fmt.Errorf("loadgen: scrape URL %q and announce URL %q: not on the same host and port", cfg.ScrapeURL, cfg.HTTP)
			}
		}
	}
	g.cfg = cfg
	return g, nil
}

// worker is a UDP socket or an HTTP connection with its goroutine's state.
type worker interface {
	run(p *phase) error
	setPicker(picker)
	stats() *workerStats
	close() error
}

func (g *Generator) newWorkers() ([]worker, error) {
	var ws []worker
	if g.cfg.UDP != "" {
		for i := range g.cfg.Sockets {
			n := g.cfg.InFlight / g.cfg.Sockets
			if i < g.cfg.InFlight%g.cfg.Sockets {
				n++
			}
			u, err := newUDPWorker(g, n)
			if err != nil {
				for _, w := range ws {
					w.close()
				}
				return nil, fmt.Errorf("loadgen: udp %s: %w", g.cfg.UDP, err)
			}
			ws = append(ws, u)
		}
		return ws, nil
	}
	for range g.cfg.Conns {
		ws = append(ws, newHTTPWorker(g))
	}
	return ws, nil
}

// runPhase runs every worker through p and merges their measured stats.
func runPhase(ctx context.Context, p *phase, workers []worker) (measured stats, err error) {
	stop := context.AfterFunc(ctx, func() { p.stop.Store(true) })
	defer stop()
	errs := make([]error, len(workers))
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Go(func() { errs[i] = w.run(p) })
	}
	wg.Wait()
	for _, w := range workers {
		ws := w.stats()
		measured.Counts.add(&ws.measured.Counts)
		measured.hist.merge(&ws.measured.hist)
	}
	// Workers fail alike: report the first, and how many did.
	failed := 0
	for _, e := range errs {
		if e != nil {
			if failed == 0 {
				err = e
			}
			failed++
		}
	}
	if failed > 1 {
		err = fmt.Errorf("%w (and %d more of %d workers)", err, failed-1, len(workers))
	}
	return measured, err
}

// Run prefills the tracker if configured, then sends the workload for
// Warmup and Duration, and returns what it measured. It stops early, with
// ctx's error, when ctx is done. A run that gets no reply at all returns
// its result and an error.
func (g *Generator) Run(ctx context.Context) (*Result, error) {
	workers, err := g.newWorkers()
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, w := range workers {
			w.close()
		}
	}()
	res := g.newResult()
	pid := g.cfg.ServerPID
	// One time base for every phase: the workers keep times (connection
	// ids, deadlines) from one phase to the next.
	base := time.Now()

	if pid != 0 {
		if res.RSSBefore, err = procRSS(pid); err != nil {
			return nil, fmt.Errorf("loadgen: server: %w", err)
		}
	}
	if g.cfg.Prefill {
		counter := &prefillCounter{n: int64(g.w.PrefillPeers)}
		start := time.Now()
		p := &phase{base: base}
		for i, w := range workers {
			w.setPicker(newPicker(&g.w, i, false, counter))
		}
		st, err := runPhase(ctx, p, workers)
		res.PrefillDuration = time.Since(start)
		res.Prefill = st.Counts
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if st.Replies() == 0 {
			return res, fmt.Errorf("loadgen: prefill: no reply from the target to %d requests (%d errors, %d timeouts)",
				st.Requests, st.Errors, st.Timeouts)
		}
		res.PrefillRate = float64(st.OK) / res.PrefillDuration.Seconds()
		if pid != 0 {
			if err := sleep(ctx, g.cfg.RSSSettle); err != nil {
				return res, err
			}
			if res.RSSAfterPrefill, err = procRSS(pid); err != nil {
				return res, fmt.Errorf("loadgen: server: %w", err)
			}
			if st.OK > 0 {
				res.BytesPerPeer = float64(res.RSSAfterPrefill-res.RSSBefore) / float64(st.OK)
			}
		}
	}

	for i, w := range workers {
		w.setPicker(newPicker(&g.w, i, g.cfg.Mode == Scrape, nil))
	}
	start := time.Since(base)
	p := &phase{
		base:      base,
		measureAt: int64(start + g.cfg.Warmup),
		stopAt:    int64(start + g.cfg.Warmup + g.cfg.Duration),
	}
	if g.cfg.Rate > 0 {
		p.interval = int64(float64(len(workers)) * float64(time.Second) / g.cfg.Rate)
	}
	type phaseResult struct {
		st  stats
		err error
	}
	done := make(chan phaseResult, 1)
	go func() {
		st, err := runPhase(ctx, p, workers)
		done <- phaseResult{st, err}
	}()

	// Read both sides' CPU use at the start and the end of the window.
	var cpu0, cpu1, srv0, srv1 time.Duration
	var srvErr error
	snapshot := func(at int64, cpu, srv *time.Duration) {
		if sleep(ctx, time.Until(p.base.Add(time.Duration(at)))) != nil {
			return
		}
		*cpu = selfCPU()
		if pid != 0 && srvErr == nil {
			*srv, srvErr = procCPU(pid)
		}
	}
	snapshot(p.measureAt, &cpu0, &srv0)
	t0 := time.Now()
	snapshot(p.stopAt, &cpu1, &srv1)
	wall := time.Since(t0)
	pr := <-done
	if pr.err != nil {
		return nil, pr.err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	st := pr.st
	res.Counts = st.Counts
	res.Duration = g.cfg.Duration
	res.Rate = float64(st.OK) / g.cfg.Duration.Seconds()
	res.P50 = st.hist.quantile(0.50)
	res.P99 = st.hist.quantile(0.99)
	res.P999 = st.hist.quantile(0.999)
	res.Max = time.Duration(st.hist.max)
	res.Mean = st.hist.mean()
	res.ClientCPU = float64(cpu1-cpu0) / float64(wall)
	if st.Requests > 0 {
		res.ClientCPUPerRequest = (cpu1 - cpu0) / time.Duration(st.Requests)
	}
	if pid != 0 {
		if srvErr != nil {
			return res, fmt.Errorf("loadgen: server: %w", srvErr)
		}
		res.ServerCPU = float64(srv1-srv0) / float64(wall)
		if res.ServerCPU > 0 {
			res.RatePerServerCPU = res.Rate / res.ServerCPU
		}
		if res.RSSAfter, err = procRSS(pid); err != nil {
			return res, fmt.Errorf("loadgen: server: %w", err)
		}
	}
	if st.Replies() == 0 {
		return res, fmt.Errorf("loadgen: no reply from the target to %d requests (%d errors, %d timeouts)",
			st.Requests, st.Errors, st.Timeouts)
	}
	return res, nil
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *Generator) newResult() *Result {
	r := &Result{
		Mode:         g.cfg.Mode,
		HTTPClose:    g.cfg.HTTPClose,
		Swarms:       g.w.Swarms,
		Peers:        g.w.Peers,
		PrefillPeers: g.w.PrefillPeers,
		NumWant:      g.w.NumWant,
		ServerPID:    g.cfg.ServerPID,
	}
	if !g.cfg.Prefill {
		r.PrefillPeers = 0
	}
	if g.cfg.UDP != "" {
		r.Proto, r.Target, r.Concurrency = "udp", g.cfg.UDP, g.cfg.InFlight
	} else {
		r.Proto, r.Target, r.Concurrency = "http", g.cfg.HTTP, g.cfg.Conns
		if g.cfg.Mode == Scrape {
			r.Target = g.cfg.ScrapeURL
		}
	}
	return r
}
