//go:build unix

package interop

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/annuaire/tracker/internal/loadgen"
)

// Opentracker is an opentracker process serving HTTP and UDP on one
// loopback port, the reference the scenarios are checked against.
type Opentracker struct {
	// Addr is where it listens, for both TCP (HTTP) and UDP.
	Addr netip.AddrPort

	p *proc
}

// StartOpentracker starts opentracker on a free port of 127.0.0.1 (Debian's
// build is IPv4-only) with a whitelist of the given info hashes: that build
// serves no other torrent. It runs chrooted in a temporary directory, as
// the current user, or as nobody when that is root (opentracker refuses to
// keep root privileges). It skips t, or under CI fails it, when opentracker
// is not installed or cannot start.
func StartOpentracker(t testing.TB, hashes ...[20]byte) *Opentracker {
	t.Helper()
	bin := requireProgram(t, "opentracker", "opentracker")
	root := t.TempDir()
	// After the chroot, the process (maybe nobody) reads the whitelist
	// from the root of the temporary directory.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	var list strings.Builder
	for _, h := range hashes {
		list.WriteString(hex.EncodeToString(h[:]) + "\n")
	}
	if err := os.WriteFile(filepath.Join(root, "whitelist.txt"), []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	runAs := "nobody"
	if u, err := user.Current(); err == nil && u.Uid != "0" {
		runAs = u.Username
	}

	var failures []string
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("interop: finding a free port: %v", err)
		}
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
		// The whitelist path has no leading slash: it is read relative
		// to the working directory, which is tracker.rootdir both when
		// the chroot succeeds and when it does not (not root).
		conf := fmt.Sprintf("listen.tcp_udp %s\naccess.whitelist whitelist.txt\ntracker.rootdir %s\ntracker.user %s\n",
			addr, root, runAs)
		confPath := filepath.Join(root, "opentracker.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := startProc(t, "opentracker", exec.Command(bin, "-f", confPath), nil)
		if err != nil {
			t.Fatalf("interop: %v", err)
		}
		if err := waitListening(p, addr, 10*time.Second); err != nil {
			p.kill()
			failures = append(failures, fmt.Sprintf("on %s: %v\n%s", addr, err, p.logTail()))
			continue
		}
		o := &Opentracker{Addr: addr, p: p}
		if len(hashes) > 0 {
			if err := loadgen.WaitWhitelist(o.Addr.String(), hashes[len(hashes)-1], 10*time.Second); err != nil {
				t.Fatalf("interop: opentracker on %s: %v\n%s", addr, err, p.logTail())
			}
		}
		return o
	}
	missing(t, "opentracker did not start (it may need root to chroot):\n"+strings.Join(failures, "\n"))
	return nil
}

// URL returns an announce URL of the tracker: scheme "http" or "udp",
// then path, for example "/announce".
func (o *Opentracker) URL(scheme, path string) string {
	return scheme + "://" + o.Addr.String() + path
}

// waitListening polls until addr accepts TCP connections, the process
// exits, or timeout passes.
func waitListening(p *proc, addr netip.AddrPort, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr.String())
		if err == nil {
			c.Close()
			// A port taken by another program between freePort and the
			// start makes opentracker exit; give it a moment to show.
			select {
			case <-p.done:
				return fmt.Errorf("%s", p.exitError())
			case <-time.After(100 * time.Millisecond):
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s", p.exitError())
		case <-ctx.Done():
			return fmt.Errorf("not listening after %v", timeout)
		case <-tick.C:
		}
	}
}

// freePort returns a port of 127.0.0.1 that is free for both TCP and UDP at
// the time of the call.
func freePort() (uint16, error) {
	for range 20 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return uint16(port), nil
		}
	}
	return 0, fmt.Errorf("no port free for both TCP and UDP")
}
