package main

// What the tests of the private tracker with accounting share: the server
// started with -db, and a client of its admin API.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// adminToken is the admin API's token in the tests.
const adminToken = "test-token-0123456789abcdef"

// writeToken writes adminToken to a file in dir and returns its path.
func writeToken(t *testing.T, dir string) string {
	t.Helper()
	file := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(file, []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// privateArgs returns the arguments of a private tracker with its database
// in db and the admin API on loopback, logging JSON, without rate limit
// and grace period: loopback with the given listener addresses.
func privateArgs(db, tokenFile, httpAddr, udpAddr, adminAddr string) []string {
	return []string{
		"-http", httpAddr, "-udp", udpAddr, "-metrics", "127.0.0.1:0",
		"-db", db, "-admin", adminAddr, "-admin-token-file", tokenFile,
		"-log-format", "json", "-shutdown-grace", "0", "-rate-limit", "0", "-interval", "1m",
	}
}

// admin is a client of the admin API at addr.
type admin struct {
	t     testing.TB
	addr  string
	token string
}

// do sends a request and returns the status and the body.
func (a *admin) do(method, path, body string) (int, string) {
	a.t.Helper()
	req, err := http.NewRequest(method, "http://"+a.addr+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, string(b)
}

// must sends a request that must succeed, and decodes its JSON reply into
// out (if not nil).
func (a *admin) must(method, path, body string, out any) {
	a.t.Helper()
	status, reply := a.do(method, path, body)
	if status != http.StatusOK {
		a.t.Fatalf("%s %s %s: status %d, %s", method, path, body, status, reply)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(reply), out); err != nil {
			a.t.Fatalf("%s %s: %v in %q", method, path, err, reply)
		}
	}
}

func (a *admin) putUser(id uint64, passkey string, up, down int) {
	a.t.Helper()
	a.must(http.MethodPut, fmt.Sprintf("/api/v1/users/%d", id), fmt.Sprintf(`{"passkey":%q,"upload_factor":%d,"download_factor":%d}`, passkey, up, down), nil)
}

func (a *admin) putTorrent(h [20]byte, up, down int) {
	a.t.Helper()
	a.must(http.MethodPut, fmt.Sprintf("/api/v1/torrents/%x", h), fmt.Sprintf(`{"upload_factor":%d,"download_factor":%d}`, up, down), nil)
}

// userTotals and torrentTotals are the admin API's replies.
type userTotals struct {
	ID            uint64 `json:"id"`
	Uploaded      int64  `json:"uploaded"`
	Downloaded    int64  `json:"downloaded"`
	RawUploaded   int64  `json:"raw_uploaded"`
	RawDownloaded int64  `json:"raw_downloaded"`
	Snatches      int64  `json:"snatches"`
	Seeding       int64  `json:"seeding"`
	Leeching      int64  `json:"leeching"`
}

type torrentTotals struct {
	InfoHash   string `json:"info_hash"`
	Snatches   int64  `json:"snatches"`
	Uploaded   int64  `json:"uploaded"`
	Downloaded int64  `json:"downloaded"`
}

func (a *admin) user(id uint64) userTotals {
	a.t.Helper()
	var u userTotals
	a.must(http.MethodGet, fmt.Sprintf("/api/v1/users/%d", id), "", &u)
	return u
}

func (a *admin) torrent(h [20]byte) torrentTotals {
	a.t.Helper()
	var tt torrentTotals
	a.must(http.MethodGet, fmt.Sprintf("/api/v1/torrents/%x", h), "", &tt)
	return tt
}

// passkeyOf returns a passkey of 32 letters and digits made of s.
func passkeyOf(s string) string {
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [32]byte
	h := hash20(s)
	for i := range b {
		b[i] = alnum[(int(h[i%20])+i*7)%len(alnum)]
	}
	return string(b[:])
}
