// Package loadgen is annuaire's load generator: it benchmarks a
// BitTorrent tracker deployment over UDP (BEP 15) or HTTP, the same way
// for annuaire and for other trackers, so that they can be compared side
// by side (see scripts/bench-compare.sh).
//
// # Running it against a deployment
//
// Build the command and point it at the tracker:
//
//	go build -o loadgen ./internal/cmd/loadgen
//	./loadgen -udp 127.0.0.1:6969 -server-pid "$(pidof tracker)"
//	./loadgen -udp 127.0.0.1:6969 -mode scrape -prefill=false
//	./loadgen -http http://127.0.0.1:6969/announce
//	./loadgen -http http://127.0.0.1:6969/announce -http-close
//	./loadgen -http http://127.0.0.1:6969/announce/PASSKEY -mode scrape
//	./loadgen -udp 127.0.0.1:6969 -flood hashes -from 127.66.0.1 -sources 1024
//	./loadgen -udp 127.0.0.1:6969 -flood-bench peers -rate 5000 -from 127.1.0.1 -sources 256 \
//		-flood-from 127.66.0.1 -metrics-url http://127.0.0.1:9100/metrics -server-pid "$(pidof tracker)"
//
// A tracker that serves listed torrents only needs the generator's info
// hashes first: loadgen -write-hashes whitelist.txt writes them, one hex
// hash per line (opentracker's access.whitelist format), for the same
// -seed and -swarms. -json prints the result as one JSON object; the exit
// status is 1 when more than 0.1% of the replies were malformed.
//
// For figures worth quoting, pin the tracker and the generator to
// different cores (taskset -c 0 / -c 1), start the tracker fresh for
// every round, interleave the contenders, and quote medians and ratios
// rather than single figures. Near 90–100k UDP or 30k keep-alive HTTP
// requests per second one core of load generation is the limit (on
// loopback the kernel charges part of the delivery to the sender);
// compare requests per second of server CPU there.
//
// # What it does
//
// The [Workload] is a population of Peers over Swarms torrents, derived
// from a seed: deterministic info hashes, peer ids with a client prefix,
// a port per peer unique within its swarm, 10% seeders. A [Generator]
// first announces every peer once with the started event (the prefill,
// reported as peers accepted per second), then for Warmup and Duration
// sends announces (90% plain, 8% started, 2% completed) or scrapes, and
// reports requests per second, the latency percentiles p50, p99 and p99.9
// from a log-bucket histogram, and the outcome of every request: valid
// replies, tracker failures (UDP error packets, HTTP failure reasons),
// malformed replies, timeouts and local errors. Every reply is checked:
// over UDP its action, transaction id and length (connect 16 bytes,
// announce 20+6N or 20+18N, scrape 8+12N, error at least 8); over HTTP its
// status 200 and a strictly bencoded dict with interval, complete,
// incomplete and compact peers, or a failure reason, or for scrapes a
// files dict with an entry per requested hash.
//
// UDP: a few sockets (Sockets), each connected to the tracker and driven
// by one goroutine that keeps its share of InFlight requests outstanding.
// Each socket obtains a connection id and renews it before a minute has
// passed. Requests are never sent again: one unanswered within Timeout is
// a timeout. On Linux each round of requests goes out in one sendmmsg and
// replies come back in recvmmsg batches, through the socket's
// syscall.RawConn so that Go's poller still does the waiting; other
// systems send and receive one datagram per call.
//
// HTTP: Conns goroutines, each writing one request at a time over its own
// connection, built by hand into a reused buffer with the query in
// libtorrent's order and encoding, and reading the response with a small
// HTTP/1.1 reader (Content-Length, chunked or close-delimited bodies).
// net/http's client would cost more CPU per request than a C tracker's
// whole handling of it. In keep-alive mode a connection the server has
// closed is opened again and counted in Reconnects (opentracker closes
// every connection after one reply); with HTTPClose every request opens
// a connection and sends Connection: close, as qBittorrent and µTorrent
// do. An https:// target is served over TLS (crypto/tls, the certificate
// taken unchecked); with TLSResume each connection keeps its sessions, so
// that its new connections resume one rather than make a full handshake.
//
// Both sides are measured: the generator's own CPU (getrusage) always,
// and with ServerPID the tracker's CPU share over the window (from
// /proc/PID/stat) and its resident memory before and after the prefill
// (VmRSS), giving bytes per peer.
//
// # Rates, addresses and windows
//
// A run sends as fast as its requests in flight allow, or, with Rate, at
// that many requests per second: each socket or connection sends its
// share at even intervals, and a latency counts from the time the request
// was due, so that a tracker that falls behind shows in the percentiles
// even when every request in flight is waiting for it (a closed loop
// would send less instead). Requests come from the system's choice of
// address, from Source, or from Sources consecutive addresses from Source
// on: on Linux every address of 127.0.0.0/8 is a loopback address, so a
// test on one machine has as many clients as it wants, each peer of the
// workload always announcing from the same one. Refusals are counted by
// their text (the UDP error message, the HTTP failure reason). Windows
// split the measured run into parts with figures of their own.
//
// # Floods
//
// With Flood, a run sends made-up announces instead of the workload, each
// with a random peer id and port (see [FloodShape]): a new info hash each
// time, as a seeder completing (FloodHashes); new peers into a few of the
// workload's swarms (FloodPeers); or a new info hash completed and then
// stopped, which leaves a swarm holding only a snatch count
// (FloodSnatches). A [FloodBench] measures what a flood does: the
// workload, paced, runs before, during and after it, while a probe
// announces new torrents, and the tracker's memory, CPU, metrics and the
// datagrams its socket dropped are read throughout (see
// scripts/flood-bench.sh and docs/benchmarking.md).
//
// Goroutines: [Generator.Run] starts one goroutine per UDP socket or HTTP
// connection, and one for each call of OnWindow, and joins them all
// before it returns; it stops early when its context is done.
// [FloodBench.Run] adds the flood's generator, the probe and the
// samplers of memory and metrics, and joins them too.
package loadgen
