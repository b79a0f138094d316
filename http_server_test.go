package tracker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestHTTPServer runs the server of NewHTTPServer on loopback sockets: replies
// arrive over a kept-alive connection, Shutdown waits for the request in
// progress, Serve and ListenAndServe then return ErrServerClosed, and no
// goroutine is left behind.
func TestHTTPServer(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Skipf("no loopback listener at %s: %v", addr, err)
			}
			before := runtime.NumGoroutine()
			httpServeTest(t, l)
			// Everything started is gone once the server, the client's
			// connections and the tracker are closed.
			deadline := time.Now().Add(5 * time.Second)
			for runtime.NumGoroutine() > before {
				if time.Now().After(deadline) {
					buf := make([]byte, 1<<16)
					t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func httpServeTest(t *testing.T, l net.Listener) {
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	h, err := tr.NewHTTPHandler(HTTPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})
	srv := NewHTTPServer(mux)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	base := "http://" + l.Addr().String()

	get := func(path string) (*http.Response, []byte, bool) {
		t.Helper()
		reused := false
		trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, base+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp, body, reused
	}
	hash := httpTestHash(600)
	for i := range 3 {
		resp, body, reused := get("/announce?" + httpQuery(hash, httpTestPeerID(i), 6881+i, 100, ""))
		m := httpDecode(t, "announce over a socket", body)
		if resp.StatusCode != 200 || m["failure reason"] != nil || m["incomplete"] != int64(i+1) {
			t.Fatalf("announce %d: status %d, reply %v", i, resp.StatusCode, m)
		}
		if i > 0 && !reused {
			t.Errorf("announce %d did not reuse the kept-alive connection", i)
		}
	}
	if resp, _, _ := get("/nowhere"); resp.StatusCode != 404 {
		t.Errorf("GET /nowhere: status %d", resp.StatusCode)
	}

	// Shutdown waits for the slow request, which completes.
	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- string(b)
	}()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v; want ErrServerClosed", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v before the request in progress ended", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if got := <-slow; got != "done" {
		t.Errorf("request in progress during Shutdown: %q", got)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Errorf("the listener still accepts after Shutdown")
	}
	if err := srv.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v; want ErrServerClosed", err)
	}
	if err := srv.ListenAndServe(); !errors.Is(err, ErrServerClosed) {
		t.Errorf("ListenAndServe after Shutdown: %v; want ErrServerClosed", err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close after Shutdown: %v", err)
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

// httpListenTest returns the handler of a new tracker and a loopback
// listener from ListenTCP.
func httpListenTest(t *testing.T) (*HTTPHandler, net.Listener) {
	t.Helper()
	tr := newTestTracker(t, Config{})
	h, err := tr.NewHTTPHandler(HTTPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ListenTCP("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return h, l
}

// TestListenTCP serves a tracker over TLS on a listener from ListenTCP:
// the server NewHTTPServer returns is a plain http.Server, whose every
// field and method work.
func TestListenTCP(t *testing.T) {
	h, l := httpListenTest(t)
	// A certificate for 127.0.0.1, and a client that trusts it.
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.StartTLS()
	client := ts.Client()
	srv := NewHTTPServer(h)
	srv.TLSConfig = ts.TLS.Clone()
	ts.Close()
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(l, "", "") }()

	hash := httpTestHash(700)
	resp, err := client.Get("https://" + l.Addr().String() + "/announce?" + httpQuery(hash, httpTestPeerID(1), 6881, 100, ""))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if m := httpDecode(t, "announce over TLS", body); resp.TLS == nil || m["incomplete"] != int64(1) {
		t.Errorf("announce over TLS: TLS %v, reply %v", resp.TLS != nil, m)
	}
	client.CloseIdleConnections()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) || !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("ServeTLS after Close: %v; want ErrServerClosed", err)
	}
	if _, err := ListenTCP("tcp", "256.0.0.1:0"); err == nil {
		t.Errorf("ListenTCP on a bad address succeeded")
	}
}

func TestHTTPErrorLog(t *testing.T) {
	var buf bytes.Buffer
	w := httpErrorLog{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	w.Write([]byte("http: TLS handshake error from 192.0.2.1:5555: EOF\n"))
	w.Write([]byte("http: panic serving 192.0.2.1:5555: boom\n"))
	got := buf.String()
	if !strings.Contains(got, `level=DEBUG msg="http: TLS handshake error`) || !strings.Contains(got, `level=WARN msg="http: panic serving`) {
		t.Errorf("logged:\n%s", got)
	}
}
