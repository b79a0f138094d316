package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestAccountingConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		env   []string
		check func(*config) bool
		err   string // a usage error holding this
	}{
		{name: "admin without db", args: []string{"-admin", "127.0.0.1:1"}, err: "-admin needs -db"},
		{name: "spool without db", args: []string{"-spool", "s"}, err: "-spool needs -db"},
		{name: "token without db", env: []string{"ANNUAIRE_ADMIN_TOKEN_FILE=t"}, err: "ANNUAIRE_ADMIN_TOKEN_FILE needs -db"},
		{name: "db without token", args: []string{"-db", "d"}, err: `give its bearer token with -admin-token-file, or turn it off with -admin ""`},
		{name: "db without admin", args: []string{"-db", "d", "-admin", ""},
			check: func(c *config) bool { return c.adminAddr == "" && c.spoolFile == filepath.Join("d", "spool") }},
		{name: "token without admin", args: []string{"-db", "d", "-admin", "", "-admin-token-file", "t"}, err: "-admin-token-file needs the admin API"},
		{name: "defaults", args: []string{"-db", "d", "-admin-token-file", "t"},
			check: func(c *config) bool {
				return c.adminAddr == "127.0.0.1:6970" && c.spoolFile == filepath.Join("d", "spool") && c.adminTokenFile == "t"
			}},
		{name: "every address", args: []string{"-db", "d", "-admin-token-file", "t", "-admin", ":6970"}, err: "-admin :6970 is not a loopback address"},
		{name: "public address", env: []string{"ANNUAIRE_DB=d", "ANNUAIRE_ADMIN_TOKEN_FILE=t", "ANNUAIRE_ADMIN=192.0.2.1:6970"}, err: "ANNUAIRE_ADMIN 192.0.2.1:6970 is not a loopback address"},
		{name: "remote allowed", args: []string{"-db", "d", "-admin-token-file", "t", "-admin", "0.0.0.0:6970", "-admin-allow-remote"},
			check: func(c *config) bool { return c.adminAddr == "0.0.0.0:6970" && c.adminRemote }},
		{name: "IPv6 loopback", args: []string{"-db", "d", "-admin-token-file", "t", "-admin", "[::1]:6970", "-spool", "/var/spool/a"},
			check: func(c *config) bool { return c.adminAddr == "[::1]:6970" && c.spoolFile == "/var/spool/a" }},
		{name: "localhost", args: []string{"-db", "d", "-admin-token-file", "t", "-admin", "localhost:6970"},
			check: func(c *config) bool { return c.adminAddr == "localhost:6970" }},
		{name: "bad admin address", args: []string{"-db", "d", "-admin-token-file", "t", "-admin", "6970"}, err: `-admin "6970": want host:port`},
		{name: "memory limit", args: []string{"-memory-limit", "1GiB"}, check: func(c *config) bool { return c.memoryLimit == 1<<30 }},
		{name: "memory limit in bytes", env: []string{"ANNUAIRE_MEMORY_LIMIT=900000000"}, check: func(c *config) bool { return c.memoryLimit == 900_000_000 }},
		{name: "bad memory limit", args: []string{"-memory-limit", "lots"}, err: `-memory-limit "lots": want a number of bytes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, envOf(tc.env...))
			if tc.err != "" {
				if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("parseConfig(%q) = %v; want a usage error with %q", tc.args, err, tc.err)
				}
				return
			}
			if err != nil || !tc.check(c) {
				t.Errorf("parseConfig(%q) = %+v, %v", tc.args, c, err)
			}
		})
	}
}

// announceCounters sends an HTTP announce with counters and an event
// ("" for none) and returns the body.
func announceCounters(t *testing.T, addr, passkey string, hash, peer [20]byte, up, down, left int64, event string) string {
	t.Helper()
	u := fmt.Sprintf("http://%s/announce/%s?info_hash=%s&peer_id=%s&port=6881&uploaded=%d&downloaded=%d&left=%d&compact=1",
		addr, passkey, escapeAll(hash[:]), escapeAll(peer[:]), up, down, left)
	if event != "" {
		u += "&event=" + event
	}
	return httpGet(t, u, http.StatusOK)
}

func TestAccountingServer(t *testing.T) {
	dir := t.TempDir()
	db, tokenFile := filepath.Join(dir, "db"), writeToken(t, dir)
	args := privateArgs(db, tokenFile, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
	p := start(t, nil, args...)
	if a := p.addr("admin"); !strings.HasPrefix(a, "127.0.0.1:") {
		t.Errorf("admin API on %s; want loopback", a)
	}
	if rec := p.log.waitFor(t, nil, 1, "configuration", nil); rec["mode"] != "private" || rec["db"] != db {
		t.Errorf("configuration %v; want mode private and the database", rec)
	}
	adm := &admin{t: t, addr: p.addr("admin"), token: adminToken}
	for _, tok := range []string{"", "wrong-token-0123456789"} {
		if status, _ := (&admin{t: t, addr: adm.addr, token: tok}).do(http.MethodGet, "/api/v1/users/1", ""); status != http.StatusUnauthorized {
			t.Errorf("admin API with token %q: status %d; want 401", tok, status)
		}
	}

	alice, bob := passkeyOf("alice"), passkeyOf("bob")
	normal, free := hash20("normal"), hash20("freeleech")
	adm.putUser(1, alice, 100, 100)
	adm.putUser(2, bob, 200, 100)
	adm.putTorrent(normal, 100, 100)
	adm.putTorrent(free, 100, 0)

	httpAddr := p.addr("http")
	if body := announceCounters(t, httpAddr, passkeyOf("carol"), normal, hash20("peer-c"), 0, 0, 1, "started"); !strings.Contains(body, "invalid passkey") {
		t.Errorf("announce with an unknown passkey: %q", body)
	}
	if body := announceCounters(t, httpAddr, alice, hash20("unknown"), hash20("peer-a"), 0, 0, 1, "started"); !strings.Contains(body, "unregistered torrent") {
		t.Errorf("announce of an unregistered torrent: %q", body)
	}
	// Alice downloads the freeleech torrent, bob seeds it over UDP.
	for _, a := range []struct {
		up, down, left int64
		event          string
	}{{0, 0, 1000, "started"}, {10, 600, 400, ""}, {30, 1000, 0, "completed"}, {50, 1000, 0, "stopped"}} {
		if body := announceCounters(t, httpAddr, alice, free, hash20("peer-a"), a.up, a.down, a.left, a.event); interval(body) <= 0 {
			t.Fatalf("alice's announce %+v: %q", a, body)
		}
	}
	if r := newUDPClient(t, p.addr("udp")).announce(free, hash20("peer-b"), 6882, 0, "/announce/"+bob); r.err != "" {
		t.Fatalf("bob's UDP announce: %q", r.err)
	}
	wantAlice := userTotals{ID: 1, Uploaded: 50, RawUploaded: 50, RawDownloaded: 1000, Snatches: 1}
	if got := adm.user(1); got != wantAlice {
		t.Errorf("alice: %+v; want %+v", got, wantAlice)
	}
	if got := adm.torrent(free); got.Snatches != 1 || got.Uploaded != 50 || got.Downloaded != 0 {
		t.Errorf("freeleech torrent: %+v; want 1 snatch, 50 up, 0 down", got)
	}
	metrics := "http://" + p.addr("metrics") + "/metrics"
	waitUntil(t, "/metrics shows the accounting", func() bool {
		m := httpGet(t, metrics, 200)
		return strings.Contains(m, "\nannuaire_accounting_users 2\n") && strings.Contains(m, "\nannuaire_accounting_applied_records_total 5\n") &&
			strings.Contains(m, "\nannuaire_logdb_rows{table=\"torrents\"} 2\n") && strings.Contains(m, "\nannuaire_accounting_backlog_records 0\n")
	})

	// A new token on SIGHUP; the old one stops working.
	const newToken = "second-token-0123456789abcdef"
	if err := os.WriteFile(tokenFile, []byte(newToken), 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	p.log.waitFor(t, nil, 1, "reloaded admin token", nil)
	if status, _ := adm.do(http.MethodGet, "/api/v1/users/1", ""); status != http.StatusUnauthorized {
		t.Errorf("the old token after SIGHUP: status %d; want 401", status)
	}
	adm.token = newToken
	adm.user(1)

	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit status %d; log:\n%s", code, p.log.text())
	}
	p.log.waitFor(t, nil, 1, "accounting closed", map[string]any{"applied": 5})
	if log := p.log.text(); strings.Contains(log, adminToken) || strings.Contains(log, newToken) || strings.Contains(log, alice) {
		t.Errorf("a token or a passkey was logged:\n%s", log)
	}

	// The users, torrents and totals survive a restart, and the files
	// import what the database lacks.
	passkeys, torrents := filepath.Join(dir, "passkeys"), filepath.Join(dir, "torrents")
	dave, other := passkeyOf("dave"), hash20("imported")
	if err := os.WriteFile(passkeys, []byte(fmt.Sprintf("# passkey user\n%s 1\n%s 4\n", passkeyOf("alice-new"), dave)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(torrents, []byte(fmt.Sprintf("%x\n%x # imported\n", free, other)), 0o600); err != nil {
		t.Fatal(err)
	}
	p = start(t, nil, append(args, "-passkeys", passkeys, "-torrents", torrents)...)
	p.log.waitFor(t, nil, 1, "imported users", map[string]any{"listed": 2, "added": 1})
	p.log.waitFor(t, nil, 1, "imported torrents", map[string]any{"listed": 2, "added": 1})
	adm.addr = p.addr("admin")
	if got := adm.user(1); got != wantAlice {
		t.Errorf("alice after a restart: %+v; want %+v", got, wantAlice)
	}
	httpAddr = p.addr("http")
	for who, pk := range map[string]string{"alice": alice, "dave": dave} {
		if body := announceCounters(t, httpAddr, pk, other, hash20("peer-"+who), 0, 0, 0, "started"); interval(body) <= 0 {
			t.Errorf("%s's announce of the imported torrent after a restart: %q", who, body)
		}
	}
	if body := announceCounters(t, httpAddr, passkeyOf("alice-new"), free, hash20("peer-x"), 0, 0, 0, "started"); !strings.Contains(body, "invalid passkey") {
		t.Errorf("a user the database holds got the passkey of the file: %q", body)
	}
	if got := adm.torrent(free); got.Snatches != 1 || got.Uploaded != 50 {
		t.Errorf("freeleech torrent after a restart: %+v", got)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Errorf("exit status %d; want 0", code)
	}
}

func TestAccountingStartErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("tooshort\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := writeToken(t, dir)
	noIDs := filepath.Join(dir, "passkeys")
	if err := os.WriteFile(noIDs, []byte(passkeyOf("x")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	free := []string{"-http", "127.0.0.1:0", "-udp", "127.0.0.1:0", "-admin", "127.0.0.1:0"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"short token", []string{"-db", filepath.Join(dir, "db1"), "-admin-token-file", short}, "-admin-token-file: " + short + ": want a token of at least 16 characters"},
		{"missing token", []string{"-db", filepath.Join(dir, "db2"), "-admin-token-file", filepath.Join(dir, "none")}, "-admin-token-file: open"},
		{"passkeys without user ids", []string{"-db", filepath.Join(dir, "db3"), "-admin-token-file", token, "-passkeys", noIDs}, "-passkeys: " + noIDs + ":1: with -db, want a passkey and a user id"},
		{"database is a file", []string{"-db", short, "-admin-token-file", token}, "-db: logdb:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startNoWait(t, nil, append(free, tc.args...)...)
			code := p.wait(15 * time.Second)
			out := strings.TrimSuffix(p.log.text(), "\n")
			last := out[strings.LastIndex(out, "\n")+1:]
			if code != 1 || !strings.HasPrefix(last, "annuaire: ") || !strings.Contains(last, tc.want) {
				t.Errorf("exit status %d, stderr:\n%s\nwant status 1 and a last line \"annuaire: ...%s...\"", code, out, tc.want)
			}
		})
	}
}
