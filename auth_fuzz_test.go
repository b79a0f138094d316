package tracker

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// The fuzz targets check each loader against a reference parser written
// differently (whole-line splitting with the strings package): Load must
// succeed exactly when the reference does, fail on the same line, find every
// entry the reference found, and leave the list untouched when it fails.

// refLines splits data as bufio.ScanLines does and returns each line's
// fields, up to the first that begins with #. It returns false if a line
// is too long for the loaders.
func refLines(data string) ([][]string, []string, bool) {
	lines := strings.Split(data, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	fields := make([][]string, len(lines))
	for i, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		if len(line) >= maxListLine {
			return nil, nil, false
		}
		lines[i] = line
		f := strings.FieldsFunc(line, func(r rune) bool { return r < 0x80 && asciiSpace(byte(r)) })
		for j := range f {
			if f[j][0] == '#' {
				f = f[:j]
				break
			}
		}
		fields[i] = f
	}
	return fields, lines, true
}

// checkLoadError checks that err is a *LoadError for line (0: no error).
func checkLoadError(t *testing.T, err error, line int) {
	t.Helper()
	var le *LoadError
	switch {
	case line == 0 && err != nil:
		t.Fatalf("Load = %v; the reference parser accepts the input", err)
	case line != 0 && (!errors.As(err, &le) || le.Line != line):
		t.Fatalf("Load = %v; want an error on line %d", err, line)
	}
}

func refPasskeys(data string) (map[string]uint64, int, bool) {
	lines, _, ok := refLines(data)
	if !ok {
		return nil, 0, false
	}
	want := map[string]uint64{}
	for i, f := range lines {
		if len(f) == 0 {
			continue
		}
		p := f[0]
		if len(p) > MaxPasskeyLen || strings.ContainsAny(p, "/?&#%") || strings.IndexFunc(p, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
			return nil, i + 1, true
		}
		var user uint64
		switch len(f) {
		case 1:
		case 2:
			u, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return nil, i + 1, true
			}
			user = u
		default:
			return nil, i + 1, true
		}
		want[p] = user
	}
	return want, 0, true
}

func FuzzPasskeyLoad(f *testing.F) {
	for _, seed := range []string{
		"",
		"3f786850e387550fdab836ed7e6dc881 1042\nbd2c4e1a09e9a4b04f1d2b5c6d7e8f90 7\n",
		"# passkey user\n\nk1\t12 # alice\r\nk2\n",
		"k 1\nk 2\n",
		"previous 3\n",
		"k1 1\nk2 x\n",
		"k1 1 2\n",
		"k/1\n",
		"k 18446744073709551616\n",
		"k\v1\f#\n",
		"caf\u00e9 1\n",
		strings.Repeat("x", MaxPasskeyLen+1) + "\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, badLine, ok := refPasskeys(string(data))
		if !ok {
			t.Skip("line too long")
		}
		s := NewPasskeySet()
		s.Set("previous", 42)
		err := s.Load(bytes.NewReader(data))
		checkLoadError(t, err, badLine)
		if err != nil {
			want = map[string]uint64{"previous": 42}
		}
		if s.Len() != len(want) {
			t.Fatalf("Len() = %d; want %d", s.Len(), len(want))
		}
		for p, user := range want {
			if got, ok := s.Lookup(p); !ok || got != user {
				t.Fatalf("Lookup(%q) = %d, %v; want %d, true", p, got, ok, user)
			}
		}
	})
}

func refTorrents(data string) (map[InfoHash]bool, int, bool) {
	lines, _, ok := refLines(data)
	if !ok {
		return nil, 0, false
	}
	want := map[InfoHash]bool{}
	for i, f := range lines {
		if len(f) == 0 {
			continue
		}
		b, err := hex.DecodeString(f[0])
		if len(f) != 1 || err != nil || (len(b) != 20 && len(b) != 32) {
			return nil, i + 1, true
		}
		want[InfoHash(b[:20])] = true
	}
	return want, 0, true
}

func FuzzTorrentLoad(f *testing.F) {
	for _, seed := range []string{
		"",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n",
		"# debian\n\n  0123456789abcdef0123456789ABCDEF01234567  # netinst\r\n",
		"1220aaaabbbbccccddddeeeeffff000011112222333344445555666677778888\n",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nxyz\n",
		"gggggggggggggggggggggggggggggggggggggggg\n",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa x\n",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	} {
		f.Add([]byte(seed))
	}
	previous := InfoHash{1, 2, 3}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, badLine, ok := refTorrents(string(data))
		if !ok {
			t.Skip("line too long")
		}
		l := NewTorrentAllowList()
		l.Add(previous)
		err := l.Load(bytes.NewReader(data))
		checkLoadError(t, err, badLine)
		if err != nil {
			want = map[InfoHash]bool{previous: true}
		}
		if l.Len() != len(want) {
			t.Fatalf("Len() = %d; want %d", l.Len(), len(want))
		}
		for h := range want {
			if !l.Contains(h) || l.AllowTorrent(context.Background(), h, Identity{}) != nil {
				t.Fatalf("Contains(%v) = false; want true", h)
			}
		}
	})
}

func refClients(data string) ([]string, int, bool) {
	lines, raw, ok := refLines(data)
	if !ok {
		return nil, 0, false
	}
	var want []string
	for i, f := range lines {
		line := strings.TrimLeft(raw[i], " \t\r\v\f")
		if len(f) == 0 {
			continue
		}
		var p string
		if strings.HasPrefix(line, `"`) {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				return nil, i + 1, true
			}
			p, _ = strconv.Unquote(q)
			rest := line[len(q):]
			if rest != "" && !asciiSpace(rest[0]) {
				return nil, i + 1, true
			}
			if r := strings.TrimLeft(rest, " \t\r\v\f"); r != "" && r[0] != '#' {
				return nil, i + 1, true
			}
		} else {
			if len(f) != 1 || strings.IndexFunc(f[0], func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
				return nil, i + 1, true
			}
			p = f[0]
		}
		if p == "" || len(p) > 20 {
			return nil, i + 1, true
		}
		want = append(want, p)
	}
	return want, 0, true
}

func FuzzClientLoad(f *testing.F) {
	for _, seed := range []string{
		"",
		"-qB4650-\n-TR3000-\n-lt0D\nM7-\n",
		"# clients\n\n  -qB  # qBittorrent\r\n",
		"\"A2 \"\n\"\\x00\\x04\" # binary\n\"-#\"\n",
		"-TR\n-TR3000-\n-T\n",
		"-qB 1\n",
		"\"\\x00\n",
		"\"\"\n",
		"\"-qB\"x\n",
		"-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, badLine, ok := refClients(string(data))
		if !ok {
			t.Skip("line too long")
		}
		const previous = "\x01previous"
		l := NewClientAllowList(previous)
		err := l.Load(bytes.NewReader(data))
		checkLoadError(t, err, badLine)
		if err != nil {
			want = []string{previous}
		}
		for _, p := range want {
			var id PeerID
			copy(id[:], p)
			if !l.Matches(id) || l.AllowClient(context.Background(), id, "") != nil {
				t.Fatalf("Matches(%v) = false; want true", id)
			}
		}
		// The previous prefix matches only if the list says so.
		var id PeerID
		copy(id[:], previous)
		matched := false
		for _, p := range want {
			matched = matched || strings.HasPrefix(string(id[:]), p)
		}
		if got := l.Matches(id); got != matched {
			t.Fatalf("Matches(%v) = %v; want %v", id, got, matched)
		}
	})
}
