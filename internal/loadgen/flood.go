package loadgen

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/annuaire/tracker/internal/udpwire"
)

// FloodBench measures what a flood does to a tracker and to the
// legitimate clients it serves. The legitimate load (Legit, paced by its
// Rate) runs throughout, in four windows: before the flood, during it,
// while the tracker settles after it (its made-up peers expire and its
// sweeper removes them), and after. The flood (Flood) runs during the
// second window, from addresses of its own. A probe announces a new
// torrent every ProbeEvery, as a seeder, from an address of its own, to
// tell whether the tracker still takes new torrents. The tracker's
// resident memory (Legit.ServerPID) is sampled every 100 ms and its CPU
// use read at the edges of the windows; its Prometheus metrics
// (MetricsURL) are read at the edges of the windows and every second.
//
// The bench loads a UDP tracker: the probe speaks BEP 15.
type FloodBench struct {
	// Legit is the legitimate load: its target, workload, prefill,
	// Sources and Rate. The bench sets its Windows.
	Legit Config
	// Flood is the flood: its Flood shape, Source, Sources, InFlight and
	// Rate. It loads Legit's target; the bench sets its Duration.
	Flood Config
	// The windows' lengths. Settle should cover the tracker's peer TTL
	// and a cycle of its sweeper, so that After shows what is left.
	Before, During, Settle, After time.Duration
	// MetricsURL is the tracker's /metrics: annuaire_peers,
	// annuaire_swarms and annuaire_failures_total{kind} are read. Empty:
	// none is read.
	MetricsURL string
	// Probe is the probe's source address; the zero Addr lets the system
	// choose. ProbeEvery is the time between its announces: if zero, 250 ms.
	Probe      netip.Addr
	ProbeEvery time.Duration
}

// The windows of a flood bench.
var floodWindows = [...]string{"before", "during", "settle", "after"}

// FloodResult is what a flood bench measured.
type FloodResult struct {
	// Legit is the legitimate load's result, with a window for each of
	// before, during, settle and after.
	Legit *Result
	// Flood is the flood's result; FloodErr says why it failed, if it did
	// (a flood that gets no reply at all does).
	Flood    *Result
	FloodErr string
	// The tracker's resident memory: at the start of the first window,
	// the most sampled from then to the end, and at the end.
	RSSBefore, RSSPeak, RSSAfter int64
	// ServerCPU is the tracker's CPU use in each window, in cores.
	ServerCPU []float64
	// Drops are the datagrams the system dropped in each window on the
	// tracker's UDP port, its receive buffers full (Linux).
	Drops []uint64
	// Metrics are the tracker's metrics at the start of the first window
	// and at the end of each; PeakPeers and PeakSwarms the most read, once
	// a second, from the start to the end.
	Metrics               []Metrics
	PeakPeers, PeakSwarms float64
	// Probes are the probe's announces in each window.
	Probes []ProbeCounts
}

// Metrics are the figures a flood bench reads from a tracker's /metrics.
type Metrics struct {
	Peers, Swarms float64
	Failures      map[string]float64 // annuaire_failures_total by kind
	Err           string             // why they could not be read
}

// ProbeCounts counts the announces of new torrents in a window: Served
// when the reply counts the probe among the seeders (the tracker took
// the peer), NotStored when a valid reply does not, Refused when the
// tracker answered with an error (Reasons), Unanswered when three tries a
// second apart got no reply.
type ProbeCounts struct {
	Tried, Served, NotStored, Refused, Unanswered uint64
	Reasons                                       []Reason
}

// Run prefills the tracker if Legit says so, then runs the windows, and
// returns what it measured. It stops early, with ctx's error, when ctx is
// done.
func (b *FloodBench) Run(ctx context.Context) (*FloodResult, error) {
	if b.Legit.UDP == "" {
		return nil, errors.New("loadgen: a flood bench needs a UDP target")
	}
	if b.Legit.Flood != NoFlood || b.Flood.Flood == NoFlood {
		return nil, errors.New("loadgen: a flood bench needs a legitimate load and a flood shape")
	}
	flood := b.Flood
	flood.UDP, flood.HTTP = b.Legit.UDP, ""
	flood.Duration, flood.Warmup, flood.Windows, flood.ServerPID = b.During, 0, nil, 0
	fg, err := New(flood)
	if err != nil {
		return nil, err
	}
	res := &FloodResult{Metrics: make([]Metrics, len(floodWindows)+1), Probes: make([]ProbeCounts, len(floodWindows))}
	legit := b.Legit
	pid := legit.ServerPID
	var (
		current  atomic.Int32 // the window under way, -1 before the first
		bg       sync.WaitGroup
		stopBg   = make(chan struct{})
		floodRes *Result
		floodErr error
		peak     atomic.Int64
		cpuAt    time.Duration // the tracker's CPU time at the last edge
		edgeAt   time.Time
		dropsAt  uint64 // the drops on its port at the last edge
		dropsErr error
	)
	port, err := udpPort(legit.UDP)
	if err != nil {
		return nil, err
	}
	current.Store(-1)
	legit.Windows = []Window{{floodWindows[0], b.Before}, {floodWindows[1], b.During}, {floodWindows[2], b.Settle}, {floodWindows[3], b.After}}
	legit.OnWindow = func(i int) {
		if dropsErr == nil {
			var n uint64
			if n, dropsErr = udpDrops(port); dropsErr == nil && i > 0 {
				res.Drops = append(res.Drops, n-dropsAt)
			}
			dropsAt = n
		}
		if pid != 0 {
			cpu, err := procCPU(pid)
			if i > 0 && err == nil {
				res.ServerCPU = append(res.ServerCPU, float64(cpu-cpuAt)/float64(time.Since(edgeAt)))
			}
			cpuAt, edgeAt = cpu, time.Now()
		}
		if i == 0 && pid != 0 {
			res.RSSBefore, _ = procRSS(pid)
			peak.Store(res.RSSBefore)
			bg.Go(func() { sampleRSS(pid, stopBg, &peak) })
		}
		res.Metrics[i] = readMetrics(ctx, b.MetricsURL)
		if i == 0 && b.MetricsURL != "" {
			bg.Go(func() { res.PeakPeers, res.PeakSwarms = samplePeaks(ctx, b.MetricsURL, stopBg) })
		}
		if i == 1 {
			bg.Go(func() { floodRes, floodErr = fg.Run(ctx) })
		}
		current.Store(int32(i))
		if i == len(floodWindows) && pid != 0 {
			res.RSSAfter, _ = procRSS(pid)
		}
	}
	lg, err := New(legit)
	if err != nil {
		return nil, err
	}
	every := b.ProbeEvery
	if every == 0 {
		every = 250 * time.Millisecond
	}
	pr, err := newProber(lg, b.Probe)
	if err != nil {
		return nil, err
	}
	defer pr.conn.Close()
	defer func() {
		select {
		case <-stopBg:
		default:
			close(stopBg)
		}
		bg.Wait()
	}()
	bg.Go(func() { pr.run(ctx, stopBg, every, &current, res.Probes) })
	res.Legit, err = lg.Run(ctx)
	close(stopBg)
	bg.Wait()
	if err != nil {
		return res, err
	}
	res.Flood = floodRes
	if floodErr != nil {
		res.FloodErr = floodErr.Error()
	}
	res.RSSPeak = max(peak.Load(), res.RSSAfter)
	for _, m := range res.Metrics {
		res.PeakPeers, res.PeakSwarms = max(res.PeakPeers, m.Peers), max(res.PeakSwarms, m.Swarms)
	}
	return res, nil
}

// udpPort returns the port of a host:port.
func udpPort(hostport string) (uint16, error) {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0, fmt.Errorf("loadgen: %w", err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("loadgen: port %q: %w", p, err)
	}
	return uint16(n), nil
}

// sampleRSS keeps in peak the most resident memory of process pid, read
// every 100 ms until stop is closed.
func sampleRSS(pid int, stop <-chan struct{}, peak *atomic.Int64) {
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			if rss, err := procRSS(pid); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
		}
	}
}

// samplePeaks reads the metrics at url every second until stop is closed,
// and returns the most peers and swarms read.
func samplePeaks(ctx context.Context, url string, stop <-chan struct{}) (peers, swarms float64) {
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return peers, swarms
		case <-tk.C:
			if m := readMetrics(ctx, url); m.Err == "" {
				peers, swarms = max(peers, m.Peers), max(swarms, m.Swarms)
			}
		}
	}
}

var metricsClient = &http.Client{Timeout: 5 * time.Second}

// readMetrics reads the flood bench's figures from a Prometheus text
// exposition at url.
func readMetrics(ctx context.Context, url string) Metrics {
	if url == "" {
		return Metrics{}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Metrics{Err: err.Error()}
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return Metrics{Err: err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Metrics{Err: resp.Status}
	}
	m, err := parseMetrics(resp.Body)
	if err != nil {
		return Metrics{Err: err.Error()}
	}
	return m
}

// parseMetrics reads annuaire_peers, annuaire_swarms and
// annuaire_failures_total{kind} from a Prometheus text exposition.
func parseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{Failures: map[string]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if i := strings.LastIndexByte(rest, ' '); i >= 0 { // a timestamp
			rest = rest[:i]
		}
		switch {
		case name == "annuaire_peers":
			m.Peers, _ = strconv.ParseFloat(rest, 64)
		case name == "annuaire_swarms":
			m.Swarms, _ = strconv.ParseFloat(rest, 64)
		case strings.HasPrefix(name, `annuaire_failures_total{kind="`):
			kind := strings.TrimSuffix(strings.TrimPrefix(name, `annuaire_failures_total{kind="`), `"}`)
			m.Failures[kind], _ = strconv.ParseFloat(rest, 64)
		}
	}
	return m, sc.Err()
}

// prober announces new torrents over UDP, one at a time.
type prober struct {
	w      *Workload
	conn   *net.UDPConn
	connID uint64
	connAt time.Time // zero: no connection id
	buf    []byte    // the request
	reply  []byte
	txID   uint32
}

// probePeer is the peer the probe announces as: beyond every workload's.
const probePeer = floodPeerBase - 1

func newProber(g *Generator, src netip.Addr) (*prober, error) {
	raddr, err := net.ResolveUDPAddr("udp", g.cfg.UDP)
	if err != nil {
		return nil, fmt.Errorf("loadgen: probe: %w", err)
	}
	var laddr *net.UDPAddr
	if src.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	conn, err := net.DialUDP("udp", laddr, raddr)
	if err != nil {
		return nil, fmt.Errorf("loadgen: probe: %w", err)
	}
	return &prober{w: &g.w, conn: conn, buf: make([]byte, 0, 512), reply: make([]byte, 4096), txID: rand.Uint32()}, nil
}

// run announces torrent n every period until stop is closed, counting the
// outcomes in counts by the window under way (none before the first, nor
// after the last).
func (pr *prober) run(ctx context.Context, stop <-chan struct{}, every time.Duration, current *atomic.Int32, counts []ProbeCounts) {
	tk := time.NewTicker(every)
	defer tk.Stop()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		k := int(current.Load())
		if k < 0 || k >= len(counts) {
			continue
		}
		served, stored, reason, err := pr.announce(pr.w.newTorrent(n))
		c := &counts[k]
		c.Tried++
		switch {
		case err != nil:
			c.Unanswered++
		case !served:
			c.Refused++
			(*reasons)(&c.Reasons).add([]byte(reason), 1)
		case stored:
			c.Served++
		default:
			c.NotStored++
		}
	}
}

// announce announces hash as a seeder and reports whether the tracker
// answered it, whether the reply counts a seeder (the probe, stored), and
// the text of an error reply. It tries three times, a second apart.
func (pr *prober) announce(hash [20]byte) (served, stored bool, reason string, err error) {
	for range 3 {
		if pr.connAt.IsZero() || time.Since(pr.connAt) > udpConnTTL {
			if err = pr.connect(); err != nil {
				continue
			}
		}
		var action uint32
		var body []byte
		pr.buf = udpwire.AppendAnnounceRequest(pr.buf[:0], &udpwire.Announce{
			ConnID: pr.connID, TxID: pr.nextTx(), InfoHash: hash, PeerID: pr.w.PeerID(probePeer),
			Left: 0, Event: udpwire.EventStarted, NumWant: int32(pr.w.NumWant), Port: 6881,
		})
		if action, body, err = pr.roundTrip(); err != nil {
			continue
		}
		switch action {
		case udpwire.ActionAnnounce:
			if len(body) < 12 {
				return false, false, "", errors.New("short announce reply")
			}
			return true, binary.BigEndian.Uint32(body[8:]) > 0, "", nil
		case udpwire.ActionError:
			pr.connAt = time.Time{} // the connection id may have gone stale
			return false, false, strings.TrimRight(string(body), "\x00"), nil
		}
		return false, false, "", fmt.Errorf("reply of action %d", action)
	}
	return false, false, "", err
}

func (pr *prober) connect() error {
	pr.buf = udpwire.AppendConnectRequest(pr.buf[:0], pr.nextTx())
	action, body, err := pr.roundTrip()
	if err != nil {
		return err
	}
	if action != udpwire.ActionConnect || len(body) != 8 {
		return fmt.Errorf("connect: reply of action %d, %d bytes", action, len(body))
	}
	pr.connID, pr.connAt = binary.BigEndian.Uint64(body), time.Now()
	return nil
}

func (pr *prober) nextTx() uint32 {
	pr.txID++
	return pr.txID
}

// roundTrip sends the request in pr.buf and waits a second for the reply
// with its transaction id; it returns the reply's action and what follows
// its header.
func (pr *prober) roundTrip() (action uint32, body []byte, err error) {
	tx := pr.txID
	if _, err := pr.conn.Write(pr.buf); err != nil {
		return 0, nil, err
	}
	_ = pr.conn.SetReadDeadline(time.Now().Add(time.Second))
	for {
		n, err := pr.conn.Read(pr.reply)
		if err != nil {
			return 0, nil, err
		}
		h, ok := udpwire.ParseReplyHeader(pr.reply[:n])
		if ok && h.TxID == tx {
			return h.Action, pr.reply[udpwire.ReplyHeaderLen:n], nil
		}
	}
}

// String returns a summary of a few lines.
func (r *FloodResult) String() string {
	var b strings.Builder
	if r.Flood != nil {
		fmt.Fprintf(&b, "flood: %s\n", r.Flood)
	}
	if r.FloodErr != "" {
		fmt.Fprintf(&b, "flood: %s\n", r.FloodErr)
	}
	for k, w := range r.windows() {
		fmt.Fprintf(&b, "%-6s legit: %.1f%% answered of %d, p50 %.2f ms, p99 %.2f ms, %d refused, %d timeouts",
			w.Name, 100*w.AnsweredShare(), w.Requests, ms(w.P50), ms(w.P99), w.Failures, w.Timeouts)
		if len(w.Reasons) > 0 {
			fmt.Fprintf(&b, " (%s)", reasonsText(w.Reasons))
		}
		if k < len(r.Probes) {
			p := r.Probes[k]
			fmt.Fprintf(&b, "; new torrents: %d of %d served", p.Served, p.Tried)
			if p.Tried > p.Served {
				fmt.Fprintf(&b, " (%d not stored, %d refused, %d unanswered", p.NotStored, p.Refused, p.Unanswered)
				if len(p.Reasons) > 0 {
					fmt.Fprintf(&b, ": %s", reasonsText(p.Reasons))
				}
				b.WriteString(")")
			}
		}
		if m := r.Metrics[k+1]; m.Err == "" && m.Failures != nil {
			fmt.Fprintf(&b, "; at its end %.0f peers, %.0f swarms", m.Peers, m.Swarms)
		}
		if k < len(r.ServerCPU) {
			fmt.Fprintf(&b, "; server CPU %.0f%%", 100*r.ServerCPU[k])
		}
		if k < len(r.Drops) && r.Drops[k] > 0 {
			fmt.Fprintf(&b, "; %d datagrams dropped at the server's socket", r.Drops[k])
		}
		b.WriteString("\n")
	}
	if r.RSSBefore > 0 {
		fmt.Fprintf(&b, "server RSS: %.1f MiB before, %.1f MiB at most, %.1f MiB after\n",
			mib(r.RSSBefore), mib(r.RSSPeak), mib(r.RSSAfter))
	}
	if r.PeakSwarms > 0 {
		fmt.Fprintf(&b, "at most %.0f peers and %.0f swarms\n", r.PeakPeers, r.PeakSwarms)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// windows returns the legitimate load's windows.
func (r *FloodResult) windows() []WindowResult {
	if r.Legit == nil {
		return nil
	}
	return r.Legit.Windows
}

// MarshalJSON encodes r as one flat object, so that scripts can pick
// fields with grep: for each window W (before, during, settle, after),
// W_sent, W_ok, W_answered_pct, W_p50_ms, W_p99_ms and the other counts
// of the legitimate load, W_new_tried and W_new_served of the probe,
// W_server_cpu, W_server_drops (datagrams dropped at its socket), W_peers
// and W_swarms at the window's end,
// W_failures_KIND (the growth of annuaire_failures_total in the window);
// flood_* for the flood; peak_peers and peak_swarms; and rss_before,
// rss_peak, rss_after in bytes.
func (r *FloodResult) MarshalJSON() ([]byte, error) {
	m := map[string]any{
		"rss_before": r.RSSBefore, "rss_peak": r.RSSPeak, "rss_after": r.RSSAfter,
		"peak_peers": r.PeakPeers, "peak_swarms": r.PeakSwarms,
	}
	if l := r.Legit; l != nil {
		m["proto"], m["target"], m["legit_sources"] = l.Proto, l.Target, l.Sources
		m["prefill_peers"], m["prefill_ok"] = l.PrefillPeers, l.Prefill.OK
	}
	if f := r.Flood; f != nil {
		m["flood"], m["flood_sources"] = f.Flood.String(), f.Sources
		m["flood_sent"], m["flood_ok"], m["flood_failures"] = f.Requests, f.OK, f.Failures
		m["flood_timeouts"], m["flood_errors"], m["flood_malformed"] = f.Timeouts, f.Errors, f.Malformed
		m["flood_sent_rate"] = float64(f.Requests) / f.Duration.Seconds()
		m["flood_reasons"] = reasonsMap(f.Reasons)
	}
	if r.FloodErr != "" {
		m["flood_error"] = r.FloodErr
	}
	if len(r.Metrics) > 0 && r.Metrics[0].Failures != nil {
		m["start_peers"], m["start_swarms"] = r.Metrics[0].Peers, r.Metrics[0].Swarms
	}
	for k, w := range r.windows() {
		p := w.Name + "_"
		m[p+"sent"], m[p+"ok"], m[p+"failures"] = w.Requests, w.OK, w.Failures
		m[p+"timeouts"], m[p+"errors"], m[p+"malformed"] = w.Timeouts, w.Errors, w.Malformed
		m[p+"answered_pct"] = 100 * w.AnsweredShare()
		m[p+"rate"], m[p+"p50_ms"], m[p+"p99_ms"], m[p+"p999_ms"] = w.Rate, ms(w.P50), ms(w.P99), ms(w.P999)
		m[p+"reasons"] = reasonsMap(w.Reasons)
		if k < len(r.ServerCPU) {
			m[p+"server_cpu"] = r.ServerCPU[k]
		}
		if k < len(r.Drops) {
			m[p+"server_drops"] = r.Drops[k]
		}
		if k < len(r.Probes) {
			pc := r.Probes[k]
			m[p+"new_tried"], m[p+"new_served"], m[p+"new_not_stored"] = pc.Tried, pc.Served, pc.NotStored
			m[p+"new_refused"], m[p+"new_unanswered"] = pc.Refused, pc.Unanswered
			m[p+"new_reasons"] = reasonsMap(pc.Reasons)
		}
		if k+1 < len(r.Metrics) {
			from, to := r.Metrics[k], r.Metrics[k+1]
			if to.Err != "" {
				m[p+"metrics_error"] = to.Err
				continue
			}
			if to.Failures == nil {
				continue
			}
			m[p+"peers"], m[p+"swarms"] = to.Peers, to.Swarms
			for kind, n := range to.Failures {
				m[p+"failures_"+kind] = n - from.Failures[kind]
			}
		}
	}
	return json.Marshal(m)
}
