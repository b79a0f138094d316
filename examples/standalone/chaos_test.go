package main

// The chaos test of the accounting: simulated clients announce over HTTP
// and UDP to the private tracker with -db, retrying as real clients do,
// while the server is killed with SIGKILL at random moments and started
// again. Once every client has ended its session with a stopped that
// succeeded, every user's and torrent's totals must equal exactly what the
// clients reported, factors applied.

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/annuaire/tracker/internal/udpwire"
)

// chaosSettings are the sizes of a chaos run: the short form runs in every
// test run; ANNUAIRE_CHAOS_KILLS makes it longer.
type chaosSettings struct {
	kills   int // SIGKILLs
	seed    uint64
	minUp   time.Duration // the server runs this long at least between kills
	maxUp   time.Duration
	clients int // per user and torrent
}

func chaosSettingsFromEnv(t *testing.T) chaosSettings {
	s := chaosSettings{kills: 4, seed: uint64(time.Now().UnixNano()), minUp: 300 * time.Millisecond, maxUp: 1500 * time.Millisecond, clients: 1}
	if v := os.Getenv("ANNUAIRE_CHAOS_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("ANNUAIRE_CHAOS_KILLS=%q: want a positive number", v)
		}
		s.kills, s.clients = n, 2
	}
	if v := os.Getenv("ANNUAIRE_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("ANNUAIRE_CHAOS_SEED=%q: want a number", v)
		}
		s.seed = n
	}
	return s
}

// chaosUser and chaosTorrent are what the site registered, with their
// factors in percent.
type chaosUser struct {
	id       uint64
	passkey  string
	up, down int64
}

type chaosTorrent struct {
	name     string
	hash     [20]byte
	up, down int64
	size     int64
}

// chaosClient is one peer of a user on a torrent. Its counters grow from
// announce to announce within a session; a new session starts them from
// zero again.
type chaosClient struct {
	n       int
	user    *chaosUser
	torrent *chaosTorrent
	peerID  [20]byte
	port    uint16
	udp     bool
	rng     *rand.Rand

	// What the client reported, over the sessions whose stopped succeeded.
	uploaded, downloaded int64
	completed            bool // it sent completed (or reached left 0) in one of them
	sessions, announces  int
	retries              int
	failures             map[string]int // tracker failure reasons, by text
	err                  error          // why the client gave up
}

// chaosServer is the server under test, started again after each kill on
// the same addresses.
type chaosServer struct {
	t                          *testing.T
	db, token                  string
	httpAddr, udpAddr, admAddr string
	p                          *proc
	starts                     int
}

func (s *chaosServer) start() {
	s.t.Helper()
	s.p = start(s.t, nil, privateArgs(s.db, s.token, s.httpAddr, s.udpAddr, s.admAddr)...)
	s.httpAddr, s.udpAddr, s.admAddr = s.p.addr("http"), s.p.addr("udp"), s.p.addr("admin")
	s.starts++
}

func (s *chaosServer) kill() {
	s.t.Helper()
	s.p.signal(syscall.SIGKILL)
	s.p.wait(15 * time.Second)
}

func TestChaosAccounting(t *testing.T) {
	set := chaosSettingsFromEnv(t)
	t.Logf("chaos: %d kills, seed %d (ANNUAIRE_CHAOS_SEED=%d repeats it)", set.kills, set.seed, set.seed)
	rng := rand.New(rand.NewPCG(set.seed, 1))
	dir := t.TempDir()
	srv := &chaosServer{t: t, db: filepath.Join(dir, "db"), token: writeToken(t, dir),
		httpAddr: "127.0.0.1:0", udpAddr: "127.0.0.1:0", admAddr: "127.0.0.1:0"}
	srv.start()
	adm := &admin{t: t, addr: srv.admAddr, token: adminToken}

	users := []*chaosUser{
		{id: 1, up: 100, down: 100},
		{id: 2, up: 200, down: 100}, // double upload
		{id: 3, up: 100, down: 100},
		{id: 4, up: 100, down: 100},
	}
	for _, u := range users {
		u.passkey = passkeyOf(fmt.Sprintf("chaos-user-%d", u.id))
		adm.putUser(u.id, u.passkey, int(u.up), int(u.down))
	}
	torrents := []*chaosTorrent{
		{name: "normal", hash: hash20("chaos-normal"), up: 100, down: 100, size: 3 << 30},
		{name: "freeleech", hash: hash20("chaos-freeleech"), up: 100, down: 0, size: 700 << 20},
		{name: "neutral", hash: hash20("chaos-neutral"), up: 0, down: 0, size: 2 << 30},
		{name: "double", hash: hash20("chaos-double"), up: 200, down: 100, size: 40 << 20},
	}
	for _, tor := range torrents {
		adm.putTorrent(tor.hash, int(tor.up), int(tor.down))
	}

	var clients []*chaosClient
	for _, u := range users {
		for _, tor := range torrents {
			for range set.clients {
				n := len(clients)
				c := &chaosClient{n: n, user: u, torrent: tor, port: uint16(20000 + n), udp: n%2 == 1,
					rng: rand.New(rand.NewPCG(set.seed, uint64(n)+2)), failures: map[string]int{}}
				copy(c.peerID[:], fmt.Sprintf("-CH0001-%012d", n))
				clients = append(clients, c)
			}
		}
	}

	var finishing atomic.Bool
	deadline := time.Now().Add(time.Duration(set.kills)*(set.maxUp+5*time.Second) + time.Minute)
	addrs := &chaosAddrs{http: srv.httpAddr, udp: srv.udpAddr}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.run(addrs, &finishing, deadline) })
	}

	// The kills: each at a random moment of the server's run.
	for k := range set.kills {
		up := set.minUp + time.Duration(rng.Int64N(int64(set.maxUp-set.minUp)))
		time.Sleep(up)
		srv.kill()
		time.Sleep(time.Duration(rng.Int64N(int64(200 * time.Millisecond))))
		srv.start()
		if srv.httpAddr != addrs.http || srv.udpAddr != addrs.udp {
			t.Fatalf("restart %d: listening on %s and %s; want %s and %s", k+1, srv.httpAddr, srv.udpAddr, addrs.http, addrs.udp)
		}
	}
	time.Sleep(set.minUp)
	finishing.Store(true)
	wg.Wait()

	sessions, announces, retries := 0, 0, 0
	failures := map[string]int{}
	for _, c := range clients {
		if c.err != nil {
			t.Fatalf("client %d (user %d, %s): %v", c.n, c.user.id, c.proto(), c.err)
		}
		sessions += c.sessions
		announces += c.announces
		retries += c.retries
		for f, n := range c.failures {
			failures[f] += n
		}
	}
	t.Logf("%d clients, %d sessions, %d announces, %d retries, %d server starts; tracker failures %v", len(clients), sessions, announces, retries, srv.starts, failures)

	checkChaosTotals(t, adm, users, torrents, clients)
	// And once more after a graceful restart.
	srv.p.signal(syscall.SIGTERM)
	if code := srv.p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM; log:\n%s", code, srv.p.log.text())
	}
	srv.start()
	adm.addr = srv.admAddr
	checkChaosTotals(t, adm, users, torrents, clients)
}

// checkChaosTotals compares the totals the admin API reads with what the
// clients reported, factors applied.
func checkChaosTotals(t *testing.T, adm *admin, users []*chaosUser, torrents []*chaosTorrent, clients []*chaosClient) {
	t.Helper()
	type totals struct{ up, down, rawUp, rawDown, snatches int64 }
	wantUser := map[uint64]*totals{}
	wantTorrent := map[[20]byte]*totals{}
	for _, u := range users {
		wantUser[u.id] = &totals{}
	}
	for _, tor := range torrents {
		wantTorrent[tor.hash] = &totals{}
	}
	snatched := map[string]bool{}
	for _, c := range clients {
		up := c.uploaded * c.user.up * c.torrent.up / 100 / 100
		down := c.downloaded * c.user.down * c.torrent.down / 100 / 100
		u, tor := wantUser[c.user.id], wantTorrent[c.torrent.hash]
		u.up += up
		u.down += down
		u.rawUp += c.uploaded
		u.rawDown += c.downloaded
		tor.up += up
		tor.down += down
		key := fmt.Sprintf("%d %x", c.user.id, c.torrent.hash)
		if c.completed && !snatched[key] {
			snatched[key] = true
			u.snatches++
			tor.snatches++
		}
	}
	for _, u := range users {
		got, want := adm.user(u.id), wantUser[u.id]
		if got.Uploaded != want.up || got.Downloaded != want.down || got.RawUploaded != want.rawUp || got.RawDownloaded != want.rawDown || got.Snatches != want.snatches {
			t.Errorf("user %d (factors %d/%d): uploaded %d, downloaded %d, raw %d and %d, %d snatches; want %d, %d, raw %d and %d, %d snatches (differences %+d, %+d)",
				u.id, u.up, u.down, got.Uploaded, got.Downloaded, got.RawUploaded, got.RawDownloaded, got.Snatches,
				want.up, want.down, want.rawUp, want.rawDown, want.snatches, got.Uploaded-want.up, got.Downloaded-want.down)
		}
		if got.Seeding != 0 || got.Leeching != 0 {
			t.Errorf("user %d: %d seeding, %d leeching after every client stopped; want none", u.id, got.Seeding, got.Leeching)
		}
	}
	for _, tor := range torrents {
		got, want := adm.torrent(tor.hash), wantTorrent[tor.hash]
		if got.Uploaded != want.up || got.Downloaded != want.down || got.Snatches != want.snatches {
			t.Errorf("torrent %s (factors %d/%d): uploaded %d, downloaded %d, %d snatches; want %d, %d, %d",
				tor.name, tor.up, tor.down, got.Uploaded, got.Downloaded, got.Snatches, want.up, want.down, want.snatches)
		}
	}
}

// chaosAddrs are the server's addresses, the same across restarts.
type chaosAddrs struct{ http, udp string }

func (c *chaosClient) proto() string {
	if c.udp {
		return "udp"
	}
	return "http"
}

// announce is one request a client sends until it succeeds.
type chaosAnnounce struct {
	uploaded, downloaded, left int64
	event                      uint32 // udpwire's event codes
	key                        uint32
}

// run plays sessions until finishing is set, then ends the one under way
// with stopped. Every announce is sent again, unchanged, until the
// tracker answers it with success.
func (c *chaosClient) run(addrs *chaosAddrs, finishing *atomic.Bool, deadline time.Time) {
	tr := &transport{c: c, addrs: addrs, deadline: deadline}
	defer tr.close()
	left := c.torrent.size
	if c.rng.IntN(3) == 0 {
		left = 0 // a seeder from the start
	}
	for {
		c.sessions++
		a := chaosAnnounce{left: left, event: udpwire.EventStarted, key: c.rng.Uint32() | 1}
		sessionCompleted := false
		if c.err = tr.send(&a); c.err != nil {
			return
		}
		for range 2 + c.rng.IntN(10) {
			if finishing.Load() {
				break
			}
			time.Sleep(time.Duration(5+c.rng.IntN(40)) * time.Millisecond)
			a.event = udpwire.EventNone
			a.uploaded += c.rng.Int64N(4 << 20)
			if a.left > 0 {
				got := min(a.left, 1+c.rng.Int64N(c.torrent.size/3))
				a.downloaded += got
				a.left -= got
				if a.left == 0 {
					// aria2 never sends completed: left reaching 0 counts too.
					if c.rng.IntN(4) != 0 {
						a.event = udpwire.EventCompleted
					}
					sessionCompleted = true
				}
			}
			if c.err = tr.send(&a); c.err != nil {
				return
			}
		}
		if a.uploaded == 0 && a.downloaded == 0 {
			a.uploaded = 1 // so that the next session's counters start below
		}
		a.event = udpwire.EventStopped
		if c.err = tr.send(&a); c.err != nil {
			return
		}
		c.uploaded += a.uploaded
		c.downloaded += a.downloaded
		c.completed = c.completed || sessionCompleted
		left = a.left
		if finishing.Load() {
			return
		}
		time.Sleep(time.Duration(c.rng.IntN(30)) * time.Millisecond)
	}
}

// transport sends a client's announces over HTTP or UDP.
type transport struct {
	c        *chaosClient
	addrs    *chaosAddrs
	deadline time.Time
	http     *http.Client
	conn     *net.UDPConn
	connID   uint64
	txID     uint32
	buf      []byte
}

func (tr *transport) close() {
	if tr.conn != nil {
		tr.conn.Close()
	}
	if tr.http != nil {
		tr.http.CloseIdleConnections()
	}
}

// send sends a until the tracker answers it with success, or the
// deadline passes.
func (tr *transport) send(a *chaosAnnounce) error {
	tr.c.announces++
	for try := 0; ; try++ {
		if time.Now().After(tr.deadline) {
			return fmt.Errorf("no successful reply to %+v before the deadline (tracker failures %v)", *a, tr.c.failures)
		}
		if try > 0 {
			tr.c.retries++
			time.Sleep(time.Duration(20+tr.c.rng.IntN(30)) * time.Millisecond)
		}
		var failure string
		var err error
		if tr.c.udp {
			failure, err = tr.sendUDP(a)
		} else {
			failure, err = tr.sendHTTP(a)
		}
		switch {
		case err != nil:
			continue // the server is down, or the reply was lost: the same request again
		case failure != "":
			tr.c.failures[failure]++
			continue
		}
		return nil
	}
}

var eventNames = map[uint32]string{udpwire.EventStarted: "started", udpwire.EventCompleted: "completed", udpwire.EventStopped: "stopped"}

func (tr *transport) sendHTTP(a *chaosAnnounce) (failure string, err error) {
	c := tr.c
	if tr.http == nil {
		tr.http = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	}
	u := fmt.Sprintf("http://%s/announce/%s?info_hash=%s&peer_id=%s&port=%d&uploaded=%d&downloaded=%d&left=%d&key=%08X&compact=1&numwant=5",
		tr.addrs.http, c.user.passkey, escapeAll(c.torrent.hash[:]), escapeAll(c.peerID[:]), c.port, a.uploaded, a.downloaded, a.left, a.key)
	if ev := eventNames[a.event]; ev != "" {
		u += "&event=" + ev
	}
	resp, err := tr.http.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	if _, reason, ok := strings.Cut(string(body), "14:failure reason"); ok {
		return reason, nil
	}
	if interval(string(body)) <= 0 {
		return "", fmt.Errorf("reply without an interval: %q", body)
	}
	return "", nil
}

// udpTimeout is how long a UDP client waits for a reply before it sends
// the request again (real clients start at 15 s; the test is in a hurry).
const udpTimeout = 300 * time.Millisecond

func (tr *transport) sendUDP(a *chaosAnnounce) (failure string, err error) {
	c := tr.c
	if tr.conn == nil {
		raddr, err := net.ResolveUDPAddr("udp", tr.addrs.udp)
		if err != nil {
			return "", err
		}
		if tr.conn, err = net.DialUDP("udp", nil, raddr); err != nil {
			return "", err
		}
	}
	if tr.connID == 0 {
		tr.txID++
		action, body, err := tr.roundTrip(udpwire.AppendConnectRequest(tr.buf[:0], tr.txID))
		if err != nil {
			return "", err
		}
		if action != udpwire.ActionConnect || len(body) < 8 {
			return "", fmt.Errorf("connect: action %d", action)
		}
		tr.connID = binary.BigEndian.Uint64(body)
	}
	tr.txID++
	req := udpwire.AppendAnnounceRequest(tr.buf[:0], &udpwire.Announce{
		ConnID: tr.connID, TxID: tr.txID, InfoHash: c.torrent.hash, PeerID: c.peerID,
		Downloaded: uint64(a.downloaded), Left: uint64(a.left), Uploaded: uint64(a.uploaded),
		Event: a.event, Key: a.key, NumWant: 5, Port: c.port,
		URLData: []byte("/announce/" + c.user.passkey),
	})
	action, body, err := tr.roundTrip(req)
	if err != nil {
		tr.connID = 0 // the server may have restarted: connect again
		return "", err
	}
	switch action {
	case udpwire.ActionAnnounce:
		return "", nil
	case udpwire.ActionError:
		// After a restart the connection id is unknown: connect again.
		tr.connID = 0
		return string(body), nil
	}
	return "", fmt.Errorf("announce: reply action %d", action)
}

// roundTrip sends req and waits udpTimeout for the reply of the same
// transaction id.
func (tr *transport) roundTrip(req []byte) (action uint32, body []byte, err error) {
	tr.buf = req
	if _, err := tr.conn.Write(req); err != nil {
		return 0, nil, err
	}
	tr.conn.SetReadDeadline(time.Now().Add(udpTimeout))
	buf := make([]byte, 1500)
	for {
		n, err := tr.conn.Read(buf)
		if err != nil {
			return 0, nil, err // a timeout, or the port refused: send again
		}
		if n < 8 || binary.BigEndian.Uint32(buf[4:]) != tr.txID {
			continue // a late reply to an earlier try
		}
		return binary.BigEndian.Uint32(buf), buf[8:n], nil
	}
}
