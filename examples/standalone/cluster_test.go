//go:build unix

package main

// A private tracker on more than one machine: instances sharing their
// swarms through Redis and their users, torrents and ledger through
// PostgreSQL.

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/annuaire/tracker/internal/redisserver"
)

// announcePort is announceCounters from a port of the client's choosing.
func announcePort(t *testing.T, addr, passkey string, hash, peer [20]byte, port int, up, down, left int64, event string) string {
	t.Helper()
	u := fmt.Sprintf("http://%s/announce/%s?info_hash=%s&peer_id=%s&port=%d&uploaded=%d&downloaded=%d&left=%d&compact=1",
		addr, passkey, escapeAll(hash[:]), escapeAll(peer[:]), port, up, down, left)
	if event != "" {
		u += "&event=" + event
	}
	return httpGet(t, u, http.StatusOK)
}

// TestPrivateCluster: two instances with -store redis:// and -db
// postgres://. A seeder announcing to one is a peer for a leecher
// announcing to the other; the leecher's session, announce by announce on
// either, is credited once; the swarm's counts and the ledger read the
// same through both; a user the site deletes is refused by both.
func TestPrivateCluster(t *testing.T) {
	pg, dsn := startPostgres(t)
	rdb := redisserver.ForTest(t)
	dir := t.TempDir()
	token := writeToken(t, dir)
	var procs [2]*proc
	var adms [2]*admin
	for n := range procs {
		args := append(privateArgs(dsn, token, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"), pgArgs(dir, n)...)
		args = append(args, "-store", rdb.URL(), "-conn-id-key", sharedKey)
		procs[n] = start(t, nil, args...)
		adms[n] = &admin{t: t, addr: procs[n].addr("admin"), token: adminToken}
	}
	alice, bob := passkeyOf("cluster-alice"), passkeyOf("cluster-bob")
	h := hash20("cluster-torrent")
	adms[0].putUser(1, alice, 100, 100)
	adms[1].putUser(2, bob, 100, 100)
	adms[0].putTorrent(h, 200, 100) // double upload
	for n, p := range procs {
		waitUntil(t, fmt.Sprintf("instance %d knows alice, bob and the torrent", n), func() bool {
			return announced(announcePort(t, p.addr("http"), alice, h, hash20("probe-a"), 7000, 0, 0, 0, "stopped")) &&
				announced(announcePort(t, p.addr("http"), bob, h, hash20("probe-b"), 7001, 0, 0, 0, "stopped"))
		})
	}

	// Alice seeds through the first instance; bob, leeching through the
	// second, is given her.
	seeder, leecher := hash20("alice-seeder"), hash20("bob-leecher")
	if body := announcePort(t, procs[0].addr("http"), alice, h, seeder, 6881, 0, 0, 0, "started"); !announced(body) {
		t.Fatalf("alice's started: %q", body)
	}
	body := announcePort(t, procs[1].addr("http"), bob, h, leecher, 6882, 0, 0, 1000, "started")
	if !announced(body) || !hasPeer(httpPeers(t, body), 6881) {
		t.Fatalf("bob's started at the second instance: %q; want alice's peer from the first", body)
	}
	// Bob downloads from alice, announcing to either instance in turn;
	// so does alice, who uploads.
	steps := []struct {
		up, down, left int64
		event          string
	}{{0, 400, 600, ""}, {0, 1000, 0, "completed"}, {0, 1000, 0, "completed"}, {50, 1000, 0, "stopped"}}
	for i, s := range steps {
		if body := announcePort(t, procs[i%2].addr("http"), bob, h, leecher, 6882, s.up, s.down, s.left, s.event); !announced(body) {
			t.Fatalf("bob's announce %d: %q", i, body)
		}
		if body := announcePort(t, procs[(i+1)%2].addr("http"), alice, h, seeder, 6881, s.down, 0, 0, ""); !announced(body) {
			t.Fatalf("alice's announce %d: %q", i, body)
		}
	}
	// Both instances see the swarm in Redis: alice seeding, bob gone,
	// one snatch.
	for _, p := range procs {
		if c, d, i := scrapeHTTP(t, p.addr("http")+"/"+alice, h); c != 1 || d != 1 || i != 0 {
			t.Errorf("scrape at %s: complete %d, downloaded %d, incomplete %d; want 1, 1, 0", p.addr("http"), c, d, i)
		}
	}
	waitSettled(t, procs[:]...)
	wantAlice := userTotals{ID: 1, Uploaded: 2000, RawUploaded: 1000}
	// The torrent doubles what is uploaded.
	wantBob := userTotals{ID: 2, Uploaded: 100, Downloaded: 1000, RawUploaded: 50, RawDownloaded: 1000, Snatches: 1}
	for n, adm := range adms {
		got := adm.user(1)
		got.Seeding, got.Leeching = 0, 0
		if got != wantAlice {
			t.Errorf("alice through instance %d: %+v; want %+v", n, got, wantAlice)
		}
		got = adm.user(2)
		got.Seeding, got.Leeching = 0, 0
		if got != wantBob {
			t.Errorf("bob through instance %d: %+v; want %+v", n, got, wantBob)
		}
		if tt := adm.torrent(h); tt.Snatches != 1 || tt.Uploaded != 2100 || tt.Downloaded != 1000 {
			t.Errorf("the torrent through instance %d: %+v; want 1 snatch, 2100 up, 1000 down", n, tt)
		}
	}

	// The site deletes bob: both instances refuse him.
	if err := pg.Exec(t.Context(), "site", `DELETE FROM annuaire.users WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	for n, p := range procs {
		waitUntil(t, fmt.Sprintf("instance %d refuses the deleted user", n), func() bool {
			b := announcePort(t, p.addr("http"), bob, h, leecher, 6882, 50, 1000, 0, "started")
			return strings.Contains(b, "failure reason")
		})
	}
	for _, p := range procs {
		p.signal(syscall.SIGTERM)
		if code := p.wait(30 * time.Second); code != 0 {
			t.Errorf("exit status %d after SIGTERM; log:\n%s", code, p.log.text())
		}
	}
}
