package tracker

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/annuaire/tracker/internal/udpwire"
)

// FuzzServePacket sends arbitrary datagrams through the whole handler, of
// a public and of a private tracker, from IPv4 and IPv6 clients, with the
// connection id replaced by a valid one or not. A datagram never makes the
// handler panic; a reply is a well-formed header with the request's
// transaction id; and no reply to a datagram without a valid connection
// id is larger than that datagram.
func FuzzServePacket(f *testing.F) {
	libtorrent := announcePacket(0, 7, 1, 0, false)
	libtorrent.NumWant = 200
	libtorrent.URLData = []byte("/announce/abcdef")
	aria2 := announcePacket(0, 8, 1, 1, false)
	aria2.NumWant = 50
	transmission := announcePacket(0, 9, 1, 2, true)
	transmission.NumWant = 80
	transmission.Event = udpwire.EventNone
	seeds := [][]byte{
		udpwire.AppendConnectRequest(nil, 1),
		announceBytes(libtorrent),
		append(announceBytes(aria2), 0, 0),
		announceBytes(transmission),
		udpwire.AppendScrapeRequest(nil, 0, 10, [20]byte{1}, [20]byte{2}, [20]byte{3}),
	}
	for _, p := range seeds {
		for _, valid := range []bool{true, false} {
			f.Add(p, valid, false, false)
		}
		f.Add(p, true, true, true)
	}

	validator := PasskeyFunc(func(ctx context.Context, pk string) (Identity, error) {
		if pk == "abcdef" {
			return Identity{UserID: 1}, nil
		}
		return Identity{}, ErrInvalidPasskey
	})
	handlers := [2]*testHandler{newTestHandler(f, Config{}), newTestHandler(f, Config{Passkeys: validator})}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, p []byte, validID, v6, private bool) {
		from := clientA
		if v6 {
			from = clientA6
		}
		th := handlers[0]
		if private {
			th = handlers[1]
		}
		ids := th.h.ids
		if validID && len(p) >= 8 {
			binary.BigEndian.PutUint64(p, ids.Issue(udpT0, from.Addr()))
		}
		authenticated := len(p) >= 8 && ids.Check(udpT0, from.Addr(), binary.BigEndian.Uint64(p))
		r := th.h.handle(ctx, udpT0, p[:len(p):len(p)], from, nil)
		if len(r) == 0 {
			return
		}
		rh, ok1 := udpwire.ParseReplyHeader(r)
		h, ok2 := udpwire.ParseHeader(p)
		if !ok1 || !ok2 || rh.TxID != h.TxID {
			t.Fatalf("reply %x to %x: want 8 bytes or more and the transaction id", r, p)
		}
		action := rh.Action
		switch {
		case action > udpwire.ActionError:
			t.Fatalf("reply %x with action %d", r, action)
		case action == udpwire.ActionConnect && len(r) != 16:
			t.Fatalf("connect reply %x", r)
		case !authenticated && action != udpwire.ActionConnect && action != udpwire.ActionError:
			t.Fatalf("reply %x to %x, which has no valid connection id", r, p)
		case !authenticated && len(r) > len(p):
			t.Fatalf("%d-byte reply to a %d-byte datagram without a valid connection id", len(r), len(p))
		}
	})
}
