//go:build unix

package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// transmissionSettings returns the settings.json of a transmission-cli run:
// peers from the tracker only, on loopback, no queueing, no limits.
func transmissionSettings(sc *Scenario, tracker *url.URL, port int, dir string) map[string]any {
	// 0 tolerates plaintext, 1 prefers encryption, 2 requires it.
	encryption := 1
	switch sc.Encryption {
	case EncryptionDisabled:
		encryption = 0 // Transmission has no plaintext-only mode.
	case EncryptionRequired:
		encryption = 2
	}
	return map[string]any{
		"dht-enabled":                  false,
		"lpd-enabled":                  false,
		"pex-enabled":                  false,
		"utp-enabled":                  false,
		"port-forwarding-enabled":      false,
		"blocklist-enabled":            false,
		"rpc-enabled":                  false,
		"watch-dir-enabled":            false,
		"peer-port":                    port,
		"peer-port-random-on-start":    false,
		"bind-address-ipv4":            "127.0.0.1",
		"bind-address-ipv6":            "::1",
		"download-dir":                 dir,
		"incomplete-dir-enabled":       false,
		"rename-partial-files":         false,
		"start-added-torrents":         true,
		"encryption":                   encryption,
		"ratio-limit-enabled":          false,
		"idle-seeding-limit-enabled":   false,
		"speed-limit-down-enabled":     false,
		"speed-limit-up-enabled":       false,
		"alt-speed-enabled":            false,
		"download-queue-enabled":       false,
		"seed-queue-enabled":           false,
		"queue-stalled-enabled":        false,
		"script-torrent-done-enabled":  false,
		"trash-original-torrent-files": false,
		// 3 is debug: tracker requests and replies show in the log.
		"message-level": 3,
	}
}

// Transmission runs sc with transmission-cli as the leecher and a
// libtorrent seeder. Transmission 3.00 ignores peers at 127.x and ::1 that
// a tracker hands out, so the seeder dials Transmission: it learns
// Transmission's address from the tracker on one of its re-announces (see
// [Scenario.Reannounce], which must not be negative here). Transmission's
// configuration directory is a temporary one; DHT, LPD, PEX, uTP and port
// mapping are off. Transmission returns once Transmission's copy equals the
// original, after stopping it with SIGINT, which sends its stopped announce.
// It skips t when transmission-cli or libtorrent's Python module is
// missing.
func Transmission(ctx context.Context, t testing.TB, sc Scenario) (*Result, error) {
	t.Helper()
	bin := requireProgram(t, "transmission-cli", "transmission-cli")
	requireLibtorrent(t)
	if err := sc.oneTracker(); err != nil {
		return nil, err
	}
	tracker, want, err := sc.checkContent()
	if err != nil {
		return nil, err
	}
	if tracker.Scheme == "http" && loopback(tracker) == "::1" {
		// Transmission 3.00 sends HTTP tracker requests from its IPv4
		// bind address (libcurl's CURLOPT_INTERFACE), so bound to
		// 127.0.0.1 it cannot reach a tracker on ::1, and binding it
		// anywhere else would leave loopback.
		return nil, errors.New("interop: Transmission cannot reach an HTTP tracker on ::1 while bound to loopback")
	}
	if sc.reannounce() == 0 {
		return nil, fmt.Errorf("interop: Transmission needs the seeder to re-announce (Scenario.Reannounce >= 0)")
	}
	ctx, cancel := context.WithTimeout(ctx, sc.timeout())
	defer cancel()

	port, err := freeTCPPort(loopback(tracker))
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	configDir, dir := t.TempDir(), t.TempDir()
	settings, err := json.MarshalIndent(transmissionSettings(&sc, tracker, port, dir), "", "\t")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(configDir, "settings.json"), settings, 0o644); err != nil {
		return nil, err
	}
	torrent, err := writeTorrent(t.TempDir(), sc.Torrent, tracker.String())
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	encFlag := map[Encryption]string{EncryptionDefault: "-ep", EncryptionDisabled: "-et", EncryptionRequired: "-er"}[sc.Encryption]

	res := &Result{}
	start := time.Now()
	cmd := exec.Command(bin, "-g", configDir, "-w", dir, "-p", strconv.Itoa(port), "-M", encFlag, torrent)
	// Transmission reads its configuration from the -g directory; HOME
	// points there too so that nothing else of the user's is read.
	cmd.Env = append(os.Environ(), "HOME="+configDir)
	leecher, err := startProc(t, "transmission-cli leecher", cmd, func(line string) bool {
		// Per-piece chatter of the debug level stays out of the log tail.
		return strings.Contains(line, "checking just-completed piece")
	})
	if err != nil {
		return res, fmt.Errorf("interop: %w", err)
	}
	defer leecher.stop(syscall.SIGINT, 15*time.Second)

	seeder, err := startSeeder(ctx, t, &sc, tracker)
	if err != nil {
		return res, report(err, []*ltSession{seeder}, leecher)
	}
	defer seeder.stop()

	path := filepath.Join(dir, sc.Torrent.Name)
	err = waitFile(ctx, path, want, leecher.done)
	res.Elapsed = time.Since(start)
	// SIGINT makes transmission-cli stop the torrent, which sends the
	// stopped announce, and exit.
	leecher.stop(syscall.SIGINT, 15*time.Second)
	seeder.stop()
	res.Seeder = seeder.observed()
	sessions := []*ltSession{seeder}
	switch {
	case err == errExited:
		return res, report(fmt.Errorf("transmission-cli leecher %s before its download was complete", leecher.exitError()), sessions, leecher)
	case err != nil:
		return res, report(fmt.Errorf("transmission-cli leecher: timed out waiting for a complete download (%w)", err), sessions, leecher)
	}
	if err := compareFile(path, want); err != nil {
		return res, report(err, sessions, leecher)
	}
	return res, nil
}
