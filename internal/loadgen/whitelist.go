package loadgen

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// WaitWhitelist polls until the opentracker at addr (host:port) serves h,
// the last hash of its whitelist: it reads the list on a thread of its own
// after it starts listening, and until then refuses every torrent (over
// UDP with an 8-byte announce reply, which the generator counts as
// malformed). The poll announces a peer of its own over HTTP, then stops
// it, so no peer is left behind.
func WaitWhitelist(addr string, h [20]byte, timeout time.Duration) error {
	var q strings.Builder
	for _, c := range h {
		fmt.Fprintf(&q, "%%%02X", c)
	}
	url := "http://" + addr + "/announce?info_hash=" + q.String() + "&peer_id=-ZZ0000-whitelist000&port=1&left=0&compact=1&event="
	client := &http.Client{Timeout: time.Second}
	get := func(event string) (string, error) {
		resp, err := client.Get(url + event)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	deadline := time.Now().Add(timeout)
	for {
		body, err := get("started")
		if err == nil && strings.HasPrefix(body, "d8:complete") {
			_, err = get("stopped")
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("whitelist not loaded after %v: %q, %v", timeout, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitWhitelist is [WaitWhitelist] for the last hash WriteHashes writes.
func (w *Workload) WaitWhitelist(addr string, timeout time.Duration) error {
	ww, err := w.withDefaults()
	if err != nil {
		return err
	}
	return WaitWhitelist(addr, ww.InfoHash(ww.Swarms-1), timeout)
}
