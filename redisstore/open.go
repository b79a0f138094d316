// Open: a store with a client of its own, set up for a tracker.

package redisstore

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// Open returns a store over a new client of rawURL, which Close closes.
// The URL is go-redis's: redis://[[user]:password@]host[:port][/db] (TLS
// with rediss://; unix:// for a socket), and its query may set any client
// option (for example ?pool_size=256). cfg.Client must be nil.
//
// Unless the URL sets pool_size, the client keeps up to [DefaultPoolSize]
// connections rather than go-redis's 10 per processor: a tracker calls
// the store from many goroutines at once (the UDP server's workers, the
// HTTP server's connections), each call is one round trip, and a caller
// that finds every connection busy waits for one.
//
// The client bounds network waits by Config.Timeout, and recovers fast
// from an outage: go-redis stops dialing a Redis that refused enough
// dials and probes it once a second; here a probe dial retries every
// 20 ms for up to a minute, so that service resumes within a few tens of
// milliseconds of Redis's return.
func Open(rawURL string, cfg Config) (*Store, error) {
	if cfg.Client != nil {
		return nil, fmt.Errorf("redisstore: Open with a Config.Client")
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	if opt.PoolSize == 0 {
		opt.PoolSize = DefaultPoolSize
	}
	opt.ContextTimeoutEnabled = true
	opt.Dialer = redial(opt.TLSConfig, 20*time.Millisecond)
	// Calls dial with their own deadline (Config.Timeout); only the probe
	// dials of an unreachable Redis see this one.
	opt.DialTimeout = time.Minute
	// A dial attempt lasts until Config.Timeout: no attempt after it.
	opt.DialerRetries = 1
	cfg.Client = redis.NewClient(opt)
	s, err := New(cfg)
	if err != nil {
		cfg.Client.Close()
		return nil, err
	}
	s.owns = true
	return s, nil
}

// DefaultPoolSize is the most connections to Redis a store opened by
// [Open] keeps, unless its URL says otherwise. With 64 announces in
// flight, go-redis's default of 20 connections on two processors held
// one instance to 18,400 announces a second where 128 allowed 22,300.
const DefaultPoolSize = 128

// redial returns a dialer that dials again every pause after a failure,
// until its context ends, over TLS when tlsConfig is not nil.
func redial(tlsConfig *tls.Config, pause time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3}}
	dial := d.DialContext
	if tlsConfig != nil {
		dial = (&tls.Dialer{NetDialer: d, Config: tlsConfig}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		t := time.NewTimer(pause)
		defer t.Stop()
		for {
			c, err := dial(ctx, network, addr)
			if err == nil {
				return c, nil
			}
			t.Reset(pause)
			select {
			case <-ctx.Done():
				return nil, err
			case <-t.C:
			}
		}
	}
}
