package connid

import (
	"net/netip"
	"testing"
	"time"
)

var (
	key   = []byte("0123456789abcdef-shared-secret")
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("192.0.2.2")
	addr6 = netip.MustParseAddr("2001:db8::1")
	t0    = time.Unix(1_700_000_000, 400_000_000) // not on a whole second
)

func mustNew(t testing.TB, key []byte) *Codec {
	t.Helper()
	c, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLifetime(t *testing.T) {
	c := mustNew(t, key)
	id := c.Issue(t0, addrA)
	tests := []struct {
		after time.Duration
		ok    bool
	}{
		{0, true},
		{time.Minute, true},
		{119 * time.Second, true},
		{119*time.Second + 500*time.Millisecond, true},
		{120*time.Second + 600*time.Millisecond, false},
		{121 * time.Second, false},
		{time.Hour, false},
		{-5 * time.Second, true}, // a server whose clock is a little behind
		{-10 * time.Second, true},
		{-12 * time.Second, false},
		{-time.Hour, false},
	}
	for _, tt := range tests {
		if ok := c.Check(t0.Add(tt.after), addrA, id); ok != tt.ok {
			t.Errorf("Check(issued %v earlier) = %v; want %v", tt.after, ok, tt.ok)
		}
	}
}

func TestAddress(t *testing.T) {
	c := mustNew(t, key)
	tests := []struct {
		name       string
		issued, by netip.Addr
		ok         bool
	}{
		{"same IPv4", addrA, addrA, true},
		{"other IPv4", addrA, addrB, false},
		{"same IPv6", addr6, addr6, true},
		{"other IPv6", addr6, netip.MustParseAddr("2001:db8::2"), false},
		{"IPv4 then IPv4-mapped", addrA, netip.MustParseAddr("::ffff:192.0.2.1"), true},
		{"IPv4-mapped then IPv4", netip.MustParseAddr("::ffff:192.0.2.1"), addrA, true},
		{"zone ignored", netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("fe80::1"), true},
	}
	for _, tt := range tests {
		if ok := c.Check(t0, tt.by, c.Issue(t0, tt.issued)); ok != tt.ok {
			t.Errorf("%s: id for %v checked from %v = %v; want %v", tt.name, tt.issued, tt.by, ok, tt.ok)
		}
	}
}

func TestTampering(t *testing.T) {
	c := mustNew(t, key)
	id := c.Issue(t0, addrA)
	for bit := range 64 {
		if c.Check(t0, addrA, id^1<<bit) {
			t.Errorf("id with bit %d flipped accepted", bit)
		}
	}
}

func TestKeys(t *testing.T) {
	a, b := mustNew(t, key), mustNew(t, append([]byte(nil), key...))
	if !b.Check(t0, addrA, a.Issue(t0, addrA)) {
		t.Error("a Codec refuses the id of another with the same key")
	}
	if c := a.Clone(); !c.Check(t0, addrA, a.Issue(t0, addrA)) {
		t.Error("a clone refuses its original's id")
	}
	other := mustNew(t, []byte("another secret of sixteen bytes"))
	if other.Check(t0, addrA, a.Issue(t0, addrA)) {
		t.Error("a Codec accepts the id of one with another key")
	}
	r1, r2 := mustNew(t, nil), mustNew(t, nil)
	if r2.Check(t0, addrA, r1.Issue(t0, addrA)) {
		t.Error("two random keys agree")
	}
	if _, err := New([]byte("short")); err == nil {
		t.Error("New accepts a 5-byte key")
	}
}

func TestZeroAllocs(t *testing.T) {
	c := mustNew(t, key)
	n := testing.AllocsPerRun(100, func() {
		c.Check(t0, addr6, c.Issue(t0, addr6))
	})
	if n != 0 {
		t.Errorf("Issue and Check: %v allocations; want 0", n)
	}
}

func BenchmarkIssue(b *testing.B) {
	c := mustNew(b, key)
	b.ReportAllocs()
	for b.Loop() {
		c.Issue(t0, addr6)
	}
}

func BenchmarkCheck(b *testing.B) {
	c := mustNew(b, key)
	id := c.Issue(t0, addrA)
	b.ReportAllocs()
	for b.Loop() {
		if !c.Check(t0, addrA, id) {
			b.Fatal("refused")
		}
	}
}
