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
				{"[2001:db8::1]:1", "ipv4=192.0.2.10", ""}, // for an announce over IPv4
				{"10.0.0.1:1", "ip=host.example", ""},
				{"10.0.0.1:1", "ip=host.example&ipv4=192.0.2.11", "192.0.2.11"},
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
	f := httpNewFixture(t, Config{}, HTTPConfig{AllowPrivateAddrs: true, TrustedProxies: []netip.Prefix{
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
		{"all trusted", "192.168.1.1:1", []string{"X-Forwarded-For", "fd00::7, fd00::5"}, "fd00::7"},
		{"with port", "192.168.1.1:1", []string{"X-Forwarded-For", "198.51.100.1:5555"}, "198.51.100.1"},
		{"IPv6", "192.168.1.1:1", []string{"X-Forwarded-For", "2001:db8::1"}, "2001:db8::1"},
		{"IPv6 bracketed with port", "192.168.1.1:1", []string{"X-Forwarded-For", "[2001:db8::2]:443"}, "2001:db8::2"},
		{"mapped", "192.168.1.1:1", []string{"X-Forwarded-For", "::ffff:198.51.100.9"}, "198.51.100.9"},
		{"X-Real-IP is not the header", "192.168.1.1:1", []string{"X-Real-IP", "198.51.100.2"}, "192.168.1.1"},
		{"X-Real-IP ignored", "192.168.1.1:1", []string{"X-Real-IP", "198.51.100.2", "X-Forwarded-For", "198.51.100.3"}, "198.51.100.3"},
		{"empty X-Forwarded-For", "192.168.1.1:1", []string{"X-Forwarded-For", " , ", "X-Real-IP", "198.51.100.4"}, ""},
		{"garbage", "192.168.1.1:1", []string{"X-Forwarded-For", "unknown"}, ""},
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

// TestHTTPRateLimitForwarded checks that every request is charged to an
// address: behind a trusted proxy whose header cannot be read, to the
// proxy's own address, scrapes included.
func TestHTTPRateLimitForwarded(t *testing.T) {
	f := httpNewFixture(t, Config{RateLimit: RateLimitConfig{PerIP: 0.001, IPBurst: 2}},
		HTTPConfig{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}})
	h := httpTestHash(16)
	for _, tc := range []struct {
		name, target string
	}{
		{"scrape", "/scrape?info_hash=" + httpLT(h[:])},
		{"announce", "/announce?" + httpQuery(h, httpTestPeerID(1), 6881, 100, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := "192.168.1." + fmt.Sprint(len(tc.name)) + ":1"
			for i := range 3 {
				m := f.get(tc.target, proxy, "X-Forwarded-For", "unknown")
				reason, _ := m["failure reason"].(string)
				if i < 2 && reason == ErrRateLimited.Reason {
					t.Errorf("request %d: rate limited within the burst", i+1)
				}
				if i == 2 && reason != ErrRateLimited.Reason {
					t.Errorf("request 3 past a burst of 2: reply %v; want %q", m, ErrRateLimited.Reason)
				}
			}
		})
	}
}

// TestHTTPClientIPHeader checks that the one header named is believed, and
// any other is not: behind a proxy that sets X-Real-IP and passes the
// client's X-Forwarded-For on, the client cannot choose its address.
func TestHTTPClientIPHeader(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}
	h := httpTestHash(17)
	target := "/announce?" + httpQuery(h, httpTestPeerID(1), 6881, 100, "")
	for _, tc := range []struct {
		header string   // ClientIPHeader
		lines  []string // request header lines
		want   string   // "" for a failure
	}{
		{"X-Real-IP", []string{"X-Forwarded-For", "203.0.113.66", "X-Real-IP", "198.51.100.2"}, "198.51.100.2"},
		{"x-real-ip", []string{"X-Real-IP", "198.51.100.2", "X-Real-IP", "198.51.100.3:80"}, "198.51.100.3"},
		{"X-Real-IP", []string{"X-Forwarded-For", "203.0.113.66"}, "192.168.1.1"}, // header missing: the proxy
		{"X-Real-IP", []string{"X-Real-IP", "198.51.100.2, 198.51.100.3"}, ""},
		{"X-Real-IP", []string{"X-Real-IP", "nope"}, ""},
		{"", []string{"X-Real-IP", "203.0.113.66", "X-Forwarded-For", "198.51.100.4"}, "198.51.100.4"},
		{"X-Forwarded-For", []string{"X-Real-IP", "203.0.113.66"}, "192.168.1.1"},
		{"CF-Connecting-IP", []string{"X-Forwarded-For", "203.0.113.66", "Cf-Connecting-Ip", "2001:db8::9"}, "2001:db8::9"},
	} {
		f := httpNewFixture(t, Config{}, HTTPConfig{TrustedProxies: proxies, ClientIPHeader: tc.header, AllowPrivateAddrs: true})
		m := f.get(target, "192.168.1.1:1", tc.lines...)
		reason, failed := m["failure reason"]
		switch {
		case tc.want == "" && reason != ErrInvalidAddress.Reason:
			t.Errorf("ClientIPHeader %q, header %q: reply %v; want %q", tc.header, tc.lines, m, ErrInvalidAddress.Reason)
		case tc.want == "":
		case failed:
			t.Errorf("ClientIPHeader %q, header %q: failure %q; want announced at %s", tc.header, tc.lines, reason, tc.want)
		default:
			if got := f.store.lastRequest().Addr.Addr(); got != netip.MustParseAddr(tc.want) {
				t.Errorf("ClientIPHeader %q, header %q: announced at %v; want %s", tc.header, tc.lines, got, tc.want)
			}
		}
	}
}

// TestHTTPPeerAddrs checks which addresses clients and proxies may name
// as a peer's, and that the connection's own address is taken as it is.
func TestHTTPPeerAddrs(t *testing.T) {
	const (
		ok      = iota
		refused // ErrAddressNotAllowed
		family  // the ip parameter of the other family
	)
	proxies := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	h := httpTestHash(18)
	for _, tc := range []struct {
		remote, extra, xff string
		want, private      int // without and with AllowPrivateAddrs
	}{
		{"198.51.100.1:1", "ip=255.255.255.255", "", refused, refused},
		{"198.51.100.1:1", "ip=224.0.0.1", "", refused, refused},
		{"198.51.100.1:1", "ipv4=239.255.255.250", "", refused, refused},
		{"198.51.100.1:1", "ip=169.254.10.1", "", refused, refused},
		{"198.51.100.1:1", "ip=0.0.0.0", "", refused, refused},
		{"198.51.100.1:1", "ip=0.1.2.3", "", refused, refused},
		{"198.51.100.1:1", "ip=240.0.0.1", "", refused, refused},
		{"198.51.100.1:1", "ip=10.1.2.3", "", refused, ok},
		{"198.51.100.1:1", "ipv4=192.168.1.20", "", refused, ok},
		{"198.51.100.1:1", "ip=100.64.1.1", "", refused, ok},
		{"198.51.100.1:1", "ip=127.0.0.1", "", refused, ok},
		{"198.51.100.1:1", "ip=203.0.113.9", "", ok, ok},
		{"198.51.100.1:1", "ip=2001:db8::1", "", family, family},
		{"198.51.100.1:1", "ip=::ffff:203.0.113.9", "", ok, ok},
		{"[2001:db8::1]:1", "ip=203.0.113.9", "", family, family},
		{"[2001:db8::1]:1", "ip=ff02::1", "", refused, refused},
		{"[2001:db8::1]:1", "ipv6=fe80::1", "", refused, refused},
		{"[2001:db8::1]:1", "ip=::", "", refused, refused},
		{"[2001:db8::1]:1", "ip=::1", "", refused, ok},
		{"[2001:db8::1]:1", "ipv6=fd12::1", "", refused, ok},
		{"[2001:db8::1]:1", "ip=2001:db8:1::1", "", ok, ok},
		{"192.0.2.1:1", "", "255.255.255.255", refused, refused},
		{"192.0.2.1:1", "", "224.0.0.1", refused, refused},
		{"192.0.2.1:1", "", "169.254.1.1", refused, refused},
		{"192.0.2.1:1", "", "10.9.9.9", refused, ok},
		{"192.0.2.1:1", "", "127.0.0.1", refused, ok},
		{"192.0.2.1:1", "", "203.0.113.9", ok, ok},
		{"[2001:db8:ffff::1]:1", "", "ff05::2", refused, refused},
		{"[2001:db8:ffff::1]:1", "", "fe80::1%eth0", refused, refused},
		// The connection's own address is not checked.
		{"10.0.0.1:1", "", "", ok, ok},
		{"127.0.0.1:1", "", "", ok, ok},
		{"[::1]:1", "", "", ok, ok},
	} {
		for i, allow := range []bool{false, true} {
			want := []int{tc.want, tc.private}[i]
			f := httpNewFixture(t, Config{}, HTTPConfig{AllowIPParam: true, AllowPrivateAddrs: allow, TrustedProxies: proxies})
			var header []string
			if tc.xff != "" {
				header = []string{"X-Forwarded-For", tc.xff}
			}
			target := "/announce?" + httpQuery(h, httpTestPeerID(1), 6881, 100, tc.extra)
			m := f.get(target, tc.remote, header...)
			reason, _ := m["failure reason"].(string)
			switch want {
			case ok:
				if reason != "" {
					t.Errorf("%s %s from %s, AllowPrivateAddrs %v: failure %q; want it accepted", tc.extra, tc.xff, tc.remote, allow, reason)
				}
			case refused:
				if reason != ErrAddressNotAllowed.Reason {
					t.Errorf("%s %s from %s, AllowPrivateAddrs %v: reply %v; want %q", tc.extra, tc.xff, tc.remote, allow, m, ErrAddressNotAllowed.Reason)
				}
			case family:
				if reason != httpErrIPFamily.Reason {
					t.Errorf("%s from %s: reply %v; want %q", tc.extra, tc.remote, m, httpErrIPFamily.Reason)
				}
			}
		}
	}
}
