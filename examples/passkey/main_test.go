package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	if err := run(context.Background(), []string{"-http", ""}, nil); err == nil || !strings.Contains(err.Error(), "-api") {
		t.Errorf("run without -api = %v; want an error naming -api", err)
	}
	site := httptest.NewServer(&fakeSite{})
	defer site.Close()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-api", site.URL + "/passkeys", "-http", "127.0.0.1:0", "-udp", "127.0.0.1:0"},
			func(h, u net.Addr) { addrs <- h })
	}()
	var httpAddr net.Addr
	select {
	case httpAddr = <-addrs:
	case err := <-done:
		t.Fatal(err)
	}
	get := func(passkey string) string {
		q := "?info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=-qB4650-000000000001&port=6881&left=10&uploaded=0&downloaded=0"
		resp, err := http.Get("http://" + httpAddr.String() + "/announce/" + passkey + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if body := get("alice0000000000000000000000000001"); !strings.Contains(body, "8:interval") {
		t.Errorf("announce with a known passkey: %q", body)
	}
	if body := get("nobody"); !strings.Contains(body, "invalid passkey") {
		t.Errorf("announce with an unknown passkey: %q", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("run = %v after cancel", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}
