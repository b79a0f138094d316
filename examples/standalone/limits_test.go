package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDefaultRateLimit checks that the server limits each address by
// default: a client's burst of 500 requests passes, a flood beyond it is
// refused within the second.
func TestDefaultRateLimit(t *testing.T) {
	p := start(t, nil, loopback...)
	base := "http://" + p.addr("http")
	hash := hash20("rate-limited")
	began := time.Now()
	var passed, refused, firstRefused int
	for i := range 1200 {
		body := httpGet(t, fmt.Sprintf("%s/scrape?info_hash=%s", base, escapeAll(hash[:])), 200)
		switch {
		case strings.Contains(body, "too many requests"):
			refused++
			if firstRefused == 0 {
				firstRefused = i + 1
			}
		case strings.Contains(body, "5:files"):
			passed++
		default:
			t.Fatalf("scrape %d: %q", i+1, body)
		}
	}
	elapsed := time.Since(began)
	t.Logf("1200 scrapes in %v: %d passed, %d refused, the first refusal at %d", elapsed.Round(time.Millisecond), passed, refused, firstRefused)
	if firstRefused > 0 && firstRefused <= 500 {
		t.Errorf("scrape %d refused: within the default burst of 500", firstRefused)
	}
	// 500 at once, then 50 a second.
	if most := 500 + int(50*elapsed.Seconds()) + 1; passed > most || refused == 0 {
		t.Errorf("%d scrapes passed and %d were refused in %v; want at most %d to pass", passed, refused, elapsed, most)
	}
}
