package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
)

// config is the server's configuration, read from the command line and the
// environment and checked whole before anything starts.
type config struct {
	httpAddrs   []string // empty: no HTTP
	httpFast    bool     // answer the common HTTP request without net/http
	httpWorkers int      // goroutines answering on each -http-fast listener; 0: one per core
	httpsAddrs  []string // empty: no HTTPS
	tlsCert     string   // with httpsAddrs: the certificate's file
	tlsKey      string   // and its key's
	udpAddrs    []string // empty: no UDP
	metricsAddr string   // empty: no metrics listener
	pprof       bool

	passkeysFile string // empty: a public tracker
	torrentsFile string // empty: every torrent is served
	store        store  // where the swarms are

	// Accounting (accounting.go).
	dbDir          string // empty: no accounting; else the value of -db
	pg             bool   // dbDir names a PostgreSQL database
	pgDSN          string // with pg: empty for the PG* environment variables
	spoolFile      string // with dbDir
	adminAddr      string // with dbDir; empty: no admin API
	adminTokenFile string // with adminAddr
	adminRemote    bool   // adminAddr may be other than loopback
	memoryLimit    int64  // bytes, for the whole process; 0: none

	interval       time.Duration
	maxPeers       int     // 0: no bound
	maxAddrPeers   int     // peers of one address over all swarms; 0: no bound
	maxSwarmAddr   int     // peers of one address in one swarm; 0: no bound
	rateLimit      float64 // requests per second per address; 0: none
	rateBurst      int     // requests at once per address
	fullScrape     bool
	connsPerAddr   int // HTTP connections per client address; 0: no cap
	maxConns       int // HTTP connections in all; 0: from the descriptor limit
	publicScrape   bool
	trustedProxies []netip.Prefix
	clientIPHeader string // the header trusted proxies set
	allowPrivate   bool   // private and loopback peer addresses from proxies
	connIDKey      []byte // nil: random
	connIDKeyFrom  string // where connIDKey came from, for the log
	trackerID      string

	shutdownGrace   time.Duration // serving on, not ready, before shutting down
	shutdownTimeout time.Duration
	logFormat       string // "text" or "json"
	logLevel        slog.Level
}

// The default per-address rate limit: no legitimate client comes near it,
// a flood from one address meets it within a fraction of a second.
const (
	defaultRateLimit = 50
	defaultRateBurst = 500
)

// envPrefix starts the name of every environment variable the server reads.
const envPrefix = "ANNUAIRE_"

// envName returns the environment variable that stands for a flag.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// usageError is a mistake in the flags or the environment, as opposed to a
// failure to start with a valid configuration.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// listFlag is a repeatable flag: each use adds one or more comma-separated
// values. The first use replaces the default.
type listFlag struct {
	values []string
	given  bool
}

func (l *listFlag) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.values, ",")
}

func (l *listFlag) Set(s string) error {
	if !l.given {
		l.values, l.given = nil, true
	}
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			l.values = append(l.values, v)
		}
	}
	return nil
}

// flagGroup is a heading of the help text and the flags under it, in the
// order they are shown.
type flagGroup struct {
	title string
	names []string
}

// flags holds the flag set and what the help text needs beyond it.
type flags struct {
	fs     *flag.FlagSet
	groups []flagGroup
	// Values that need checking or converting once parsed.
	http, https, udp, proxies listFlag
	logLevel                  string
	store                     string
	connIDKey, keyFile        string
	maxPeers                  int
	memoryLimit               string
	secrets                   map[string]bool // flags whose values are never shown
	fromEnv                   map[string]bool // flags set by their variable
	given                     map[string]bool // flags set on the command line or by their variable
}

// newFlags defines the flags, writing their values into c.
func newFlags(c *config) *flags {
	f := &flags{
		fs:      flag.NewFlagSet("annuaire", flag.ContinueOnError),
		http:    listFlag{values: []string{":6969"}},
		udp:     listFlag{values: []string{":6969"}},
		secrets: map[string]bool{"conn-id-key": true, "store": true},
		fromEnv: make(map[string]bool),
		given:   make(map[string]bool),
	}
	fs := f.fs
	fs.SetOutput(io.Discard) // errors are returned, help is printed by run
	fs.Usage = func() {}

	fs.Var(&f.http, "http", "serve HTTP announces and scrapes on `ADDR` (host:port; with no host, every\n"+
		"address, IPv4 and IPv6); repeatable; empty disables HTTP")
	fs.BoolVar(&c.httpFast, "http-fast", true, "on -http, answer an announce or a scrape that comes on a connection of its\n"+
		"own (Connection: close, as most clients send) as soon as it is accepted,\n"+
		"without net/http (Linux); other requests are served as usual; false\n"+
		"serves every request with net/http")
	fs.IntVar(&c.httpWorkers, "http-fast-workers", 0, "with -http-fast, answer on up to `N` goroutines per -http address, each\n"+
		"at most a core: the first waits for connections, the others help when\n"+
		"it cannot keep up; 0 is one per core (GOMAXPROCS)")
	fs.Var(&f.https, "https", "serve HTTPS announces and scrapes on `ADDR`, with -tls-cert and -tls-key;\n"+
		"repeatable; private trackers want it, since passkeys travel in the URL")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "the certificate of -https, PEM, chain included, in `FILE`; re-read on\n"+
		"SIGHUP with -tls-key")
	fs.StringVar(&c.tlsKey, "tls-key", "", "the private key of -tls-cert, PEM, in `FILE`")
	fs.Var(&f.udp, "udp", "serve UDP announces and scrapes (BEP 15) on `ADDR`; repeatable; empty\n"+
		"disables UDP")
	fs.StringVar(&c.metricsAddr, "metrics", "", "serve /metrics (Prometheus), /healthz and /readyz on `ADDR`; empty disables")
	fs.BoolVar(&c.pprof, "pprof", false, "also serve /debug/pprof/ on the -metrics listener (keep it private)")

	fs.StringVar(&c.passkeysFile, "passkeys", "", "private tracker: announces and scrapes need a passkey listed in `FILE`, one\n"+
		"per line, optionally followed by a user id (# starts a comment); re-read\n"+
		"on SIGHUP")
	fs.StringVar(&c.torrentsFile, "torrents", "", "serve only the info hashes listed in `FILE`, 40 hex digits per line; others\n"+
		"get \"unregistered torrent\"; re-read on SIGHUP")
	defineAccountingFlags(f, c)
	fs.StringVar(&f.connIDKey, "conn-id-key", "", "secret of the UDP connection ids, `HEX` of at least 16 bytes, so that\n"+
		"instances behind one address accept each other's ids; random if unset\n"+
		"(prefer the variable or -conn-id-key-file: command lines are public)")
	fs.StringVar(&f.keyFile, "conn-id-key-file", "", "read -conn-id-key from `FILE`")
	fs.StringVar(&c.trackerID, "tracker-id", "", "send `ID` as \"tracker id\" in HTTP announce replies")
	fs.StringVar(&f.store, "store", "memory", "keep the swarms in `STORE`: memory, or a Redis that other instances share,\n"+
		"redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS,\n"+
		"unix:///PATH for a socket); instances sharing a Redis should share\n"+
		"-conn-id-key too")

	fs.DurationVar(&c.interval, "interval", 30*time.Minute, "the `DURATION` clients are told to wait between announces, 1s to 14h;\n"+
		"up to a tenth more is added at random, so that clients spread out (peers\n"+
		"are kept at most 16h)")
	fs.IntVar(&f.maxPeers, "max-peers", 50_000_000, "most peers held in memory (the default needs about 2 GB); past `N`, new\n"+
		"peers are refused with \"tracker is full\"; 0 for no bound (memory store;\n"+
		"bound Redis with its maxmemory)")
	fs.IntVar(&c.maxAddrPeers, "max-peers-per-addr", 50_000, "most peers one address (one /64 for IPv6) holds over all swarms; past `N`,\n"+
		"its announces are answered but add no peer; 0 for no bound (memory store)")
	fs.IntVar(&c.maxSwarmAddr, "max-peers-per-swarm-addr", 32, "most peers one address (one /64 for IPv6) holds in one swarm; past `N`,\n"+
		"its announces are answered but add no peer; 0 for no bound (memory store)")
	fs.Float64Var(&c.rateLimit, "rate-limit", defaultRateLimit, "most announces and scrapes per second (`N` may be a fraction) from one\n"+
		"address, or one /64 for IPv6, once -rate-burst is spent; requests over\n"+
		"it are refused at once with \"retry in\" 1 minute; 0 for no limit. A client\n"+
		"announces each torrent every -interval: a seedbox with 10,000 torrents\n"+
		"makes about 6 announces and 6 scrapes a second, and a CGNAT address\n"+
		"shared by 300 users with 100 torrents each about 35")
	fs.IntVar(&c.rateBurst, "rate-burst", defaultRateBurst, "requests from one address allowed at once, on top of -rate-limit: `N`\n"+
		"announces of a client starting its torrents pass at once, a flood is\n"+
		"refused after them (500 at 10,000 requests a second: within 50 ms)")
	fs.IntVar(&c.connsPerAddr, "max-conns-per-addr", 128, "most HTTP connections open at once from one address (one /64 for IPv6);\n"+
		"past `N`, a new one is closed as soon as accepted; 0 for no cap. A client\n"+
		"needs one at a time, a NAT of many users a few dozen")
	fs.IntVar(&c.maxConns, "max-conns", 0, "most HTTP connections open at once; past `N`, a new one is closed as\n"+
		"soon as accepted, and from half of it on idle and new connections get\n"+
		"2 s instead of 60 s; 0 for the descriptor limit (ulimit -n) less a\n"+
		"reserve of an eighth of it (64 to 1024), which keeps the metrics\n"+
		"listener and the UDP sockets working when HTTP is saturated")
	fs.BoolVar(&c.fullScrape, "full-scrape", false, "answer an HTTP scrape that names no info_hash with every swarm (built at\n"+
		"most once a minute)")
	fs.BoolVar(&c.publicScrape, "public-scrape", false, "with -passkeys, answer scrapes without a passkey (all UDP scrapes) with\n"+
		"the counts of the torrents served: anyone who knows an info hash can read\n"+
		"its seeders, leechers and snatches, but not which torrents are served")
	fs.Var(&f.proxies, "trusted-proxy", "believe the -client-ip-header of reverse proxies in `CIDR` (or at a single\n"+
		"address); repeatable")
	fs.StringVar(&c.clientIPHeader, "client-ip-header", "X-Forwarded-For", "the one `HEADER` the trusted proxies set to the client's address:\n"+
		"X-Forwarded-For (the right-most address no trusted proxy holds), or a\n"+
		"header holding one address such as X-Real-IP; name the header the proxy\n"+
		"writes, not one it passes on from clients")
	fs.BoolVar(&c.allowPrivate, "allow-private-addrs", false, "accept private and loopback peer addresses from trusted proxies (a\n"+
		"tracker on a LAN); others are refused, as are multicast, broadcast and\n"+
		"link-local ones always")

	fs.StringVar(&c.logFormat, "log-format", "text", "log as `FORMAT`: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log at `LEVEL` and above: debug, info, warn or error")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 5*time.Second, "on SIGINT or SIGTERM, serve on for `DURATION` with /readyz answering 503,\n"+
		"so that load balancers stop sending clients before the listeners close;\n"+
		"longer than the balancer's readiness probe period; 0 to skip")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "after -shutdown-grace, the `DURATION` requests in flight have to finish\n"+
		"before the server stops anyway")

	f.groups = []flagGroup{
		{"Listeners", []string{"http", "http-fast", "http-fast-workers", "https", "tls-cert", "tls-key", "udp", "metrics", "pprof"}},
		{"Access", []string{"passkeys", "torrents", "conn-id-key", "conn-id-key-file", "tracker-id"}},
		{"Swarms", []string{"store"}},
		{"Private tracker with accounting", []string{"db", "spool", "admin", "admin-token-file", "admin-allow-remote", "memory-limit"}},
		{"Limits and behaviour", []string{"interval", "max-peers", "max-peers-per-addr", "max-peers-per-swarm-addr", "rate-limit", "rate-burst", "max-conns-per-addr", "max-conns", "full-scrape", "public-scrape", "trusted-proxy", "client-ip-header", "allow-private-addrs"}},
		{"Operations", []string{"log-format", "log-level", "shutdown-grace", "shutdown-timeout"}},
	}
	return f
}

// parseConfig reads the configuration from args and the environment
// (through lookupEnv). It returns flag.ErrHelp when args ask for help, a
// usageError for a mistake in the flags or variables, and another error
// when a file named by them cannot be used.
func parseConfig(args []string, lookupEnv func(string) (string, bool)) (*config, error) {
	c := new(config)
	f := newFlags(c)
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{fmt.Errorf("%v (see -h)", err)}
	}
	if f.fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q (see -h)", f.fs.Arg(0))
	}
	// The environment fills in the flags the command line left alone.
	onCommandLine := make(map[string]bool)
	f.fs.Visit(func(fl *flag.Flag) { onCommandLine[fl.Name], f.given[fl.Name] = true, true })
	var envErr error
	f.fs.VisitAll(func(fl *flag.Flag) {
		if envErr != nil || onCommandLine[fl.Name] {
			return
		}
		name := envName(fl.Name)
		v, ok := lookupEnv(name)
		if !ok {
			return
		}
		if err := fl.Value.Set(v); err != nil {
			shown := fmt.Sprintf("%q", v)
			if f.secrets[fl.Name] {
				shown = "(hidden)"
			}
			envErr = usagef("%s=%s: invalid value for -%s: %v", name, shown, fl.Name, err)
		}
		f.fromEnv[fl.Name], f.given[fl.Name] = true, true
	})
	if envErr != nil {
		return nil, envErr
	}
	if err := f.check(c); err != nil {
		return nil, err
	}
	return c, nil
}

// src names where a flag's value came from, for error messages: the flag,
// or the variable that set it.
func (f *flags) src(name string) string {
	if f.fromEnv[name] {
		return envName(name)
	}
	return "-" + name
}

// check validates the parsed values and fills in the rest of c.
func (f *flags) check(c *config) error {
	c.httpAddrs, c.httpsAddrs, c.udpAddrs = f.http.values, f.https.values, f.udp.values
	if len(c.httpAddrs) == 0 && len(c.httpsAddrs) == 0 && len(c.udpAddrs) == 0 {
		return usagef("-http, -https and -udp are all empty: nothing to serve")
	}
	switch {
	case len(c.httpsAddrs) > 0 && (c.tlsCert == "" || c.tlsKey == ""):
		return usagef("-https needs -tls-cert and -tls-key")
	case len(c.httpsAddrs) == 0 && (c.tlsCert != "" || c.tlsKey != ""):
		return usagef("-tls-cert and -tls-key need -https")
	}
	for _, l := range []struct {
		name  string
		addrs []string
	}{{"http", c.httpAddrs}, {"https", c.httpsAddrs}, {"udp", c.udpAddrs}} {
		for i, a := range l.addrs {
			if slices.Contains(l.addrs[:i], a) {
				return usagef("%s %s is given twice", f.src(l.name), a)
			}
		}
	}
	if c.pprof && c.metricsAddr == "" {
		return usagef("-pprof needs -metrics: profiles are served on the metrics listener")
	}

	switch {
	case c.interval < time.Second || c.interval > 14*time.Hour:
		return usagef("%s %v: want between 1s and 14h", f.src("interval"), c.interval)
	case f.maxPeers < 0:
		return usagef("%s %d is negative (0 means no bound)", f.src("max-peers"), f.maxPeers)
	case c.maxAddrPeers < 0:
		return usagef("%s %d is negative (0 means no bound)", f.src("max-peers-per-addr"), c.maxAddrPeers)
	case c.maxSwarmAddr < 0:
		return usagef("%s %d is negative (0 means no bound)", f.src("max-peers-per-swarm-addr"), c.maxSwarmAddr)
	case c.rateLimit < 0 || math.IsNaN(c.rateLimit) || math.IsInf(c.rateLimit, 0):
		return usagef("%s %v: want a number of requests per second, 0 for no limit", f.src("rate-limit"), c.rateLimit)
	case c.connsPerAddr < 0:
		return usagef("%s %d is negative (0 means no cap)", f.src("max-conns-per-addr"), c.connsPerAddr)
	case c.maxConns < 0:
		return usagef("%s %d is negative (0 means from the descriptor limit)", f.src("max-conns"), c.maxConns)
	case c.httpWorkers < 0:
		return usagef("%s %d is negative (0 means one per core)", f.src("http-fast-workers"), c.httpWorkers)
	case c.rateBurst < 1:
		return usagef("%s %d: want at least 1", f.src("rate-burst"), c.rateBurst)
	case c.shutdownGrace < 0:
		return usagef("%s %v is negative (0 skips the grace period)", f.src("shutdown-grace"), c.shutdownGrace)
	case c.shutdownTimeout <= 0:
		return usagef("%s %v: want a positive duration", f.src("shutdown-timeout"), c.shutdownTimeout)
	}
	c.maxPeers = f.maxPeers
	st, err := parseStore(f.store)
	if err != nil {
		return usagef("%s: %v", f.src("store"), err)
	}
	c.store = st

	for _, s := range f.proxies.values {
		p, err := parsePrefix(s)
		if err != nil {
			return usagef("%s %q: want an address or a CIDR prefix such as 10.0.0.0/8", f.src("trusted-proxy"), s)
		}
		c.trustedProxies = append(c.trustedProxies, p)
	}
	if c.clientIPHeader == "" || strings.ContainsAny(c.clientIPHeader, " :\t\r\n") {
		return usagef("%s %q: want a header name such as X-Forwarded-For or X-Real-IP", f.src("client-ip-header"), c.clientIPHeader)
	}

	switch c.logFormat {
	case "text", "json":
	default:
		return usagef("%s %q: want text or json", f.src("log-format"), c.logFormat)
	}
	switch strings.ToLower(f.logLevel) {
	case "debug":
		c.logLevel = slog.LevelDebug
	case "info":
		c.logLevel = slog.LevelInfo
	case "warn", "warning":
		c.logLevel = slog.LevelWarn
	case "error":
		c.logLevel = slog.LevelError
	default:
		return usagef("%s %q: want debug, info, warn or error", f.src("log-level"), f.logLevel)
	}

	if err := f.checkAccounting(c); err != nil {
		return err
	}

	switch {
	case f.connIDKey != "" && f.keyFile != "":
		return usagef("-conn-id-key and -conn-id-key-file are both set: give one")
	case f.connIDKey != "":
		key, err := parseKey(f.connIDKey)
		if err != nil {
			return usagef("%s: %v", f.src("conn-id-key"), err)
		}
		c.connIDKey, c.connIDKeyFrom = key, f.src("conn-id-key")
	case f.keyFile != "":
		b, err := os.ReadFile(f.keyFile)
		if err != nil {
			return fmt.Errorf("%s: %w", f.src("conn-id-key-file"), err)
		}
		key, err := parseKey(string(b))
		if err != nil {
			return fmt.Errorf("%s: %s: %w", f.src("conn-id-key-file"), f.keyFile, err)
		}
		c.connIDKey, c.connIDKeyFrom = key, f.keyFile
	default:
		c.connIDKeyFrom = "random"
	}
	return nil
}

// minKeyLen is the shortest connection-id key the UDP server accepts.
const minKeyLen = 16

// parseKey decodes a hex connection-id key; surrounding blanks and a final
// newline are allowed. Its errors never quote the key.
func parseKey(s string) ([]byte, error) {
	key, err := hex.DecodeString(strings.TrimSpace(s))
	switch {
	case err != nil:
		return nil, errors.New("not a hex string")
	case len(key) < minKeyLen:
		return nil, fmt.Errorf("%d bytes: want at least %d (%d hex digits)", len(key), minKeyLen, 2*minKeyLen)
	}
	return key, nil
}

// parsePrefix reads a CIDR prefix, or a single address as the prefix that
// holds it alone.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// printHelp writes the help text.
func (f *flags) printHelp(w io.Writer) {
	fmt.Fprint(w, `annuaire is a BitTorrent tracker: it answers HTTP and UDP announces and
scrapes (BEP 3, 7, 15, 21, 23, 24, 31, 41, 48, 52), over IPv4 and IPv6, and
keeps its swarms in memory, or in a Redis shared by several instances.

Usage: annuaire [flags]

Clients announce to http://HOST:6969/announce and udp://HOST:6969/announce;
a private tracker (-passkeys, or -db with accounting) gives each user
http://HOST:6969/announce/PASSKEY (UDP clients send the passkey as BEP 41
URL data).

With -db, the site registers users (passkey, factors) and torrents (factors:
freeleech is a download factor of 0) through the admin API (with PostgreSQL,
also in its tables, which every instance reads back within seconds), and
reads their totals back there: PUT/GET/DELETE /api/v1/users/ID, GET
/api/v1/users/ID/torrents, PUT/GET/DELETE /api/v1/torrents/INFOHASH, each
with "Authorization: Bearer TOKEN". -passkeys (a passkey and a user id a
line) and -torrents are then imported into the database at start and on
SIGHUP: the users and torrents it lacks are added, with factors of 100;
those it holds are left as they are, and nothing is removed.

Every flag can also be set through an environment variable, named in the
list below; a flag on the command line wins over its variable. Repeatable
flags take a comma-separated list from their variable.
`)
	for _, g := range f.groups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, name := range g.names {
			fl := f.fs.Lookup(name)
			arg, usage := flag.UnquoteUsage(fl)
			line := "  -" + name
			if arg != "" {
				line += " " + arg
			}
			meta := envName(name)
			if def := fl.DefValue; def != "" && def != "false" && def != "0" {
				meta += ", default " + def
			}
			fmt.Fprintf(w, "%s  (%s)\n", line, meta)
			for l := range strings.SplitSeq(usage, "\n") {
				fmt.Fprintf(w, "      %s\n", l)
			}
		}
	}
	fmt.Fprint(w, `
Signals:
  SIGHUP           re-read -passkeys, -torrents, -admin-token-file and
                   -tls-cert with -tls-key, swapping each whole while
                   requests go on (with -db, the lists are imported); a
                   file that cannot be read or parsed is logged and its
                   previous content stays in force
  SIGINT, SIGTERM  shut down gracefully: /readyz turns 503 and everything is
                   served as before for -shutdown-grace; then the listeners
                   close, every request received is answered, kept-alive
                   connections close after their next reply (Connection:
                   close), with -db every announce answered is written to
                   the database (or to the spool, past -shutdown-timeout),
                   and the server exits 0; past -shutdown-timeout, or on a
                   second signal, it stops at once and exits 1

Exit status: 0 after a graceful shutdown or -h, 2 for a mistake in the flags
or variables, 1 for any other failure (a file or an address that cannot be
used, a failed or timed-out shutdown). Start-up failures print one line on
standard error and nothing is served.
`)
}
