package tracker

// The address an HTTP request comes from: the connection's, or the one a
// trusted reverse proxy names in a header.

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/annuaire/tracker/internal/httpwire"
)

// clientAddr returns the address the request comes from: the connection's,
// or what a trusted proxy says. The zero Addr means none could be told.
func (h *HTTPHandler) clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	a := ap.Addr().Unmap().WithZone("")
	if !h.trusted(a) {
		return a
	}
	if vs := r.Header["X-Forwarded-For"]; len(vs) > 0 {
		if fa, ok := h.forwardedFor(vs); ok {
			return fa
		}
	}
	if vs := r.Header["X-Real-Ip"]; len(vs) > 0 {
		fa, _ := httpwire.ParseHost(strings.TrimSpace(vs[len(vs)-1]))
		return fa
	}
	return a
}

// trusted reports whether a is in one of the trusted proxy networks.
func (h *HTTPHandler) trusted(a netip.Addr) bool {
	for _, p := range h.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor reads X-Forwarded-For lines (each hop appends its peer's
// address, so the right-most addresses are the ones trusted proxies
// wrote): it returns the right-most address that is not a trusted proxy,
// or the left-most if all are. ok is false for a header with no address;
// an entry that is not an address ends the walk with the zero Addr.
func (h *HTTPHandler) forwardedFor(lines []string) (_ netip.Addr, ok bool) {
	var last netip.Addr
	for i := len(lines) - 1; i >= 0; i-- {
		s := lines[i]
		for s != "" {
			var part string
			if j := strings.LastIndexByte(s, ','); j >= 0 {
				part, s = s[j+1:], s[:j]
			} else {
				part, s = s, ""
			}
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			a, valid := httpwire.ParseHost(part)
			if !valid || !h.trusted(a) {
				return a, true
			}
			last = a
		}
	}
	return last, last.IsValid()
}

// httpUnmapPrefix turns a prefix of IPv4-mapped addresses into the IPv4
// prefix it covers, since client addresses are unmapped before matching.
func httpUnmapPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return p.Masked()
}

// httpClaimedAddr returns the address the ip parameters of an announce
// claim for a request from src: ip, or else the one of ipv4 and ipv6 of
// src's family. The zero Addr means none.
func httpClaimedAddr(q *httpwire.AnnounceQuery, src netip.Addr) netip.Addr {
	if a, ok := httpwire.ParseAddrParam(q.IP); ok {
		return a
	}
	s := q.IPv4
	if src.Is6() {
		s = q.IPv6
	}
	if a, ok := httpwire.ParseAddrParam(s); ok && a.Is6() == src.Is6() {
		return a
	}
	return netip.Addr{}
}
