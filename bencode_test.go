package tracker

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	strict "github.com/annuaire/tracker/internal/bencode"
	zeebo "github.com/zeebo/bencode"
)

// announceReply is an announce reply as zeebo/bencode decodes it.
type announceReply struct {
	Complete    int64  `bencode:"complete"`
	Downloaded  int64  `bencode:"downloaded"`
	ExternalIP  string `bencode:"external ip"`
	Incomplete  int64  `bencode:"incomplete"`
	Interval    int64  `bencode:"interval"`
	MinInterval int64  `bencode:"min interval"`
	Peers       any    `bencode:"peers"`
	Peers6      string `bencode:"peers6"`
	TrackerID   string `bencode:"tracker id"`
	Warning     string `bencode:"warning message"`
}

// failureReply is a failure reply as zeebo/bencode decodes it.
type failureReply struct {
	FailureReason string `bencode:"failure reason"`
	Interval      int64  `bencode:"interval"`
	MinInterval   int64  `bencode:"min interval"`
	RetryIn       any    `bencode:"retry in"`
}

// scrapeReply is a scrape reply as zeebo/bencode decodes it.
type scrapeReply struct {
	Files map[string]struct {
		Complete    int64 `bencode:"complete"`
		Downloaded  int64 `bencode:"downloaded"`
		Downloaders int64 `bencode:"downloaders"`
		Incomplete  int64 `bencode:"incomplete"`
	} `bencode:"files"`
	Flags struct {
		MinRequestInterval int64 `bencode:"min_request_interval"`
	} `bencode:"flags"`
}

func mustPeer(ap, id string) Peer {
	p := Peer{Addr: netip.MustParseAddrPort(ap)}
	copy(p.ID[:], id)
	return p
}

// testPeers returns n peers, IPv6 if v6, with ids if ids.
func testPeers(n int, v6, ids bool) []Peer {
	peers := make([]Peer, n)
	for i := range peers {
		var a netip.Addr
		if v6 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		} else {
			a = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		}
		peers[i].Addr = netip.AddrPortFrom(a, uint16(6881+i))
		if ids {
			copy(peers[i].ID[:], "-qB5010-")
			binary.BigEndian.PutUint64(peers[i].ID[12:], uint64(i)*0x9E3779B97F4A7C15)
		}
	}
	return peers
}

// wantPeers splits the valid peers into the two compact families, as
// appendAnnounce should see them.
func wantPeers(peers []Peer) (v4, v6 []netip.AddrPort) {
	for _, p := range peers {
		a := p.Addr.Addr().Unmap().WithZone("")
		switch {
		case a.Is4():
			v4 = append(v4, netip.AddrPortFrom(a, p.Addr.Port()))
		case a.Is6():
			v6 = append(v6, netip.AddrPortFrom(a, p.Addr.Port()))
		}
	}
	return v4, v6
}

// parseCompact reads back a compact peer string of entries of size
// 4+2 or 16+2.
func parseCompact(s string, size int) ([]netip.AddrPort, error) {
	if len(s)%size != 0 {
		return nil, fmt.Errorf("length %d is not a multiple of %d", len(s), size)
	}
	var out []netip.AddrPort
	for ; len(s) > 0; s = s[size:] {
		a, _ := netip.AddrFromSlice([]byte(s[:size-2]))
		out = append(out, netip.AddrPortFrom(a, binary.BigEndian.Uint16([]byte(s[size-2:size]))))
	}
	return out, nil
}

// checkAnnounce checks out, the encoding of r with o, with the strict
// decoder and against zeebo/bencode, field by field.
func checkAnnounce(t testing.TB, out []byte, r *AnnounceResponse, o replyOptions) {
	t.Helper()
	call := fmt.Sprintf("appendAnnounce(%d peers, %+v)", len(r.Peers), o)
	if err := strict.Valid(out); err != nil {
		t.Fatalf("%s = %q: %v", call, out, err)
	}
	var got announceReply
	if err := zeebo.DecodeBytes(out, &got); err != nil {
		t.Fatalf("%s = %q: zeebo/bencode: %v", call, out, err)
	}
	var keys map[string]any
	if err := zeebo.DecodeBytes(out, &keys); err != nil {
		t.Fatalf("%s = %q: zeebo/bencode: %v", call, out, err)
	}

	v4, v6 := wantPeers(r.Peers)
	wantKeys := []string{"complete", "downloaded", "incomplete", "interval", "min interval", "peers"}
	if o.ExternalIP.IsValid() {
		wantKeys = append(wantKeys, "external ip")
	}
	if o.Compact && len(v6) > 0 {
		wantKeys = append(wantKeys, "peers6")
	}
	if o.TrackerID != "" {
		wantKeys = append(wantKeys, "tracker id")
	}
	if r.Warning != "" {
		wantKeys = append(wantKeys, "warning message")
	}
	slices.Sort(wantKeys)
	var gotKeys []string
	for k := range keys {
		gotKeys = append(gotKeys, k)
	}
	slices.Sort(gotKeys)
	if !slices.Equal(gotKeys, wantKeys) {
		t.Errorf("%s has keys %q; want %q", call, gotKeys, wantKeys)
	}
	if _, ok := keys["retry in"]; ok {
		t.Errorf("%s has retry in; want it only in failures", call)
	}

	ints := []struct {
		name      string
		got, want int64
	}{
		{"complete", got.Complete, int64(r.Complete)},
		{"downloaded", got.Downloaded, int64(r.Downloaded)},
		{"incomplete", got.Incomplete, int64(r.Incomplete)},
		{"interval", got.Interval, int64(r.Interval / time.Second)},
		{"min interval", got.MinInterval, int64(r.MinInterval / time.Second)},
	}
	for _, f := range ints {
		if f.got != f.want {
			t.Errorf("%s: %s = %d; want %d", call, f.name, f.got, f.want)
		}
	}
	if got.Warning != r.Warning {
		t.Errorf("%s: warning message = %q; want %q", call, got.Warning, r.Warning)
	}
	if got.TrackerID != o.TrackerID {
		t.Errorf("%s: tracker id = %q; want %q", call, got.TrackerID, o.TrackerID)
	}
	if ext := o.ExternalIP.Unmap(); ext.IsValid() {
		want := string(ext.AsSlice())
		if got.ExternalIP != want {
			t.Errorf("%s: external ip = %q; want %q", call, got.ExternalIP, want)
		}
	}

	if o.Compact {
		s, ok := got.Peers.(string)
		if !ok {
			t.Fatalf("%s: peers = %#v; want a string", call, got.Peers)
		}
		p4, err := parseCompact(s, 6)
		if err != nil || !slices.Equal(p4, v4) {
			t.Errorf("%s: peers = %v, %v; want %v", call, p4, err, v4)
		}
		p6, err := parseCompact(got.Peers6, 18)
		if err != nil || !slices.Equal(p6, v6) {
			t.Errorf("%s: peers6 = %v, %v; want %v", call, p6, err, v6)
		}
		return
	}
	list, ok := got.Peers.([]any)
	if !ok && got.Peers != nil {
		t.Fatalf("%s: peers = %#v; want a list", call, got.Peers)
	}
	var valid []Peer
	for _, p := range r.Peers {
		if p.Addr.Addr().IsValid() {
			valid = append(valid, p)
		}
	}
	if len(list) != len(valid) {
		t.Fatalf("%s: %d dictionary peers; want %d", call, len(list), len(valid))
	}
	for i, e := range list {
		d, ok := e.(map[string]any)
		if !ok {
			t.Fatalf("%s: peer %d = %#v; want a dictionary", call, i, e)
		}
		p := valid[i]
		wantIP := p.Addr.Addr().Unmap().WithZone("").String()
		if ip, _ := d["ip"].(string); ip != wantIP {
			t.Errorf("%s: peer %d ip = %q; want %q", call, i, ip, wantIP)
		}
		if port, _ := d["port"].(int64); port != int64(p.Addr.Port()) {
			t.Errorf("%s: peer %d port = %v; want %d", call, i, d["port"], p.Addr.Port())
		}
		id, hasID := d["peer id"]
		switch wantID := !o.NoPeerID && p.ID != (PeerID{}); {
		case wantID && id != string(p.ID[:]):
			t.Errorf("%s: peer %d peer id = %q; want %q", call, i, id, p.ID[:])
		case !wantID && hasID:
			t.Errorf("%s: peer %d has peer id %q; want none", call, i, id)
		}
		if (hasID && len(d) != 3) || (!hasID && len(d) != 2) {
			t.Errorf("%s: peer %d = %q; want keys ip, peer id, port", call, i, d)
		}
	}
}

// goldenResponse has a peer of each kind: IPv4 with an id, IPv6 without,
// IPv4-mapped IPv6 without.
func goldenResponse() *AnnounceResponse {
	return &AnnounceResponse{
		Interval:    1800*time.Second + 500*time.Millisecond,
		MinInterval: 900 * time.Second,
		Complete:    1,
		Incomplete:  2,
		Downloaded:  3,
		Warning:     "low ratio",
		Peers: []Peer{
			mustPeer("10.0.0.1:6881", "-qB5010-aaaaaaaaaaaa"),
			mustPeer("[2001:db8::1]:6882", ""),
			mustPeer("[::ffff:192.168.1.2]:51413", ""),
		},
	}
}

func TestAppendAnnounceGolden(t *testing.T) {
	tests := []struct {
		name string
		r    *AnnounceResponse
		o    replyOptions
		want string
	}{
		{
			name: "compact with every key",
			r:    goldenResponse(),
			o:    replyOptions{Compact: true, ExternalIP: netip.MustParseAddr("203.0.113.7"), TrackerID: "t1"},
			want: "d8:completei1e10:downloadedi3e11:external ip4:\xcb\x00\x71\x07" +
				"10:incompletei2e8:intervali1800e12:min intervali900e" +
				"5:peers12:\x0a\x00\x00\x01\x1a\xe1\xc0\xa8\x01\x02\xc8\xd5" +
				"6:peers618:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe2" +
				"10:tracker id2:t115:warning message9:low ratioe",
		},
		{
			name: "dictionary with IPv6 external ip",
			r:    goldenResponse(),
			o:    replyOptions{ExternalIP: netip.MustParseAddr("2001:db8::ff")},
			want: "d8:completei1e10:downloadedi3e" +
				"11:external ip16:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff" +
				"10:incompletei2e8:intervali1800e12:min intervali900e5:peersl" +
				"d2:ip8:10.0.0.17:peer id20:-qB5010-aaaaaaaaaaaa4:porti6881ee" +
				"d2:ip11:2001:db8::14:porti6882ee" +
				"d2:ip11:192.168.1.24:porti51413ee" +
				"e15:warning message9:low ratioe",
		},
		{
			name: "dictionary without peer ids",
			r:    goldenResponse(),
			o:    replyOptions{NoPeerID: true, ExternalIP: netip.MustParseAddr("::ffff:203.0.113.7")},
			want: "d8:completei1e10:downloadedi3e11:external ip4:\xcb\x00\x71\x07" +
				"10:incompletei2e8:intervali1800e12:min intervali900e5:peersl" +
				"d2:ip8:10.0.0.14:porti6881ee" +
				"d2:ip11:2001:db8::14:porti6882ee" +
				"d2:ip11:192.168.1.24:porti51413ee" +
				"e15:warning message9:low ratioe",
		},
		{
			name: "compact empty",
			r:    &AnnounceResponse{},
			o:    replyOptions{Compact: true},
			want: "d8:completei0e10:downloadedi0e10:incompletei0e8:intervali0e12:min intervali0e5:peers0:e",
		},
		{
			name: "dictionary empty",
			r:    &AnnounceResponse{},
			want: "d8:completei0e10:downloadedi0e10:incompletei0e8:intervali0e12:min intervali0e5:peerslee",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendAnnounce(nil, tt.r, tt.o)
			if string(got) != tt.want {
				t.Errorf("appendAnnounce(%+v) = %q; want %q", tt.o, got, tt.want)
			}
			checkAnnounce(t, got, tt.r, tt.o)
		})
	}
}

// TestAppendAnnounceCompact checks the shape of compact replies: peers
// always present with 6 bytes per IPv4 peer (IPv4-mapped included), peers6
// only with IPv6 peers, 18 bytes each.
func TestAppendAnnounceCompact(t *testing.T) {
	mixed := append(testPeers(5, false, false), testPeers(3, true, false)...)
	tests := []struct {
		name   string
		peers  []Peer
		n4, n6 int
	}{
		{"no peers", nil, 0, 0},
		{"one IPv4", testPeers(1, false, false), 1, 0},
		{"50 IPv4", testPeers(50, false, true), 50, 0},
		{"200 IPv4", testPeers(200, false, true), 200, 0},
		{"IPv6 only", testPeers(7, true, true), 0, 7},
		{"mixed", mixed, 5, 3},
		{"IPv4-mapped", []Peer{mustPeer("[::ffff:10.1.2.3]:1", ""), mustPeer("[::ffff:0:0]:2", "")}, 2, 0},
		{"IPv6 with zone", []Peer{mustPeer("[fe80::1%eth0]:6881", "")}, 0, 1},
		{"invalid address left out", []Peer{{}, mustPeer("10.0.0.1:1", "")}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &AnnounceResponse{Interval: time.Hour, Complete: 4, Incomplete: 9, Downloaded: 100, Peers: tt.peers}
			o := replyOptions{Compact: true}
			out := appendAnnounce(nil, r, o)
			checkAnnounce(t, out, r, o)
			var got map[string]any
			if err := zeebo.DecodeBytes(out, &got); err != nil {
				t.Fatal(err)
			}
			peers, _ := got["peers"].(string)
			if len(peers)%6 != 0 || len(peers) != 6*tt.n4 {
				t.Errorf("appendAnnounce(%v) peers has %d bytes; want %d", tt.peers, len(peers), 6*tt.n4)
			}
			peers6, has6 := got["peers6"].(string)
			if has6 != (tt.n6 > 0) || len(peers6)%18 != 0 || len(peers6) != 18*tt.n6 {
				t.Errorf("appendAnnounce(%v) peers6 = %d bytes (present %v); want %d", tt.peers, len(peers6), has6, 18*tt.n6)
			}
		})
	}
}

// TestAppendAnnounceDict checks dictionary peers: both families in one
// list, peer id only when asked for and known.
func TestAppendAnnounceDict(t *testing.T) {
	withIDs := append(testPeers(3, false, true), testPeers(2, true, true)...)
	tests := []struct {
		name     string
		peers    []Peer
		noPeerID bool
		wantIDs  int
	}{
		{"no peers", nil, false, 0},
		{"ids", withIDs, false, 5},
		{"no_peer_id", withIDs, true, 0},
		{"zero ids", testPeers(4, false, false), false, 0},
		{"some zero ids", append(testPeers(2, true, false), testPeers(3, false, true)...), false, 3},
		{"200 peers", testPeers(200, false, true), false, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &AnnounceResponse{Interval: time.Hour, MinInterval: time.Minute, Complete: 1, Peers: tt.peers}
			o := replyOptions{NoPeerID: tt.noPeerID}
			out := appendAnnounce(nil, r, o)
			checkAnnounce(t, out, r, o)
			var got map[string]any
			if err := zeebo.DecodeBytes(out, &got); err != nil {
				t.Fatal(err)
			}
			if _, ok := got["peers6"]; ok {
				t.Errorf("appendAnnounce(dictionary) has peers6; want IPv6 peers in peers")
			}
			list, _ := got["peers"].([]any)
			ids := 0
			for _, e := range list {
				if id, ok := e.(map[string]any)["peer id"].(string); ok {
					ids++
					if len(id) != 20 {
						t.Errorf("appendAnnounce(dictionary) peer id %q has %d bytes; want 20", id, len(id))
					}
				}
			}
			if len(list) != len(tt.peers) || ids != tt.wantIDs {
				t.Errorf("appendAnnounce(%d peers, NoPeerID %v) = %d peers, %d ids; want %d, %d",
					len(tt.peers), tt.noPeerID, len(list), ids, len(tt.peers), tt.wantIDs)
			}
		})
	}
}

// TestAppendAnnounceAppends checks that the reply goes after what dst
// already holds.
func TestAppendAnnounceAppends(t *testing.T) {
	r := goldenResponse()
	o := replyOptions{Compact: true}
	want := appendAnnounce(nil, r, o)
	got := appendAnnounce([]byte("HTTP/1.1 200 OK\r\n\r\n"), r, o)
	if !bytes.Equal(got, append([]byte("HTTP/1.1 200 OK\r\n\r\n"), want...)) {
		t.Errorf("appendAnnounce(prefix) = %q; want the prefix then %q", got, want)
	}
}

func TestAppendFailure(t *testing.T) {
	tests := []struct {
		name    string
		retryIn time.Duration
		want    any // nil: no retry in
	}{
		{"no retry", 0, nil},
		{"negative", -2 * time.Minute, nil},
		{"never", RetryNever, "never"},
		{"one second", time.Second, int64(1)},
		{"one minute", time.Minute, int64(1)},
		{"a minute and a second", time.Minute + time.Second, int64(2)},
		{"five minutes", 5 * time.Minute, int64(5)},
		{"just over 90 minutes", 90*time.Minute + 1, int64(91)},
		{"longest", math.MaxInt64, int64(math.MaxInt64/int64(time.Minute) + 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Error{Kind: KindOther, Reason: "go away", RetryIn: tt.retryIn}
			out := appendFailure(nil, e, 1800*time.Second+999*time.Millisecond, 900*time.Second)
			if err := strict.Valid(out); err != nil {
				t.Fatalf("appendFailure(%v) = %q: %v", tt.retryIn, out, err)
			}
			var got failureReply
			if err := zeebo.DecodeBytes(out, &got); err != nil {
				t.Fatalf("appendFailure(%v) = %q: zeebo/bencode: %v", tt.retryIn, out, err)
			}
			want := failureReply{FailureReason: "go away", Interval: 1800, MinInterval: 900, RetryIn: tt.want}
			if got != want {
				t.Errorf("appendFailure(%v) = %+v; want %+v", tt.retryIn, got, want)
			}
			var keys map[string]any
			if err := zeebo.DecodeBytes(out, &keys); err != nil {
				t.Fatal(err)
			}
			wantKeys := 3
			if tt.want != nil {
				wantKeys = 4
			}
			if len(keys) != wantKeys {
				t.Errorf("appendFailure(%v) = %q; want %d keys", tt.retryIn, out, wantKeys)
			}
		})
	}
}

func TestAppendFailureGolden(t *testing.T) {
	tests := []struct {
		e    *Error
		want string
	}{
		{ErrRateLimited, "d14:failure reason28:too many requests, slow down8:intervali1800e12:min intervali900e8:retry ini1ee"},
		{ErrUnregisteredTorrent, "d14:failure reason20:unregistered torrent8:intervali1800e12:min intervali900ee"},
		{&Error{Reason: "banned", RetryIn: RetryNever}, "d14:failure reason6:banned8:intervali1800e12:min intervali900e8:retry in5:nevere"},
		{errInternal, "d14:failure reason22:internal tracker error8:intervali1800e12:min intervali900ee"},
	}
	for _, tt := range tests {
		got := appendFailure(nil, tt.e, 30*time.Minute, 15*time.Minute)
		if string(got) != tt.want {
			t.Errorf("appendFailure(%v) = %q; want %q", tt.e, got, tt.want)
		}
	}
}

func bhash(b byte) InfoHash {
	var h InfoHash
	for i := range h {
		h[i] = b + byte(i)
	}
	return h
}

func TestAppendScrapeGolden(t *testing.T) {
	h1, h2 := bhash(0x01), bhash(0xa0)
	files := []ScrapeStats{{Complete: 5, Incomplete: 2, Downloaded: 40, Downloaders: 1}, {Complete: 1}}
	want := "d5:filesd" +
		"20:" + string(h1[:]) + "d8:completei1e10:downloadedi0e11:downloadersi0e10:incompletei0ee" +
		"20:" + string(h2[:]) + "d8:completei5e10:downloadedi40e11:downloadersi1e10:incompletei2ee" +
		"e5:flagsd20:min_request_intervali900eee"
	got, _ := appendScrape(nil, []InfoHash{h2, h1}, files, 900*time.Second, nil)
	if string(got) != want {
		t.Errorf("appendScrape(h2, h1) = %q; want %q", got, want)
	}
}

func TestAppendScrape(t *testing.T) {
	h1, h2, h3 := bhash(0x10), bhash(0x20), bhash(0x30)
	many := make([]InfoHash, 60)
	for i := range many {
		binary.BigEndian.PutUint64(many[i][:], uint64(i)*0x9E3779B97F4A7C15)
	}
	tests := []struct {
		name   string
		hashes []InfoHash
	}{
		{"one", []InfoHash{h1}},
		{"two", []InfoHash{h1, h2}},
		{"two reversed", []InfoHash{h2, h1}},
		{"duplicate", []InfoHash{h1, h1}},
		{"duplicates disordered", []InfoHash{h3, h1, h3, h2, h1}},
		{"zero hash", []InfoHash{{}, h1}},
		{"prefix order", []InfoHash{{0xff}, {0x00, 0xff}, {0x00, 0x00, 0x01}}},
		{"60 hashes", many},
	}
	var order []int
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := make([]ScrapeStats, len(tt.hashes))
			first := map[InfoHash]ScrapeStats{}
			for i, h := range tt.hashes {
				files[i] = ScrapeStats{Complete: i + 1, Incomplete: 2*i + 1, Downloaded: 100 + i, Downloaders: i}
				if _, ok := first[h]; !ok {
					first[h] = files[i]
				}
			}
			var out []byte
			out, order = appendScrape(nil, tt.hashes, files, 15*time.Minute, order)
			if err := strict.Valid(out); err != nil {
				t.Fatalf("appendScrape(%d hashes) = %q: %v", len(tt.hashes), out, err)
			}
			var got scrapeReply
			if err := zeebo.DecodeBytes(out, &got); err != nil {
				t.Fatalf("appendScrape(%d hashes) = %q: zeebo/bencode: %v", len(tt.hashes), out, err)
			}
			if len(got.Files) != len(first) {
				t.Errorf("appendScrape(%d hashes) has %d files; want %d", len(tt.hashes), len(got.Files), len(first))
			}
			for h, st := range first {
				f, ok := got.Files[string(h[:])]
				switch {
				case !ok:
					t.Errorf("appendScrape(%d hashes) has no file %x", len(tt.hashes), h)
				case f.Complete != int64(st.Complete) || f.Incomplete != int64(st.Incomplete) ||
					f.Downloaded != int64(st.Downloaded) || f.Downloaders != int64(st.Downloaders):
					t.Errorf("appendScrape: file %x = %+v; want %+v", h, f, st)
				}
			}
			if got.Flags.MinRequestInterval != 900 {
				t.Errorf("appendScrape: min_request_interval = %d; want 900", got.Flags.MinRequestInterval)
			}
			var keys map[string]map[string]any
			if err := zeebo.DecodeBytes(out, &keys); err != nil {
				t.Fatal(err)
			}
			if len(keys) != 2 || keys["files"] == nil || keys["flags"] == nil {
				t.Errorf("appendScrape: keys of %q; want files and flags", out)
			}
		})
	}
	if cap(order) < 60 {
		t.Errorf("appendScrape returned scratch of capacity %d; want at least 60", cap(order))
	}
}

// TestReplyKeyOrder checks item 4 of the checklist of docs/protocol.md:
// every reply lists its keys in raw-byte order.
func TestReplyKeyOrder(t *testing.T) {
	r := &AnnounceResponse{Interval: time.Hour, Warning: "w", Peers: []Peer{
		mustPeer("10.0.0.1:1", "-TR4050-000000000000"), mustPeer("[2001:db8::1]:2", "-TR4050-000000000001"),
	}}
	ext := netip.MustParseAddr("10.9.9.9")
	scrape, _ := appendScrape(nil, []InfoHash{bhash(1)}, []ScrapeStats{{}}, 0, nil)
	tests := []struct {
		name string
		out  []byte
		keys []string
	}{
		{"compact", appendAnnounce(nil, r, replyOptions{Compact: true, ExternalIP: ext, TrackerID: "x"}),
			[]string{"complete", "downloaded", "external ip", "incomplete", "interval", "min interval", "peers", "peers6", "tracker id", "warning message"}},
		{"dictionary", appendAnnounce(nil, r, replyOptions{ExternalIP: ext, TrackerID: "x"}),
			[]string{"complete", "downloaded", "external ip", "incomplete", "interval", "min interval", "peers", "ip", "peer id", "port", "tracker id", "warning message"}},
		{"failure", appendFailure(nil, &Error{Reason: "no", RetryIn: time.Minute}, time.Hour, time.Minute),
			[]string{"failure reason", "interval", "min interval", "retry in"}},
		{"scrape", scrape,
			[]string{"files", "complete", "downloaded", "downloaders", "incomplete", "flags", "min_request_interval"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := strict.Valid(tt.out); err != nil {
				t.Fatalf("%s reply %q: %v", tt.name, tt.out, err)
			}
			at := 0
			for _, k := range tt.keys {
				key := fmt.Sprintf("%d:%s", len(k), k)
				i := bytes.Index(tt.out[at:], []byte(key))
				if i < 0 {
					t.Fatalf("%s reply %q: no key %q after offset %d", tt.name, tt.out, k, at)
				}
				at += i + len(key)
			}
		})
	}
}

func TestEncodersAllocs(t *testing.T) {
	dst := make([]byte, 0, 64<<10)
	many := make([]InfoHash, 60)
	for i := range many {
		binary.BigEndian.PutUint64(many[i][:], uint64(i)*0x9E3779B97F4A7C15)
	}
	files := make([]ScrapeStats, len(many))
	order := make([]int, 0, len(many))
	ext := netip.MustParseAddr("2001:db8::7")
	tests := []struct {
		name string
		f    func()
	}{
		{"appendAnnounce compact 50", func() {
			r := &AnnounceResponse{Interval: time.Hour, Peers: testPeers(50, false, true)}
			o := replyOptions{Compact: true, ExternalIP: ext, TrackerID: "abc"}
			checkZero(t, "appendAnnounce(compact, 50 peers)", func() { dst = appendAnnounce(dst[:0], r, o) })
		}},
		{"appendAnnounce compact 200", func() {
			r := &AnnounceResponse{Interval: time.Hour, Peers: append(testPeers(100, false, true), testPeers(100, true, true)...), Warning: "w"}
			checkZero(t, "appendAnnounce(compact, 200 peers)", func() { dst = appendAnnounce(dst[:0], r, replyOptions{Compact: true}) })
		}},
		{"appendAnnounce dictionary 50", func() {
			r := &AnnounceResponse{Interval: time.Hour, Peers: testPeers(50, true, true)}
			checkZero(t, "appendAnnounce(dictionary, 50 peers)", func() { dst = appendAnnounce(dst[:0], r, replyOptions{}) })
		}},
		{"appendAnnounce dictionary 200", func() {
			r := &AnnounceResponse{Interval: time.Hour, Peers: append(testPeers(100, false, true), testPeers(100, true, false)...)}
			checkZero(t, "appendAnnounce(dictionary, 200 peers)", func() { dst = appendAnnounce(dst[:0], r, replyOptions{}) })
		}},
		{"appendScrape", func() {
			checkZero(t, "appendScrape(60 hashes)", func() { dst, order = appendScrape(dst[:0], many, files, time.Minute, order) })
		}},
		{"appendScrapeEntry", func() {
			checkZero(t, "appendScrapeEntry", func() { dst = appendScrapeEntry(dst[:0], many[0], files[0]) })
		}},
		{"appendFailure", func() {
			checkZero(t, "appendFailure", func() { dst = appendFailure(dst[:0], ErrTooManyPeers, time.Hour, time.Minute) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.f() })
	}
}

func checkZero(t *testing.T, name string, f func()) {
	t.Helper()
	if n := testing.AllocsPerRun(100, f); n != 0 {
		t.Errorf("%s allocates %v times; want 0", name, n)
	}
}

func BenchmarkAppendAnnounce(b *testing.B) {
	benches := []struct {
		name    string
		peers   []Peer
		compact bool
	}{
		{"compact-50", testPeers(50, false, false), true},
		{"compact-200", testPeers(200, false, false), true},
		{"compact6-50", testPeers(50, true, false), true},
		{"dict-50", testPeers(50, false, true), false},
		{"dict-200", testPeers(200, false, true), false},
	}
	for _, bc := range benches {
		b.Run(bc.name, func(b *testing.B) {
			r := &AnnounceResponse{Interval: 1843 * time.Second, MinInterval: 900 * time.Second,
				Complete: 120, Incomplete: 80, Downloaded: 5000, Peers: bc.peers}
			o := replyOptions{Compact: bc.compact}
			dst := make([]byte, 0, 32<<10)
			b.ReportAllocs()
			for b.Loop() {
				dst = appendAnnounce(dst[:0], r, o)
			}
			b.ReportMetric(float64(len(dst))/float64(len(bc.peers)), "bytes/peer")
		})
	}
}

func BenchmarkAppendScrape(b *testing.B) {
	for _, n := range []int{1, 60} {
		b.Run(fmt.Sprintf("hashes-%d", n), func(b *testing.B) {
			hashes := make([]InfoHash, n)
			for i := range hashes {
				binary.BigEndian.PutUint64(hashes[i][:], uint64(i+1)*0x9E3779B97F4A7C15)
			}
			files := make([]ScrapeStats, n)
			dst := make([]byte, 0, 8<<10)
			var order []int
			b.ReportAllocs()
			for b.Loop() {
				dst, order = appendScrape(dst[:0], hashes, files, 15*time.Minute, order)
			}
		})
	}
}

// fuzzPeers builds peers from data: per peer a tag byte, whose low two bits
// pick IPv4, IPv6, IPv4-mapped IPv6 or an invalid address, bit 2 an id and
// bit 3 a zone on IPv6; then the address, the port and the id.
func fuzzPeers(data []byte) []Peer {
	var peers []Peer
	for len(data) > 0 && len(peers) < 400 {
		tag := data[0]
		data = data[1:]
		var a netip.Addr
		switch tag & 3 {
		case 0, 2:
			if len(data) < 4 {
				return peers
			}
			a = netip.AddrFrom4([4]byte(data[:4]))
			if tag&3 == 2 {
				a = netip.AddrFrom16(a.As16())
			}
			data = data[4:]
		case 1:
			if len(data) < 16 {
				return peers
			}
			a = netip.AddrFrom16([16]byte(data[:16]))
			if tag&8 != 0 && !a.Is4In6() {
				a = a.WithZone("eth0")
			}
			data = data[16:]
		}
		if len(data) < 2 {
			return peers
		}
		var p Peer
		if a.IsValid() {
			p.Addr = netip.AddrPortFrom(a, binary.BigEndian.Uint16(data))
		}
		data = data[2:]
		if tag&4 != 0 {
			if len(data) < 20 {
				return peers
			}
			p.ID = PeerID(data[:20])
			data = data[20:]
		}
		peers = append(peers, p)
	}
	return peers
}

// FuzzAppendAnnounce encodes replies built from fuzz input and checks each
// with the strict decoder and against zeebo/bencode.
func FuzzAppendAnnounce(f *testing.F) {
	v4 := []byte{0, 10, 0, 0, 1, 0x1a, 0xe1}
	v6 := append([]byte{5, 0x20, 0x01, 0x0d, 0xb8, 12: 0, 16: 1, 0x1a, 0xe1}, "-qB5010-abcdefghijkl"...)
	mapped := []byte{2, 192, 168, 1, 2, 0xc8, 0xd5}
	zoned := []byte{9, 0xfe, 0x80, 15: 1, 16: 0, 0, 80}
	f.Add([]byte{}, 0, 0, 0, int64(0), int64(0), "", "", []byte{}, uint8(1))
	f.Add(v4, 10, 4, 31, int64(1843e9), int64(900e9), "", "", []byte{}, uint8(1))
	f.Add(slices.Concat(v4, v6, mapped), 1, 2, 3, int64(1800e9), int64(900e9), "low ratio", "t1", []byte{203, 0, 113, 7}, uint8(1))
	f.Add(slices.Concat(v6, v4, zoned, []byte{3, 0, 1}), 0, 1, 0, int64(1800e9+5e8), int64(900e9), "", "", netip.MustParseAddr("2001:db8::1").AsSlice(), uint8(0))
	f.Add(slices.Concat(v6, v6, v4), -1, math.MaxInt, math.MinInt, int64(-1), int64(math.MaxInt64), "w\x00\xff", "\x00", []byte{1, 2, 3}, uint8(2))
	f.Fuzz(func(t *testing.T, peers []byte, complete, incomplete, downloaded int, interval, minInterval int64,
		warning, trackerID string, ext []byte, flags uint8) {
		r := &AnnounceResponse{
			Interval:    time.Duration(interval),
			MinInterval: time.Duration(minInterval),
			Complete:    complete,
			Incomplete:  incomplete,
			Downloaded:  downloaded,
			Peers:       fuzzPeers(peers),
			Warning:     warning,
		}
		o := replyOptions{Compact: flags&1 != 0, NoPeerID: flags&2 != 0, TrackerID: trackerID}
		o.ExternalIP, _ = netip.AddrFromSlice(ext)
		out := appendAnnounce(nil, r, o)
		checkAnnounce(t, out, r, o)
		prefixed := appendAnnounce([]byte("x"), r, o)
		if !bytes.Equal(prefixed[1:], out) || prefixed[0] != 'x' {
			t.Fatalf("appendAnnounce(prefix) = %q; want the prefix then %q", prefixed, out)
		}
	})
}
