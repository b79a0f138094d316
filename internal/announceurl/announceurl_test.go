package announceurl

import (
	"bytes"
	"strings"
	"testing"
)

var passkeyTests = []struct {
	in   string
	want string
	ok   bool
}{
	{"/announce/abcdef", "abcdef", true},
	{"/announce/abcdef?info_hash=x&passkey=other", "abcdef", true},
	{"/abcdef/announce", "abcdef", true},
	{"/abcdef/announce?x=y", "abcdef", true},
	{"/scrape/abcdef", "abcdef", true},
	{"/abcdef/scrape", "abcdef", true},
	{"/announce.php?passkey=abcdef", "abcdef", true},
	{"/announce?info_hash=%01&passkey=abcdef&numwant=50", "abcdef", true},
	{"/announce?passkey=abcdef&passkey=second", "abcdef", true},
	{"/announce?passkey=", "", false},
	{"/announce?mypasskey=abc", "", false},
	{"/announce?Passkey=abc", "", false},
	{"/announce", "", false},
	{"/announce/", "", false},
	{"/announce/?passkey=abc", "abc", true},
	{"//announce", "", false},
	{"/announce/a/b", "", false},
	{"/a/b/announce", "", false},
	{"/announcex/abc", "", false},
	{"/abc/announce.php", "", false},
	{"/announce/abc/", "", false},
	{"", "", false},
	{"?", "", false},
	{"/", "", false},
	{"/announce/a%2Fb", "a/b", true},
	{"/announce/a%2fb", "a/b", true},
	{"/announce/%41%62", "Ab", true},
	{"/announce/a+b", "a+b", true},
	{"/announce?passkey=a+b%2B", "a+b+", true},
	{"/announce/a%zzb", "a%zzb", true},
	{"/announce/a%4", "a%4", true},
	{"/announce/a%", "a%", true},
	{"/announce/%00%ff", "\x00\xff", true},
	{"/announce/\xff\x00", "\xff\x00", true},
}

func TestPasskey(t *testing.T) {
	for _, tt := range passkeyTests {
		got, ok := AppendPasskey([]byte("x"), []byte(tt.in))
		if !ok && string(got) != "x" || ok && string(got) != "x"+tt.want || ok != tt.ok {
			t.Errorf("AppendPasskey(x, %q) = %q, %v; want %q, %v", tt.in, got, ok, "x"+tt.want, tt.ok)
		}
		s, ok := Passkey(tt.in)
		if s != tt.want || ok != tt.ok {
			t.Errorf("Passkey(%q) = %q, %v; want %q, %v", tt.in, s, ok, tt.want, tt.ok)
		}
	}
}

func TestPasskeyAllocs(t *testing.T) {
	dst := make([]byte, 0, 64)
	in := []byte("/announce?info_hash=%01&passkey=ab%2Fcd")
	s := strings.Repeat("/", 1) + "announce/abcdef?x=y" // not a constant
	n := testing.AllocsPerRun(100, func() {
		AppendPasskey(dst[:0], in)
		Passkey(s)
	})
	if n != 0 {
		t.Errorf("AppendPasskey and Passkey: %v allocations; want 0", n)
	}
}

func FuzzPasskey(f *testing.F) {
	for _, tt := range passkeyTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		b, ok := AppendPasskey(nil, []byte(in))
		s, ok2 := Passkey(in)
		switch {
		case ok != ok2 || string(b) != s:
			t.Fatalf("AppendPasskey(%q) = %q, %v but Passkey = %q, %v", in, b, ok, s, ok2)
		case ok && len(b) == 0:
			t.Fatalf("AppendPasskey(%q) found an empty passkey", in)
		case !ok && len(b) != 0:
			t.Fatalf("AppendPasskey(%q) = %q but not ok", in, b)
		case len(b) > len(in):
			t.Fatalf("AppendPasskey(%q) = %q, longer than its input", in, b)
		case ok && !strings.Contains(in, "%") && !strings.Contains(in, s):
			t.Fatalf("Passkey(%q) = %q, not in its input", in, s)
		}
		// The passkey, escaped, comes back the same from every layout.
		if ok {
			esc := escape(b)
			for _, layout := range []string{"/announce/%s", "/%s/scrape", "/announce.php?x=1&passkey=%s&y=2"} {
				u := strings.Replace(layout, "%s", esc, 1)
				if got, ok := AppendPasskey(nil, []byte(u)); !ok || !bytes.Equal(got, b) {
					t.Fatalf("AppendPasskey(%q) = %q, %v; want %q", u, got, ok, b)
				}
			}
		}
	})
}

// escape percent-encodes everything but letters and digits.
func escape(b []byte) string {
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	for _, c := range b {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			sb.WriteByte(c)
		} else {
			sb.WriteByte('%')
			sb.WriteByte(hex[c>>4])
			sb.WriteByte(hex[c&15])
		}
	}
	return sb.String()
}
