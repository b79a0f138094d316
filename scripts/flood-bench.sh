#!/usr/bin/env bash
# Measures what floods do to the standalone server and to its legitimate
# clients, the way docs/benchmarking.md describes: for each round, rate
# limit and flood, a fresh server pinned to one core is prefilled, then
# loaded by legitimate clients before, during and after a flood, the load
# generator pinned to the other core; the table gives the medians over
# the rounds.
#
# Usage:
#   scripts/flood-bench.sh [flags]
#
# Run scripts/flood-bench.sh -h for the flags.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/flood-bench.sh [flags]

Starts the standalone server fresh for every round, rate limit and flood,
pinned to one core, with a short -interval so that peers expire and the
sweeper passes within the run. The load generator, pinned to another core,
prefills it with the legitimate peers, then sends their announces at -rate
from 256 loopback addresses (127.1.0.1 on) for -before, -during, -settle
and -after seconds; during the second window a flood of the given shape
comes from one address (127.66.0.1) or many (127.66.0.1 on, in turn); a
probe announces a new torrent four times a second from 127.2.0.1. The
server's memory, CPU, metrics and socket drops are read throughout.

Floods are SHAPE-N, N the number of flood addresses: hashes (a new info
hash each time, event completed, left 0), peers (new peer ids into 4 of
the legitimate swarms) or snatches (a new info hash completed, then
stopped).

  -server BIN        the standalone server (default: built from examples/)
  -rounds N          rounds (default 3)
  -floods LIST       comma-separated (default
                     hashes-1,peers-1,snatches-1,hashes-1024,peers-1024)
  -limits LIST       -rate-limit values, comma-separated; "default" gives
                     none (default: default,0)
  -server-flags S    more flags for the server, e.g. '-max-peers 100000'
  -interval D        the server's -interval (default 10s)
  -rate N            legitimate announces per second (default 5000)
  -flood-rate N      flood announces per second; 0 for as fast as they go
                     (default 20000)
  -peers N           legitimate peers (default 20000)
  -swarms N          legitimate swarms (default 2000)
  -before S, -during S, -settle S, -after S
                     window lengths in seconds (default 5, 10, 45, 5):
                     -settle covers the peers' expiry, which takes at
                     least 36 s, and a cycle of the sweeper
  -server-cpu N      core for the server (default 0)
  -loadgen-cpu N     core for the load generator (default 1)
  -out DIR           keep every run's JSON result in DIR
  -h                 this help
EOF
}

die() {
	echo "flood-bench: $*" >&2
	exit 2
}

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
. "$root/scripts/bench-lib.sh"

server=""
rounds=3
floods="hashes-1,peers-1,snatches-1,hashes-1024,peers-1024"
limits="default,0"
server_flags=""
interval=10s
rate=5000
flood_rate=20000
peers=20000
swarms=2000
before=5
during=10
settle=45
after=5
server_cpu=0
loadgen_cpu=1
out=""

parse_flags "server rounds floods limits server-flags interval rate flood-rate peers swarms before during settle after server-cpu loadgen-cpu out" "$@"

for n in "$rounds" "$rate" "$flood_rate" "$peers" "$swarms" "$before" "$during" "$settle" "$after" "$server_cpu" "$loadgen_cpu"; do
	[[ "$n" =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
[ "$rounds" -ge 1 ] || die "-rounds must be at least 1"
[ "$rate" -ge 1 ] || die "-rate must be at least 1"
IFS=, read -r -a flood_list <<<"$floods"
for f in "${flood_list[@]}"; do
	[[ "$f" =~ ^(hashes|peers|snatches)-[0-9]+$ ]] || die "flood $f: want SHAPE-N, SHAPE hashes, peers or snatches"
done
IFS=, read -r -a limit_list <<<"$limits"
for l in "${limit_list[@]}"; do
	[[ "$l" == default || "$l" =~ ^[0-9.]+$ ]] || die "rate limit $l: want default or a number"
done
[ "$(uname)" = Linux ] || die "the flood addresses are in 127.0.0.0/8, all loopback on Linux only"
for tool in taskset setsid go; do
	command -v "$tool" >/dev/null || die "$tool not found"
done

make_work flood-bench "$root"
results=${out:-$work/results}
mkdir -p "$results"
if [ -z "$server" ]; then
	echo "building the server"
	(cd "$root" && CGO_ENABLED=0 go -C examples build -o "$work/annuaire" ./standalone)
	server=$work/annuaire
fi
[ -x "$server" ] || die "$server is not an executable"

status=0
for round in $(seq "$rounds"); do
	for limit in "${limit_list[@]}"; do
		limit_flag=""
		[ "$limit" = default ] || limit_flag="-rate-limit $limit"
		for flood in "${flood_list[@]}"; do
			shape=${flood%-*}
			sources=${flood##*-}
			port=$(free_port)
			metrics_port=$(free_port)
			log=$work/server-$flood-$limit-$round.log
			start_server "$server -udp 127.0.0.1:$port -http '' -metrics 127.0.0.1:$metrics_port -interval $interval -log-level warn $limit_flag $server_flags" \
				"$log" "$metrics_port"
			file=$results/$flood-limit$limit-$round.json
			echo "round $round/$rounds: rate limit $limit, flood $flood"
			# In the background, so that a signal to this script is handled
			# at once: wait returns when a trap is due.
			taskset -c "$loadgen_cpu" "$work/loadgen" -udp "127.0.0.1:$port" -json \
				-peers "$peers" -swarms "$swarms" -rate "$rate" -from 127.1.0.1 -sources 256 -inflight 2048 -warmup 1 \
				-flood-bench "$shape" -flood-from 127.66.0.1 -flood-sources "$sources" -flood-rate "$flood_rate" \
				-flood-inflight "$((sources > 64 ? sources : 64))" -probe-from 127.2.0.1 \
				-before "$before" -duration "$during" -settle "$settle" -after "$after" \
				-metrics-url "http://127.0.0.1:$metrics_port/metrics" -server-pid "$server_pid" >"$file" &
			loadgen_pid=$!
			if ! wait "$loadgen_pid"; then
				echo "flood-bench: $flood, rate limit $limit, round $round: the load generator failed (see above)" >&2
				status=1
			fi
			loadgen_pid=""
			stop_server
		done
	done
done

echo
echo "Medians over $rounds round(s). Legitimate load: $peers peers over $swarms swarms from 256 addresses," \
	"$rate announces/s; flood: $during s at $flood_rate announces/s (0: as fast as it goes);" \
	"server -interval $interval${server_flags:+ $server_flags}, on CPU $server_cpu; load generator on CPU $loadgen_cpu."
echo "Windows: before ${before} s, during ${during} s, settle ${settle} s, after ${after} s."
echo
printf '%-13s %-7s | %-17s %-17s %-15s | %-9s %-7s | %-15s %-15s | %-17s | %s\n' \
	flood "limit" "answered % b/d/a" "p99 ms b/d/a" "p50 ms during" "new d/a" "drops d" \
	"peers peak/end" "swarms peak/end" "RSS MiB b/peak/a" "flood ok/refused/timeout %"
# m KEY [SCALE]: the median of KEY over the rounds of $flood and $limit.
m() { median_of "$1" "${2:-1}" "$results/$flood-limit$limit-"*.json; }
for limit in "${limit_list[@]}"; do
	for flood in "${flood_list[@]}"; do
		printf '%-13s %-7s | %-17s %-17s %-15s | %-9s %-7s | %-15s %-15s | %-17s | %s\n' "$flood" "$limit" \
			"$(fmt3 "%.1f" "$(m before_answered_pct)" "$(m during_answered_pct)" "$(m after_answered_pct)")" \
			"$(fmt3 "%.1f" "$(m before_p99_ms)" "$(m during_p99_ms)" "$(m after_p99_ms)")" \
			"$(fmt3 "%.2f" "$(m during_p50_ms)")" \
			"$(pct "$(m during_new_served)" "$(m during_new_tried)")/$(pct "$(m after_new_served)" "$(m after_new_tried)")" \
			"$(fmt3 "%.0f" "$(m during_server_drops)")" \
			"$(fmt3 "%.0f" "$(m peak_peers)" "$(m after_peers)")" \
			"$(fmt3 "%.0f" "$(m peak_swarms)" "$(m after_swarms)")" \
			"$(fmt3 "%.1f" "$(m rss_before 9.5367431640625e-07)" "$(m rss_peak 9.5367431640625e-07)" "$(m rss_after 9.5367431640625e-07)")" \
			"$(pct "$(m flood_ok)" "$(m flood_sent)")/$(pct "$(m flood_failures)" "$(m flood_sent)")/$(pct "$(m flood_timeouts)" "$(m flood_sent)")"
	done
done
echo
echo "answered: share of the legitimate announces with a valid reply, before/during/after the flood;"
echo "new: share of the probe's new torrents served (stored) during/after; drops: datagrams the"
echo "system dropped at the server's socket during the flood; peaks are read once a second."
[ -z "$out" ] || echo "results: $results"
exit $status
