//go:build unix

package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ssrfMitigation tells whether a libtorrent session announcing to u keeps
// ssrf_mitigation on. It does, as libtorrent does by default, unless the
// tracker is on loopback with a path that does not start with /announce:
// libtorrent would refuse that tracker ("blocked by SSRF mitigation"),
// while a real client would meet it on a public address, where the rule
// does not apply.
func ssrfMitigation(u *url.URL) bool {
	ip, err := netip.ParseAddr(u.Hostname())
	return err != nil || !ip.IsLoopback() || strings.HasPrefix(u.Path, "/announce")
}

// event is one line that session.py prints on stdout.
type event struct {
	Ev         string  `json:"ev"`
	T          float64 `json:"t"`
	URL        string  `json:"url"`
	NumPeers   int     `json:"num_peers"`
	Event      int     `json:"event"`
	Reason     string  `json:"reason"`
	Error      string  `json:"error"`
	Msg        string  `json:"msg"`
	Complete   int     `json:"complete"`
	Incomplete int     `json:"incomplete"`
	Addr       string  `json:"addr"`
	Progress   float64 `json:"progress"`
	Peers      int     `json:"peers"`
	State      string  `json:"state"`
	Outgoing   bool    `json:"outgoing"`
	Uploaded   int64   `json:"uploaded"`
	Downloaded int64   `json:"downloaded"`
}

// ltSession is one libtorrent session run by session.py.
type ltSession struct {
	role string
	p    *proc

	mu      sync.Mutex
	events  []event
	seen    Seen
	status  event         // the last status event
	changed chan struct{} // closed and replaced on every event
}

type sessionConfig struct {
	Role       string  `json:"role"`
	Torrent    string  `json:"torrent"`
	Save       string  `json:"save"`
	Listen     string  `json:"listen"`
	SSRF       bool    `json:"ssrf"`
	Encryption string  `json:"encryption"`
	Reannounce float64 `json:"reannounce"`
}

func encryptionName(e Encryption) string {
	switch e {
	case EncryptionDisabled:
		return "disabled"
	case EncryptionRequired:
		return "required"
	}
	return ""
}

// startSession starts a libtorrent session of tor, announcing to tracker,
// with its content in save.
func startSession(t testing.TB, role string, sc *Scenario, tracker *url.URL, save string) (*ltSession, error) {
	dir := t.TempDir()
	torrent, err := writeTorrent(dir, sc.Torrent, tracker.String())
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	cfg := sessionConfig{
		Role:       role,
		Torrent:    torrent,
		Save:       save,
		Listen:     netip.AddrPortFrom(netip.MustParseAddr(loopback(tracker)), 0).String(),
		SSRF:       ssrfMitigation(tracker),
		Encryption: encryptionName(sc.Encryption),
		Reannounce: sc.reannounce().Seconds(),
	}
	if role == "scrape" {
		// libtorrent refuses HTTP scrapes of a loopback tracker under
		// ssrf_mitigation, whatever the path.
		cfg.SSRF = false
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	s := &ltSession{role: role, changed: make(chan struct{})}
	cmd := exec.Command(pythonPath, sessionScript(t), string(js))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	s.p, err = startProc(t, "libtorrent "+role+"er", cmd, s.onLine)
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	if !cfg.SSRF && role != "scrape" {
		s.p.tail.add(fmt.Sprintf("(ssrf_mitigation off: the loopback tracker's path %q does not start with /announce)", tracker.Path))
	}
	return s, nil
}

// onLine takes in the events session.py prints; other lines, and fatal
// errors, go to the log tail.
func (s *ltSession) onLine(line string) bool {
	if !strings.HasPrefix(line, "{") {
		return false
	}
	var ev event
	if json.Unmarshal([]byte(line), &ev) != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch ev.Ev {
	case "status":
		s.status = ev
		s.seen.Uploaded, s.seen.Downloaded = ev.Uploaded, ev.Downloaded
	case "announce":
		s.seen.Announces++
	case "reply":
		s.seen.Replies = append(s.seen.Replies, ev.NumPeers)
	case "tracker_error":
		msg := ev.Reason
		if msg == "" {
			msg = ev.Error
		}
		s.seen.Errors = append(s.seen.Errors, msg)
	case "warning":
		s.seen.Warnings = append(s.seen.Warnings, ev.Msg)
	case "peer":
		if ev.Outgoing && !slices.Contains(s.seen.Peers, ev.Addr) {
			s.seen.Peers = append(s.seen.Peers, ev.Addr)
		}
	}
	s.events = append(s.events, ev)
	close(s.changed)
	s.changed = make(chan struct{})
	return ev.Ev != "fatal"
}

// wait waits until an event satisfies match and returns it. It fails when
// ctx ends, the session exits or reports a fatal error, or, when
// giveUp is set, the tracker failed three times in a row.
func (s *ltSession) wait(ctx context.Context, what string, giveUp bool, match func(event) bool) (event, error) {
	next := 0
	for {
		s.mu.Lock()
		evs, changed := s.events[next:], s.changed
		next = len(s.events)
		s.mu.Unlock()
		for _, ev := range evs {
			if match(ev) {
				return ev, nil
			}
			if ev.Ev == "fatal" {
				return ev, fmt.Errorf("%s failed: %s", s.p.name, ev.Msg)
			}
		}
		if giveUp && s.failing() {
			return event{}, fmt.Errorf("%s gave up waiting for %s: the tracker failed three times in a row", s.p.name, what)
		}
		select {
		case <-changed:
		case <-s.p.done:
			// Events printed before the exit are in by now: Wait
			// returns after stdout is copied.
			s.mu.Lock()
			more := len(s.events) > next
			s.mu.Unlock()
			if !more {
				return event{}, fmt.Errorf("%s %s while waiting for %s", s.p.name, s.p.exitError(), what)
			}
		case <-ctx.Done():
			return event{}, fmt.Errorf("%s: timed out waiting for %s (%w); last status: %s",
				s.p.name, what, ctx.Err(), s.statusLine())
		}
	}
}

// waitCompleted waits a little for the tracker's answer to the completed
// announce, so that stopping the session does not cut it short. A missing
// answer shows in what the session saw.
func (s *ltSession) waitCompleted(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	sent := false
	s.wait(ctx, "an answer to the completed announce", false, func(ev event) bool {
		if ev.Ev == "announce" && ev.Event == eventCompleted {
			sent = true
		}
		return sent && (ev.Ev == "reply" || ev.Ev == "tracker_error")
	})
}

// eventCompleted is libtorrent's code for the completed announce.
const eventCompleted = 1

// failing reports whether the last three tracker responses were errors.
func (s *ltSession) failing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i := len(s.events) - 1; i >= 0 && n < 3; i-- {
		switch s.events[i].Ev {
		case "reply":
			return false
		case "tracker_error":
			n++
		}
	}
	return n >= 3
}

func (s *ltSession) statusLine() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status.Ev == "" {
		return "none"
	}
	return fmt.Sprintf("%s, progress %.1f%%, %d peers", s.status.State, 100*s.status.Progress, s.status.Peers)
}

func (s *ltSession) send(cmd string) {
	fmt.Fprintln(s.p.stdin, cmd)
}

// stop ends the session: it sends the stopped announce, then exits.
func (s *ltSession) stop() {
	s.p.stop(0, 15*time.Second)
}

// observed returns a copy of what the session saw of the tracker.
func (s *ltSession) observed() Seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Seen{
		Announces:  s.seen.Announces,
		Replies:    append([]int(nil), s.seen.Replies...),
		Errors:     append([]string(nil), s.seen.Errors...),
		Warnings:   append([]string(nil), s.seen.Warnings...),
		Peers:      append([]string(nil), s.seen.Peers...),
		Uploaded:   s.seen.Uploaded,
		Downloaded: s.seen.Downloaded,
	}
}

// report describes what went wrong in a scenario: the failure, the tracker
// errors each session saw (with a hint when libtorrent's SSRF mitigation
// refused the tracker), and each process's log tail.
func report(err error, sessions []*ltSession, procs ...*proc) error {
	var b strings.Builder
	fmt.Fprintf(&b, "interop: %v", err)
	ssrf := false
	for _, s := range sessions {
		if s == nil {
			continue
		}
		seen := s.observed()
		fmt.Fprintf(&b, "\n%s: %d announces, %d replies", s.p.name, seen.Announces, len(seen.Replies))
		if len(seen.Errors) > 0 {
			fmt.Fprintf(&b, ", tracker errors %q", dedup(seen.Errors))
		}
		if len(seen.Warnings) > 0 {
			fmt.Fprintf(&b, ", tracker warnings %q", dedup(seen.Warnings))
		}
		for _, e := range seen.Errors {
			ssrf = ssrf || strings.Contains(strings.ToLower(e), "ssrf")
		}
		procs = append(procs, s.p)
	}
	if ssrf {
		b.WriteString("\nlibtorrent's ssrf_mitigation refused the tracker: on loopback it allows only paths that start with /announce, " +
			"and never a query with info_hash, event, port, left, key, uploaded, downloaded, corrupt or peer_id")
	}
	for _, p := range procs {
		if p != nil {
			b.WriteString("\n")
			b.WriteString(p.logTail())
		}
	}
	return errors.New(b.String())
}

// dedup returns msgs without repeats, each once with its count.
func dedup(msgs []string) []string {
	var out []string
	count := map[string]int{}
	for _, m := range msgs {
		if count[m] == 0 {
			out = append(out, m)
		}
		count[m]++
	}
	for i, m := range out {
		if n := count[m]; n > 1 {
			out[i] = fmt.Sprintf("%s (x%d)", m, n)
		}
	}
	return out
}

// startChecked starts a libtorrent seeding session of sc.Torrent and waits
// until it has checked its content, through retryCrashes.
func startChecked(ctx context.Context, t testing.TB, sc *Scenario, tracker *url.URL) (*ltSession, error) {
	return retryCrashes(t, func() (*ltSession, error) {
		return startSession(t, "seed", sc, tracker, sc.Torrent.ContentDir)
	}, func(s *ltSession) error {
		_, err := s.wait(ctx, "a check of its content", false, func(ev event) bool { return ev.Ev == "seeding" })
		return err
	})
}

// retryCrashes starts a session with start and waits with wait. Debian's
// libtorrent 2.0.8 has been seen to crash (SIGSEGV) on rare occasions
// while checking its content, before it sends anything to a tracker: such
// a crash says nothing about the tracker, so the session is started
// again, up to twice, and the crash goes to the test's log. A crash after
// the session has announced is never retried. It returns the last
// session, nil if start failed.
func retryCrashes(t testing.TB, start func() (*ltSession, error), wait func(*ltSession) error) (*ltSession, error) {
	for attempt := 0; ; attempt++ {
		s, err := start()
		if err != nil {
			return nil, err
		}
		err = wait(s)
		if err == nil || attempt == 2 || !s.crashedSilently() {
			return s, err
		}
		t.Logf("interop: %v (before any announce); starting it again\n%s", err, s.p.logTail())
	}
}

// crashedSilently reports whether the session's process died of a crash
// signal before it sent a single announce.
func (s *ltSession) crashedSilently() bool {
	if !s.p.exited() || s.observed().Announces > 0 {
		return false
	}
	var ee *exec.ExitError
	if !errors.As(s.p.err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return false
	}
	switch ws.Signal() {
	case syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGABRT, syscall.SIGILL:
		return true
	}
	return false
}

// startSeeder starts a libtorrent seeder of sc.Torrent and waits until it
// has checked its content and heard once from the tracker, successfully or
// not.
func startSeeder(ctx context.Context, t testing.TB, sc *Scenario, tracker *url.URL) (*ltSession, error) {
	s, err := startChecked(ctx, t, sc, tracker)
	if err != nil {
		return s, err
	}
	_, err = s.wait(ctx, "a tracker response", false, func(ev event) bool {
		return ev.Ev == "reply" || ev.Ev == "tracker_error"
	})
	return s, err
}

// Libtorrent runs sc between two libtorrent sessions, each in its own
// process: a seeder of sc.Torrent, then, once the seeder has announced, a
// leecher that starts from nothing (announcing to sc.LeecherTracker, if
// set). It returns when the leecher holds a
// copy equal to the original, or fails with what went wrong and the
// sessions' logs. It gives up early when the leecher's tracker fails three
// times in a row without a reply in between. It skips t when libtorrent's
// Python module is missing.
func Libtorrent(ctx context.Context, t testing.TB, sc Scenario) (*Result, error) {
	t.Helper()
	requireLibtorrent(t)
	tracker, want, err := sc.checkContent()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, sc.timeout())
	defer cancel()
	res := &Result{}

	leecherTracker, err := sc.leecherURL(tracker)
	if err != nil {
		return nil, err
	}
	seeder, err := startSeeder(ctx, t, &sc, tracker)
	if err != nil {
		return res, report(err, []*ltSession{seeder})
	}
	defer seeder.stop()
	var leechDir string
	start := time.Now()
	leecher, err := retryCrashes(t, func() (*ltSession, error) {
		leechDir = t.TempDir() // each try starts from nothing
		return startSession(t, "leech", &sc, leecherTracker, leechDir)
	}, func(s *ltSession) error {
		_, err := s.wait(ctx, "a complete download", true, func(ev event) bool { return ev.Ev == "finished" })
		return err
	})
	if leecher == nil {
		return res, report(err, []*ltSession{seeder})
	}
	res.Elapsed = time.Since(start)
	if err == nil {
		leecher.waitCompleted(ctx)
	}
	leecher.stop()
	seeder.stop()
	res.Seeder, res.Leecher = seeder.observed(), leecher.observed()
	sessions := []*ltSession{seeder, leecher}
	if err != nil {
		return res, report(err, sessions)
	}
	if err := compareFile(filepath.Join(leechDir, sc.Torrent.Name), want); err != nil {
		return res, report(err, sessions)
	}
	return res, nil
}

// Seeder is a libtorrent seeder that runs in the background of a test.
type Seeder struct {
	s *ltSession
}

// Seed starts a libtorrent seeder of sc.Torrent, announcing to sc.Tracker,
// and returns once it has checked its content and had a successful reply
// from the tracker. Stop it with [Seeder.Stop]; the test's cleanup kills it
// at the latest. It skips t when libtorrent's Python module is missing.
func Seed(ctx context.Context, t testing.TB, sc Scenario) (*Seeder, error) {
	t.Helper()
	requireLibtorrent(t)
	tracker, err := sc.check()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, sc.timeout())
	defer cancel()
	s, err := startChecked(ctx, t, &sc, tracker)
	if err != nil {
		if s != nil {
			s.stop()
		}
		return nil, report(err, []*ltSession{s})
	}
	if _, err := s.wait(ctx, "a tracker reply", true, func(ev event) bool { return ev.Ev == "reply" }); err != nil {
		s.stop()
		return nil, report(err, []*ltSession{s})
	}
	return &Seeder{s: s}, nil
}

// Stop stops the seeder, which sends its stopped announce first, and waits
// until it has exited.
func (sd *Seeder) Stop() { sd.s.stop() }

// Scrape is a tracker's scrape reply for one torrent, as libtorrent reports
// it (scrape_reply_alert).
type Scrape struct {
	Complete   int // seeders
	Incomplete int // leechers
}

// LibtorrentScrape scrapes tracker for tor with libtorrent (scrape_tracker,
// then scrape_reply_alert). The session holds the torrent paused, so it
// never announces; it runs with ssrf_mitigation off, because libtorrent
// refuses HTTP scrapes of a loopback tracker otherwise. libtorrent derives
// the HTTP scrape URL by replacing the first "announce" in the URL with
// "scrape"; over UDP it sends a BEP 15 scrape of the one hash. It skips t
// when libtorrent's Python module is missing.
func LibtorrentScrape(ctx context.Context, t testing.TB, tracker string, tor *Torrent) (Scrape, error) {
	t.Helper()
	requireLibtorrent(t)
	sc := Scenario{Tracker: tracker, Torrent: tor}
	u, err := sc.check()
	if err != nil {
		return Scrape{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, sc.timeout())
	defer cancel()
	s, err := startSession(t, "scrape", &sc, u, t.TempDir())
	if err != nil {
		return Scrape{}, err
	}
	defer s.stop()
	if _, err := s.wait(ctx, "the torrent's start", false, func(ev event) bool { return ev.Ev == "added" }); err != nil {
		return Scrape{}, report(err, []*ltSession{s})
	}
	s.send("scrape")
	ev, err := s.wait(ctx, "a scrape reply", false, func(ev event) bool {
		return ev.Ev == "scrape" || ev.Ev == "scrape_failed"
	})
	if err != nil {
		return Scrape{}, report(err, []*ltSession{s})
	}
	if ev.Ev == "scrape_failed" {
		msg := ev.Error
		if msg == "" {
			msg = ev.Msg
		}
		return Scrape{}, report(fmt.Errorf("scrape of %s failed: %s", tracker, msg), []*ltSession{s})
	}
	return Scrape{Complete: ev.Complete, Incomplete: ev.Incomplete}, nil
}
