package tracker

import "time"

// Observer is told about every request a front-end answers, for metrics
// and tracing; the tracker itself publishes nothing globally. The
// Prometheus adapter in the nested module github.com/annuaire/tracker/prom
// is one.
//
// ObserveRequest runs on the request path, once per request, after the
// reply is written: implementations must be safe for concurrent use, fast,
// and must not block. The strings in RequestInfo are constants of this
// package, so an implementation can map them to pre-built metrics without
// allocating.
type Observer interface {
	ObserveRequest(r RequestInfo)
}

// RequestInfo describes one request answered by a front-end.
type RequestInfo struct {
	// Protocol is "http" or "udp".
	Protocol string
	// Op is "announce", "scrape", "connect" (UDP only), or "unknown" (a
	// UDP request with a valid connection id and an action BEP 15 does not
	// define).
	Op string
	// Failure is empty when the request succeeded, and otherwise the
	// [Kind] of the failure by name, such as "rate_limited".
	Failure string
	// Duration is the time from decoding the request to the reply handed
	// to the socket.
	Duration time.Duration
}

// The values of RequestInfo.Protocol and RequestInfo.Op.
const (
	ProtocolHTTP = "http"
	ProtocolUDP  = "udp"
	OpAnnounce   = "announce"
	OpScrape     = "scrape"
	OpConnect    = "connect"
	OpUnknown    = "unknown"
)

// ObserverFunc adapts a function to [Observer].
type ObserverFunc func(RequestInfo)

// ObserveRequest calls f.
func (f ObserverFunc) ObserveRequest(r RequestInfo) { f(r) }

// observe reports a request to the configured observer, if any. start is
// the zero time when there is none (see observeStart), so that a tracker
// without an observer does not read the clock twice per request.
func (t *Tracker) observe(protocol, op string, start time.Time, err error) {
	o := t.cfg.Observer
	if o == nil {
		return
	}
	r := RequestInfo{Protocol: protocol, Op: op, Duration: time.Since(start)}
	if err != nil {
		e, _ := clientError(err)
		r.Failure = e.Kind.String()
	}
	o.ObserveRequest(r)
}

// observeStart returns the start time of a request when an observer will
// want its duration, and the zero time otherwise.
func (t *Tracker) observeStart() time.Time {
	if t.cfg.Observer == nil {
		return time.Time{}
	}
	return time.Now()
}
