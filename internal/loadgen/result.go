package loadgen

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Result is what a run measured. Rates count valid replies only: a fast
// wrong answer is not a result.
type Result struct {
	Proto       string // "udp" or "http"
	Target      string // the address or URL loaded
	Mode        Mode
	Flood       FloodShape
	Sources     int // source addresses
	HTTPClose   bool
	TLSResume   bool // over HTTPS, sessions resumed
	Concurrency int  // UDP requests in flight, or HTTP connections

	Swarms, Peers, PrefillPeers, NumWant int

	// Prefill counts the prefill's announces; PrefillRate is the number
	// of peers accepted (valid replies) per second while filling.
	Prefill         Counts
	PrefillDuration time.Duration
	PrefillRate     float64

	// The figures of the measured run: its counts, the refusals by their
	// text, valid replies per second, and the latencies of the valid
	// replies.
	WindowResult
	// Windows has the figures of each of Config.Windows.
	Windows []WindowResult

	// ClientCPU is the generator's CPU use during the window, in cores
	// (1 is one core busy); ClientCPUPerRequest is that CPU time divided
	// by the requests sent.
	ClientCPU           float64
	ClientCPUPerRequest time.Duration

	// The server's figures, with Config.ServerPID: its CPU use during the
	// window in cores, the rate per core of server CPU, and its resident
	// memory before the prefill, after it and at the end of the run.
	// BytesPerPeer is the memory growth during the prefill divided by the
	// peers it accepted.
	ServerPID        int
	ServerCPU        float64
	RatePerServerCPU float64
	RSSBefore        int64
	RSSAfterPrefill  int64
	RSSAfter         int64
	BytesPerPeer     float64
}

// WindowResult is what the measured run, or one of its windows, measured.
type WindowResult struct {
	Name string
	// Counts are those of the requests sent in the window.
	Counts
	// Reasons counts the refusals by their text, most frequent first.
	Reasons  []Reason
	Duration time.Duration
	// Rate is valid replies per second.
	Rate float64
	// Latencies of the valid replies, from send (or from when the request
	// was due, with Config.Rate) to the end of the reply (including the
	// TCP connection when one is opened).
	P50, P99, P999, Max, Mean time.Duration
}

// measured fills in w from the stats of a window of length d.
func (w *WindowResult) measured(st *stats, d time.Duration) {
	w.Counts = st.Counts
	w.Reasons = slices.Clone(st.reasons)
	slices.SortStableFunc(w.Reasons, func(a, b Reason) int { return cmp.Compare(b.N, a.N) })
	w.Duration = d
	w.Rate = float64(st.OK) / d.Seconds()
	if h := st.hist; h != nil {
		w.P50 = h.quantile(0.50)
		w.P99 = h.quantile(0.99)
		w.P999 = h.quantile(0.999)
		w.Max = time.Duration(h.max)
		w.Mean = h.mean()
	}
}

// AnsweredShare returns the fraction of the requests sent that got a
// valid reply.
func (w *WindowResult) AnsweredShare() float64 {
	if w.Requests == 0 {
		return 0
	}
	return float64(w.OK) / float64(w.Requests)
}

// reasonsText returns the refusals as "N "text", ...".
func reasonsText(rs []Reason) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d %q", r.N, r.Text)
	}
	return b.String()
}

// reasonsMap returns the refusals as a map from text to count, for JSON.
func reasonsMap(rs []Reason) map[string]uint64 {
	m := make(map[string]uint64, len(rs))
	for _, r := range rs {
		m[r.Text] = r.N
	}
	return m
}

// MalformedShare returns the fraction of the replies, prefill included,
// that were malformed.
func (r *Result) MalformedShare() float64 {
	replies := r.Replies() + r.Prefill.Replies()
	if replies == 0 {
		return 0
	}
	return float64(r.Malformed+r.Prefill.Malformed) / float64(replies)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// String returns a one-line summary.
func (r *Result) String() string {
	var b strings.Builder
	kind := r.Mode.String()
	if r.Proto != "udp" {
		switch {
		case r.HTTPClose && r.TLSResume:
			kind += " (new connection per request, sessions resumed)"
		case r.HTTPClose:
			kind += " (new connection per request)"
		default:
			kind += " (keep-alive)"
		}
	}
	if r.Flood != NoFlood {
		kind = r.Flood.String() + " flood"
	}
	fmt.Fprintf(&b, "%s %s %s: %.0f req/s, p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms; %d sent: %d ok, %d failures, %d malformed, %d timeouts, %d errors",
		r.Proto, kind, r.Target, r.Rate, ms(r.P50), ms(r.P99), ms(r.P999),
		r.Requests, r.OK, r.Failures, r.Malformed, r.Timeouts, r.Errors)
	if len(r.Reasons) > 0 {
		fmt.Fprintf(&b, " (%s)", reasonsText(r.Reasons))
	}
	if r.Late > 0 {
		fmt.Fprintf(&b, ", %d late", r.Late)
	}
	if r.Proto == "http" {
		fmt.Fprintf(&b, ", %d connects, %d reconnects", r.Connects, r.Reconnects)
	}
	fmt.Fprintf(&b, "; generator CPU %.0f%% (%.2f µs/req)", 100*r.ClientCPU, float64(r.ClientCPUPerRequest.Nanoseconds())/1000)
	if r.ServerPID != 0 {
		fmt.Fprintf(&b, "; server CPU %.0f%%, %.0f req/s per server CPU", 100*r.ServerCPU, r.RatePerServerCPU)
	}
	if r.PrefillPeers > 0 {
		fmt.Fprintf(&b, "; prefill %d/%d peers at %.0f peers/s", r.Prefill.OK, r.PrefillPeers, r.PrefillRate)
		if n := r.Prefill.Requests - r.Prefill.OK; n > 0 {
			fmt.Fprintf(&b, " (%d not accepted)", n)
		}
		if r.ServerPID != 0 {
			fmt.Fprintf(&b, ", RSS +%.1f MiB = %.1f B/peer", float64(r.RSSAfterPrefill-r.RSSBefore)/(1<<20), r.BytesPerPeer)
		}
	}
	return b.String()
}

// MarshalJSON encodes r as one flat object, durations in milliseconds or
// seconds as their names say, so that scripts can pick fields with grep.
func (r *Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Proto       string `json:"proto"`
		Target      string `json:"target"`
		Mode        string `json:"mode"`
		Flood       string `json:"flood"`
		Sources     int    `json:"sources"`
		HTTPClose   bool   `json:"http_close"`
		TLSResume   bool   `json:"tls_resume"`
		Concurrency int    `json:"concurrency"`
		Swarms      int    `json:"swarms"`
		Peers       int    `json:"peers"`
		NumWant     int    `json:"numwant"`

		PrefillPeers     int     `json:"prefill_peers"`
		PrefillRequests  uint64  `json:"prefill_requests"`
		PrefillOK        uint64  `json:"prefill_ok"`
		PrefillFailures  uint64  `json:"prefill_failures"`
		PrefillMalformed uint64  `json:"prefill_malformed"`
		PrefillTimeouts  uint64  `json:"prefill_timeouts"`
		PrefillErrors    uint64  `json:"prefill_errors"`
		PrefillSeconds   float64 `json:"prefill_s"`
		PrefillRate      float64 `json:"prefill_rate"`

		DurationSeconds float64           `json:"duration_s"`
		Requests        uint64            `json:"requests"`
		OK              uint64            `json:"ok"`
		Failures        uint64            `json:"failures"`
		Malformed       uint64            `json:"malformed"`
		Timeouts        uint64            `json:"timeouts"`
		Errors          uint64            `json:"errors"`
		Reasons         map[string]uint64 `json:"failure_reasons"`
		Late            uint64            `json:"late"`
		Connects        uint64            `json:"connects"`
		Reconnects      uint64            `json:"reconnects"`
		Rate            float64           `json:"rate"`
		P50             float64           `json:"p50_ms"`
		P99             float64           `json:"p99_ms"`
		P999            float64           `json:"p999_ms"`
		Max             float64           `json:"max_ms"`
		Mean            float64           `json:"mean_ms"`

		ClientCPU           float64 `json:"client_cpu"`
		ClientCPUPerRequest float64 `json:"client_cpu_us_per_req"`

		ServerPID        int     `json:"server_pid"`
		ServerCPU        float64 `json:"server_cpu"`
		RatePerServerCPU float64 `json:"rate_per_server_cpu"`
		RSSBefore        int64   `json:"rss_before"`
		RSSAfterPrefill  int64   `json:"rss_after_prefill"`
		RSSAfter         int64   `json:"rss_after"`
		BytesPerPeer     float64 `json:"bytes_per_peer"`
	}{
		r.Proto, r.Target, r.Mode.String(), r.Flood.String(), r.Sources, r.HTTPClose, r.TLSResume, r.Concurrency, r.Swarms, r.Peers, r.NumWant,
		r.PrefillPeers, r.Prefill.Requests, r.Prefill.OK, r.Prefill.Failures, r.Prefill.Malformed,
		r.Prefill.Timeouts, r.Prefill.Errors, r.PrefillDuration.Seconds(), r.PrefillRate,
		r.Duration.Seconds(), r.Requests, r.OK, r.Failures, r.Malformed, r.Timeouts, r.Errors, reasonsMap(r.Reasons), r.Late,
		r.Connects, r.Reconnects, r.Rate, ms(r.P50), ms(r.P99), ms(r.P999), ms(r.Max), ms(r.Mean),
		r.ClientCPU, float64(r.ClientCPUPerRequest.Nanoseconds()) / 1000,
		r.ServerPID, r.ServerCPU, r.RatePerServerCPU, r.RSSBefore, r.RSSAfterPrefill, r.RSSAfter, r.BytesPerPeer,
	})
}
