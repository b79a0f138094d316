package tracker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
)

func hashOf(s string) InfoHash {
	h, err := ParseInfoHash(s)
	if err != nil {
		panic(err)
	}
	return h
}

func peerID(prefix string) PeerID {
	var id PeerID
	copy(id[:], prefix+"0123456789abcdefghijkl")
	return id
}

var (
	hashA = hashOf("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	hashB = hashOf("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
	hashC = hashOf("cccccccccccccccccccccccccccccccccccccccc")
)

// checkPasskeys checks that s holds exactly want.
func checkPasskeys(t *testing.T, s *PasskeySet, want map[string]uint64, absent ...string) {
	t.Helper()
	if got := s.Len(); got != len(want) {
		t.Errorf("Len() = %d; want %d", got, len(want))
	}
	ctx := context.Background()
	for _, p := range slices.Sorted(maps.Keys(want)) {
		id, err := s.ValidatePasskey(ctx, p)
		if err != nil || id.UserID != want[p] {
			t.Errorf("ValidatePasskey(%q) = %v, %v; want user %d", p, id.UserID, err, want[p])
		}
	}
	for _, p := range absent {
		if id, err := s.ValidatePasskey(ctx, p); err != ErrInvalidPasskey {
			t.Errorf("ValidatePasskey(%q) = %v, %v; want %v", p, id, err, ErrInvalidPasskey)
		}
	}
}

func TestPasskeySet(t *testing.T) {
	type op struct {
		set, del string
		user     uint64
	}
	tests := []struct {
		name   string
		ops    []op
		want   map[string]uint64
		absent []string
	}{
		{"empty", nil, map[string]uint64{}, []string{"x", "", "abc"}},
		{"one", []op{{set: "abc", user: 7}}, map[string]uint64{"abc": 7}, []string{"ab", "abcd", "ABC"}},
		{"user 0", []op{{set: "anon", user: 0}}, map[string]uint64{"anon": 0}, nil},
		{"change user", []op{{set: "k", user: 1}, {set: "k", user: 2}}, map[string]uint64{"k": 2}, nil},
		{"delete", []op{{set: "k1", user: 1}, {set: "k2", user: 2}, {del: "k1"}}, map[string]uint64{"k2": 2}, []string{"k1"}},
		{"delete absent", []op{{set: "k1", user: 1}, {del: "zz"}}, map[string]uint64{"k1": 1}, []string{"zz"}},
		{"delete and set again", []op{{set: "k", user: 1}, {del: "k"}, {set: "k", user: 3}}, map[string]uint64{"k": 3}, nil},
		{"max user", []op{{set: "big", user: 1<<64 - 1}}, map[string]uint64{"big": 1<<64 - 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewPasskeySet()
			for _, o := range tt.ops {
				if o.del != "" {
					s.Delete(o.del)
				} else {
					s.Set(o.set, o.user)
				}
			}
			checkPasskeys(t, s, tt.want, tt.absent...)
		})
	}
}

func TestPasskeySetZeroValue(t *testing.T) {
	var s PasskeySet
	checkPasskeys(t, &s, map[string]uint64{}, "k")
	s.Delete("k")
	s.Set("k", 5)
	checkPasskeys(t, &s, map[string]uint64{"k": 5})
}

// TestPasskeySetMany fills a set through Set, so that its tables grow,
// then empties most of it, so that they shrink.
func TestPasskeySetMany(t *testing.T) {
	s := NewPasskeySet()
	want := map[string]uint64{}
	for i := range 20_000 {
		p := fmt.Sprintf("key-%d", i)
		s.Set(p, uint64(i))
		want[p] = uint64(i)
	}
	checkPasskeys(t, s, want)
	var gone []string
	for i := range 19_900 {
		p := fmt.Sprintf("key-%d", i)
		s.Delete(p)
		delete(want, p)
		if i%100 == 0 {
			gone = append(gone, p)
		}
	}
	checkPasskeys(t, s, want, gone...)
}

func TestPasskeySetReplace(t *testing.T) {
	s := NewPasskeySet()
	s.Set("old", 1)
	s.Replace(func(yield func(string, uint64) bool) {
		_ = yield("a", 1) && yield("b", 2) && yield("a", 3) && yield("c", 0)
	})
	checkPasskeys(t, s, map[string]uint64{"a": 3, "b": 2, "c": 0}, "old")
	s.Set("d", 4)
	s.Delete("b")
	checkPasskeys(t, s, map[string]uint64{"a": 3, "c": 0, "d": 4}, "old", "b")
	s.Replace(func(func(string, uint64) bool) {})
	checkPasskeys(t, s, map[string]uint64{}, "a", "c", "d")
}

func TestPasskeySetLoad(t *testing.T) {
	tests := []struct {
		name, file string
		want       map[string]uint64
	}{
		{"empty", "", map[string]uint64{}},
		{"comments only", "# passkeys\n\n   \n\t# none\n", map[string]uint64{}},
		{"with users", "3f786850e387550fdab836ed7e6dc881 1042\nbd2c4e1a 7\n", map[string]uint64{"3f786850e387550fdab836ed7e6dc881": 1042, "bd2c4e1a": 7}},
		{"without users", "k1\nk2\n", map[string]uint64{"k1": 0, "k2": 0}},
		{"blanks and comments", "  k1\t\t12  # alice\r\nk2 # no user\n#k3 4\n", map[string]uint64{"k1": 12, "k2": 0}},
		{"no final newline", "k1 1\nk2 2", map[string]uint64{"k1": 1, "k2": 2}},
		{"CRLF", "k1 1\r\nk2 2\r\n", map[string]uint64{"k1": 1, "k2": 2}},
		{"repeated passkey", "k 1\nk 2\n", map[string]uint64{"k": 2}},
		{"punctuation", "a-b_c.d~e!f$g'h(i)j*k+l,m;n=o:p@q[r]s\n", map[string]uint64{"a-b_c.d~e!f$g'h(i)j*k+l,m;n=o:p@q[r]s": 0}},
		{"longest", strings.Repeat("x", MaxPasskeyLen) + " 9\n", map[string]uint64{strings.Repeat("x", MaxPasskeyLen): 9}},
		{"max user", "k 18446744073709551615\n", map[string]uint64{"k": 1<<64 - 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewPasskeySet()
			s.Set("old", 1)
			if err := s.Load(strings.NewReader(tt.file)); err != nil {
				t.Fatalf("Load(%q) = %v; want nil", tt.file, err)
			}
			checkPasskeys(t, s, tt.want, "old")
		})
	}
}

// TestLoadErrors checks the errors of every loader: they name the line,
// and leave the list as it was.
func TestLoadErrors(t *testing.T) {
	secret := "s3cr3tpasskey"
	tests := []struct {
		list, file string
		line       int
		reason     string // in the message
	}{
		{"passkeys", "k1 1\nk2 x\n", 2, "the user id (1 bytes) is not a decimal number"},
		{"passkeys", "k1 -1\n", 1, "is not a decimal number"},
		{"passkeys", "k1 18446744073709551616\n", 1, "is not a decimal number"},
		{"passkeys", "k1 1 2\n", 1, "more than a passkey and a user id"},
		{"passkeys", "\n\n# c\n" + secret + "/x\n", 4, "invalid character '/' at byte 14"},
		{"passkeys", secret + "?a\n", 1, "invalid character '?'"},
		{"passkeys", secret + "&a\n", 1, "invalid character '&'"},
		{"passkeys", secret + "%41\n", 1, "invalid character '%'"},
		{"passkeys", secret + "#a\n", 1, "invalid character '#'"},
		{"passkeys", secret + "\x00\n", 1, `invalid character '\x00'`},
		{"passkeys", "caf\u00e9" + secret + "\n", 1, "invalid character"},
		{"passkeys", strings.Repeat("x", MaxPasskeyLen+1) + "\n", 1, "passkey of 129 bytes, longer than 128"},
		{"passkeys", "ok\n" + strings.Repeat("y", maxListLine+1) + "\n", 2, "line longer than"},
		{"torrents", hashA.String() + "\nxyz\n", 2, `info hash "xyz": want 40 hex digits`},
		{"torrents", strings.Repeat("g", 40) + "\n", 1, "invalid hex digit"},
		{"torrents", hashA.String() + "0\n", 1, "have 41 characters"},
		{"torrents", hashA.String() + " x\n", 1, `unexpected "x" after the info hash`},
		{"torrents", "# c\n\n" + hashA.String() + hashA.String()[:23] + "\n", 3, "have 63 characters"},
		{"clients", "-qB\n-TR\n\n-UT 1\n", 4, `unexpected "1" after the prefix`},
		{"clients", "-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 1, "longer than a peer id"},
		{"clients", `"\x00\x01` + "\n", 1, "invalid quoted prefix"},
		{"clients", `""` + "\n", 1, "empty prefix"},
		{"clients", `"-qB"x` + "\n", 1, "after the quoted prefix"},
		{"clients", "-q\x01B\n", 1, "quote the prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.list, func(t *testing.T) {
			var err error
			check := func() {}
			switch tt.list {
			case "passkeys":
				s := NewPasskeySet()
				s.Set("old", 1)
				err = s.Load(strings.NewReader(tt.file))
				check = func() { checkPasskeys(t, s, map[string]uint64{"old": 1}) }
				if err != nil && strings.Contains(err.Error(), secret) {
					t.Errorf("Load error %q quotes the passkey", err)
				}
			case "torrents":
				l := NewTorrentAllowList()
				l.Add(hashC)
				err = l.Load(strings.NewReader(tt.file))
				check = func() {
					if !l.Contains(hashC) || l.Contains(hashA) || l.Len() != 1 {
						t.Errorf("after a failed Load: Contains(C), Contains(A), Len = %v, %v, %d; want true, false, 1", l.Contains(hashC), l.Contains(hashA), l.Len())
					}
				}
			case "clients":
				l := NewClientAllowList("-XX")
				err = l.Load(strings.NewReader(tt.file))
				check = func() {
					if !l.Matches(peerID("-XX")) || l.Matches(peerID("-qB")) {
						t.Errorf("after a failed Load: Matches(-XX), Matches(-qB) = %v, %v; want true, false", l.Matches(peerID("-XX")), l.Matches(peerID("-qB")))
					}
				}
			}
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Load(%q) = %v; want a *LoadError", tt.file, err)
			}
			prefix := fmt.Sprintf("tracker: %s line %d: ", tt.list, tt.line)
			if le.List != tt.list || le.Line != tt.line || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Load(%q) = %q; want %q...%q", tt.file, err, prefix, tt.reason)
			}
			check()
		})
	}
}

// TestLoadReadError checks that a reader failing half way changes nothing.
func TestLoadReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	failing := func(s string) io.Reader {
		return io.MultiReader(strings.NewReader(s), iotest.ErrReader(boom))
	}
	s := NewPasskeySet()
	s.Set("old", 1)
	if err := s.Load(failing("new 2\n")); !errors.Is(err, boom) {
		t.Errorf("PasskeySet.Load = %v; want %v", err, boom)
	}
	checkPasskeys(t, s, map[string]uint64{"old": 1}, "new")

	l := NewTorrentDenyList()
	l.Add(hashA)
	if err := l.Load(failing(hashB.String() + "\n")); !errors.Is(err, boom) {
		t.Errorf("TorrentList.Load = %v; want %v", err, boom)
	}
	if !l.Contains(hashA) || l.Contains(hashB) {
		t.Errorf("TorrentList changed by a failed Load")
	}

	c := NewClientDenyList("-XX")
	if err := c.Load(failing("-qB\n")); !errors.Is(err, boom) {
		t.Errorf("ClientList.Load = %v; want %v", err, boom)
	}
	if !c.Matches(peerID("-XX")) || c.Matches(peerID("-qB")) {
		t.Errorf("ClientList changed by a failed Load")
	}
}

func TestTorrentList(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		list    *TorrentList
		add     []InfoHash
		remove  []InfoHash
		served  []InfoHash
		refused []InfoHash
	}{
		{"empty allow-list", NewTorrentAllowList(), nil, nil, nil, []InfoHash{hashA, {}}},
		{"empty deny-list", NewTorrentDenyList(), nil, nil, []InfoHash{hashA, {}}, nil},
		{"zero value", new(TorrentList), nil, nil, []InfoHash{hashA}, nil},
		{"allow-list", NewTorrentAllowList(), []InfoHash{hashA, hashB}, nil, []InfoHash{hashA, hashB}, []InfoHash{hashC}},
		{"deny-list", NewTorrentDenyList(), []InfoHash{hashA, hashB}, nil, []InfoHash{hashC}, []InfoHash{hashA, hashB}},
		{"allow-list removed", NewTorrentAllowList(), []InfoHash{hashA, hashB, hashA}, []InfoHash{hashA, hashC}, []InfoHash{hashB}, []InfoHash{hashA, hashC}},
		{"deny-list removed", NewTorrentDenyList(), []InfoHash{hashA, hashB}, []InfoHash{hashB}, []InfoHash{hashB, hashC}, []InfoHash{hashA}},
		{"zero value with entries", new(TorrentList), []InfoHash{hashB}, nil, []InfoHash{hashA}, []InfoHash{hashB}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := tt.list
			for _, h := range tt.add {
				l.Add(h)
			}
			for _, h := range tt.remove {
				l.Remove(h)
			}
			want := map[InfoHash]bool{}
			for _, h := range tt.add {
				want[h] = true
			}
			for _, h := range tt.remove {
				delete(want, h)
			}
			if got := l.Len(); got != len(want) {
				t.Errorf("Len() = %d; want %d", got, len(want))
			}
			for _, h := range []InfoHash{hashA, hashB, hashC} {
				if got := l.Contains(h); got != want[h] {
					t.Errorf("Contains(%v) = %v; want %v", h, got, want[h])
				}
			}
			for _, h := range tt.served {
				if err := l.AllowTorrent(ctx, h, Identity{}); err != nil {
					t.Errorf("AllowTorrent(%v) = %v; want nil", h, err)
				}
			}
			for _, h := range tt.refused {
				if err := l.AllowTorrent(ctx, h, Identity{}); err != ErrUnregisteredTorrent {
					t.Errorf("AllowTorrent(%v) = %v; want %v", h, err, ErrUnregisteredTorrent)
				}
			}
		})
	}
}

func TestTorrentListLoad(t *testing.T) {
	v2 := "1220aaaabbbbccccddddeeeeffff00001111222233334444555566667777" + "8888"
	tests := []struct {
		name, file string
		want       []InfoHash
	}{
		{"empty", "", nil},
		{"two", hashA.String() + "\n" + hashB.String() + "\n", []InfoHash{hashA, hashB}},
		{"upper case", strings.ToUpper(hashA.String()) + "\n", []InfoHash{hashA}},
		{"comments", "# torrents\n\n  " + hashA.String() + "  # debian\r\n", []InfoHash{hashA}},
		{"repeated", hashA.String() + "\n" + hashA.String() + "\n", []InfoHash{hashA}},
		{"hybrid", hashA.String() + "\n" + v2 + "\n", []InfoHash{hashA, hashOf(v2[:40])}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewTorrentAllowList()
			l.Add(hashC)
			if err := l.Load(strings.NewReader(tt.file)); err != nil {
				t.Fatalf("Load(%q) = %v; want nil", tt.file, err)
			}
			if got := l.Len(); got != len(tt.want) {
				t.Errorf("Len() = %d; want %d", got, len(tt.want))
			}
			for _, h := range tt.want {
				if !l.Contains(h) {
					t.Errorf("Contains(%v) = false; want true", h)
				}
			}
			if l.Contains(hashC) {
				t.Errorf("Contains(%v) = true after Load; want false", hashC)
			}
		})
	}
}

func TestTorrentListReplace(t *testing.T) {
	l := NewTorrentAllowList()
	l.Add(hashA)
	l.Replace(slices.Values([]InfoHash{hashB, hashC, hashB}))
	if l.Contains(hashA) || !l.Contains(hashB) || !l.Contains(hashC) || l.Len() != 2 {
		t.Errorf("after Replace: Contains(A, B, C) = %v, %v, %v, Len() = %d; want false, true, true, 2",
			l.Contains(hashA), l.Contains(hashB), l.Contains(hashC), l.Len())
	}
}

func TestClientList(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("x", 21)
	tests := []struct {
		name     string
		list     *ClientList
		admitted []string // peer id prefixes
		refused  []string
	}{
		{"empty allow-list", NewClientAllowList(), nil, []string{"-qB4650-", ""}},
		{"empty deny-list", NewClientDenyList(), []string{"-qB4650-", ""}, nil},
		{"zero value", new(ClientList), []string{"-qB4650-"}, nil},
		{
			"allow-list",
			NewClientAllowList("-qB4650-", "-TR3000-", "-lt0D", "M7-"),
			[]string{"-qB4650-", "-TR3000-", "-lt0D60-", "-lt0D", "M7-4-0--"},
			[]string{"-qB4640-", "-TR300", "-TR2940-", "-lt0C", "M6-", "", "-UT3550-"},
		},
		{
			"deny-list",
			NewClientDenyList("-UT", "-BC", "-XL0012-"),
			[]string{"-qB4650-", "-XL0013-", "-U", "B"},
			[]string{"-UT3550-", "-BC0200-", "-XL0012-"},
		},
		{
			// The shorter prefix covers the longer ones.
			"nested prefixes",
			NewClientAllowList("-TR3000-", "-TR", "-TR4", "-qB4650-", "-qB"),
			[]string{"-TR2940-", "-TR3000-", "-TR4050-", "-qB4000-"},
			[]string{"-T", "-UT3550-", "-q"},
		},
		{
			// Neighbours in sort order that are not prefixes of each other.
			"neighbours",
			NewClientAllowList("-TR3000-", "-TR3001-", "-TR300", "-TR31"),
			[]string{"-TR3000-", "-TR3009-", "-TR3100-"},
			[]string{"-TR3010-", "-TR3200-", "-TR2", "-TR"},
		},
		{"empty prefix", NewClientDenyList(""), nil, []string{"-qB4650-", ""}},
		{"longer than a peer id", NewClientAllowList(long, "-qB"), []string{"-qB"}, []string{long[:20]}},
		{"binary", NewClientAllowList("\x00\x00", "\xff"), []string{"\x00\x00\x01", "\xff\xff"}, []string{"\x00\x01", "\xfe"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range tt.admitted {
				if err := tt.list.AllowClient(ctx, peerID(p), ""); err != nil {
					t.Errorf("AllowClient(%v) = %v; want nil", peerID(p), err)
				}
			}
			for _, p := range tt.refused {
				if err := tt.list.AllowClient(ctx, peerID(p), ""); err != ErrClientNotAllowed {
					t.Errorf("AllowClient(%v) = %v; want %v", peerID(p), err, ErrClientNotAllowed)
				}
			}
		})
	}
}

func TestClientListSet(t *testing.T) {
	prefixes := []string{"-qB"}
	l := NewClientAllowList(prefixes...)
	prefixes[0] = "-TR" // the list keeps its own copy
	if !l.Matches(peerID("-qB4650-")) || l.Matches(peerID("-TR3000-")) {
		t.Errorf("the list follows changes to the caller's slice")
	}
	l.Set("-TR", "-DE")
	for p, want := range map[string]bool{"-qB4650-": false, "-TR3000-": true, "-DE13F0-": true} {
		if got := l.Matches(peerID(p)); got != want {
			t.Errorf("after Set: Matches(%q) = %v; want %v", p, got, want)
		}
	}
}

func TestClientListLoad(t *testing.T) {
	tests := []struct {
		name, file   string
		match, other []string
	}{
		{"empty", "", nil, []string{"-qB4650-"}},
		{"plain", "-qB4650-\n-TR3000-\n-lt0D\nM7-\n", []string{"-qB4650-", "-TR3000-", "-lt0D80-", "M7-4-0"}, []string{"-qB4640-", "M6-"}},
		{"comments", "# good clients\n\n  -qB  # qBittorrent\r\n#-TR\n", []string{"-qB"}, []string{"-TR"}},
		{"quoted", `"A2 "` + "\n" + `"\x00\x04" # binary` + "\n" + `"-#"` + "\n", []string{"A2 ", "\x00\x04\x05", "-#"}, []string{"A2", "\x00\x05"}},
		{"longest", "-aaaaaaaaaaaaaaaaaa-\n", []string{"-aaaaaaaaaaaaaaaaaa-"}, []string{"-aaaaaaaaaaaaaaaaaa"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewClientAllowList("-old")
			if err := l.Load(strings.NewReader(tt.file)); err != nil {
				t.Fatalf("Load(%q) = %v; want nil", tt.file, err)
			}
			for _, p := range tt.match {
				if !l.Matches(peerID(p)) {
					t.Errorf("Matches(%q) = false; want true", p)
				}
			}
			for _, p := range append(tt.other, "-old") {
				if l.Matches(peerID(p)) {
					t.Errorf("Matches(%q) = true; want false", p)
				}
			}
		})
	}
}

// TestAuthConcurrent looks entries up from several goroutines while the
// lists are changed, reloaded and replaced, to be run with -race. Entries
// present in every version must always be found, with the right value.
func TestAuthConcurrent(t *testing.T) {
	const stable, churn, rounds = 200, 5000, 16
	pk := func(kind string, i int) string { return fmt.Sprintf("%s-%d", kind, i) }
	th := func(kind byte, i int) InfoHash {
		var h InfoHash
		h[0] = kind
		h[1], h[2] = byte(i>>8), byte(i)
		return h
	}
	version := func(v byte) (func(yield func(string, uint64) bool), string) {
		var file strings.Builder
		seq := func(yield func(string, uint64) bool) {
			for i := range stable {
				if !yield(pk("stable", i), uint64(i)) {
					return
				}
			}
			for i := range 1000 {
				if !yield(pk("v"+string(v), i), uint64(v)) {
					return
				}
			}
		}
		for p, u := range seq {
			fmt.Fprintf(&file, "%s %d\n", p, u)
		}
		return seq, file.String()
	}
	seqA, fileA := version('a')
	seqB, fileB := version('b')

	s := NewPasskeySet()
	s.Replace(seqA)
	tl := NewTorrentAllowList()
	for i := range stable {
		tl.Add(th('s', i))
	}
	cl := NewClientAllowList("-qB", "-TR")

	var stop atomic.Bool
	var wg sync.WaitGroup
	for r := range 3 {
		wg.Go(func() {
			ctx := context.Background()
			for n := 0; !stop.Load(); n++ {
				i := (n*7 + r) % stable
				if id, err := s.ValidatePasskey(ctx, pk("stable", i)); err != nil || id.UserID != uint64(i) {
					t.Errorf("ValidatePasskey(%q) = %d, %v; want %d", pk("stable", i), id.UserID, err, i)
					return
				}
				for _, v := range "ab" {
					if id, err := s.ValidatePasskey(ctx, pk("v"+string(v), n%1000)); err == nil && id.UserID != uint64(v) {
						t.Errorf("ValidatePasskey(%q) = %d; want %d", pk("v"+string(v), n%1000), id.UserID, v)
						return
					}
				}
				if id, err := s.ValidatePasskey(ctx, pk("churn", n%churn)); err == nil && id.UserID != uint64(n%churn)+1e6 {
					t.Errorf("ValidatePasskey(%q) = %d; want %d", pk("churn", n%churn), id.UserID, n%churn+1e6)
					return
				}
				if !tl.Contains(th('s', i)) {
					t.Errorf("Contains(%v) = false; want true", th('s', i))
					return
				}
				if cl.AllowClient(ctx, peerID("-qB4650-"), "") != nil || cl.AllowClient(ctx, peerID("-UT3550-"), "") == nil {
					t.Errorf("AllowClient answers wrong during Set")
					return
				}
			}
		})
	}

	for round := range rounds {
		if round%2 == 0 {
			s.Replace(seqB)
			if err := s.Load(strings.NewReader(fileA)); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := s.Load(strings.NewReader(fileB)); err != nil {
				t.Fatal(err)
			}
			s.Replace(seqA)
		}
		// Grow and shrink the tables entry by entry.
		for i := range churn {
			s.Set(pk("churn", i), uint64(i)+1e6)
			tl.Add(th('c', i))
		}
		for i := range churn {
			s.Delete(pk("churn", i))
			tl.Remove(th('c', i))
		}
		tl.Replace(func(yield func(InfoHash) bool) {
			for i := range stable + round {
				if !yield(th('s', i)) {
					return
				}
			}
		})
		cl.Set("-TR", "-qB", "-DE")
		cl.Set("-qB")
	}
	stop.Store(true)
	wg.Wait()
}

// TestAuthAllocs checks that lookups allocate nothing.
func TestAuthAllocs(t *testing.T) {
	ctx := context.Background()
	s := NewPasskeySet()
	s.Set("known", 1)
	tl := NewTorrentAllowList()
	tl.Add(hashA)
	cl := NewClientAllowList("-qB", "-TR3000-", "-lt0D")
	var (
		v PasskeyValidator = s
		f TorrentFilter    = tl
		c ClientFilter     = cl
	)
	known, unknown := "known", strings.Repeat("u", 32)
	qb, ut := peerID("-qB4650-"), peerID("-UT3550-")
	tests := []struct {
		name string
		fn   func()
	}{
		{"ValidatePasskey known", func() { _, _ = v.ValidatePasskey(ctx, known) }},
		{"ValidatePasskey unknown", func() { _, _ = v.ValidatePasskey(ctx, unknown) }},
		{"AllowTorrent listed", func() { _ = f.AllowTorrent(ctx, hashA, Identity{}) }},
		{"AllowTorrent unlisted", func() { _ = f.AllowTorrent(ctx, hashB, Identity{}) }},
		{"AllowClient admitted", func() { _ = c.AllowClient(ctx, qb, "") }},
		{"AllowClient refused", func() { _ = c.AllowClient(ctx, ut, "") }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(1000, tt.fn); n != 0 {
			t.Errorf("%s: %v allocations per call; want 0", tt.name, n)
		}
	}
}

// TestAuthComposition combines the built-ins with the package's
// combinators and with functions of the site's own.
func TestAuthComposition(t *testing.T) {
	ctx := context.Background()
	outage := errors.New("database down")

	t.Run("passkeys", func(t *testing.T) {
		s := NewPasskeySet()
		s.Set("cached", 1)
		db := PasskeyFunc(func(ctx context.Context, passkey string) (Identity, error) {
			switch passkey {
			case "in-db":
				return Identity{UserID: 2}, nil
			case "cached":
				return Identity{UserID: 99}, nil // never asked
			case "db-down":
				return Identity{}, outage
			}
			return Identity{}, ErrInvalidPasskey
		})
		tests := []struct {
			v       PasskeyValidator
			passkey string
			user    uint64
			err     error
		}{
			{AnyPasskey(s, db), "cached", 1, nil},
			{AnyPasskey(s, db), "in-db", 2, nil},
			{AnyPasskey(s, db), "nobody", 0, ErrInvalidPasskey},
			{AnyPasskey(s, db), "db-down", 0, outage},
			{AnyPasskey(db, s), "cached", 99, nil},
			{AnyPasskey(s), "in-db", 0, ErrInvalidPasskey},
		}
		for _, tt := range tests {
			id, err := tt.v.ValidatePasskey(ctx, tt.passkey)
			if id.UserID != tt.user || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Errorf("ValidatePasskey(%q) = %d, %v; want %d, %v", tt.passkey, id.UserID, err, tt.user, tt.err)
			}
			if tt.err == outage && errors.Is(err, ErrInvalidPasskey) {
				t.Errorf("ValidatePasskey(%q) = %v; an outage reads as an invalid passkey", tt.passkey, err)
			}
		}
	})

	t.Run("torrents", func(t *testing.T) {
		allow, deny := NewTorrentAllowList(), NewTorrentDenyList()
		allow.Add(hashA)
		allow.Add(hashB)
		deny.Add(hashB) // taken down
		f := AllTorrents(allow, deny)
		for h, want := range map[InfoHash]error{hashA: nil, hashB: ErrUnregisteredTorrent, hashC: ErrUnregisteredTorrent} {
			if err := f.AllowTorrent(ctx, h, Identity{}); err != want {
				t.Errorf("AllowTorrent(%v) = %v; want %v", h, err, want)
			}
		}
	})

	t.Run("clients", func(t *testing.T) {
		f := AllClients(NewClientAllowList("-qB", "-TR", "-DE"), NewClientDenyList("-TR2", "-DE12"))
		for p, want := range map[string]error{
			"-qB4650-": nil,
			"-TR3000-": nil,
			"-TR2940-": ErrClientNotAllowed,
			"-DE13F0-": nil,
			"-DE1210-": ErrClientNotAllowed,
			"-UT3550-": ErrClientNotAllowed,
		} {
			if err := f.AllowClient(ctx, peerID(p), ""); err != want {
				t.Errorf("AllowClient(%q) = %v; want %v", p, err, want)
			}
		}
	})
}

// TestAuthTracker runs the built-ins through a Tracker's announces and
// scrapes.
func TestAuthTracker(t *testing.T) {
	ctx := context.Background()
	outage := errors.New("database down")
	passkeys := NewPasskeySet()
	if err := passkeys.Load(strings.NewReader("alice-key 1\nbob-key 2\n")); err != nil {
		t.Fatal(err)
	}
	torrents := NewTorrentAllowList()
	torrents.Add(hashA)
	torrents.Add(hashB)
	clients := NewClientDenyList("-XL0012-")
	tr, err := New(Config{
		Passkeys: AnyPasskey(passkeys, PasskeyFunc(func(ctx context.Context, passkey string) (Identity, error) {
			if passkey == "db-down" {
				return Identity{}, outage
			}
			return Identity{}, ErrInvalidPasskey
		})),
		Torrents: torrents,
		Clients:  clients,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()

	port := uint16(6881)
	announce := func(passkey string, h InfoHash, client string, left int64) (*AnnounceResponse, error) {
		port++
		return tr.Announce(ctx, &AnnounceRequest{
			InfoHash: h,
			PeerID:   peerID(client + fmt.Sprint(port)),
			Addr:     netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
			Left:     left,
			Event:    EventStarted,
			Passkey:  passkey,
		})
	}
	tests := []struct {
		name, passkey string
		hash          InfoHash
		client        string
		user          uint64
		err           error
	}{
		{"alice", "alice-key", hashA, "-qB4650-", 1, nil},
		{"bob", "bob-key", hashB, "-TR3000-", 2, nil},
		{"wrong passkey", "eve-key", hashA, "-qB4650-", 0, ErrInvalidPasskey},
		{"missing passkey", "", hashA, "-qB4650-", 0, ErrPasskeyRequired},
		{"unlisted torrent", "alice-key", hashC, "-qB4650-", 0, ErrUnregisteredTorrent},
		{"banned client", "alice-key", hashA, "-XL0012-", 0, ErrClientNotAllowed},
		{"outage", "db-down", hashA, "-qB4650-", 0, outage},
	}
	for _, tt := range tests {
		resp, err := announce(tt.passkey, tt.hash, tt.client, 0)
		switch {
		case tt.err == nil && err != nil:
			t.Errorf("%s: Announce = %v; want nil", tt.name, err)
		case tt.err == nil && resp.Identity.UserID != tt.user:
			t.Errorf("%s: Announce: Identity.UserID = %d; want %d", tt.name, resp.Identity.UserID, tt.user)
		case tt.err != nil && !errors.Is(err, tt.err):
			t.Errorf("%s: Announce = %v; want %v", tt.name, err, tt.err)
		}
	}
	if _, err := announce("db-down", hashA, "-qB4650-", 0); errors.Is(err, ErrInvalidPasskey) {
		t.Errorf("Announce during an outage = %v; want an internal error, not %v", err, ErrInvalidPasskey)
	}

	// Passkeys change at run time.
	passkeys.Set("carol-key", 3)
	if resp, err := announce("carol-key", hashA, "-qB4650-", 100); err != nil || resp.Identity.UserID != 3 {
		t.Errorf("Announce with a passkey just added = %v; want user 3", err)
	}
	passkeys.Delete("bob-key")
	if _, err := announce("bob-key", hashB, "-TR3000-", 0); !errors.Is(err, ErrInvalidPasskey) {
		t.Errorf("Announce with a passkey just deleted = %v; want %v", err, ErrInvalidPasskey)
	}

	// Scrape: hashB has a seeder but is no longer listed; hashC was never
	// served.
	torrents.Remove(hashB)
	sresp, err := tr.Scrape(ctx, &ScrapeRequest{
		InfoHashes: []InfoHash{hashA, hashB, hashC},
		Addr:       netip.MustParseAddr("127.0.0.1"),
		Passkey:    "alice-key",
	})
	if err != nil {
		t.Fatalf("Scrape = %v", err)
	}
	want := []ScrapeStats{{Complete: 1, Incomplete: 1, Downloaders: 1}, {}, {}}
	if !slices.Equal(sresp.Files, want) {
		t.Errorf("Scrape(A, B, C).Files = %+v; want %+v", sresp.Files, want)
	}
	if _, err := tr.Scrape(ctx, &ScrapeRequest{InfoHashes: []InfoHash{hashA}, Passkey: "eve-key"}); !errors.Is(err, ErrInvalidPasskey) {
		t.Errorf("Scrape with a wrong passkey = %v; want %v", err, ErrInvalidPasskey)
	}
	if _, err := announce("alice-key", hashB, "-qB4650-", 0); !errors.Is(err, ErrUnregisteredTorrent) {
		t.Errorf("Announce of a torrent just removed = %v; want %v", err, ErrUnregisteredTorrent)
	}

	// Clients change at run time.
	clients.Set("-qB")
	if _, err := announce("alice-key", hashA, "-qB4650-", 0); !errors.Is(err, ErrClientNotAllowed) {
		t.Errorf("Announce from a client just banned = %v; want %v", err, ErrClientNotAllowed)
	}
	if _, err := announce("alice-key", hashA, "-XL0012-", 0); err != nil {
		t.Errorf("Announce from a client just unbanned = %v; want nil", err)
	}
}

// A malformed passkey file can hold a passkey where a user id should be:
// the error, which ends up in logs, must not quote it.
func TestLoadErrorsHidePasskeys(t *testing.T) {
	for _, file := range []string{
		"alicesecret0001 bobsecret00002\n",
		"alicesecret0001 12 bobsecret00002\n",
		"alicesecret0001 bobsecret00002 12\n",
		"alice/secret0001\n",
	} {
		err := NewPasskeySet().Load(strings.NewReader(file))
		if err == nil {
			t.Errorf("Load(%q) succeeded", file)
			continue
		}
		for _, secret := range []string{"alicesecret", "bobsecret", "secret0001"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Load(%q) = %q: the error quotes a passkey", file, err)
			}
		}
	}
}
