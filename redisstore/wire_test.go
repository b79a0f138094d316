package redisstore

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/annuaire/tracker"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, ap := range []netip.AddrPort{
		netip.MustParseAddrPort("10.1.2.3:6881"),
		netip.MustParseAddrPort("[2001:db8::1]:51413"),
		netip.MustParseAddrPort("0.0.0.0:1"),
		netip.MustParseAddrPort("[::ffff:0:0]:65535"),
	} {
		ip := ap.Addr()
		m := record(identity(7, ap, tracker.PeerID{1}), ip, ap.Port())
		got, err := parseRecord(m, family(ip))
		if err != nil || got != ap {
			t.Errorf("parseRecord(record(%v)) = %v, %v", ap, got, err)
		}
		if _, err := parseRecord(m, 1-family(ip)); !errors.Is(err, errReply) {
			t.Errorf("member of %v parsed as the other family: %v", ap, err)
		}
	}
	// The identity tells users, addresses, ports and peer ids apart.
	a := netip.MustParseAddrPort("10.0.0.1:6881")
	ids := map[[8]byte]bool{
		identity(0, a, tracker.PeerID{1}):                                        true,
		identity(1, a, tracker.PeerID{1}):                                        true,
		identity(0, netip.MustParseAddrPort("10.0.0.2:6881"), tracker.PeerID{1}): true,
		identity(0, netip.MustParseAddrPort("10.0.0.1:6882"), tracker.PeerID{1}): true,
		identity(0, a, tracker.PeerID{2}):                                        true,
	}
	if len(ids) != 5 {
		t.Errorf("identities collide: %d distinct of 5", len(ids))
	}
}

func TestDecodeAnnounce(t *testing.T) {
	ip4, ip6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::7")
	m4 := record([8]byte{1}, ip4, 6881) + record([8]byte{2}, ip4, 6882)
	m6 := record([8]byte{3}, ip6, 6883)
	for _, tc := range []struct {
		name  string
		reply any
		fam   int
		want  *tracker.AnnounceResponse
		err   error
	}{
		{"counts", []any{int64(0), int64(1), int64(2), int64(3), int64(0)}, inet4, &tracker.AnnounceResponse{Complete: 1, Incomplete: 2, Downloaded: 3}, nil},
		{"joined", []any{int64(0), int64(1), int64(2), int64(3), int64(1)}, inet4,
			&tracker.AnnounceResponse{Complete: 1, Incomplete: 2, Downloaded: 3, Outcome: tracker.OutcomeJoined}, nil},
		{"left with a snatch", []any{int64(0), int64(1), int64(2), int64(3), int64(6)}, inet4,
			&tracker.AnnounceResponse{Complete: 1, Incomplete: 2, Downloaded: 3, Outcome: tracker.OutcomeLeft | tracker.OutcomeCompleted}, nil},
		{"IPv4 peers", []any{int64(0), int64(1), int64(2), int64(0), int64(0), m4}, inet4,
			&tracker.AnnounceResponse{Complete: 1, Incomplete: 2, Peers: []tracker.Peer{{Addr: netip.AddrPortFrom(ip4, 6881)}, {Addr: netip.AddrPortFrom(ip4, 6882)}}}, nil},
		{"IPv6 peer", []any{int64(0), int64(0), int64(2), int64(0), int64(5), m6}, inet6,
			&tracker.AnnounceResponse{Incomplete: 2, Outcome: tracker.OutcomeJoined | tracker.OutcomeCompleted, Peers: []tracker.Peer{{Addr: netip.AddrPortFrom(ip6, 6883)}}}, nil},
		{"full", []any{int64(1)}, inet4, nil, tracker.ErrTooManyPeers},
		{"IPv6 records in an IPv4 reply", []any{int64(0), int64(0), int64(2), int64(0), int64(0), m6}, inet4, nil, errReply},
		{"a cut record", []any{int64(0), int64(0), int64(2), int64(0), int64(0), m4[:20]}, inet4, nil, errReply},
		{"a negative count", []any{int64(0), int64(-1), int64(2), int64(0), int64(0)}, inet4, nil, errReply},
		{"a string count", []any{int64(0), "1", int64(2), int64(0), int64(0)}, inet4, nil, errReply},
		{"joined and left", []any{int64(0), int64(1), int64(2), int64(0), int64(3)}, inet4, nil, errReply},
		{"an unknown outcome", []any{int64(0), int64(1), int64(2), int64(0), int64(8)}, inet4, nil, errReply},
		{"too short", []any{int64(0), int64(1), int64(1), int64(1)}, inet4, nil, errReply},
		{"too long", []any{int64(0), int64(1), int64(1), int64(1), int64(0), m4, m4}, inet4, nil, errReply},
		{"not an array", "OK", inet4, nil, errReply},
		{"an unknown status", []any{int64(2), int64(1), int64(1), int64(1), int64(0)}, inet4, nil, errReply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &tracker.AnnounceResponse{Warning: "kept"}
			err := decodeAnnounce(tc.reply, tc.fam, resp)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("decodeAnnounce = %v; want %v", err, tc.err)
			}
			if err != nil {
				if resp.Complete != 0 || len(resp.Peers) != 0 || resp.Warning != "kept" {
					t.Errorf("resp changed on error: %+v", resp)
				}
				return
			}
			tc.want.Warning = "kept"
			slices.SortFunc(resp.Peers, func(a, b tracker.Peer) int { return a.Addr.Compare(b.Addr) })
			if resp.Complete != tc.want.Complete || resp.Incomplete != tc.want.Incomplete || resp.Downloaded != tc.want.Downloaded ||
				resp.Outcome != tc.want.Outcome || !slices.Equal(resp.Peers, tc.want.Peers) {
				t.Errorf("decodeAnnounce = %+v; want %+v", resp, tc.want)
			}
		})
	}
}

func TestDecodeScrape(t *testing.T) {
	dst, err := decodeScrape([]any{int64(1), int64(3), int64(9), int64(2)}, []tracker.ScrapeStats{{Complete: 5}})
	if err != nil || len(dst) != 2 || dst[1] != (tracker.ScrapeStats{Complete: 1, Incomplete: 3, Downloaded: 9, Downloaders: 2}) {
		t.Errorf("decodeScrape = %+v, %v", dst, err)
	}
	for _, bad := range []any{
		[]any{int64(1), int64(3), int64(9)},
		[]any{int64(1), int64(3), int64(9), int64(4)}, // more downloaders than leechers
		[]any{int64(1), int64(3), "9", int64(2)},
		nil,
	} {
		if dst, err := decodeScrape(bad, nil); !errors.Is(err, errReply) || len(dst) != 0 {
			t.Errorf("decodeScrape(%v) = %v, %v; want errReply and nothing appended", bad, dst, err)
		}
	}
}

// replyOf builds a script reply from fuzz input: shape picks how many
// elements it has and which are of the wrong type.
func replyOf(shape uint8, counts [4]int64, members string) any {
	r := []any{counts[0], counts[1], counts[2], counts[3], members}
	n := int(shape % 7)
	if n > len(r) {
		return members
	}
	r = r[:n]
	if shape&0x80 != 0 && n > 0 {
		r[int(shape>>3)%n] = members // a string where a count goes
	}
	return r
}

// FuzzDecode feeds the decoders replies of every shape: they never panic,
// accept what fits and leave the response alone otherwise.
func FuzzDecode(f *testing.F) {
	ip4, ip6 := netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("2001:db8::9")
	f.Add(uint8(5), int64(0), int64(3), int64(4), int64(1), []byte(record([8]byte{9}, ip4, 1)), false)
	f.Add(uint8(5), int64(0), int64(3), int64(4), int64(1), []byte(record([8]byte{9}, ip6, 2)+record([8]byte{8}, ip6, 3)), true)
	f.Add(uint8(4), int64(0), int64(0), int64(0), int64(0), []byte{}, false)
	f.Add(uint8(1), int64(1), int64(0), int64(0), int64(0), []byte{}, false)
	f.Add(uint8(0x85), int64(0), int64(-1), int64(1<<41), int64(7), []byte("xyz"), true)
	f.Fuzz(func(t *testing.T, shape uint8, code, a, b, c int64, members []byte, v6 bool) {
		fam := inet4
		if v6 {
			fam = inet6
		}
		reply := replyOf(shape, [4]int64{code, a, b, c}, string(members))
		resp := &tracker.AnnounceResponse{Peers: []tracker.Peer{{}}}
		if err := decodeAnnounce(reply, fam, resp); err != nil {
			if len(resp.Peers) != 1 || resp.Complete != 0 {
				t.Fatalf("on error %v the response changed: %+v", err, resp)
			}
		} else {
			if resp.Complete < 0 || resp.Incomplete < 0 || resp.Downloaded < 0 {
				t.Fatalf("negative counts: %+v", resp)
			}
			for _, p := range resp.Peers[1:] {
				if p.Addr.Addr().Is4() != (fam == inet4) {
					t.Fatalf("a peer %v of the other family", p.Addr)
				}
			}
		}
		dst, err := decodeScrape(reply, nil)
		if err == nil && (len(dst) != 1 || dst[0].Downloaders > dst[0].Incomplete) {
			t.Fatalf("decodeScrape = %+v", dst)
		}
		if err != nil && len(dst) != 0 {
			t.Fatalf("decodeScrape appended %+v on error %v", dst, err)
		}
	})
}
