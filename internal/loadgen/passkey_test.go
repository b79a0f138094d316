package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/annuaire/tracker/internal/udpwire"
)

func TestPasskeys(t *testing.T) {
	w := mustWorkload(t, Workload{Swarms: 10, Peers: 1000, PrefillPeers: 1200, Passkeys: true})
	seen := map[string]bool{}
	for i := range 1200 {
		pk := w.Passkey(i)
		if len(pk) != 32 || strings.Trim(pk, passkeyChars) != "" {
			t.Fatalf("Passkey(%d) = %q; want 32 letters and digits", i, pk)
		}
		if seen[pk] {
			t.Fatalf("Passkey(%d) = %q, a passkey of another user", i, pk)
		}
		seen[pk] = true
	}
	if other := mustWorkload(t, Workload{Seed: 1, Passkeys: true}); other.Passkey(0) == w.Passkey(0) {
		t.Error("two seeds give the same passkeys")
	}

	var buf bytes.Buffer
	if err := w.WriteUsers(&buf); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	n := 0
	for sc.Scan() {
		if want := fmt.Sprintf("%s %d", w.Passkey(n), n+1); sc.Text() != want {
			t.Fatalf("WriteUsers line %d = %q; want %q", n+1, sc.Text(), want)
		}
		n++
	}
	if n != 1200 {
		t.Errorf("WriteUsers wrote %d users; want 1200, the prefill's", n)
	}

	// UDP: the passkey in BEP 41 URL data.
	var a udpwire.Announce
	if err := udpwire.ParseAnnounce(w.appendUDPAnnounce(nil, 1, 1, request{peer: 42, swarm: 2}), &a); err != nil {
		t.Fatal(err)
	}
	if want := "/announce/" + w.Passkey(42); string(a.URLData) != want {
		t.Errorf("UDP URL data %q; want %q", a.URLData, want)
	}
	if allocs := testing.AllocsPerRun(100, func() { w.appendUDPAnnounce(make([]byte, 0, 256)[:0], 1, 1, request{peer: 42}) }); allocs > 1 {
		t.Errorf("appendUDPAnnounce with a passkey: %v allocations; want at most the buffer's", allocs)
	}

	// HTTP: where the URL holds {passkey}.
	for _, u := range []string{"http://127.0.0.1:6969/announce/{passkey}", "http://127.0.0.1:6969/{passkey}/announce?x=1"} {
		target, err := parseHTTPTarget(u, false)
		if err != nil {
			t.Fatal(err)
		}
		req := string(w.appendHTTPAnnounce(nil, target, request{peer: 7, swarm: 7}))
		want := strings.Replace(strings.TrimPrefix(u, "http://127.0.0.1:6969"), passkeyMark, w.Passkey(7), 1)
		if !strings.HasPrefix(req, "GET "+want) {
			t.Errorf("announce to %s: %.100q; want it to start with GET %s", u, req, want)
		}
	}
	if _, err := New(Config{Workload: Workload{Passkeys: true}, HTTP: "http://127.0.0.1:1/announce"}); err == nil {
		t.Error("New with passkeys and a URL without {passkey} succeeded")
	}
	if _, err := New(Config{HTTP: "http://127.0.0.1:1/announce/{passkey}"}); err == nil {
		t.Error("New with {passkey} in the URL and no passkeys succeeded")
	}
}
