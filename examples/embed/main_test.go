package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type addrs struct{ http, udp net.Addr }
	up := make(chan addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-http", "127.0.0.1:0", "-udp", "127.0.0.1:0"}, io.Discard,
			func(h, u net.Addr) { up <- addrs{h, u} })
	}()
	var a addrs
	select {
	case a = <-up:
	case err := <-done:
		t.Fatalf("run = %v before serving", err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not start serving")
	}
	base := "http://" + a.http.String()
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) string {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", path, resp.StatusCode)
		}
		return string(b)
	}

	// The service's own route.
	if body := get("/"); !strings.Contains(body, "/tracker/announce") {
		t.Errorf("GET /: %q", body)
	}
	// An announce, through the tracker mounted under /tracker/.
	body := get("/tracker/announce?info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=-qB4650-000000000001&port=6881&left=10")
	if !strings.Contains(body, "8:intervali") {
		t.Errorf("announce: %q; want a reply with an interval", body)
	}
	// The status route sees it.
	var st struct{ Announces, Peers int }
	if err := json.Unmarshal([]byte(get("/api/status")), &st); err != nil || st.Announces != 1 || st.Peers != 1 {
		t.Errorf("GET /api/status: %+v, %v; want 1 announce and 1 peer", st, err)
	}

	// A UDP connect (BEP 15): protocol id, action 0, transaction id.
	conn, err := net.Dial("udp", a.udp.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := binary.BigEndian.AppendUint64(nil, 0x41727101980)
	req = binary.BigEndian.AppendUint32(req, 0)
	req = binary.BigEndian.AppendUint32(req, 77)
	reply := make([]byte, 64)
	var n int
	for try := 0; ; try++ {
		conn.Write(req)
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err = conn.Read(reply); err == nil || try == 2 {
			break
		}
	}
	if err != nil || n != 16 || binary.BigEndian.Uint32(reply) != 0 || binary.BigEndian.Uint32(reply[4:]) != 77 {
		t.Errorf("UDP connect: %d bytes %x, %v; want 16 bytes, action 0, transaction 77", n, reply[:n], err)
	}

	// The shutdown path: cancel, and both front-ends stop.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run = %v after cancel; want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if c, err := net.DialTimeout("tcp", a.http.String(), time.Second); err == nil {
		c.Close()
		t.Error("the HTTP listener still accepts after shutdown")
	}
	if c, err := net.ListenPacket("udp", a.udp.String()); err != nil {
		t.Errorf("the UDP socket is still open after shutdown: %v", err)
	} else {
		c.Close()
	}
	// Nothing of the service keeps running: no server, no UDP reader, no
	// sweeper of the tracker's store.
	client.CloseIdleConnections()
	for try := 0; ; try++ {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		leaked := ""
		for _, m := range []string{"net/http.(*Server).Serve", "net/http.(*conn).serve", "tracker.(*UDPServer)", "tracker.(*MemoryStore)"} {
			if strings.Contains(stacks, m) {
				leaked = m
			}
		}
		if leaked == "" {
			break
		}
		if try == 100 {
			t.Fatalf("a goroutine in %s is still running after shutdown:\n%s", leaked, stacks)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRunBadFlag(t *testing.T) {
	err := run(context.Background(), []string{"-nope"}, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "-nope") {
		t.Errorf("run -nope = %v; want an error naming the flag", err)
	}
	err = run(context.Background(), []string{"-http", "127.0.0.1:0", "-udp", "256.0.0.1:1"}, io.Discard, nil)
	if err == nil {
		t.Error("run with a bad UDP address = nil; want an error")
	}
}
