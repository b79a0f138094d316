package main

import (
	"context"
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

	http     *http.Server // nil without -http
	httpLns  []net.Listener
	udp      *tracker.UDPServer // nil without -udp
	udpConns [][]net.PacketConn // the sockets of each -udp address
	metrics  *http.Server       // nil without -metrics
	metLn    net.Listener

	ready atomic.Bool // what /readyz answers
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
		Memory:           tracker.MemoryConfig{MaxPeers: cfg.maxPeers},
		RateLimit:        tracker.RateLimitConfig{PerIP: cfg.rateLimit},
		Logger:           log,
	}
	if cfg.maxPeers == 0 {
		tc.Memory.MaxPeers = tracker.Disabled // no bound
	}
	if cfg.passkeysFile != "" {
		ps := tracker.NewPasskeySet()
		s.lists = append(s.lists, &list{"-passkeys", "passkeys", cfg.passkeysFile, ps.Load, ps.Len})
		tc.Passkeys = ps
	}
	if cfg.torrentsFile != "" {
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

	if len(cfg.httpAddrs) > 0 {
		h, err := s.t.NewHTTPHandler(tracker.HTTPConfig{
			TrustedProxies: cfg.trustedProxies,
			TrackerID:      cfg.trackerID,
			FullScrape:     cfg.fullScrape,
			Logger:         log,
		})
		if err != nil {
			return nil, err
		}
		s.http = tracker.NewHTTPServer(h)
		for _, addr := range cfg.httpAddrs {
			l, err := tracker.ListenTCP("tcp", addr)
			if err != nil {
				return nil, fmt.Errorf("-http: %w", err)
			}
			s.httpLns = append(s.httpLns, l)
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
		readers := max(1, runtime.GOMAXPROCS(0)/len(s.udpConns[0]))
		batch := 0 // the default
		if s.redis != nil {
			// A reader waits for Redis at every announce: many readers,
			// each with one packet in hand, keep Redis busy.
			readers, batch = remoteReaders, 1
		}
		if s.udp, err = s.t.NewUDPServer(tracker.UDPConfig{
			ConnIDKey: cfg.connIDKey,
			Readers:   readers,
			Batch:     batch,
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

// remoteReaders is the number of readers per UDP socket with a remote
// store.
const remoteReaders = 32

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
	reg, err := newRegistry(reqs, s.t, stats)
	if err != nil {
		return nil, err
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
// reqs observes, t's Stats, the figures of a Redis store (when storeStats
// is not nil), the Go runtime and the process. It is private to the
// server: nothing is registered globally.
func newRegistry(reqs *prom.Requests, t *tracker.Tracker, storeStats func() redisstore.Stats) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
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

// closeListeners closes every listener and socket, for a start that
// failed half way.
func (s *server) closeListeners() {
	for _, l := range s.httpLns {
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

// logStart logs the configuration and the address of every listener.
// Passkeys and keys are never logged: a file's name and its count only.
func (s *server) logStart() {
	cfg := s.cfg
	mode := "public"
	if cfg.passkeysFile != "" {
		mode = "private"
	}
	proxies := make([]string, 0, len(cfg.trustedProxies))
	for _, p := range cfg.trustedProxies {
		proxies = append(proxies, p.String())
	}
	attrs := []any{
		"mode", mode,
		"http", cfg.httpAddrs,
		"udp", cfg.udpAddrs,
		"metrics", cfg.metricsAddr,
		"pprof", cfg.pprof,
		"store", cfg.store.String(),
	}
	for _, l := range s.lists {
		attrs = append(attrs, l.name+"_file", l.file, l.name, l.len())
	}
	attrs = append(attrs,
		"interval", cfg.interval.String(),
		"max_peers", cfg.maxPeers,
		"rate_limit", cfg.rateLimit,
		"full_scrape", cfg.fullScrape,
		"trusted_proxies", proxies,
		"conn_id_key", cfg.connIDKeyFrom,
		"tracker_id", cfg.trackerID,
		"shutdown_timeout", cfg.shutdownTimeout.String(),
		"log_level", cfg.logLevel.String(),
		"gomaxprocs", runtime.GOMAXPROCS(0),
	)
	s.log.Info("configuration", attrs...)
	if s.redis != nil && cfg.connIDKey == nil && len(cfg.udpAddrs) > 0 {
		s.log.Warn("the UDP connection-id key is random: instances sharing the store refuse each other's connection ids; set -conn-id-key")
	}
	for _, l := range s.httpLns {
		s.log.Info("listening", "protocol", "http", "addr", l.Addr().String())
	}
	for _, conns := range s.udpConns {
		s.log.Info("listening", "protocol", "udp", "addr", conns[0].LocalAddr().String(), "sockets", len(conns))
	}
	if s.metLn != nil {
		s.log.Info("listening", "protocol", "metrics", "addr", s.metLn.Addr().String(), "pprof", s.cfg.pprof)
	}
}

// serve serves until a SIGINT or SIGTERM arrives, ctx is done, or a
// listener fails; SIGHUP reloads the lists. Then it shuts down.
func (s *server) serve(ctx context.Context, signals <-chan os.Signal) error {
	s.logStart()
	var wg sync.WaitGroup
	n := len(s.httpLns) + 1
	for _, conns := range s.udpConns {
		n += len(conns)
	}
	errs := make(chan error, n) // every Serve can return without a reader
	for _, l := range s.httpLns {
		wg.Go(func() { errs <- fmt.Errorf("http %v: %w", l.Addr(), s.http.Serve(l)) })
	}
	for _, conns := range s.udpConns {
		for _, c := range conns {
			wg.Go(func() { errs <- fmt.Errorf("udp %v: %w", c.LocalAddr(), s.udp.Serve(c)) })
		}
	}
	if s.metrics != nil {
		wg.Go(func() { errs <- fmt.Errorf("metrics %v: %w", s.metLn.Addr(), s.metrics.Serve(s.metLn)) })
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

// reload re-reads the lists. A list whose file cannot be read or parsed
// keeps its previous content.
func (s *server) reload() {
	if len(s.lists) == 0 {
		s.log.Info("SIGHUP: no -passkeys or -torrents file to reload")
		return
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

// errForced and errTimeout end a shutdown that did not finish the
// requests in flight.
var (
	errForced  = errors.New("second signal: stopped without finishing requests in flight")
	errTimeout = errors.New("requests in flight did not finish within -shutdown-timeout: stopped anyway")
)

// shutdown stops the server: /readyz turns 503, the front-ends stop
// accepting and finish the requests in flight, then the tracker closes and
// the metrics listener last, so that /readyz tells the truth throughout.
// Past -shutdown-timeout, or when another SIGINT or SIGTERM arrives, it
// closes everything at once.
func (s *server) shutdown(signals <-chan os.Signal) error {
	s.ready.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.shutdownTimeout)
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

	var drain sync.WaitGroup
	if s.http != nil {
		drain.Go(func() { s.http.Shutdown(ctx) })
	}
	if s.udp != nil {
		drain.Go(func() { s.udp.Shutdown(ctx) })
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
	if s.metrics != nil && s.metrics.Shutdown(ctx) != nil {
		s.metrics.Close()
	}
	switch {
	case forced.Load():
		return errForced
	case !drained:
		s.log.Error("shutdown timed out; stopped anyway", "timeout", s.cfg.shutdownTimeout.String())
		return errTimeout
	}
	s.log.Info("stopped")
	return nil
}
