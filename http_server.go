package tracker

// A net/http server set up for tracker traffic, for programs that do not
// already run one.

import (
	"context"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// NewHTTPServer returns an [http.Server] set up for tracker traffic that
// serves handler: an [HTTPHandler], or a mux the handler is mounted on. It
// reads a request's headers within 5 seconds and the whole request within
// 10, writes a reply within 30 (a full scrape can be big), closes idle
// connections after 60 seconds, and refuses request lines and headers over
// 16 KB (a scrape of 256 hashes needs about 18 KB of query). Every field
// and method of http.Server works as usual: change what you need, serve it
// with TLS, and after Shutdown or Close its Serve methods return
// [http.ErrServerClosed] (which is [ErrServerClosed]).
//
// When handler is an *HTTPHandler, net/http's own error messages go to the
// handler's Logger: at warning level (accept errors, handler panics), or
// at debug level for those any client can cause (TLS handshake errors,
// semicolons in a query). Otherwise ErrorLog is left nil and they go to
// the log package's standard logger.
//
// Serve it on a listener from [ListenTCP] rather than with its own
// ListenAndServe, which turns TCP keep-alive on for every connection, and
// wrap that listener with a [ConnLimiter] so that no client can hold all
// of the process's file descriptors.
func NewHTTPServer(handler http.Handler) *http.Server {
	s := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	if h, ok := handler.(*HTTPHandler); ok {
		s.ErrorLog = log.New(httpErrorLog{h.log}, "", 0)
	}
	return s
}

// httpErrorLog passes net/http's error messages on to a slog.Logger.
type httpErrorLog struct{ log *slog.Logger }

func (w httpErrorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := slog.LevelWarn
	for _, noise := range [...]string{"http: TLS handshake error", "http: URL query contains semicolon"} {
		if strings.HasPrefix(msg, noise) {
			level = slog.LevelDebug
		}
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}

// ListenTCP listens on the TCP address addr (":6969", say) for an HTTP
// tracker. network is "tcp", "tcp4" or "tcp6". Unlike [net.Listen], it
// leaves TCP keep-alive off on accepted connections: a server's idle
// timeout already closes connections a client forgot, and turning
// keep-alive on costs four system calls per connection, which matters when
// clients (qBittorrent, µTorrent) open one per announce.
func ListenTCP(network, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(context.Background(), network, addr)
}
