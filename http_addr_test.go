package tracker

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestHTTPIPParam(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprint("AllowIPParam=", allow), func(t *testing.T) {
			f := httpNewFixture(t, Config{}, HTTPConfig{AllowIPParam: allow})
			h := httpTestHash(8)
			for _, tc := range []struct {
				remote, extra, claimed string
			}{
				{"10.0.0.1:1", "ip=192.0.2.7", "192.0.2.7"},
				{"10.0.0.1:1", "ipv4=192.0.2.8", "192.0.2.8"},
				{"10.0.0.1:1", "ipv4=192.0.2.9%3A7000", "192.0.2.9"},
				{"10.0.0.1:1", "ipv6=2001:db8::5", ""}, // another family
				{"[2001:db8::1]:1", "ipv6=2001%3Adb8%3A%3A6", "2001:db8::6"},
				{"[2001:db8::1]:1", "ipv6=%5B2001:db8::7%5D:6881", "2001:db8::7"},
				{"[2001:db8::1]:1", "ip=192.0.2.10", "192.0.2.10"},
				{"10.0.0.1:1", "ip=0.0.0.0", ""},
				{"10.0.0.1:1", "ip=host.example", ""},
			} {
				m := f.announce(tc.remote, httpQuery(h, httpTestPeerID(1), 6881, 100, tc.extra))
				want := netip.MustParseAddrPort(tc.remote).Addr()
				if allow && tc.claimed != "" {
					want = netip.MustParseAddr(tc.claimed)
				}
				if got := f.store.lastRequest().Addr.Addr(); got != want {
					t.Errorf("%s from %s: announced at %v; want %v", tc.extra, tc.remote, got, want)
				}
				// The external ip is where the request came from.
				if ext, src := m["external ip"], netip.MustParseAddrPort(tc.remote).Addr(); ext != string(src.AsSlice()) {
					t.Errorf("%s from %s: external ip %q; want %v", tc.extra, tc.remote, ext, src)
				}
			}
		})
	}
}

func TestHTTPTrustedProxies(t *testing.T) {
	f := httpNewFixture(t, Config{}, HTTPConfig{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("::ffff:172.16.0.0/108"), // mapped 172.16.0.0/12
	}})
	h := httpTestHash(15)
	for _, tc := range []struct {
		name, remote string
		header       []string
		want         string // "" for a failure
	}{
		{"no header", "192.168.1.1:1", nil, "192.168.1.1"},
		{"untrusted proxy", "203.0.113.1:1", []string{"X-Forwarded-For", "198.51.100.1"}, "203.0.113.1"},
		{"untrusted X-Real-IP", "203.0.113.1:1", []string{"X-Real-IP", "198.51.100.1"}, "203.0.113.1"},
		{"trusted", "192.168.1.1:1", []string{"X-Forwarded-For", "198.51.100.1"}, "198.51.100.1"},
		{"trusted IPv6 proxy", "[fd00::1]:1", []string{"X-Forwarded-For", "198.51.100.1"}, "198.51.100.1"},
		{"trusted mapped prefix", "172.20.0.1:1", []string{"X-Forwarded-For", "198.51.100.1"}, "198.51.100.1"},
		{"client spoofs the left", "192.168.1.1:1", []string{"X-Forwarded-For", "1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"two trusted hops", "192.168.1.1:1", []string{"X-Forwarded-For", "1.2.3.4, 198.51.100.1, 192.168.5.5"}, "198.51.100.1"},
		{"header lines", "192.168.1.1:1", []string{"X-Forwarded-For", "1.2.3.4", "X-Forwarded-For", "198.51.100.1,192.168.5.5"}, "198.51.100.1"},
		{"all trusted", "192.168.1.1:1", []string{"X-Forwarded-For", "192.168.7.7, 192.168.5.5"}, "192.168.7.7"},
		{"with port", "192.168.1.1:1", []string{"X-Forwarded-For", "198.51.100.1:5555"}, "198.51.100.1"},
		{"IPv6", "192.168.1.1:1", []string{"X-Forwarded-For", "2001:db8::1"}, "2001:db8::1"},
		{"IPv6 bracketed with port", "192.168.1.1:1", []string{"X-Forwarded-For", "[2001:db8::2]:443"}, "2001:db8::2"},
		{"mapped", "192.168.1.1:1", []string{"X-Forwarded-For", "::ffff:198.51.100.9"}, "198.51.100.9"},
		{"X-Real-IP", "192.168.1.1:1", []string{"X-Real-IP", "198.51.100.2"}, "198.51.100.2"},
		{"X-Forwarded-For first", "192.168.1.1:1", []string{"X-Real-IP", "198.51.100.2", "X-Forwarded-For", "198.51.100.3"}, "198.51.100.3"},
		{"empty X-Forwarded-For", "192.168.1.1:1", []string{"X-Forwarded-For", " , ", "X-Real-IP", "198.51.100.4"}, "198.51.100.4"},
		{"garbage", "192.168.1.1:1", []string{"X-Forwarded-For", "unknown"}, ""},
		{"garbage X-Real-IP", "192.168.1.1:1", []string{"X-Real-IP", "nope"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := "/announce?" + httpQuery(h, httpTestPeerID(1), 6881, 100, "")
			if tc.want == "" {
				if r := f.failure(target, tc.remote, tc.header...); r != ErrInvalidAddress.Reason {
					t.Errorf("failure %q; want %q", r, ErrInvalidAddress.Reason)
				}
				return
			}
			m := f.get(target, tc.remote, tc.header...)
			if m["failure reason"] != nil {
				t.Fatalf("failed: %v", m["failure reason"])
			}
			want := netip.MustParseAddr(tc.want)
			if got := f.store.lastRequest().Addr.Addr(); got != want {
				t.Errorf("announced at %v; want %v", got, want)
			}
			if m["external ip"] != string(want.AsSlice()) {
				t.Errorf("external ip %q; want %v", m["external ip"], want)
			}
		})
	}
	// Without TrustedProxies, headers are never believed.
	g := httpNewFixture(t, Config{}, HTTPConfig{})
	g.get("/announce?"+httpQuery(h, httpTestPeerID(1), 6881, 100, ""), "127.0.0.1:1", "X-Forwarded-For", "198.51.100.1", "X-Real-IP", "198.51.100.2")
	if got := g.store.lastRequest().Addr.Addr(); got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("no trusted proxies: announced at %v; want 127.0.0.1", got)
	}
}
