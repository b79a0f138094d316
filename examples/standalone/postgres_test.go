package main

// The private tracker over PostgreSQL: two instances on one database, the
// site's changes reaching both, and the chaos test with SIGKILLs of either
// instance and a restart of PostgreSQL itself.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/annuaire/tracker/accounting/postgres/pgtest"
)

// startPostgres starts a PostgreSQL server for t, with a database of its
// own, and returns the server and the database's URL. It skips t when
// PostgreSQL is not installed, unless under CI, which installs it.
func startPostgres(t *testing.T) (*pgtest.Server, string) {
	t.Helper()
	srv, err := pgtest.Start(pgtest.Config{})
	switch {
	case errors.Is(err, pgtest.ErrNoPostgres) && os.Getenv("CI") == "":
		t.Skip(err)
	case errors.Is(err, pgtest.ErrNoPostgres):
		t.Fatalf("%v; CI must install it (scripts/debian-packages.txt)", err)
	case err != nil:
		t.Fatalf("starting PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, err := srv.CreateDatabase(ctx, "site")
	if err != nil {
		t.Fatal(err)
	}
	return srv, dsn
}

// pgArgs are the flags instance n of a private tracker over PostgreSQL
// adds to privateArgs: its own spool, in dir.
func pgArgs(dir string, n int) []string {
	return []string{"-spool", filepath.Join(dir, fmt.Sprintf("spool-%d", n))}
}

// waitSettled waits until no instance holds records not yet applied.
func waitSettled(t *testing.T, procs ...*proc) {
	t.Helper()
	for _, p := range procs {
		metrics := "http://" + p.addr("metrics") + "/metrics"
		waitUntil(t, "the backlog is applied", func() bool {
			return strings.Contains(httpGet(t, metrics, 200), "\nannuaire_accounting_backlog_records 0\n")
		})
	}
}

// announced reports whether body is the reply of an announce that
// succeeded (a failure may carry an interval too).
func announced(body string) bool {
	return !strings.Contains(body, "failure reason") && interval(body) > 0
}

func TestPostgresServer(t *testing.T) {
	pg, dsn := startPostgres(t)
	dir := t.TempDir()
	token := writeToken(t, dir)
	var procs [2]*proc
	var adms [2]*admin
	for n := range procs {
		procs[n] = start(t, nil, append(privateArgs(dsn, token, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"), pgArgs(dir, n)...)...)
		adms[n] = &admin{t: t, addr: procs[n].addr("admin"), token: adminToken}
	}
	if strings.Contains(procs[0].log.text(), "password") {
		t.Errorf("the log shows a password:\n%s", procs[0].log.text())
	}

	// A user and a torrent through the admin API of the first instance
	// reach the second.
	alice := passkeyOf("pg-alice")
	normal := hash20("pg-normal")
	adms[0].putUser(1, alice, 100, 100)
	adms[0].putTorrent(normal, 100, 100)
	waitUntil(t, "the second instance knows alice and the torrent", func() bool {
		return announced(announceCounters(t, procs[1].addr("http"), alice, normal, hash20("peer-a"), 0, 0, 1000, "started"))
	})

	// A user and a torrent the site writes in its tables reach both; so
	// does a torrent it deletes.
	bob := passkeyOf("pg-bob")
	free := hash20("pg-free")
	ctx := context.Background()
	if err := pg.Exec(ctx, "site", fmt.Sprintf(`INSERT INTO annuaire.users (id, passkey) VALUES (2, '%s');
		INSERT INTO annuaire.torrents (info_hash, down_factor) VALUES ('\x%x', 0)`, bob, free)); err != nil {
		t.Fatal(err)
	}
	for n, p := range procs {
		waitUntil(t, fmt.Sprintf("instance %d knows bob and the freeleech torrent", n), func() bool {
			return announced(announceCounters(t, p.addr("http"), bob, free, hash20(fmt.Sprintf("peer-b%d", n)), 0, 0, 1000, "started"))
		})
	}

	// Alice's session, announce by announce on either instance, is
	// credited once.
	peer := hash20("peer-a")
	steps := []struct {
		up, down, left int64
		event          string
	}{{100, 200, 800, ""}, {300, 1000, 0, "completed"}, {300, 1000, 0, "completed"}, {500, 1000, 0, "stopped"}}
	for i, s := range steps {
		if body := announceCounters(t, procs[i%2].addr("http"), alice, normal, peer, s.up, s.down, s.left, s.event); !announced(body) {
			t.Fatalf("announce %d: %q", i, body)
		}
	}
	waitSettled(t, procs[:]...)
	want := userTotals{ID: 1, Uploaded: 500, Downloaded: 1000, RawUploaded: 500, RawDownloaded: 1000, Snatches: 1}
	for n, adm := range adms {
		if got := adm.user(1); got != want {
			t.Errorf("alice through instance %d: %+v; want %+v", n, got, want)
		}
	}

	// The site deletes the freeleech torrent: both instances refuse it.
	if err := pg.Exec(ctx, "site", fmt.Sprintf(`DELETE FROM annuaire.torrents WHERE info_hash = '\x%x'`, free)); err != nil {
		t.Fatal(err)
	}
	for n, p := range procs {
		waitUntil(t, fmt.Sprintf("instance %d refuses the deleted torrent", n), func() bool {
			return strings.Contains(announceCounters(t, p.addr("http"), bob, free, hash20("peer-b"), 0, 0, 1000, ""), "unregistered torrent")
		})
	}
	metrics := httpGet(t, "http://"+procs[0].addr("metrics")+"/metrics", 200)
	if !strings.Contains(metrics, "\nannuaire_postgres_connections{state=\"idle\"}") {
		t.Errorf("/metrics shows no PostgreSQL connections:\n%s", grep(metrics, "annuaire_postgres"))
	}
	for _, p := range procs {
		p.signal(syscall.SIGTERM)
		if code := p.wait(30 * time.Second); code != 0 {
			t.Errorf("exit status %d after SIGTERM; log:\n%s", code, p.log.text())
		}
	}
}

func TestPostgresStartErrors(t *testing.T) {
	dir := t.TempDir()
	token := writeToken(t, dir)
	// No -spool.
	p := startNoWait(t, nil, privateArgs("postgres://127.0.0.1:1/site", token, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")...)
	if code := p.wait(10 * time.Second); code != 2 || !strings.Contains(p.log.text(), "-spool") {
		t.Errorf("without -spool: exit status %d, log %q; want 2 and a word on -spool", code, p.log.text())
	}
	// A database that does not answer: a failure to start, without the
	// password.
	args := append(privateArgs("postgres://tracker:secret-word@127.0.0.1:1/site?connect_timeout=2", token, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"), pgArgs(dir, 0)...)
	p = startNoWait(t, nil, args...)
	if code := p.wait(time.Minute); code != 1 {
		t.Errorf("unreachable database: exit status %d; want 1; log:\n%s", code, p.log.text())
	}
	if strings.Contains(p.log.text(), "secret-word") {
		t.Errorf("the log shows the password:\n%s", p.log.text())
	}
}

// pgChaosSettings are the sizes of a chaos run over PostgreSQL: the chaos
// settings, and how long PostgreSQL stays down
// (ANNUAIRE_CHAOS_PG_DOWN, a duration).
func pgChaosSettings(t *testing.T) (chaosSettings, time.Duration) {
	set := chaosSettingsFromEnv(t)
	down := 2 * time.Second
	if v := os.Getenv("ANNUAIRE_CHAOS_PG_DOWN"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("ANNUAIRE_CHAOS_PG_DOWN=%q: want a positive duration", v)
		}
		down = d
	}
	return set, down
}

// TestChaosPostgres is TestChaosAccounting with two instances on one
// PostgreSQL database: clients send each try to either instance, the
// instances are killed with SIGKILL at random moments, and PostgreSQL is
// stopped once, for a while, during which an instance is killed with
// announces in its spool. The totals must come out exact.
func TestChaosPostgres(t *testing.T) {
	set, down := pgChaosSettings(t)
	pg, dsn := startPostgres(t)
	t.Logf("chaos over PostgreSQL: %d kills, PostgreSQL down %v, seed %d (ANNUAIRE_CHAOS_SEED=%d repeats it)", set.kills, down, set.seed, set.seed)
	rng := rand.New(rand.NewPCG(set.seed, 1))
	dir := t.TempDir()
	token := writeToken(t, dir)
	var srvs [2]*chaosServer
	for n := range srvs {
		srvs[n] = &chaosServer{t: t, db: dsn, token: token, extra: pgArgs(dir, n),
			httpAddr: "127.0.0.1:0", udpAddr: "127.0.0.1:0", admAddr: "127.0.0.1:0"}
	}
	srvs[0].start()
	adm := &admin{t: t, addr: srvs[0].admAddr, token: adminToken}
	users, torrents, clients := newChaosWorld(set, adm)
	srvs[1].start() // it reads the users and torrents at start
	addrs := &chaosAddrs{}
	for _, s := range srvs {
		addrs.http, addrs.udp = append(addrs.http, s.httpAddr), append(addrs.udp, s.udpAddr)
	}

	var finishing atomic.Bool
	deadline := time.Now().Add(time.Duration(set.kills)*(set.maxUp+5*time.Second) + 2*down + time.Minute)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.run(addrs, &finishing, deadline) })
	}

	restart := func(s *chaosServer, what string) {
		oldHTTP, oldUDP := s.httpAddr, s.udpAddr
		s.start()
		if s.httpAddr != oldHTTP || s.udpAddr != oldUDP {
			t.Fatalf("%s: listening on %s and %s; want %s and %s", what, s.httpAddr, s.udpAddr, oldHTTP, oldUDP)
		}
	}
	outageAt := rng.IntN(set.kills)
	for k := range set.kills {
		time.Sleep(set.minUp + time.Duration(rng.Int64N(int64(set.maxUp-set.minUp))))
		if k == outageAt {
			// PostgreSQL goes down; both instances answer on, spooling
			// what must be durable. One is killed meanwhile, and starts
			// again once PostgreSQL is back, applying its spool.
			if err := pg.Stop(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(down / 2)
			victim := srvs[rng.IntN(len(srvs))]
			victim.kill()
			time.Sleep(down / 2)
			if err := pg.Resume(); err != nil {
				t.Fatal(err)
			}
			restart(victim, "restart after the outage")
			continue
		}
		s := srvs[rng.IntN(len(srvs))]
		s.kill()
		time.Sleep(time.Duration(rng.Int64N(int64(200 * time.Millisecond))))
		restart(s, fmt.Sprintf("restart %d", k+1))
	}
	time.Sleep(set.minUp)
	finishing.Store(true)
	wg.Wait()

	logChaosClients(t, clients, srvs[0].starts+srvs[1].starts)
	waitSettled(t, srvs[0].p, srvs[1].p)
	checkChaosTotals(t, adm.at(srvs[0].admAddr), users, torrents, clients)
	checkChaosTotals(t, adm.at(srvs[1].admAddr), users, torrents, clients)
	// And once more after a graceful stop of both.
	for _, s := range srvs {
		s.p.signal(syscall.SIGTERM)
		if code := s.p.wait(30 * time.Second); code != 0 {
			t.Fatalf("exit status %d after SIGTERM; log:\n%s", code, s.p.log.text())
		}
	}
	srvs[1].start()
	checkChaosTotals(t, adm.at(srvs[1].admAddr), users, torrents, clients)
}

// at returns a client of the same admin API at another address.
func (a *admin) at(addr string) *admin {
	b := *a
	b.addr = addr
	return &b
}
