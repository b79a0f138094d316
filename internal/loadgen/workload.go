package loadgen

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/annuaire/tracker/internal/setting"
	"github.com/annuaire/tracker/internal/udpwire"
)

// maxPortsPerSwarm is how many peers a swarm can hold while every peer of
// the swarm keeps a port of its own (ports 1024 to 65535).
const (
	firstPort        = 1024
	maxPortsPerSwarm = 65536 - firstPort
)

// Workload describes the simulated population and what it sends. Its zero
// value is the load the comparisons between trackers use: 100,000 peers
// over 10,000 swarms, numwant 50, 10% seeders, 90% plain announces, 8%
// started, 2% completed.
//
// Everything is derived from Seed by pure functions, so two generators
// with the same Workload send the same info hashes and peer ids: a
// whitelist written by one ([Workload.WriteHashes]) serves the other.
//
// Peer i belongs to swarm i mod Swarms and announces port
// 1024 + i div Swarms, unique within its swarm, so trackers that key
// peers by address and port count every peer.
type Workload struct {
	// Swarms is the number of torrents. If zero, 10,000.
	Swarms int
	// Peers is the number of distinct peers the measured run announces
	// as (peers 0 to Peers-1). If zero, 100,000.
	Peers int
	// PrefillPeers is the number of distinct peers the prefill announces
	// (peers 0 to PrefillPeers-1). If zero, Peers.
	PrefillPeers int
	// NumWant is the number of peers asked for. If zero, 50. A negative
	// value asks for the tracker's default: -1 over UDP, no numwant
	// parameter over HTTP.
	NumWant int
	// SeederPct is the percentage of peers that are seeders (left=0).
	// If zero, 10; a negative value means none.
	SeederPct float64
	// StartedPct and CompletedPct are the percentages of measured
	// announces that carry the started and completed events; the rest are
	// plain announces. If zero, 8 and 2; a negative value means none.
	StartedPct   float64
	CompletedPct float64
	// ScrapeHashes is the number of info hashes per scrape request, at
	// most 74 (a full UDP packet). If zero, 1.
	ScrapeHashes int
	// Seed selects the info hashes, peer ids and keys. Every value,
	// zero included, is a valid seed.
	Seed uint64
	// PeerIDPrefix starts every peer id, in the Azureus style that real
	// clients use. If empty, "-LG0100-".
	PeerIDPrefix string
	// Churn makes every run announce come from one of Peers peers that
	// are not the prefill's, in a swarm drawn at random for each
	// announce: almost every announce is a join, and the swarms grow as
	// the run goes on. Without it, peer i always announces in swarm
	// i mod Swarms, so the run re-announces known peers.
	Churn bool
	// Passkeys makes every peer announce as a user of a private tracker:
	// peer i as user i+1, with [Workload.Passkey](i), in the path of an
	// HTTP announce URL that holds {passkey} where it goes (for example
	// http://HOST/announce/{passkey}) and over UDP as the BEP 41 URL data
	// /announce/PASSKEY. [Workload.WriteUsers] writes the users for the
	// tracker. Scrapes carry the passkey of user 1.
	Passkeys bool
}

// Defaults of a zero Workload.
const (
	DefaultSwarms       = 10_000
	DefaultPeers        = 100_000
	DefaultNumWant      = 50
	DefaultSeederPct    = 10
	DefaultStartedPct   = 8
	DefaultCompletedPct = 2
	DefaultPeerIDPrefix = "-LG0100-"
)

// withDefaults returns w with every zero field replaced by its default,
// or an error if a field is out of range.
func (w Workload) withDefaults() (Workload, error) {
	if w.Swarms == 0 {
		w.Swarms = DefaultSwarms
	}
	if w.Peers == 0 {
		w.Peers = DefaultPeers
	}
	if w.PrefillPeers == 0 {
		w.PrefillPeers = w.Peers
	}
	if w.NumWant == 0 {
		w.NumWant = DefaultNumWant
	}
	if w.ScrapeHashes == 0 {
		w.ScrapeHashes = 1
	}
	if w.PeerIDPrefix == "" {
		w.PeerIDPrefix = DefaultPeerIDPrefix
	}
	w.SeederPct = setting.Value(w.SeederPct, DefaultSeederPct)
	w.StartedPct = setting.Value(w.StartedPct, DefaultStartedPct)
	w.CompletedPct = setting.Value(w.CompletedPct, DefaultCompletedPct)

	switch {
	case w.Swarms < 0:
		return w, fmt.Errorf("swarms %d: must be positive", w.Swarms)
	case w.Peers < 0 || w.PrefillPeers < 0:
		return w, fmt.Errorf("peers %d, prefill peers %d: must be positive", w.Peers, w.PrefillPeers)
	case w.Churn && w.PrefillPeers/w.Swarms >= maxPortsPerSwarm/2:
		return w, fmt.Errorf("churn over %d prefilled peers per swarm: at most %d leave enough ports", w.PrefillPeers/w.Swarms, maxPortsPerSwarm/2)
	case int64(max(w.Peers, w.PrefillPeers)) > int64(w.Swarms)*maxPortsPerSwarm:
		return w, fmt.Errorf("%d peers over %d swarms: at most %d peers per swarm fit in distinct ports",
			max(w.Peers, w.PrefillPeers), w.Swarms, maxPortsPerSwarm)
	case w.SeederPct > 100:
		return w, fmt.Errorf("seeders %v%%: at most 100", w.SeederPct)
	case w.StartedPct+w.CompletedPct > 100:
		return w, fmt.Errorf("started %v%% + completed %v%%: at most 100", w.StartedPct, w.CompletedPct)
	case w.ScrapeHashes < 0 || w.ScrapeHashes > min(w.Swarms, udpwire.MaxScrapeHashes):
		return w, fmt.Errorf("scrape hashes %d: between 1 and %d, and at most the number of swarms", w.ScrapeHashes, udpwire.MaxScrapeHashes)
	case len(w.PeerIDPrefix) > 20:
		return w, fmt.Errorf("peer id prefix %q: longer than 20 bytes", w.PeerIDPrefix)
	case w.NumWant > math.MaxInt32:
		return w, fmt.Errorf("numwant %d: too large", w.NumWant)
	}
	return w, nil
}

// Streams of the seed: each derived quantity mixes the seed with its own
// constant so that they are independent.
const (
	streamHash   = 0x9e3779b97f4a7c15
	streamPeerID = 0xbf58476d1ce4e5b9
	streamKey    = 0x94d049bb133111eb
	streamRole   = 0x2545f4914f6cdd1d
	streamBytes  = 0xd6e8feb86659fd93
	streamRNG    = 0xa0761d6478bd642f
	streamPass   = 0xe7037ed1a0b428db
	streamProbe  = 0x8ebc6af09c88c6e3
)

// mix is the splitmix64 finaliser: a bijective, well-scrambled hash of x.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func (w *Workload) derive(stream uint64, i int) uint64 {
	return mix(w.Seed ^ mix(stream+uint64(i)))
}

// InfoHash returns the info hash of swarm s (0 ≤ s < Swarms).
func (w *Workload) InfoHash(s int) [20]byte { return w.hash(streamHash, s) }

// newTorrent returns the n-th info hash of the torrents a flood bench's
// probe announces: torrents no swarm of the workload, or of a flood,
// has.
func (w *Workload) newTorrent(n int) [20]byte { return w.hash(streamProbe, n) }

func (w *Workload) hash(stream uint64, i int) [20]byte {
	var h [20]byte
	x := w.derive(stream, i)
	binary.BigEndian.PutUint64(h[0:], x)
	x = mix(x + stream)
	binary.BigEndian.PutUint64(h[8:], x)
	x = mix(x + stream)
	binary.BigEndian.PutUint32(h[16:], uint32(x>>32))
	return h
}

// PeerID returns the peer id of peer i: PeerIDPrefix, then bytes derived
// from the seed (binary, as µTorrent's are, so that the HTTP requests
// exercise percent-encoding).
func (w *Workload) PeerID(i int) [20]byte {
	var id [20]byte
	n := copy(id[:], w.PeerIDPrefix)
	x := w.derive(streamPeerID, i)
	for n < 20 {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], x)
		n += copy(id[n:], b[:])
		x = mix(x + streamPeerID)
	}
	return id
}

// passkeyLen is the length of a passkey: letters and digits.
const passkeyLen = 32

const passkeyChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// appendPasskey appends the passkey of peer i's user: 32 letters and
// digits derived from the seed.
func (w *Workload) appendPasskey(b []byte, i int) []byte {
	x := w.derive(streamPass, i)
	for k := range passkeyLen {
		if k%8 == 0 && k > 0 {
			x = mix(x + streamPass)
		}
		b = append(b, passkeyChars[(x>>(8*(k%8)))&0xff%uint64(len(passkeyChars))])
	}
	return b
}

// Passkey returns the passkey of peer i's user, user i+1.
func (w *Workload) Passkey(i int) string { return string(w.appendPasskey(nil, i)) }

// WriteUsers writes the users of the peers (those of the run and of the
// prefill), one a line: the passkey, then the user id, the format of
// annuaire's -passkeys file.
func (w *Workload) WriteUsers(out io.Writer) error {
	ww, err := w.withDefaults()
	if err != nil {
		return err
	}
	n := max(ww.Peers, ww.PrefillPeers)
	if ww.Churn {
		n = ww.PrefillPeers + ww.Peers
	}
	bw := bufio.NewWriter(out)
	var line []byte
	for i := range n {
		line = ww.appendPasskey(line[:0], i)
		line = append(line, ' ')
		line = strconv.AppendInt(line, int64(i)+1, 10)
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Swarm returns the swarm of peer i.
func (w *Workload) Swarm(i int) int { return i % w.Swarms }

// Port returns the port peer i announces: unique within its swarm for the
// peers of the prefill and of a run without churn. The peers of a churning
// run (i >= PrefillPeers) take the ports above those of the prefill, in
// turn, so two of them share a port in a swarm only rarely (it matters to
// trackers that key peers by address and port).
func (w *Workload) Port(i int) uint16 {
	if !w.Churn || i < w.PrefillPeers {
		return uint16(firstPort + i/w.Swarms)
	}
	base := firstPort + (w.PrefillPeers+w.Swarms-1)/w.Swarms
	return uint16(base + (i-w.PrefillPeers)%(65536-base))
}

// Key returns the BEP 7 key of peer i.
func (w *Workload) Key(i int) uint32 { return uint32(w.derive(streamKey, i)) }

// Seeder reports whether peer i is a seeder.
func (w *Workload) Seeder(i int) bool {
	return float64(w.derive(streamRole, i)%1_000_000) < w.SeederPct*10_000
}

// transfer returns the downloaded, left and uploaded byte counts of
// request r: a seeder's, or one that completes, has nothing left.
func (w *Workload) transfer(r request) (downloaded, left, uploaded int64) {
	x := w.derive(streamBytes, r.peer)
	const size = 1 << 32 // a 4 GiB torrent
	downloaded = int64(x % size)
	uploaded = int64((x >> 20) % size)
	if r.seeder || r.event == udpwire.EventCompleted || w.Seeder(r.peer) {
		return size, 0, uploaded
	}
	return downloaded, size - downloaded, uploaded
}

// port returns the port request r announces.
func (w *Workload) port(r request) uint16 {
	if r.port != 0 {
		return r.port
	}
	return w.Port(r.peer)
}

// WriteHashes writes the info hash of every swarm, one lowercase hex hash
// per line: the whitelist format of opentracker.
func (w *Workload) WriteHashes(out io.Writer) error {
	ww, err := w.withDefaults()
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(out)
	var line [41]byte
	line[40] = '\n'
	for s := range ww.Swarms {
		h := ww.InfoHash(s)
		hex.Encode(line[:40], h[:])
		if _, err := bw.Write(line[:]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// rng is a splitmix64 generator: one per worker, never shared.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix(r.s)
}

// below returns a uniform integer in [0, n) for n < 2^32.
func (r *rng) below(n int) int {
	return int((r.next() >> 32) * uint64(n) >> 32)
}

// request is one announce or scrape to send: the peer that announces and
// its event (a udpwire event code), or the first swarm of a scrape. A
// flood's requests name their port, and may be a seeder's whatever the
// peer's role.
type request struct {
	scrape bool
	peer   int
	event  uint32
	swarm  int
	port   uint16 // zero: the peer's own (Workload.Port)
	seeder bool   // nothing left, whatever Workload.Seeder says
}

// FloodShape is what a flood sends (Config.Flood): requests made up to
// fill a tracker rather than to use it, each with a peer id and a port
// drawn at random.
type FloodShape int

const (
	// NoFlood sends the workload.
	NoFlood FloodShape = iota
	// FloodHashes announces a new info hash every time, as a seeder with
	// event completed: each announce that the tracker takes adds a swarm
	// that keeps its snatch count once the peer has gone.
	FloodHashes
	// FloodPeers announces new peers, with event started, into the first
	// FloodSwarms swarms of the workload: replies to the swarms' real
	// peers then hold the made-up ones.
	FloodPeers
	// FloodSnatches announces a new info hash as a seeder with event
	// completed, then the same peer with event stopped: each pair leaves
	// a swarm with a snatch count and no peer, so bounds on the peers an
	// address holds do not stop it.
	FloodSnatches
)

var floodNames = [...]string{NoFlood: "none", FloodHashes: "hashes", FloodPeers: "peers", FloodSnatches: "snatches"}

func (f FloodShape) String() string {
	if f >= 0 && int(f) < len(floodNames) {
		return floodNames[f]
	}
	return fmt.Sprintf("FloodShape(%d)", int(f))
}

// ParseFloodShape returns the shape named s: hashes, peers or snatches
// (or none).
func ParseFloodShape(s string) (FloodShape, error) {
	for f, name := range floodNames {
		if s == name {
			return FloodShape(f), nil
		}
	}
	return 0, fmt.Errorf("flood %q: want hashes, peers or snatches", s)
}

// floodPeerBase is where the peers a flood makes up start: far beyond any
// workload's, whose ports must fit in 16 bits.
const floodPeerBase = 1 << 30

// picker chooses the requests of one worker. During the prefill every
// worker takes the next peer from a counter, so that each peer is
// announced exactly once; during the run peers (or the swarms of scrapes)
// are drawn at random. A picker spread over n workers (spread) picks only
// the peers i with i mod n = k, its worker's, so that a peer always comes
// from the same worker and thus from the same address.
type picker struct {
	w       *Workload
	rng     rng
	scrape  bool
	prefill *prefillCounter
	// The picker's peers are first, first+step, ...: own of the run's
	// peers.
	first, step, own int

	flood       FloodShape
	floodSwarms int
	stopNext    request // FloodSnatches: the stopped announce that follows a completed one
	stopPending bool

	startedBelow, completedBelow uint32 // thresholds out of 2^32
}

func newPicker(w *Workload, worker int, scrape bool, prefill *prefillCounter) picker {
	p := picker{
		w:       w,
		rng:     rng{s: w.derive(streamRNG, worker)},
		scrape:  scrape && prefill == nil,
		prefill: prefill,
		step:    1,
		own:     w.Peers,
	}
	p.startedBelow = uint32(w.StartedPct / 100 * math.MaxUint32)
	p.completedBelow = p.startedBelow + uint32(w.CompletedPct/100*math.MaxUint32)
	return p
}

// share returns how many of total peers worker k of n picks when spread.
func share(total, k, n int) int {
	if total <= k {
		return 0
	}
	return (total - k + n - 1) / n
}

// spread makes the picker worker k's of n: it picks peers k, k+n, k+2n...
// The prefill counter, if any, must then be the worker's own, for
// share(PrefillPeers, k, n) peers.
func (p *picker) spread(k, n int) {
	p.first, p.step, p.own = k, n, share(p.w.Peers, k, n)
}

// flooding makes the picker send a flood of the given shape. Its draws
// start from salt: a flood that drew the same hashes as an earlier one
// would find their swarms in place.
func (p *picker) flooding(f FloodShape, swarms int, salt uint64) {
	p.flood, p.floodSwarms = f, swarms
	p.rng.s ^= salt
}

// next returns the next request, or false when the prefill has announced
// every peer, or when the picker has no peer of its own.
func (p *picker) next() (request, bool) {
	if p.flood != NoFlood {
		return p.nextFlood(), true
	}
	if p.prefill != nil {
		j, ok := p.prefill.take()
		i := p.first + p.step*j
		return request{peer: i, event: udpwire.EventStarted, swarm: p.w.Swarm(i)}, ok
	}
	if p.scrape {
		return request{scrape: true, swarm: p.rng.below(p.w.Swarms)}, true
	}
	if p.own == 0 {
		return request{}, false
	}
	x := p.rng.next()
	i := p.first + p.step*int((x>>32)*uint64(p.own)>>32)
	if p.w.Churn {
		// A peer beyond the prefill's, in a random swarm.
		return request{peer: p.w.PrefillPeers + i, event: udpwire.EventStarted, swarm: p.rng.below(p.w.Swarms)}, true
	}
	ev := udpwire.EventNone
	switch u := uint32(x); {
	case u < p.startedBelow:
		ev = udpwire.EventStarted
	case u < p.completedBelow:
		ev = udpwire.EventCompleted
	}
	return request{peer: i, event: ev, swarm: p.w.Swarm(i)}, true
}

// nextFlood returns the next request of a flood: a made-up peer on a
// random port, in a swarm of the workload's (FloodPeers) or in a new one.
func (p *picker) nextFlood() request {
	if p.stopPending {
		p.stopPending = false
		return p.stopNext
	}
	x := p.rng.next()
	r := request{
		peer: floodPeerBase + int(x>>34),
		port: uint16(firstPort + (x&0xffffffff)*maxPortsPerSwarm>>32),
	}
	if p.flood == FloodPeers {
		r.event = udpwire.EventStarted
		r.swarm = p.rng.below(min(p.floodSwarms, p.w.Swarms))
		return r
	}
	// A swarm no workload of this seed uses: new to the tracker.
	r.swarm = p.w.Swarms + int(p.rng.next()>>34)
	r.event, r.seeder = udpwire.EventCompleted, true
	if p.flood == FloodSnatches {
		p.stopNext, p.stopPending = r, true
		p.stopNext.event = udpwire.EventStopped
	}
	return r
}

// scrapeSwarm returns the k-th swarm of a scrape starting at swarm s:
// consecutive swarms, so the hashes of one request are distinct.
func (w *Workload) scrapeSwarm(s, k int) int { return (s + k) % w.Swarms }
