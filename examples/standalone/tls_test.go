package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// selfSigned returns a self-signed certificate for 127.0.0.1 named cn, as
// PEM, and its key.
func selfSigned(t *testing.T, cn string) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              []string{"tracker.test"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), cert
}

// TestHTTPS announces over HTTPS; after the certificate's files change and
// SIGHUP, new handshakes get the new certificate while a connection opened
// before goes on; a file that does not parse leaves the certificate in
// force.
func TestHTTPS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	install := func(certPEM, keyPEM []byte) {
		for _, f := range []struct {
			name string
			b    []byte
		}{{certFile, certPEM}, {keyFile, keyPEM}} {
			if err := os.WriteFile(f.name+".new", f.b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(f.name+".new", f.name); err != nil {
				t.Fatal(err)
			}
		}
	}
	cert1, key1, x1 := selfSigned(t, "first")
	cert2, key2, x2 := selfSigned(t, "second")
	install(cert1, key1)
	p := start(t, nil, append(loopback, "-https", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", keyFile)...)
	if rec := p.log.waitFor(t, nil, 1, "certificate", nil); rec["subject"] != "CN=first" || rec["not_after"] == "" {
		t.Errorf("certificate logged as %v; want CN=first and its expiry", rec)
	}
	addr := p.addr("https")
	roots := x509.NewCertPool()
	roots.AddCert(x1)
	roots.AddCert(x2)

	// newClient returns a client that keeps its connections, and offers
	// HTTP/2 as browsers do.
	newClient := func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}},
			ForceAttemptHTTP2: true,
		}}
	}
	hash := hash20("tls-swarm")
	// announce returns the common name of the server's certificate, and
	// whether the connection was reused.
	announce := func(c *http.Client, n int) (cn string, reused bool) {
		t.Helper()
		trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused }}
		peer := hash20(fmt.Sprint("tls-peer-", n))
		u := fmt.Sprintf("https://%s/announce?info_hash=%s&peer_id=%s&port=6881&left=1", addr, escapeAll(hash[:]), escapeAll(peer[:]))
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, u, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("announce over HTTPS: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if interval(string(body)) <= 0 {
			t.Fatalf("announce over HTTPS: %q", body)
		}
		if resp.Proto != "HTTP/1.1" || resp.TLS.Version < tls.VersionTLS12 {
			t.Errorf("announce over %s, TLS version %x; want HTTP/1.1 over TLS 1.2 or later", resp.Proto, resp.TLS.Version)
		}
		return resp.TLS.PeerCertificates[0].Subject.CommonName, reused
	}

	old := newClient()
	if cn, _ := announce(old, 1); cn != "first" {
		t.Fatalf("certificate %q; want first", cn)
	}
	install(cert2, key2)
	p.signal(syscall.SIGHUP)
	p.log.waitFor(t, nil, 1, "reloaded certificate", map[string]any{"subject": "CN=second"})
	if cn, _ := announce(newClient(), 2); cn != "second" {
		t.Errorf("a new handshake after the reload got certificate %q; want second", cn)
	}
	if cn, reused := announce(old, 3); cn != "first" || !reused {
		t.Errorf("the connection opened before the reload: certificate %q, reused %v; want it to go on", cn, reused)
	}

	// A broken file is logged; the certificate stays in force.
	install([]byte("not a certificate"), key2)
	p.signal(syscall.SIGHUP)
	rec := p.log.waitFor(t, nil, 1, "certificate reload failed; the previous certificate stays in force", nil)
	if rec["level"] != "ERROR" || !strings.Contains(fmt.Sprint(rec["err"]), certFile) {
		t.Errorf("reload of a broken file logged %v; want an error naming the file", rec)
	}
	if cn, _ := announce(newClient(), 4); cn != "second" {
		t.Errorf("after a failed reload, certificate %q; want second", cn)
	}

	// Session tickets: a client that comes back resumes its session.
	cache := tls.NewLRUClientSessionCache(4)
	for i := range 2 {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ClientSessionCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		// A TLS 1.3 server sends its ticket after the handshake: read the
		// reply to a request, which comes after it.
		fmt.Fprintf(c, "GET /nowhere HTTP/1.1\r\nHost: tracker.test\r\nConnection: close\r\n\r\n")
		io.Copy(io.Discard, c)
		if resumed := c.ConnectionState().DidResume; resumed != (i == 1) {
			t.Errorf("connection %d: resumed %v", i+1, resumed)
		}
		c.Close()
	}
	// Nothing older than TLS 1.2.
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
	old.CloseIdleConnections()

	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d; want 0", code)
	}
}

// BenchmarkTLSHandshake measures a handshake of the -https configuration
// over an in-memory connection, both sides in this process (cpu-µs/op is
// the CPU of both), with and without a resumed session, and with the key
// exchange Go prefers (X25519MLKEM768) or X25519 alone.
func BenchmarkTLSHandshake(b *testing.B) {
	certPEM, keyPEM, leaf := selfSigned(&testing.T{}, "bench")
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		b.Fatal(err)
	}
	cert := new(certificate)
	cert.cur.Store(&pair)
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, curves := range []struct {
		name string
		ids  []tls.CurveID
	}{{"default", nil}, {"X25519", []tls.CurveID{tls.X25519}}} {
		for _, resume := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/resume=%v", curves.name, resume), func(b *testing.B) {
				server := tlsConfig(cert)
				server.CurvePreferences = curves.ids
				client := &tls.Config{RootCAs: roots, ServerName: "tracker.test", CurvePreferences: curves.ids}
				if resume {
					client.ClientSessionCache = tls.NewLRUClientSessionCache(1)
					handshake(b, server, client) // the session to resume
				}
				b.ReportAllocs()
				cpu := processCPU()
				for b.Loop() {
					if resumed := handshake(b, server, client); resumed != resume {
						b.Fatalf("resumed %v", resumed)
					}
				}
				if cpu := processCPU() - cpu; cpu > 0 {
					b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
				}
			})
		}
	}
}

// handshake connects client and server over a pipe, and reports whether
// the session was resumed. The server sends its session ticket with its
// first bytes after the handshake, which the client reads.
func handshake(b *testing.B, server, client *tls.Config) bool {
	cc, sc := net.Pipe()
	defer cc.Close()
	done := make(chan error, 1)
	go func() {
		s := tls.Server(sc, server)
		err := s.Handshake()
		if err == nil {
			_, err = s.Write([]byte("x"))
		}
		s.Close()
		sc.Close()
		done <- err
	}()
	c := tls.Client(cc, client)
	if err := c.Handshake(); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		b.Fatal(err)
	}
	cc.Close() // the server's close_notify finds no reader
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return c.ConnectionState().DidResume
}
