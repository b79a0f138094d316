package tracker

// The address an HTTP request comes from: the connection's, or the one a
// trusted reverse proxy names in a header; and which addresses may be
// announced as a peer's.

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/annuaire/tracker/internal/httpwire"
)

// Client-visible failures about the address a peer is announced at.
var (
	// ErrAddressNotAllowed is the failure of an announce whose address,
	// named by an ip, ipv4 or ipv6 parameter or by a trusted proxy, is not
	// one peers can be sent to: unspecified, broadcast, multicast,
	// link-local or reserved, or private or loopback where those are not
	// allowed ([HTTPConfig.AllowPrivateAddrs]).
	ErrAddressNotAllowed = &Error{Kind: KindBadRequest, Reason: "peer address not allowed: not a public unicast address"}
	// httpErrIPFamily is the failure of an ip parameter of the other
	// address family than the connection's: clients announce over each
	// family apart (BEP 7).
	httpErrIPFamily = &Error{Kind: KindBadRequest, Reason: "ip parameter of another address family than the connection: announce over each family"}
)

// httpXForwardedFor is the canonical name of the header proxies append
// their peer's address to.
const httpXForwardedFor = "X-Forwarded-For"

// clientAddr returns the address the request comes from: the connection's,
// or the one a trusted proxy names in the configured header. That address
// is what the request is charged to; when the header names no valid
// address it is the connection's (the proxy's), and the zero Addr only
// when the connection's own address cannot be read. peerErr is the
// failure an announce gets: a header that names no valid address, or one
// that names an address that may not be a peer's.
func (h *HTTPHandler) clientAddr(r *http.Request) (_ netip.Addr, peerErr *Error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, ErrInvalidAddress
	}
	a := ap.Addr().Unmap().WithZone("")
	if !h.trusted(a) {
		return a, nil
	}
	vs := r.Header[h.ipHeader]
	if len(vs) == 0 {
		return a, nil
	}
	var fa netip.Addr
	var ok bool
	if h.ipHeader == httpXForwardedFor {
		fa, ok = h.forwardedFor(vs)
	} else {
		fa, ok = httpwire.ParseHost(strings.TrimSpace(vs[len(vs)-1]))
	}
	switch {
	case !ok || !fa.IsValid():
		return a, ErrInvalidAddress
	case !h.peerAddr(fa):
		return fa, ErrAddressNotAllowed
	}
	return fa, nil
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

// claimedAddr returns the address the ip parameters of an announce claim
// for a request from src: ip, or else the one of ipv4 and ipv6 of src's
// family (the other one is for an announce over the other family). The
// zero Addr means none: no parameter, or a host name. A parameter that
// names an address that may not be a peer's, or an ip of the other family
// than src, is a failure.
func (h *HTTPHandler) claimedAddr(q *httpwire.AnnounceQuery, src netip.Addr) (netip.Addr, *Error) {
	s := q.IP
	if _, ok := httpwire.ParseAddrParam(s); !ok {
		s = q.IPv4
		if src.Is6() {
			s = q.IPv6
		}
	}
	a, ok := httpwire.ParseAddrParam(s)
	switch {
	case !ok:
		return netip.Addr{}, nil
	case a.Is6() != src.Is6():
		return netip.Addr{}, httpErrIPFamily
	case !h.peerAddr(a):
		return netip.Addr{}, ErrAddressNotAllowed
	}
	return a, nil
}

// peerAddr reports whether a, unmapped, may be announced as a peer's
// address: a unicast address that can be reached from elsewhere, private
// and loopback ones included only with AllowPrivateAddrs.
func (h *HTTPHandler) peerAddr(a netip.Addr) bool {
	switch {
	case a.IsUnspecified(), a.IsMulticast(), a.IsLinkLocalUnicast(), a.IsInterfaceLocalMulticast():
		return false
	case a.Is4() && (httpThisNetwork.Contains(a) || httpReservedV4.Contains(a)): // 255.255.255.255 too
		return false
	case a.IsPrivate(), a.IsLoopback(), a.Is4() && httpSharedV4.Contains(a):
		return h.cfg.AllowPrivateAddrs
	}
	return true
}

// IPv4 networks that hold no peer, besides those netip.Addr names.
var (
	httpThisNetwork = netip.MustParsePrefix("0.0.0.0/8")     // RFC 1122: "this network"
	httpReservedV4  = netip.MustParsePrefix("240.0.0.0/4")   // RFC 1112: reserved, and the limited broadcast
	httpSharedV4    = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598: carrier-grade NAT, private to a carrier
)
