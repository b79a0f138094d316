//go:build unix

package interop

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"testing"
)

// miniTracker is a minimal HTTP tracker for what opentracker cannot serve
// here (Debian's build has no IPv6): it checks the harness's IPv6 paths.
// It answers compact peers and peers6, the announcing peer left out.
type miniTracker struct {
	mu     sync.Mutex
	swarms map[string]map[netip.AddrPort]bool // info hash → peer → seeding
}

func (m *miniTracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Clients percent-encode every byte of info_hash that could be read
	// as something else, '+' included, so ParseQuery does here.
	q, err := url.ParseQuery(r.URL.RawQuery)
	ih := q.Get("info_hash")
	port, perr := strconv.ParseUint(q.Get("port"), 10, 16)
	host, _, herr := net.SplitHostPort(r.RemoteAddr)
	ip, aerr := netip.ParseAddr(host)
	if err != nil || len(ih) != 20 || perr != nil || herr != nil || aerr != nil {
		fmt.Fprint(w, "d14:failure reason11:bad requeste")
		return
	}
	self := netip.AddrPortFrom(ip.Unmap(), uint16(port))
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.swarms == nil {
		m.swarms = map[string]map[netip.AddrPort]bool{}
	}
	swarm := m.swarms[ih]
	if swarm == nil {
		swarm = map[netip.AddrPort]bool{}
		m.swarms[ih] = swarm
	}
	if q.Get("event") == "stopped" {
		delete(swarm, self)
	} else {
		swarm[self] = q.Get("left") == "0"
	}
	var peers, peers6 []byte
	complete := 0
	for p, seeding := range swarm {
		if seeding {
			complete++
		}
		if p == self {
			continue
		}
		if p.Addr().Is4() {
			peers = binary.BigEndian.AppendUint16(append(peers, p.Addr().AsSlice()...), p.Port())
		} else {
			peers6 = binary.BigEndian.AppendUint16(append(peers6, p.Addr().AsSlice()...), p.Port())
		}
	}
	b := []byte{'d'}
	b = appendInt(appendString(b, "complete"), complete)
	b = appendInt(appendString(b, "incomplete"), len(swarm)-complete)
	b = appendInt(appendString(b, "interval"), 1800)
	b = appendString(appendString(b, "peers"), string(peers))
	b = appendString(appendString(b, "peers6"), string(peers6))
	w.Write(append(b, 'e'))
}

// startMiniTracker serves a miniTracker on [::1] and returns its announce
// URL.
func startMiniTracker(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	srv := httptest.NewUnstartedServer(&miniTracker{})
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return "http://" + l.Addr().String() + "/announce"
}

func TestIPv6(t *testing.T) {
	t.Parallel()
	run := map[string]func(ctx context.Context, t testing.TB, sc Scenario) (*Result, error){
		"libtorrent":   Libtorrent,
		"aria2":        Aria2,
		"aria2-seeder": Aria2Seeder,
	}
	// Transmission is left out: it cannot reach an HTTP tracker on ::1
	// while bound to loopback (see Transmission).
	for _, name := range []string{"libtorrent", "aria2", "aria2-seeder"} {
		t.Run(name, func(t *testing.T) {
			tracker := startMiniTracker(t)
			tor := MakeTorrent(t, t.TempDir(), placeholder, size, false)
			res, err := run[name](bounded(t), t, Scenario{Tracker: tracker, Torrent: tor})
			if err != nil {
				t.Fatal(err)
			}
			logResult(t, res)
		})
	}
}
