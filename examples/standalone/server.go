package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/prom"
	"github.com/annuaire/tracker/redisstore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsNamespace prefixes the names of the tracker's metrics.
const metricsNamespace = "annuaire"

// run is the whole program: it reads the configuration, starts the server
// and serves until a SIGINT or SIGTERM arrives on p.signals or ctx is
// done, then shuts down. Every start-up input is checked, every file read
// and every listener opened before anything is served, so that a mistake
// stops the program at once with an error and no listener left open. run
// returns nil after a graceful shutdown, and after printing the help text
// when p.args ask for it.
func run(ctx context.Context, p process) error {
	cfg, err := parseConfig(p.args, p.lookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		newFlags(new(config)).printHelp(p.stdout)
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(cfg, p.stderr)
	s, err := newServer(cfg, log)
	if err != nil {
		return err
	}
	return s.serve(ctx, p.signals)
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// server is a started tracker with its listeners, not yet serving.
type server struct {
	cfg   *config
	log   *slog.Logger
	t     *tracker.Tracker
	redis *redisstore.Store // nil with the memory store
	lists []*list           // the files SIGHUP re-reads
	acct  *accountant       // nil without -db

	http     *http.Server   // nil without -http and -https
	httpLns  []net.Listener // bounded by conns
	httpsLns []net.Listener // bounded by conns too
	conns    *tracker.ConnLimiter
	cert     *certificate       // nil without -https
	udp      *tracker.UDPServer // nil without -udp
	udpConns [][]net.PacketConn // the sockets of each -udp address
	metrics  *http.Server       // nil without -metrics
	metLn    net.Listener

	ready atomic.Bool // what /readyz answers

	// Draining the HTTP connections at shutdown: once draining is set,
	// every reply says Connection: close. lastRequest is when the last
	// request came while draining (Unix nanoseconds).
	draining    atomic.Bool
	lastRequest atomic.Int64
}

// list is a file of passkeys or info hashes, read at start and on SIGHUP.
type list struct {
	flag string // "-passkeys"
	name string // "passkeys", for the log
	file string
	load func(io.Reader) error // swaps the new content in whole, or keeps the old
	len  func() int
}

// read loads the file, and returns the number of entries it holds.
func (l *list) read() (int, error) {
	f, err := os.Open(l.file)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", l.flag, err)
	}
	defer f.Close()
	if err := l.load(f); err != nil {
		// A LoadError names its line: show it the way compilers do.
		if le, ok := errors.AsType[*tracker.LoadError](err); ok {
			return 0, fmt.Errorf("%s: %s:%d: %v", l.flag, l.file, le.Line, le.Err)
		}
		return 0, fmt.Errorf("%s: %s: %w", l.flag, l.file, err)
	}
	return l.len(), nil
}

// newServer reads the lists, makes the tracker and its front-ends, and
// opens every listener. On error, nothing is left open.
func newServer(cfg *config, log *slog.Logger) (_ *server, err error) {
	s := &server{cfg: cfg, log: log}
	tc := tracker.Config{
		AnnounceInterval: cfg.interval,
		PublicScrape:     cfg.publicScrape,
		Memory: tracker.MemoryConfig{MaxPeers: cfg.maxPeers,
			MaxPeersPerAddr: orDisabled(cfg.maxAddrPeers), MaxPeersPerSwarmAddr: orDisabled(cfg.maxSwarmAddr)},
		RateLimit: tracker.RateLimitConfig{PerIP: cfg.rateLimit, IPBurst: cfg.rateBurst},
		Logger:    log,
	}
	if cfg.maxPeers == 0 {
		tc.Memory.MaxPeers = tracker.Disabled // no bound
	}
	if cfg.dbDir != "" {
		if s.acct, err = openAccounting(cfg, log, tc); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				s.acct.closeNow()
			}
		}()
		tc.Passkeys, tc.Torrents, tc.Accounting = s.acct.ledger, s.acct.ledger, s.acct.ledger
		s.lists = s.acct.lists()
	} else if cfg.memoryLimit > 0 {
		limitMemory(log, cfg.memoryLimit, nil, nil, nil)
	}
	if cfg.passkeysFile != "" && s.acct == nil {
		ps := tracker.NewPasskeySet()
		s.lists = append(s.lists, &list{"-passkeys", "passkeys", cfg.passkeysFile, ps.Load, ps.Len})
		tc.Passkeys = ps
	}
	if cfg.torrentsFile != "" && s.acct == nil {
		tl := tracker.NewTorrentAllowList()
		s.lists = append(s.lists, &list{"-torrents", "torrents", cfg.torrentsFile, tl.Load, tl.Len})
		tc.Torrents = tl
	}
	for _, l := range s.lists {
		if _, err := l.read(); err != nil {
			return nil, err
		}
	}
	if cfg.store.redisURL != "" {
		if s.redis, err = openRedis(cfg); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				s.redis.Close()
			}
		}()
		tc.Store = s.redis
	}
	var reqs *prom.Requests
	if cfg.metricsAddr != "" {
		// Timing requests costs two clock reads each: only with metrics.
		reqs = prom.NewRequests(metricsNamespace)
		tc.Observer = reqs
	}
	if s.t, err = tracker.New(tc); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.closeListeners()
			s.t.Close()
		}
	}()
	if s.acct != nil {
		if err := s.acct.listenAdmin(s.t); err != nil {
			return nil, err
		}
	}

	if len(cfg.httpAddrs) > 0 || len(cfg.httpsAddrs) > 0 {
		h, err := s.t.NewHTTPHandler(tracker.HTTPConfig{
			TrustedProxies:    cfg.trustedProxies,
			ClientIPHeader:    cfg.clientIPHeader,
			AllowPrivateAddrs: cfg.allowPrivate,
			TrackerID:         cfg.trackerID,
			FullScrape:        cfg.fullScrape,
			FastWorkers:       cfg.httpWorkers,
			Logger:            log,
		})
		if err != nil {
			return nil, err
		}
		s.http = tracker.NewHTTPServer(h)
		s.http.Handler = s.drainable(h)
		limits := tracker.ConnLimits{PerAddr: cfg.connsPerAddr, MaxConns: cfg.maxConns}
		if cfg.connsPerAddr == 0 {
			limits.PerAddr = tracker.Disabled
		}
		if s.conns, err = tracker.NewConnLimiter(limits); err != nil {
			return nil, err
		}
		s.http.ConnState = s.conns.ConnState
		for _, addr := range cfg.httpAddrs {
			l, err := tracker.ListenTCP("tcp", addr)
			if err != nil {
				return nil, fmt.Errorf("-http: %w", err)
			}
			if cfg.httpFast {
				// The server's handler is h, behind drainable: replies
				// the listener sends itself close their connection
				// already.
				s.httpLns = append(s.httpLns, h.NewFastListener(l, s.conns))
			} else {
				s.httpLns = append(s.httpLns, s.conns.Listener(l))
			}
		}
		if err := s.listenHTTPS(); err != nil {
			return nil, err
		}
	}
	if len(cfg.udpAddrs) > 0 {
		// One socket per core on each address (on Linux), each read by
		// its share of the cores.
		for _, addr := range cfg.udpAddrs {
			conns, err := tracker.ListenUDP("udp", addr, 0)
			if err != nil {
				return nil, fmt.Errorf("-udp: %w", err)
			}
			s.udpConns = append(s.udpConns, conns)
		}
		// A remote store is called from the UDP server's workers: the
		// readers go on reading while it answers.
		if s.udp, err = s.t.NewUDPServer(tracker.UDPConfig{
			ConnIDKey: cfg.connIDKey,
			Readers:   max(1, runtime.GOMAXPROCS(0)/len(s.udpConns[0])),
		}); err != nil {
			return nil, err
		}
	}
	if cfg.metricsAddr != "" {
		h, err := s.metricsHandler(reqs)
		if err != nil {
			return nil, err
		}
		s.metrics = &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			IdleTimeout:       time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			// No write timeout: a CPU profile takes as long as it is asked to.
		}
		if s.metLn, err = net.Listen("tcp", cfg.metricsAddr); err != nil {
			return nil, fmt.Errorf("-metrics: %w", err)
		}
	}
	return s, nil
}

// openRedis opens the Redis store of -store and checks that Redis answers
// within a few seconds, so that a wrong address stops the server at once.
// Peers live as long as the memory store would keep them.
func openRedis(cfg *config) (*redisstore.Store, error) {
	ttl := min(cfg.interval+cfg.interval/10+cfg.interval/2, 24*time.Hour)
	rs, err := redisstore.Open(cfg.store.redisURL, redisstore.Config{PeerTTL: ttl})
	if err != nil {
		return nil, fmt.Errorf("-store %s: %w", cfg.store, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rs.Ping(ctx); err != nil {
		rs.Close()
		return nil, fmt.Errorf("-store %s: %w", cfg.store, err)
	}
	return rs, nil
}

// metricsHandler serves /metrics, /healthz, /readyz and, with -pprof,
// /debug/pprof/.
func (s *server) metricsHandler(reqs *prom.Requests) (http.Handler, error) {
	var stats func() redisstore.Stats
	if s.redis != nil {
		stats = s.redis.Stats
	}
	reg, err := newRegistry(reqs, s.t, s.conns, stats)
	if err != nil {
		return nil, err
	}
	if s.acct != nil {
		if err := reg.Register(s.acct.collector()); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError),
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if s.cfg.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index) // and the named profiles under it
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux, nil
}

// newRegistry returns a registry of the server's metrics: the requests
// reqs observes, t's Stats, the HTTP connections of conns (if not nil),
// the figures of a Redis store (if storeStats is not nil), the Go runtime
// and the process. It is private to the server: nothing is registered
// globally.
func newRegistry(reqs *prom.Requests, t *tracker.Tracker, conns *tracker.ConnLimiter, storeStats func() redisstore.Stats) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	if conns != nil {
		if err := reg.Register(connCollector{conns}); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	cs := []prometheus.Collector{
		reqs,
		prom.NewStatsCollector(metricsNamespace, t),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	if storeStats != nil {
		cs = append(cs, newStoreCollector(metricsNamespace, storeStats))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return reg, nil
}

// connCollector exports a ConnLimiter's counters.
type connCollector struct{ cl *tracker.ConnLimiter }

var (
	connOpenDesc = prometheus.NewDesc(metricsNamespace+"_http_connections",
		"HTTP connections open.", nil, nil)
	connMaxDesc = prometheus.NewDesc(metricsNamespace+"_http_connections_max",
		"Most HTTP connections open at once (0: no bound); from half of it, idle and new connections time out sooner.", nil, nil)
	connRefusedDesc = prometheus.NewDesc(metricsNamespace+"_http_connections_refused_total",
		"HTTP connections closed as soon as accepted: past the cap of their address (per_address) or past the bound (max).", []string{"reason"}, nil)
	connEvictedDesc = prometheus.NewDesc(metricsNamespace+"_http_connections_evicted_total",
		"Idle HTTP connections closed to make room for a new one at the bound.", nil, nil)
)

func (c connCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- connOpenDesc
	ch <- connMaxDesc
	ch <- connRefusedDesc
	ch <- connEvictedDesc
}

func (c connCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.cl.Stats()
	ch <- prometheus.MustNewConstMetric(connOpenDesc, prometheus.GaugeValue, float64(st.Open))
	ch <- prometheus.MustNewConstMetric(connMaxDesc, prometheus.GaugeValue, float64(st.MaxConns))
	ch <- prometheus.MustNewConstMetric(connRefusedDesc, prometheus.CounterValue, float64(st.RefusedPerAddr), "per_address")
	ch <- prometheus.MustNewConstMetric(connRefusedDesc, prometheus.CounterValue, float64(st.RefusedMax), "max")
	ch <- prometheus.MustNewConstMetric(connEvictedDesc, prometheus.CounterValue, float64(st.Evicted))
}

// listenHTTPS reads the certificate and opens the -https listeners. The
// server speaks HTTP/1.1 alone, over TLS as in the clear.
func (s *server) listenHTTPS() error {
	if len(s.cfg.httpsAddrs) == 0 {
		return nil
	}
	s.cert = &certificate{certFile: s.cfg.tlsCert, keyFile: s.cfg.tlsKey}
	if _, err := s.cert.load(); err != nil {
		return err
	}
	s.http.Protocols = new(http.Protocols)
	s.http.Protocols.SetHTTP1(true)
	tc := tlsConfig(s.cert)
	for _, addr := range s.cfg.httpsAddrs {
		l, err := tracker.ListenTCP("tcp", addr)
		if err != nil {
			return fmt.Errorf("-https: %w", err)
		}
		s.httpsLns = append(s.httpsLns, tls.NewListener(s.conns.Listener(l), tc))
	}
	return nil
}

// closeListeners closes every listener and socket, for a start that
// failed half way.
func (s *server) closeListeners() {
	for _, l := range slices.Concat(s.httpLns, s.httpsLns) {
		l.Close()
	}
	for _, conns := range s.udpConns {
		closeAll(conns)
	}
	if s.metLn != nil {
		s.metLn.Close()
	}
}

func closeAll(conns []net.PacketConn) {
	for _, c := range conns {
		c.Close()
	}
}

// connsMax returns the bound on HTTP connections in force, 0 for none.
func (s *server) connsMax() int {
	if s.conns == nil {
		return 0
	}
	return s.conns.Stats().MaxConns
}

// logStart logs the configuration and the address of every listener.
// Passkeys and keys are never logged: a file's name and its count only.
func (s *server) logStart() {
	cfg := s.cfg
	mode := "public"
	if cfg.passkeysFile != "" || cfg.dbDir != "" {
		mode = "private"
	}
	proxies := make([]string, 0, len(cfg.trustedProxies))
	for _, p := range cfg.trustedProxies {
		proxies = append(proxies, p.String())
	}
	attrs := []any{
		"mode", mode,
		"http", cfg.httpAddrs,
		"http_fast", cfg.httpFast,
		"http_fast_workers", cfg.httpWorkers,
		"https", cfg.httpsAddrs,
		"udp", cfg.udpAddrs,
		"metrics", cfg.metricsAddr,
		"pprof", cfg.pprof,
		"store", cfg.store.String(),
		"db", redactDB(cfg.dbDir),
		"admin", cfg.adminAddr,
		"memory_limit", cfg.memoryLimit,
	}
	for _, l := range s.lists {
		attrs = append(attrs, l.name+"_file", l.file, l.name, l.len())
	}
	attrs = append(attrs,
		"interval", cfg.interval.String(),
		"max_peers", cfg.maxPeers,
		"rate_limit", cfg.rateLimit,
		"rate_burst", cfg.rateBurst,
		"full_scrape", cfg.fullScrape,
		"max_conns_per_addr", cfg.connsPerAddr,
		"max_conns", s.connsMax(),
		"public_scrape", cfg.publicScrape,
		"trusted_proxies", proxies,
		"client_ip_header", cfg.clientIPHeader,
		"allow_private_addrs", cfg.allowPrivate,
		"conn_id_key", cfg.connIDKeyFrom,
		"tracker_id", cfg.trackerID,
		"shutdown_grace", cfg.shutdownGrace.String(),
		"shutdown_timeout", cfg.shutdownTimeout.String(),
		"log_level", cfg.logLevel.String(),
		"gomaxprocs", runtime.GOMAXPROCS(0),
	)
	s.log.Info("configuration", attrs...)
	if s.redis != nil && cfg.connIDKey == nil && len(cfg.udpAddrs) > 0 {
		s.log.Warn("the UDP connection-id key is random: instances sharing the store refuse each other's connection ids; set -conn-id-key")
	}
	if s.cert != nil {
		s.log.Info("certificate", append([]any{"file", s.cert.certFile}, certAttrs(s.cert.cur.Load())...)...)
	}
	for _, l := range s.httpLns {
		s.log.Info("listening", "protocol", "http", "addr", l.Addr().String())
	}
	for _, l := range s.httpsLns {
		s.log.Info("listening", "protocol", "https", "addr", l.Addr().String())
	}
	for _, conns := range s.udpConns {
		s.log.Info("listening", "protocol", "udp", "addr", conns[0].LocalAddr().String(), "sockets", len(conns))
	}
	if s.metLn != nil {
		s.log.Info("listening", "protocol", "metrics", "addr", s.metLn.Addr().String(), "pprof", s.cfg.pprof)
	}
	if s.acct != nil && s.acct.adminLn != nil {
		s.log.Info("listening", "protocol", "admin", "addr", s.acct.adminLn.Addr().String())
	}
}

// serve serves until a SIGINT or SIGTERM arrives, ctx is done, or a
// listener fails; SIGHUP reloads the lists. Then it shuts down.
func (s *server) serve(ctx context.Context, signals <-chan os.Signal) error {
	s.logStart()
	var wg sync.WaitGroup
	n := len(s.httpLns) + len(s.httpsLns) + 2
	for _, conns := range s.udpConns {
		n += len(conns)
	}
	errs := make(chan error, n) // every Serve can return without a reader
	for _, l := range s.httpLns {
		wg.Go(func() { errs <- fmt.Errorf("http %v: %w", l.Addr(), s.http.Serve(l)) })
	}
	for _, l := range s.httpsLns {
		wg.Go(func() { errs <- fmt.Errorf("https %v: %w", l.Addr(), s.http.Serve(l)) })
	}
	for _, conns := range s.udpConns {
		for _, c := range conns {
			wg.Go(func() { errs <- fmt.Errorf("udp %v: %w", c.LocalAddr(), s.udp.Serve(c)) })
		}
	}
	if s.metrics != nil {
		wg.Go(func() { errs <- fmt.Errorf("metrics %v: %w", s.metLn.Addr(), s.metrics.Serve(s.metLn)) })
	}
	if s.acct != nil {
		if a := s.acct; a.admin != nil {
			wg.Go(func() { errs <- fmt.Errorf("admin %v: %w", a.adminLn.Addr(), a.admin.Serve(a.adminLn)) })
		}
		s.acct.start()
	}
	s.ready.Store(true)
	s.log.Info("ready")

	failed := s.wait(ctx, signals, errs)
	err := s.shutdown(signals)
	wg.Wait() // every Serve has returned once its server is shut down or closed
	if failed != nil {
		return failed
	}
	return err
}

// wait serves SIGHUP until a SIGINT or SIGTERM arrives, ctx is done, or
// a listener fails; it returns that listener's error.
func (s *server) wait(ctx context.Context, signals <-chan os.Signal, errs <-chan error) error {
	timeout := s.cfg.shutdownTimeout.String()
	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				s.reload()
				continue
			}
			s.log.Info("shutting down", "signal", sig.String(), "timeout", timeout)
			return nil
		case <-ctx.Done():
			s.log.Info("shutting down", "cause", context.Cause(ctx).Error(), "timeout", timeout)
			return nil
		case err := <-errs:
			s.log.Error("listener failed; shutting down", "err", err, "timeout", timeout)
			return err
		}
	}
}

// reload re-reads the lists and the certificate. A list whose file
// cannot be read or parsed keeps its previous content, and so does the
// certificate.
func (s *server) reload() {
	if s.acct != nil {
		s.acct.reloadToken(s.t)
	}
	if len(s.lists) == 0 && s.cert == nil && s.acct == nil {
		s.log.Info("SIGHUP: no -passkeys, -torrents or -tls-cert file to reload")
		return
	}
	if s.cert != nil {
		if cert, err := s.cert.load(); err != nil {
			s.log.Error("certificate reload failed; the previous certificate stays in force", "err", err)
		} else {
			s.log.Info("reloaded certificate", append([]any{"file", s.cert.certFile}, certAttrs(cert)...)...)
		}
	}
	for _, l := range s.lists {
		n, err := l.read()
		if err != nil {
			s.log.Error("reload failed; the previous list stays in force", "list", l.name, "err", err, "count", l.len())
			continue
		}
		s.log.Info("reloaded", "list", l.name, "file", l.file, "count", n)
	}
}

// connectionClose is the header value that closes a connection after its
// reply.
var connectionClose = []string{"close"}

// drainable returns h, made to close every connection after its reply
// once the server drains.
func (s *server) drainable(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			w.Header()["Connection"] = connectionClose
			s.lastRequest.Store(time.Now().UnixNano())
		}
		h.ServeHTTP(w, r)
	})
}

// drainQuiet is how long no request may come on the open connections
// before those left are taken to be idle.
const drainQuiet = 500 * time.Millisecond

// drainHTTP shuts the HTTP server down without closing a connection under
// a request its client may be sending. It closes the listeners first, so
// that clients opening a connection are refused rather than reset in the
// listen queue. Then every reply says Connection: close, so that clients
// busy on a kept-alive connection get the answer to their next request
// and open no other on it. Once no connection is left, or none has
// carried a request for drainQuiet (or half the time allowed has passed),
// net/http's Shutdown closes the idle connections left and waits for the
// requests in progress.
func (s *server) drainHTTP(ctx context.Context, timeout time.Duration) {
	for _, l := range slices.Concat(s.httpLns, s.httpsLns) {
		l.Close()
	}
	began := time.Now()
	s.lastRequest.Store(began.UnixNano())
	s.draining.Store(true)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.conns.Stats().Open > 0 && time.Since(began) < timeout/2 &&
		time.Since(time.Unix(0, s.lastRequest.Load())) < drainQuiet {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	s.http.Shutdown(ctx)
}

// errForced and errTimeout end a shutdown that did not finish the
// requests in flight.
var (
	errForced  = errors.New("second signal: stopped without finishing requests in flight")
	errTimeout = errors.New("requests in flight did not finish within -shutdown-timeout: stopped anyway")
)

// shutdown stops the server: /readyz turns 503 and, for the grace period,
// everything is served as before, so that load balancers that poll
// /readyz stop sending clients. Then the front-ends stop accepting and
// finish the requests in flight (drainHTTP), the tracker closes and the
// metrics listener last, so that /readyz tells the truth throughout. Past
// -shutdown-timeout after the grace period, or when another SIGINT or
// SIGTERM arrives, it closes everything at once.
func (s *server) shutdown(signals <-chan os.Signal) error {
	s.ready.Store(false)
	// Cancelled by a second signal.
	signalled, cancel := context.WithCancel(context.Background())
	defer cancel()

	var forced atomic.Bool
	stopWatching := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Go(func() {
		for {
			select {
			case sig := <-signals:
				if sig == syscall.SIGHUP {
					s.log.Info("SIGHUP ignored: shutting down")
					continue
				}
				s.log.Warn("second signal: stopping at once", "signal", sig.String())
				forced.Store(true)
				cancel()
				return
			case <-stopWatching:
				return
			}
		}
	})
	defer watcher.Wait()
	defer close(stopWatching)

	if g := s.cfg.shutdownGrace; g > 0 {
		s.log.Info("not ready: serving on for the grace period", "grace", g.String())
		t := time.NewTimer(g)
		select {
		case <-t.C:
		case <-signalled.Done():
		}
		t.Stop()
	}
	ctx, cancelTimeout := context.WithTimeout(signalled, s.cfg.shutdownTimeout)
	defer cancelTimeout()
	var drain sync.WaitGroup
	if s.http != nil {
		drain.Go(func() { s.drainHTTP(ctx, s.cfg.shutdownTimeout) })
	}
	if s.udp != nil {
		drain.Go(func() { s.udp.Shutdown(ctx) })
	}
	if s.acct != nil {
		drain.Go(func() { s.acct.shutdownAdmin(ctx) })
	}
	drain.Wait()
	drained := ctx.Err() == nil
	if !drained {
		if s.http != nil {
			s.http.Close()
		}
		if s.udp != nil {
			s.udp.Close()
		}
	}
	for _, conns := range s.udpConns {
		closeAll(conns) // UDPServer.Serve leaves its sockets to the caller
	}
	if err := s.t.Close(); err != nil {
		s.log.Error("closing the tracker", "err", err)
	}
	if s.redis != nil {
		s.redis.Close() // the tracker does not close a store it was given
	}
	var acctErr error
	if s.acct != nil {
		// Every announce answered is in the Ledger: apply it all, or spool
		// what remains if this takes too long or a second signal comes.
		actx, cancel := context.WithTimeout(signalled, s.cfg.shutdownTimeout)
		acctErr = s.acct.close(actx)
		cancel()
	}
	if s.metrics != nil && s.metrics.Shutdown(ctx) != nil {
		s.metrics.Close()
	}
	switch {
	case acctErr != nil:
		return acctErr
	case forced.Load():
		return errForced
	case !drained:
		s.log.Error("shutdown timed out; stopped anyway", "timeout", s.cfg.shutdownTimeout.String())
		return errTimeout
	}
	s.log.Info("stopped")
	return nil
}

// orDisabled returns n, or tracker.Disabled for 0: the flags' "no bound".
func orDisabled(n int) int {
	if n == 0 {
		return tracker.Disabled
	}
	return n
}
