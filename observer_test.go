package tracker

import (
	"errors"
	"testing"
	"time"
)

func TestObserve(t *testing.T) {
	var got []RequestInfo
	tr := newTestTracker(t, Config{Observer: ObserverFunc(func(r RequestInfo) { got = append(got, r) })})
	start := tr.observeStart()
	if start.IsZero() {
		t.Fatal("observeStart with an observer returned the zero time")
	}
	tr.observe(ProtocolUDP, OpAnnounce, start, nil)
	tr.observe(ProtocolHTTP, OpScrape, start, ErrRateLimited)
	tr.observe(ProtocolHTTP, OpAnnounce, start, errors.New("disk on fire"))
	want := []RequestInfo{
		{Protocol: "udp", Op: "announce"},
		{Protocol: "http", Op: "scrape", Failure: "rate_limited"},
		{Protocol: "http", Op: "announce", Failure: "internal"},
	}
	if len(got) != len(want) {
		t.Fatalf("observed %d requests; want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Duration < 0 || got[i].Duration > time.Minute {
			t.Errorf("request %d: duration %v", i, got[i].Duration)
		}
		got[i].Duration = 0
		if got[i] != want[i] {
			t.Errorf("request %d = %+v; want %+v", i, got[i], want[i])
		}
	}
	quiet := newTestTracker(t, Config{})
	if !quiet.observeStart().IsZero() {
		t.Error("observeStart without an observer read the clock")
	}
	quiet.observe(ProtocolUDP, OpConnect, time.Time{}, nil) // no observer: nothing happens
}
