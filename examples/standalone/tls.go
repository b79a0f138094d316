package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// certificate is the TLS certificate of the -https listeners, read at
// start and again on SIGHUP. Handshakes read it through GetCertificate,
// so a new certificate serves the next handshake while the connections
// already open go on with theirs.
type certificate struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// load reads the certificate and its key, and swaps them in whole; on
// error the previous ones stay in force.
func (c *certificate) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert %s, -tls-key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cur.Store(&cert)
	return &cert, nil
}

func (c *certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

// logAttrs describes a certificate for the log: its subject, its names
// and when it expires.
func certAttrs(cert *tls.Certificate) []any {
	leaf := cert.Leaf
	if leaf == nil {
		return nil
	}
	return []any{
		slog.String("subject", leaf.Subject.String()),
		slog.Any("dns_names", leaf.DNSNames),
		slog.String("not_after", leaf.NotAfter.UTC().Format(time.RFC3339)),
	}
}

// tlsConfig returns the TLS configuration of the -https listeners: TLS
// 1.2 and later with Go's default cipher suites, HTTP/1.1 only (a tracker
// has no use for HTTP/2's streams: a client sends one request at a time),
// and session tickets, on by default, so that a client reconnecting for
// its next announce resumes its session instead of a full handshake.
func tlsConfig(cert *certificate) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cert.get,
		NextProtos:     []string{"http/1.1"},
	}
}
