package tracker_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/annuaire/tracker"
)

// A UDP tracker on a socket the program opens itself. (ListenAndServe
// opens its own sockets instead, several on Linux.)
func ExampleUDPServer() {
	t, err := tracker.New(tracker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	srv, err := t.NewUDPServer(tracker.UDPConfig{})
	if err != nil {
		log.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(conn) }()

	// A client connects (BEP 15): the protocol id, action 0 (connect) and a
	// transaction id; the reply carries a connection id for announces.
	client, err := net.Dial("udp", conn.LocalAddr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	req := binary.BigEndian.AppendUint64(nil, 0x41727101980)
	req = binary.BigEndian.AppendUint32(req, 0)
	req = binary.BigEndian.AppendUint32(req, 42)
	client.Write(req)
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply := make([]byte, 1500)
	n, err := client.Read(reply)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d bytes: action %d, transaction %d\n",
		n, binary.BigEndian.Uint32(reply), binary.BigEndian.Uint32(reply[4:]))

	// Shutdown lets the readers finish what they hold; Serve then returns
	// ErrServerClosed.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(errors.Is(<-served, tracker.ErrServerClosed))
	// Output:
	// 16 bytes: action 0, transaction 42
	// true
}
