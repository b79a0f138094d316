package accounting_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
)

// A private tracker: the Ledger decides who may announce which torrent
// and keeps the ratios; the site registers users and torrents through
// the admin API (or the Ledger's methods) and reads the totals back.
func Example() {
	ctx := context.Background()
	cfg := tracker.Config{}
	// A durable backend goes here; the memory backend keeps nothing
	// across restarts.
	ledger, err := accounting.Open(ctx, accounting.NewMemoryBackend(accounting.RulesFor(cfg)), accounting.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ledger.Close(ctx)
	cfg.Passkeys, cfg.Torrents, cfg.Accounting = ledger, ledger, ledger
	t, err := tracker.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()

	// The admin API, on a loopback listener of its own (or on the site's
	// mux, under a prefix: http.StripPrefix("/admin", h)).
	admin := httptest.NewServer(accounting.NewAdminHandler(ledger, t, "admin-token"))
	defer admin.Close()
	call := func(method, path, body string) {
		req, _ := http.NewRequest(method, admin.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer admin-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		reply, _ := io.ReadAll(resp.Body)
		fmt.Print(resp.StatusCode, " ", string(reply))
	}
	const passkey = "0123456789abcdef0123456789abcdef"
	hash := tracker.InfoHash{0xaa, 0xbb}
	call("PUT", "/api/v1/users/42", `{"passkey": "`+passkey+`"}`)
	call("PUT", "/api/v1/torrents/"+hash.String(), `{"download_factor": 0}`) // freeleech

	// A client downloads the torrent, uploads some of it, and stops.
	req := tracker.AnnounceRequest{
		InfoHash: hash, PeerID: tracker.PeerID{'-', 'q', 'B'}, Passkey: passkey,
		Addr: netip.MustParseAddrPort("192.0.2.7:6881"), Left: 1 << 20, Event: tracker.EventStarted,
	}
	for _, step := range []struct {
		up, down, left int64
		ev             tracker.Event
	}{{0, 0, 1 << 20, tracker.EventStarted}, {1 << 18, 1 << 20, 0, tracker.EventCompleted}, {1 << 19, 1 << 20, 0, tracker.EventStopped}} {
		req.Uploaded, req.Downloaded, req.Left, req.Event = step.up, step.down, step.left, step.ev
		if _, err := t.Announce(ctx, &req); err != nil {
			fmt.Println(err)
			return
		}
	}
	call("GET", "/api/v1/users/42", "")

	// A passkey that is not a user's is refused.
	req.Passkey = "ffffffffffffffffffffffffffffffff"
	_, err = t.Announce(ctx, &req)
	fmt.Println(errors.Is(err, tracker.ErrInvalidPasskey))
	// Output:
	// 200 {"id":42,"can_leech":true,"upload_factor":100,"download_factor":100}
	// 200 {"info_hash":"aabb000000000000000000000000000000000000","upload_factor":100,"download_factor":0}
	// 200 {"id":42,"uploaded":524288,"downloaded":0,"raw_uploaded":524288,"raw_downloaded":1048576,"snatches":1,"seeding":0,"leeching":0}
	// true
}

// A site embedding the tracker manages users and torrents from Go.
func ExampleLedger_PutUser() {
	ctx := context.Background()
	ledger, err := accounting.Open(ctx, accounting.NewMemoryBackend(accounting.RulesFor(tracker.Config{})), accounting.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ledger.Close(ctx)

	err = ledger.PutUser(ctx, accounting.User{ID: 1, Passkey: "0123456789abcdef0123456789abcdef", CanLeech: true, UpFactor: 100, DownFactor: 100})
	fmt.Println(err)
	err = ledger.PutUser(ctx, accounting.User{ID: 2, Passkey: "too short"})
	var invalid *accounting.ValidationError
	fmt.Println(errors.As(err, &invalid), invalid.Field)
	err = ledger.PutUser(ctx, accounting.User{ID: 2, Passkey: "0123456789abcdef0123456789abcdef"})
	fmt.Println(errors.Is(err, accounting.ErrPasskeyInUse))
	_, err = ledger.User(ctx, 3)
	fmt.Println(errors.Is(err, accounting.ErrNotFound))
	err = ledger.SetGlobalFactors(200, 0) // a site-wide double upload and freeleech
	fmt.Println(err)
	// Output:
	// <nil>
	// true passkey
	// true
	// true
	// <nil>
}
