//go:build unix

package interop

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"time"
)

// Encryption is the peer-connection encryption (Message Stream Encryption)
// the clients of a scenario use.
type Encryption int

const (
	// EncryptionDefault is each client's default: libtorrent and aria2
	// offer and accept both, Transmission prefers encryption.
	EncryptionDefault Encryption = iota
	// EncryptionDisabled allows plaintext connections only.
	EncryptionDisabled
	// EncryptionRequired allows encrypted connections only.
	EncryptionRequired
)

// Scenario is one download between real clients that learn each other only
// from a tracker.
type Scenario struct {
	// Tracker is the announce URL the clients use, for example
	// "http://127.0.0.1:8080/announce/PK" or "udp://[::1]:6969/announce".
	// The clients listen on ::1 when its host is an IPv6 address, else on
	// 127.0.0.1. If empty, the torrent's own announce URL.
	Tracker string
	// LeecherTracker, if not empty, is the announce URL of the leecher,
	// when it differs from the seeder's: on a private tracker each user
	// has a passkey of its own. It must be on the same loopback address
	// family as Tracker.
	LeecherTracker string
	// Torrent is what the seeder shares; the leecher starts from nothing.
	Torrent *Torrent
	// Timeout bounds the whole scenario, in addition to the context.
	// If zero, 60 seconds.
	Timeout time.Duration
	// Encryption of peer connections. If zero, each client's default.
	Encryption Encryption
	// Reannounce is how often a libtorrent session that has no peer
	// announces again, ignoring the tracker's interval, so that a session
	// started before the other side announced still finds it. If zero,
	// 2 seconds; if negative, libtorrent keeps to the tracker's interval.
	Reannounce time.Duration
}

func (sc *Scenario) tracker() string {
	if sc.Tracker == "" && sc.Torrent != nil {
		return sc.Torrent.announce
	}
	return sc.Tracker
}

func (sc *Scenario) timeout() time.Duration {
	if sc.Timeout > 0 {
		return sc.Timeout
	}
	return 60 * time.Second
}

func (sc *Scenario) reannounce() time.Duration {
	switch {
	case sc.Reannounce == 0:
		return 2 * time.Second
	case sc.Reannounce < 0:
		return 0
	}
	return sc.Reannounce
}

// check validates sc and returns its tracker URL.
func (sc *Scenario) check() (*url.URL, error) {
	if sc.Torrent == nil {
		return nil, errors.New("interop: scenario without a torrent")
	}
	u, err := url.Parse(sc.tracker())
	if err != nil {
		return nil, fmt.Errorf("interop: tracker URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "udp" {
		return nil, fmt.Errorf("interop: tracker URL %q: want an http or udp URL", u)
	}
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("interop: tracker URL %q: want a loopback address (127.0.0.1 or [::1])", u)
	}
	return u, nil
}

// leecherURL returns the leecher's tracker URL, checked as check does.
func (sc *Scenario) leecherURL(seeder *url.URL) (*url.URL, error) {
	if sc.LeecherTracker == "" {
		return seeder, nil
	}
	c := *sc
	c.Tracker = sc.LeecherTracker
	u, err := c.check()
	if err == nil && loopback(u) != loopback(seeder) {
		err = fmt.Errorf("interop: leecher's tracker URL %q: not on the seeder's address family", u)
	}
	return u, err
}

// oneTracker refuses a scenario with a tracker per side, for the runners
// that do not run one.
func (sc *Scenario) oneTracker() error {
	if sc.LeecherTracker != "" {
		return errors.New("interop: only the libtorrent runner takes a LeecherTracker")
	}
	return nil
}

// checkContent is check, and also returns the content of sc's torrent,
// which a run's download must equal.
func (sc *Scenario) checkContent() (*url.URL, []byte, error) {
	u, err := sc.check()
	if err != nil {
		return nil, nil, err
	}
	want, err := sc.Torrent.Content()
	if err != nil {
		return nil, nil, fmt.Errorf("interop: %w", err)
	}
	return u, want, nil
}

// loopback returns the address the clients of a scenario with tracker u
// listen on: the tracker's address family, on loopback.
func loopback(u *url.URL) string {
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && ip.Is6() && !ip.Is4In6() {
		return "::1"
	}
	return "127.0.0.1"
}

// Seen is what a libtorrent session saw of the tracker, from its alerts.
type Seen struct {
	// Announces counts announces sent (tracker_announce_alert).
	Announces int
	// Replies holds num_peers of each successful reply (tracker_reply_alert).
	Replies []int
	// Errors holds the tracker errors (tracker_error_alert): the tracker's
	// failure reason when there is one, else libtorrent's error message.
	Errors []string
	// Warnings holds the tracker's warning messages (tracker_warning_alert).
	Warnings []string
	// Peers holds the distinct addresses it dialled, in order: those the
	// tracker handed out, its own included when the tracker hands it back.
	Peers []string
	// Uploaded and Downloaded are the payload bytes the session sent and
	// received, as libtorrent counted them when it stopped
	// (total_payload_upload and total_payload_download): what it reports
	// to the tracker as uploaded and downloaded.
	Uploaded, Downloaded int64
}

// Result is what a scenario observed. The runners return it also when the
// scenario fails, with what was seen until then; it is nil only when the
// scenario is invalid.
type Result struct {
	// Elapsed is the time from the leecher's start to its complete download.
	Elapsed time.Duration
	// Seeder and Leecher are what the libtorrent sessions of the scenario
	// saw of the tracker; empty for a side played by another client.
	Seeder, Leecher Seen
}
