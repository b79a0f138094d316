//go:build unix

package interop

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// aria2Args returns the options aria2c runs with in a scenario: peers from
// the tracker only, on loopback, the torrent's own tracker only.
func aria2Args(t testing.TB, sc *Scenario, tracker *url.URL, dir string) ([]string, error) {
	host := loopback(tracker)
	port, err := freeTCPPort(host)
	if err != nil {
		return nil, err
	}
	// aria2 announces every Reannounce, rounded to whole seconds; with 0
	// it follows the tracker's interval.
	interval := 0
	if d := sc.reannounce(); d > 0 {
		interval = max(1, int(d.Round(time.Second)/time.Second))
	}
	args := []string{
		"--no-conf=true",
		"--dir=" + dir,
		"--interface=" + host,
		"--listen-port=" + strconv.Itoa(port),
		"--disable-ipv6=" + strconv.FormatBool(host != "::1"),
		"--enable-dht6=false",
		"--bt-enable-lpd=false",
		"--enable-peer-exchange=false",
		"--bt-tracker-interval=" + strconv.Itoa(interval),
		"--bt-tracker-connect-timeout=10",
		"--bt-tracker-timeout=20",
		"--file-allocation=none",
		"--auto-file-renaming=false",
		"--allow-overwrite=true",
		"--bt-save-metadata=false",
		"--summary-interval=0",
		"--show-console-readout=false",
		"--enable-color=false",
		"--console-log-level=notice",
		"--log=-",
		"--log-level=info",
		// aria2 resolves "127.0.0.1" itself; its c-ares resolver would
		// read the system's resolver configuration for nothing.
		"--async-dns=false",
		// A safety net: aria2 stops when the test process is gone.
		"--stop-with-process=" + strconv.Itoa(os.Getpid()),
	}
	if tracker.Scheme == "udp" {
		// aria2 sends UDP tracker requests through its IPv4 DHT socket,
		// so UDP trackers need DHT on. It starts with no node (no entry
		// point, no routing table file), so it finds no peer through it.
		if host == "::1" {
			return nil, errors.New("aria2 has no UDP tracker support over IPv6 (it uses its IPv4 DHT socket)")
		}
		dhtPort, err := freeUDPPort(host)
		if err != nil {
			return nil, err
		}
		args = append(args, "--enable-dht=true",
			"--dht-listen-port="+strconv.Itoa(dhtPort),
			"--dht-file-path="+filepath.Join(t.TempDir(), "dht.dat"))
	} else {
		args = append(args, "--enable-dht=false")
	}
	switch sc.Encryption {
	case EncryptionRequired:
		args = append(args, "--bt-require-crypto=true", "--bt-min-crypto-level=arc4")
	case EncryptionDisabled:
		// aria2 cannot refuse encryption; it answers in kind.
		args = append(args, "--bt-min-crypto-level=plain")
	}
	return args, nil
}

// aria2Proc is an aria2c process and what its log tells.
type aria2Proc struct {
	p        *proc
	complete chan struct{} // closed when aria2 says the download is complete
	once     sync.Once
}

// onLine watches aria2's log for the end of the download, and keeps the
// per-piece chatter of its info level out of the log tail.
func (a *aria2Proc) onLine(line string) bool {
	if strings.Contains(line, "Download complete:") || strings.Contains(line, "Seeding is over") {
		a.once.Do(func() { close(a.complete) })
	}
	for _, chatter := range []string{" piece index=", "we got new piece", " request index=", " have index=", " cancel index="} {
		if strings.Contains(line, chatter) {
			return true
		}
	}
	return false
}

func startAria2(t testing.TB, role string, sc *Scenario, tracker *url.URL, dir string, extra ...string) (*aria2Proc, error) {
	bin := requireProgram(t, "aria2c", "aria2")
	torrent, err := writeTorrent(t.TempDir(), sc.Torrent, tracker.String())
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	args, err := aria2Args(t, sc, tracker, dir)
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	args = append(append(args, extra...), torrent)
	a := &aria2Proc{complete: make(chan struct{})}
	a.p, err = startProc(t, "aria2 "+role, exec.Command(bin, args...), a.onLine)
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	return a, nil
}

// Aria2 runs sc with aria2c as the leecher and a libtorrent seeder. aria2
// runs with --seed-time=0: once complete it sends its stopped announce
// (with left=0; it never sends completed) and exits. It re-announces every
// [Scenario.Reannounce] (--bt-tracker-interval), peers or not. Aria2
// returns once aria2 has exited with status 0 and its copy equals the
// original. It skips t when aria2c or libtorrent's Python module is
// missing.
//
// aria2 supports UDP trackers only with its DHT on, over IPv4: for a udp
// URL it runs with DHT enabled but without any node to talk to.
func Aria2(ctx context.Context, t testing.TB, sc Scenario) (*Result, error) {
	t.Helper()
	requireProgram(t, "aria2c", "aria2")
	requireLibtorrent(t)
	if err := sc.oneTracker(); err != nil {
		return nil, err
	}
	tracker, want, err := sc.checkContent()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, sc.timeout())
	defer cancel()
	res := &Result{}
	seeder, err := startSeeder(ctx, t, &sc, tracker)
	if err != nil {
		return res, report(err, []*ltSession{seeder})
	}
	defer seeder.stop()

	dir := t.TempDir()
	start := time.Now()
	leecher, err := startAria2(t, "leecher", &sc, tracker, dir, "--seed-time=0")
	if err != nil {
		return res, report(err, []*ltSession{seeder})
	}
	select {
	case <-leecher.complete:
		res.Elapsed = time.Since(start)
	case <-leecher.p.done:
		res.Elapsed = time.Since(start)
	case <-ctx.Done():
	}
	// After completion aria2 stops by itself: give it time to send its
	// stopped announce and exit.
	exitCtx, exitCancel := context.WithTimeout(ctx, 20*time.Second)
	defer exitCancel()
	select {
	case <-leecher.p.done:
	case <-exitCtx.Done():
	}
	leecher.p.stop(syscall.SIGINT, 10*time.Second)
	seeder.stop()
	res.Seeder = seeder.observed()
	sessions := []*ltSession{seeder}
	switch {
	case ctx.Err() != nil && res.Elapsed == 0:
		return res, report(fmt.Errorf("aria2 leecher: timed out waiting for a complete download (%w)", ctx.Err()), sessions, leecher.p)
	case leecher.p.err != nil:
		return res, report(fmt.Errorf("aria2 leecher %s", leecher.p.exitError()), sessions, leecher.p)
	}
	if err := compareFile(filepath.Join(dir, sc.Torrent.Name), want); err != nil {
		return res, report(err, sessions, leecher.p)
	}
	return res, nil
}

// Aria2Seeder runs sc with aria2c as the seeder (of a copy of the content,
// checked with --check-integrity, seeding until stopped) and a libtorrent
// leecher. It returns once the leecher's copy equals the original. It skips
// t when aria2c or libtorrent's Python module is missing.
func Aria2Seeder(ctx context.Context, t testing.TB, sc Scenario) (*Result, error) {
	t.Helper()
	requireProgram(t, "aria2c", "aria2")
	requireLibtorrent(t)
	if err := sc.oneTracker(); err != nil {
		return nil, err
	}
	tracker, want, err := sc.checkContent()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, sc.timeout())
	defer cancel()
	// aria2 writes its control file next to the content: seed a copy.
	seedDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(seedDir, sc.Torrent.Name), want, 0o644); err != nil {
		return nil, err
	}
	res := &Result{}
	seeder, err := startAria2(t, "seeder", &sc, tracker, seedDir,
		"--check-integrity=true", "--seed-ratio=0.0")
	if err != nil {
		return res, err
	}
	defer seeder.p.stop(syscall.SIGINT, 10*time.Second)

	leechDir := t.TempDir()
	start := time.Now()
	leecher, err := startSession(t, "leech", &sc, tracker, leechDir)
	if err != nil {
		return res, report(err, nil, seeder.p)
	}
	_, err = leecher.wait(ctx, "a complete download", true, func(ev event) bool { return ev.Ev == "finished" })
	res.Elapsed = time.Since(start)
	if err == nil {
		leecher.waitCompleted(ctx)
	}
	leecher.stop()
	seeder.p.stop(syscall.SIGINT, 10*time.Second)
	res.Leecher = leecher.observed()
	sessions := []*ltSession{leecher}
	if err != nil {
		return res, report(err, sessions, seeder.p)
	}
	if err := compareFile(filepath.Join(leechDir, sc.Torrent.Name), want); err != nil {
		return res, report(err, sessions, seeder.p)
	}
	return res, nil
}
