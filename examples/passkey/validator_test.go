package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annuaire/tracker"
)

// fakeSite is the site's API: three known passkeys, and a switch to make
// it fail.
type fakeSite struct {
	calls atomic.Int64
	down  atomic.Bool
	gate  chan struct{} // when set, answers wait for it
}

func (s *fakeSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	if s.down.Load() {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	switch strings.TrimPrefix(r.URL.Path, "/passkeys/") {
	case "alice0000000000000000000000000001":
		fmt.Fprint(w, `{"user_id": 1}`)
	case "bob00000000000000000000000000002":
		fmt.Fprint(w, `{"user_id": 2, "warning": "ratio below 0.4: leeching will be disabled"}`)
	case "carol000000000000000000000000003":
		fmt.Fprint(w, `{"user_id": 3}`)
	default:
		http.NotFound(w, r)
	}
}

func newTestValidator(t *testing.T, site *fakeSite) (*siteValidator, *time.Time) {
	srv := httptest.NewServer(site)
	t.Cleanup(srv.Close)
	v := newSiteValidator(srv.URL+"/passkeys", srv.Client())
	now := time.Unix(1_800_000_000, 0)
	v.now = func() time.Time { return now }
	return v, &now
}

func TestValidatorCaches(t *testing.T) {
	site := &fakeSite{}
	v, now := newTestValidator(t, site)
	ctx := context.Background()
	for range 3 {
		id, err := v.ValidatePasskey(ctx, "alice0000000000000000000000000001")
		if err != nil || id.UserID != 1 {
			t.Fatalf("alice = %+v, %v", id, err)
		}
	}
	if n := site.calls.Load(); n != 1 {
		t.Errorf("3 validations made %d API calls; want 1", n)
	}
	*now = now.Add(v.ttl + time.Second)
	v.ValidatePasskey(ctx, "alice0000000000000000000000000001")
	if n := site.calls.Load(); n != 2 {
		t.Errorf("after the TTL: %d API calls; want 2", n)
	}

	for range 3 {
		if _, err := v.ValidatePasskey(ctx, "mallory"); !errors.Is(err, tracker.ErrInvalidPasskey) {
			t.Fatalf("unknown passkey: %v; want ErrInvalidPasskey", err)
		}
	}
	if n := site.calls.Load(); n != 3 {
		t.Errorf("an unknown passkey asked %d times made %d API calls in all; want 3", 3, n)
	}
	id, _ := v.ValidatePasskey(ctx, "bob00000000000000000000000000002")
	if id.Warning == "" {
		t.Error("the site's warning was lost")
	}
}

func TestValidatorOutage(t *testing.T) {
	site := &fakeSite{}
	v, _ := newTestValidator(t, site)
	site.down.Store(true)
	_, err := v.ValidatePasskey(context.Background(), "carol000000000000000000000000003")
	var te *tracker.Error
	if err == nil || errors.As(err, &te) {
		t.Fatalf("outage: err = %v; want an internal error, not a client-visible one", err)
	}
	site.down.Store(false)
	if id, err := v.ValidatePasskey(context.Background(), "carol000000000000000000000000003"); err != nil || id.UserID != 3 {
		t.Errorf("after the outage: %+v, %v; the failure must not be cached", id, err)
	}
}

func TestValidatorOneCallPerPasskey(t *testing.T) {
	site := &fakeSite{gate: make(chan struct{})}
	v, _ := newTestValidator(t, site)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := v.ValidatePasskey(context.Background(), "alice0000000000000000000000000001")
			if err == nil && id.UserID != 1 {
				err = fmt.Errorf("user %d", id.UserID)
			}
			errs <- err
		}()
	}
	// Let the one request through once the others have had time to queue.
	for site.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(site.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := site.calls.Load(); n != 1 {
		t.Errorf("20 concurrent validations made %d API calls; want 1", n)
	}
}

func TestValidatorBounded(t *testing.T) {
	site := &fakeSite{}
	v, _ := newTestValidator(t, site)
	v.max = 50
	for i := range 500 {
		v.ValidatePasskey(context.Background(), fmt.Sprintf("unknown%03d", i))
	}
	if n := len(v.cache); n > v.max {
		t.Errorf("cache holds %d passkeys; want at most %d", n, v.max)
	}
}

func TestValidatorInTracker(t *testing.T) {
	site := &fakeSite{}
	v, _ := newTestValidator(t, site)
	tr, err := tracker.New(tracker.Config{Passkeys: v})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	req := &tracker.AnnounceRequest{
		InfoHash: tracker.InfoHash{7},
		PeerID:   tracker.PeerID([]byte("-qB4650-000000000001")),
		Addr:     netip.MustParseAddrPort("127.0.0.1:6881"),
		Left:     10,
		Passkey:  "bob00000000000000000000000000002",
	}
	resp, err := tr.Announce(context.Background(), req)
	if err != nil || resp.Identity.UserID != 2 || !strings.Contains(resp.Warning, "ratio") {
		t.Fatalf("Announce = %+v, %v; want bob's identity and warning", resp, err)
	}
	req.Passkey = "nobody"
	if _, err := tr.Announce(context.Background(), req); !errors.Is(err, tracker.ErrInvalidPasskey) {
		t.Errorf("unknown passkey: %v", err)
	}
}
