package main

import (
	"errors"
	"flag"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// envOf returns a lookup function over the variables in vars.
func envOf(vars ...string) func(string) (string, bool) {
	m := make(map[string]string)
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := parseConfig(nil, envOf())
	if err != nil {
		t.Fatal(err)
	}
	want := &config{
		httpAddrs:       []string{":6969"},
		httpFast:        true,
		udpAddrs:        []string{":6969"},
		interval:        30 * time.Minute,
		maxPeers:        50_000_000,
		maxAddrPeers:    50_000,
		maxSwarmAddr:    32,
		rateLimit:       50,
		rateBurst:       500,
		connsPerAddr:    128,
		connIDKeyFrom:   "random",
		clientIPHeader:  "X-Forwarded-For",
		shutdownGrace:   5 * time.Second,
		shutdownTimeout: 10 * time.Second,
		logFormat:       "text",
		logLevel:        slog.LevelInfo,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("parseConfig() = %+v; want %+v", c, want)
	}
}

func TestParseConfig(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("000102030405060708090a0b0c0d0e0f10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		env   []string
		check func(c *config) bool
	}{
		{"repeated flag replaces the default", []string{"-http", "127.0.0.1:1", "-http", "[::1]:2,10.0.0.1:3"}, nil,
			func(c *config) bool {
				return reflect.DeepEqual(c.httpAddrs, []string{"127.0.0.1:1", "[::1]:2", "10.0.0.1:3"}) &&
					reflect.DeepEqual(c.udpAddrs, []string{":6969"})
			}},
		{"empty flag disables", []string{"-udp", ""}, nil,
			func(c *config) bool { return len(c.udpAddrs) == 0 && len(c.httpAddrs) == 1 }},
		{"list from the environment", nil, []string{"ANNUAIRE_UDP=127.0.0.1:1, 127.0.0.2:1", "ANNUAIRE_HTTP="},
			func(c *config) bool {
				return reflect.DeepEqual(c.udpAddrs, []string{"127.0.0.1:1", "127.0.0.2:1"}) && len(c.httpAddrs) == 0
			}},
		{"command line wins", []string{"-interval", "2m", "-udp", ":7000"}, []string{"ANNUAIRE_INTERVAL=1h", "ANNUAIRE_UDP=:8000", "ANNUAIRE_MAX_PEERS=10"},
			func(c *config) bool {
				return c.interval == 2*time.Minute && reflect.DeepEqual(c.udpAddrs, []string{":7000"}) && c.maxPeers == 10
			}},
		{"booleans from the environment", nil, []string{"ANNUAIRE_FULL_SCRAPE=true", "ANNUAIRE_METRICS=:9100", "ANNUAIRE_PPROF=1"},
			func(c *config) bool { return c.fullScrape && c.pprof && c.metricsAddr == ":9100" }},
		{"public scrape", []string{"-public-scrape"}, nil, func(c *config) bool { return c.publicScrape }},
		{"trusted proxies", []string{"-trusted-proxy", "10.1.2.3/8", "-trusted-proxy", "2001:db8::1,192.0.2.7"}, nil,
			func(c *config) bool {
				return reflect.DeepEqual(c.trustedProxies, []netip.Prefix{
					netip.MustParsePrefix("10.0.0.0/8"),
					netip.MustParsePrefix("2001:db8::1/128"),
					netip.MustParsePrefix("192.0.2.7/32"),
				})
			}},
		{"key from the environment", nil, []string{"ANNUAIRE_CONN_ID_KEY=00112233445566778899aabbccddeeff"},
			func(c *config) bool { return len(c.connIDKey) == 16 && c.connIDKeyFrom == "ANNUAIRE_CONN_ID_KEY" }},
		{"key file", []string{"-conn-id-key-file", keyFile}, nil,
			func(c *config) bool { return len(c.connIDKey) == 17 && c.connIDKeyFrom == keyFile }},
		{"no bound, no limit", []string{"-max-peers", "0", "-rate-limit", "0.5"}, nil,
			func(c *config) bool { return c.maxPeers == 0 && c.rateLimit == 0.5 }},
		{"proxy header", []string{"-client-ip-header", "X-Real-IP", "-allow-private-addrs"}, nil,
			func(c *config) bool { return c.clientIPHeader == "X-Real-IP" && c.allowPrivate }},
		{"logging", []string{"-log-format", "json", "-log-level", "WARN"}, nil,
			func(c *config) bool { return c.logFormat == "json" && c.logLevel == slog.LevelWarn }},
		{"redis store", []string{"-store", "redis://127.0.0.1:6379/2"}, nil,
			func(c *config) bool {
				return c.store.redisURL == "redis://127.0.0.1:6379/2" && c.store.String() == c.store.redisURL
			}},
		{"store from the environment, password hidden", nil, []string{"ANNUAIRE_STORE=rediss://user:hunter2@redis.example:6380/0"},
			func(c *config) bool {
				return c.store.redisURL == "rediss://user:hunter2@redis.example:6380/0" && c.store.String() == "rediss://user:xxxxx@redis.example:6380/0"
			}},
		{"memory store", []string{"-store", "memory"}, []string{"ANNUAIRE_STORE=redis://h/0"},
			func(c *config) bool { return c.store == (store{}) && c.store.String() == "memory" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, envOf(tc.env...))
			if err != nil {
				t.Fatalf("parseConfig(%q, %q): %v", tc.args, tc.env, err)
			}
			if !tc.check(c) {
				t.Errorf("parseConfig(%q, %q) = %+v", tc.args, tc.env, c)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		env   []string
		want  string
		usage bool
	}{
		{[]string{"-h"}, nil, flag.ErrHelp.Error(), false},
		{[]string{"-http"}, nil, "flag needs an argument: -http", true},
		{[]string{"-max-peers", "-1"}, nil, "-max-peers -1 is negative", true},
		{nil, []string{"ANNUAIRE_MAX_PEERS=-1"}, "ANNUAIRE_MAX_PEERS -1 is negative", true},
		{[]string{"-rate-limit", "-2"}, nil, "-rate-limit -2: want", true},
		{[]string{"-rate-limit", "NaN"}, nil, "-rate-limit NaN: want", true},
		{[]string{"-rate-burst", "0"}, nil, "-rate-burst 0: want at least 1", true},
		{[]string{"-max-conns-per-addr", "-1"}, nil, "-max-conns-per-addr -1 is negative", true},
		{[]string{"-max-conns", "-1"}, nil, "-max-conns -1 is negative", true},
		{[]string{"-shutdown-grace", "-1s"}, nil, "-shutdown-grace -1s is negative", true},
		{[]string{"-shutdown-timeout", "0s"}, nil, "-shutdown-timeout 0s: want a positive duration", true},
		{[]string{"-http-fast-workers", "-1"}, nil, "-http-fast-workers -1 is negative", true},
		{[]string{"-interval", "15h"}, nil, "-interval 15h0m0s: want between 1s and 14h", true},
		{[]string{"-log-level", "loud"}, nil, `-log-level "loud"`, true},
		{[]string{"-client-ip-header", "X-Real-IP:"}, nil, `-client-ip-header "X-Real-IP:": want a header name`, true},
		{nil, []string{"ANNUAIRE_CLIENT_IP_HEADER="}, `ANNUAIRE_CLIENT_IP_HEADER "": want a header name`, true},
		{[]string{"-log-format", "xml"}, nil, `-log-format "xml"`, true},
		{nil, []string{"ANNUAIRE_FULL_SCRAPE=maybe"}, `ANNUAIRE_FULL_SCRAPE="maybe": invalid value for -full-scrape`, true},
		{[]string{"-udp", ":1", "-udp", ":1"}, nil, "-udp :1 is given twice", true},
		{[]string{"-conn-id-key", "zz"}, nil, "-conn-id-key: not a hex string", true},
		{[]string{"-conn-id-key", "00112233445566778899aabbccddeeff", "-conn-id-key-file", "k"}, nil, "both set", true},
		{[]string{"-conn-id-key-file", "/nonexistent/key"}, nil, "-conn-id-key-file: open /nonexistent/key", false},
		{nil, []string{"ANNUAIRE_CONN_ID_KEY=abcdef0123456789"}, "ANNUAIRE_CONN_ID_KEY: 8 bytes", true},
		{[]string{"-store", "postgres://db/tracker"}, nil, `-store: want "memory" or a redis://`, true},
		{[]string{"-store", ""}, nil, `-store: want "memory"`, true},
		{nil, []string{"ANNUAIRE_STORE=redis://u:abcdef0123456789@h:6379/notadb"}, "ANNUAIRE_STORE: redis://u:xxxxx@h:6379/notadb: invalid database number", true},
		{[]string{"-store", "redis://u:abcdef0123456789@h:port/0"}, nil, "-store: not a valid URL", true},
	} {
		_, err := parseConfig(tc.args, envOf(tc.env...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseConfig(%q, %q) = %v; want an error with %q", tc.args, tc.env, err, tc.want)
			continue
		}
		if isUsage := errors.As(err, new(usageError)); isUsage != tc.usage {
			t.Errorf("parseConfig(%q, %q) = %v: usage error %v; want %v", tc.args, tc.env, err, isUsage, tc.usage)
		}
		if strings.Contains(err.Error(), "abcdef0123456789") {
			t.Errorf("parseConfig(%q, %q) = %v: the key is in the error", tc.args, tc.env, err)
		}
	}
}

// FuzzParseStore: parseStore never panics, and neither what it accepts
// nor its errors show a password.
func FuzzParseStore(f *testing.F) {
	for _, s := range []string{
		"memory", "redis://127.0.0.1:6379/0", "rediss://user:secret@redis.example:6380/3",
		"redis://:secret@host", "unix:///run/redis.sock?db=2", "redis://host:6379/0?dial_timeout=3s",
		"redis://host/notadb", "redis://[::1]:6379", "mysql://x", "", "redis://u:p@h:badport/0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, err := parseStore(s)
		if err == nil && s == "memory" {
			if st != (store{}) {
				t.Fatalf("parseStore(memory) = %+v", st)
			}
			return
		}
		if err == nil && st.redisURL != s {
			t.Fatalf("parseStore(%q) kept %q", s, st.redisURL)
		}
		// With a password of its own in the URL, neither the error nor
		// the store's String shows it.
		u, perr := url.Parse(s)
		if perr != nil || u.User == nil {
			return
		}
		const secret = "Zq7pW3xK"
		u.User = url.UserPassword(u.User.Username(), secret)
		st, err = parseStore(u.String())
		switch {
		case err != nil && strings.Contains(err.Error(), secret):
			t.Fatalf("parseStore(%q) = %v: the password is in the error", u, err)
		case err == nil && strings.Contains(st.String(), secret):
			t.Fatalf("parseStore(%q).String() = %q shows the password", u, st.String())
		}
	})
}
