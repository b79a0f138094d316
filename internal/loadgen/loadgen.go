package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
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
	// .../PK/announce, .../announce.php?passkey=PK. An https:// URL is
	// served over TLS, the server's certificate taken unchecked.
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
	// TLSResume keeps the TLS sessions of an https:// target, so that a
	// new connection resumes one (with a session ticket) instead of a full
	// handshake. Each connection has its own cache, as each client does.
	TLSResume bool

	// Sockets is the number of UDP sockets. If zero, 4; at least one per
	// source address (Sources).
	Sockets int
	// InFlight is the number of UDP requests kept in flight, over all the
	// sockets. If zero, 64, and at least one per socket.
	InFlight int
	// Conns is the number of concurrent HTTP connections, each carrying
	// one request at a time. If zero, 64; at least one per source
	// address.
	Conns int

	// Source is the address requests come from; the zero Addr lets the
	// system choose. With Sources more than one, they come from Sources
	// consecutive addresses from Source on: on Linux every address of
	// 127.0.0.0/8 is a loopback address (IPv6 has ::1 alone). Sockets and
	// connections take the addresses in turn, and a peer of the workload
	// always announces from the same one, as a real peer does.
	Source  netip.Addr
	Sources int

	// Rate, if positive, paces the run after the prefill at this many
	// requests per second over all sockets or connections, each sending
	// its share at even intervals. Latencies are then measured from the
	// time a request was due, so that a tracker that falls behind shows in
	// them even when every request in flight waits for it; a request due
	// more than Timeout ago is not sent, and counts as a timeout. Zero
	// sends as fast as the requests in flight allow.
	Rate float64

	// Flood, if set, makes the run send a flood of this shape instead of
	// the workload's requests; there is no prefill. Its draws differ from
	// run to run, so that a flood does not find the swarms of an earlier
	// one. FloodSwarms is the number of swarms FloodPeers sends to: the
	// workload's first ones. If zero, 4.
	Flood       FloodShape
	FloodSwarms int

	// Timeout is how long a request waits for its reply before it counts
	// as a timeout; requests are never sent again. If zero, 1 s.
	Timeout time.Duration
	// Duration is the length of the measured run. If zero, 10 s.
	Duration time.Duration
	// Warmup is the time the run sends before measuring. Zero means none.
	Warmup time.Duration
	// Windows, if set, divides the measured run into consecutive windows
	// with figures of their own (Result.Windows); Duration is then their
	// sum. OnWindow, if set, is called as window i begins (i from 0), and
	// with i = len(Windows) as the run ends; the generator does not wait
	// for it before it goes on, but the next call waits for the previous one.
	Windows  []Window
	OnWindow func(i int)

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

// Window is a part of the measured run with figures of its own.
type Window struct {
	Name     string
	Duration time.Duration
}

// Defaults of a zero Config.
const (
	DefaultSockets     = 4
	DefaultInFlight    = 64
	DefaultConns       = 64
	DefaultTimeout     = time.Second
	DefaultDuration    = 10 * time.Second
	DefaultFloodSwarms = 4
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
	if cfg.Conns == 0 {
		cfg.Conns = DefaultConns
	}
	if cfg.Sources == 0 {
		cfg.Sources = 1
	}
	if cfg.Sources > 1 {
		cfg.Sockets = max(cfg.Sockets, cfg.Sources)
		cfg.Conns = max(cfg.Conns, cfg.Sources)
	}
	if cfg.InFlight == 0 {
		cfg.InFlight = max(DefaultInFlight, cfg.Sockets)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.FloodSwarms == 0 {
		cfg.FloodSwarms = DefaultFloodSwarms
	}
	if len(cfg.Windows) > 0 {
		cfg.Duration = 0
		for _, win := range cfg.Windows {
			if win.Duration <= 0 {
				return nil, fmt.Errorf("loadgen: window %q of %v: must be positive", win.Name, win.Duration)
			}
			cfg.Duration += win.Duration
		}
	}
	if cfg.Duration == 0 {
		cfg.Duration = DefaultDuration
	}
	if cfg.Flood != NoFlood {
		cfg.Prefill = false
	}
	switch {
	case (cfg.UDP == "") == (cfg.HTTP == ""):
		return nil, errors.New("loadgen: set exactly one target, UDP or HTTP")
	case cfg.Mode != Announce && cfg.Mode != Scrape:
		return nil, fmt.Errorf("loadgen: unknown mode %d", cfg.Mode)
	case cfg.Flood < NoFlood || cfg.Flood > FloodSnatches:
		return nil, fmt.Errorf("loadgen: unknown flood shape %d", cfg.Flood)
	case cfg.Flood != NoFlood && cfg.Mode != Announce:
		return nil, errors.New("loadgen: a flood sends announces, not scrapes")
	case cfg.FloodSwarms < 0:
		return nil, fmt.Errorf("loadgen: flood swarms %d: must be positive", cfg.FloodSwarms)
	case cfg.Sockets < 0 || cfg.InFlight < 0 || cfg.Conns < 0:
		return nil, errors.New("loadgen: sockets, in-flight requests and connections must be positive")
	case cfg.Sources < 0:
		return nil, fmt.Errorf("loadgen: %d source addresses: must be positive", cfg.Sources)
	case cfg.Sources > 1 && !cfg.Source.IsValid():
		return nil, errors.New("loadgen: several source addresses need the first one (Source)")
	case cfg.Sources > 1 && !addrRangeFits(cfg.Source, cfg.Sources):
		return nil, fmt.Errorf("loadgen: %d source addresses from %v: past the end of the address space", cfg.Sources, cfg.Source)
	case cfg.Rate < 0:
		return nil, fmt.Errorf("loadgen: rate %v: must not be negative", cfg.Rate)
	case cfg.UDP != "" && cfg.InFlight < cfg.Sockets:
		return nil, fmt.Errorf("loadgen: %d requests in flight over %d sockets: need one per socket at least", cfg.InFlight, cfg.Sockets)
	case cfg.InFlight/cfg.Sockets >= 1<<16:
		return nil, errors.New("loadgen: at most 65535 requests in flight per socket")
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
			if g.scrape.addr != g.announce.addr || g.scrape.tls != g.announce.tls {
				return nil, fmt.Errorf("loadgen: scrape URL %q and announce URL %q: not on the same host and port", cfg.ScrapeURL, cfg.HTTP)
			}
		}
	}
	if g.announce != nil && g.announce.passkeys != cfg.Workload.Passkeys {
		return nil, fmt.Errorf("loadgen: announce URL %q: with passkeys, and only then, it holds %s where they go", cfg.HTTP, passkeyMark)
	}
	if cfg.TLSResume && (g.announce == nil || !g.announce.tls) {
		return nil, errors.New("loadgen: TLS session resumption needs an https:// target")
	}
	g.cfg = cfg
	return g, nil
}

// sourceAddr returns the address worker k sends from: the zero Addr when
// the system chooses.
func (g *Generator) sourceAddr(k int) netip.Addr {
	if !g.cfg.Source.IsValid() {
		return netip.Addr{}
	}
	return addAddr(g.cfg.Source, uint64(k%g.cfg.Sources))
}

// addAddr returns the address n after a (within the last 64 bits for
// IPv6).
func addAddr(a netip.Addr, n uint64) netip.Addr {
	if a.Is4() {
		b := a.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		v += uint32(n)
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	b := a.As16()
	var lo uint64
	for _, c := range b[8:] {
		lo = lo<<8 | uint64(c)
	}
	lo += n
	for i := 15; i >= 8; i-- {
		b[i] = byte(lo)
		lo >>= 8
	}
	return netip.AddrFrom16(b).WithZone(a.Zone())
}

// addrRangeFits reports whether n consecutive addresses from a fit before
// the end of its family (of the last 64 bits for IPv6).
func addrRangeFits(a netip.Addr, n int) bool {
	if a.Is4() {
		b := a.As4()
		v := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
		return v+uint64(n)-1 <= 1<<32-1
	}
	b := a.As16()
	var lo uint64
	for _, c := range b[8:] {
		lo = lo<<8 | uint64(c)
	}
	return lo+uint64(n)-1 >= lo
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
			u, err := newUDPWorker(g, i, g.cfg.Sockets, n, g.sourceAddr(i))
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
	for i := range g.cfg.Conns {
		ws = append(ws, newHTTPWorker(g, i, g.cfg.Conns, g.sourceAddr(i)))
	}
	return ws, nil
}

// setPickers gives each worker its picker for the prefill (with the
// counter of the peers left to announce) or for the run.
func (g *Generator) setPickers(workers []worker, prefill bool) {
	var shared *prefillCounter
	if prefill && g.cfg.Sources <= 1 {
		shared = &prefillCounter{n: int64(g.w.PrefillPeers)}
	}
	salt := rand.Uint64() // a flood's draws differ from run to run
	for i, w := range workers {
		c := shared
		if prefill && c == nil {
			c = &prefillCounter{n: int64(share(g.w.PrefillPeers, i, len(workers)))}
		}
		p := newPicker(&g.w, i, g.cfg.Mode == Scrape, c)
		if g.cfg.Sources > 1 {
			p.spread(i, len(workers))
		}
		if !prefill && g.cfg.Flood != NoFlood {
			p.flooding(g.cfg.Flood, g.cfg.FloodSwarms, salt)
		}
		w.setPicker(p)
	}
}

// runPhase runs every worker through p and merges their stats of each
// measured window.
func runPhase(ctx context.Context, p *phase, workers []worker) (windows []stats, err error) {
	stop := context.AfterFunc(ctx, func() { p.stop.Store(true) })
	defer stop()
	errs := make([]error, len(workers))
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Go(func() { errs[i] = w.run(p) })
	}
	wg.Wait()
	windows = make([]stats, p.windows())
	for _, w := range workers {
		for k := range windows {
			windows[k].merge(&w.stats().win[k])
		}
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
	return windows, err
}

// Run prefills the tracker if configured, then sends the workload (or the
// flood) for Warmup and Duration, and returns what it measured. It stops
// early, with ctx's error, when ctx is done. A run that gets no reply at
// all returns its result and an error.
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
		start := time.Now()
		g.setPickers(workers, true)
		win, err := runPhase(ctx, &phase{base: base}, workers)
		st := &win[0]
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

	g.setPickers(workers, false)
	start := time.Since(base)
	p := &phase{
		base:      base,
		measureAt: int64(start + g.cfg.Warmup),
		stopAt:    int64(start + g.cfg.Warmup + g.cfg.Duration),
	}
	if g.cfg.Rate > 0 {
		p.gap = int64(float64(len(workers)) * float64(time.Second) / g.cfg.Rate)
	}
	at := p.measureAt
	for k := 0; k+1 < len(g.cfg.Windows); k++ {
		at += int64(g.cfg.Windows[k].Duration)
		p.splits = append(p.splits, at)
	}
	type phaseResult struct {
		win []stats
		err error
	}
	done := make(chan phaseResult, 1)
	go func() {
		win, err := runPhase(ctx, p, workers)
		done <- phaseResult{win, err}
	}()

	// Read both sides' CPU use at the start and the end of the window,
	// and call OnWindow at each boundary.
	var cpu0, cpu1, srv0, srv1 time.Duration
	var srvErr error
	var hook sync.WaitGroup
	defer hook.Wait()
	boundary := func(i int, at int64) bool {
		if sleep(ctx, time.Until(p.base.Add(time.Duration(at)))) != nil {
			return false
		}
		if f := g.cfg.OnWindow; f != nil {
			hook.Wait()
			hook.Go(func() { f(i) })
		}
		return true
	}
	snapshot := func(cpu, srv *time.Duration) {
		*cpu = selfCPU()
		if pid != 0 && srvErr == nil {
			*srv, srvErr = procCPU(pid)
		}
	}
	var t0 time.Time
	if boundary(0, p.measureAt) {
		snapshot(&cpu0, &srv0)
		t0 = time.Now()
		for i, at := range p.splits {
			if !boundary(i+1, at) {
				break
			}
		}
		if boundary(len(p.splits)+1, p.stopAt) {
			snapshot(&cpu1, &srv1)
		}
	}
	wall := time.Since(t0)
	pr := <-done
	if pr.err != nil {
		return nil, pr.err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	var st stats
	for k := range pr.win {
		st.merge(&pr.win[k])
	}
	res.measured(&st, g.cfg.Duration)
	if len(g.cfg.Windows) > 0 {
		for k, win := range g.cfg.Windows {
			w := WindowResult{Name: win.Name}
			w.measured(&pr.win[k], win.Duration)
			res.Windows = append(res.Windows, w)
		}
	}
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
		Flood:        g.cfg.Flood,
		Sources:      g.cfg.Sources,
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
		if g.announce.tls {
			r.Proto, r.TLSResume = "https", g.cfg.TLSResume
		}
		if g.cfg.Mode == Scrape {
			r.Target = g.cfg.ScrapeURL
		}
	}
	return r
}
