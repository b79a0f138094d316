package main

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestRunPublicScrape: with -passkeys, UDP scrapes (which carry no
// passkey) are refused, unless -public-scrape is given: then they read the
// counts.
func TestRunPublicScrape(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passkeys")
	const key = "key0000000000000000000000000000"
	if err := os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hash := hash20("public-scrape")
	for _, public := range []bool{false, true} {
		args := []string{"-passkeys", file}
		if public {
			args = append(args, "-public-scrape")
		}
		log, signals, done := runInProcess(context.Background(), t, args...)
		c := newUDPClient(t, log.addrs()["udp"][0])
		if r := c.announce(hash, hash20("leecher"), 6881, 1, "/announce/"+key); r.err != "" {
			t.Fatalf("announce: %q", r.err)
		}
		req := binary.BigEndian.AppendUint64(nil, c.connect())
		req = binary.BigEndian.AppendUint32(req, 2) // scrape
		req = binary.BigEndian.AppendUint32(req, 0)
		req = append(req, hash[:]...)
		action, body := c.roundTrip(req)
		switch {
		case public && (action != 2 || len(body) != 12 || binary.BigEndian.Uint32(body[8:]) != 1):
			t.Errorf("-public-scrape: scrape reply action %d, %q; want one leecher", action, body)
		case !public && action != udpActionError:
			t.Errorf("without -public-scrape: scrape reply action %d, %q; want an error", action, body)
		}
		signals <- syscall.SIGTERM
		if err := result(t, done); err != nil {
			t.Errorf("run after SIGTERM = %v", err)
		}
	}
}
