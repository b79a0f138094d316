#!/usr/bin/env bash
# Measures one standalone instance whose swarms are in a local Redis: for
# each swarm size and round, a fresh redis-server (no persistence) and a
# fresh server, a prefill, then UDP announces as fast as they are answered
# (the rate and its latencies), then at half that rate (the latencies at
# a comfortable load). Redis's INFO gives its memory per peer, the
# commands a script runs per announce (commandstats) and its CPU per
# announce (used_cpu_user + used_cpu_sys). The table gives medians over
# the rounds.
#
# Usage:
#   scripts/bench-redis.sh [flags]      (scripts/bench-redis.sh -h for them)
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/bench-redis.sh [flags]

Measures the standalone server with -store redis:// on a local Redis, UDP
announces, for each swarm size: peers accepted per second while filling,
announces per second with 64 requests in flight and their p50/p99, p50/p99
at half that rate, and per announce Redis's commands and CPU; Redis's
memory per peer after the fill. Medians over the rounds.

  -rounds N          rounds per swarm size (default 3)
  -duration S        measured seconds per run (default 10)
  -warmup S          warm-up seconds per run (default 2)
  -peers N           peers per run (default 100000)
  -sizes LIST        peers per swarm, comma-separated (default 10,10000)
  -redis-cpu N       core for redis-server (default 1)
  -server-cpu N      core for the tracker (default 0)
  -loadgen-cpu N     core for the load generator (default 1, with Redis)
  -memory            measure the memory store the same way instead, for
                     comparison (no Redis; its columns stay empty)
  -out DIR           keep every run's results in DIR
  -h                 this help
EOF
}

die() {
	echo "bench-redis: $*" >&2
	exit 2
}

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=3
duration=10
warmup=2
peers=100000
sizes=10,10000
redis_cpu=1
server_cpu=0
loadgen_cpu=1
out=""
memory=false
while [ $# -gt 0 ]; do
	case "$1" in
	-h | -help | --help)
		usage
		exit 0
		;;
	-memory)
		memory=true
		shift
		;;
	-rounds | -duration | -warmup | -peers | -sizes | -redis-cpu | -server-cpu | -loadgen-cpu | -out)
		[ $# -ge 2 ] || die "$1 needs a value"
		case "$1" in
		-rounds) rounds=$2 ;;
		-duration) duration=$2 ;;
		-warmup) warmup=$2 ;;
		-peers) peers=$2 ;;
		-sizes) sizes=$2 ;;
		-redis-cpu) redis_cpu=$2 ;;
		-server-cpu) server_cpu=$2 ;;
		-loadgen-cpu) loadgen_cpu=$2 ;;
		-out) out=$2 ;;
		esac
		shift 2
		;;
	*) die "unknown flag $1 (see -h)" ;;
	esac
done
for n in "$rounds" "$duration" "$warmup" "$peers" "$redis_cpu" "$server_cpu" "$loadgen_cpu" ${sizes//,/ }; do
	[[ "$n" =~ ^[0-9]+$ ]] || die "$n: want a whole number"
done
if ! $memory; then
	command -v redis-server >/dev/null || die "redis-server not found (Debian package redis-server)"
	command -v redis-cli >/dev/null || die "redis-cli not found (Debian package redis-tools)"
fi

work=$(mktemp -d)
results=${out:-$work/results}
mkdir -p "$results"
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building the server and the load generator"
(cd "$root" && CGO_ENABLED=0 go -C examples build -o "$work/annuaire" ./standalone)
(cd "$root" && go build -o "$work/loadgen" ./internal/cmd/loadgen)

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# info SECTION KEY: a field of Redis's INFO.
info() {
	redis-cli -p "$redis_port" info "$1" | tr -d '\r' | awk -F: -v k="$2" '$1 == k { print $2 }'
}

redis_cpu_s() {
	redis-cli -p "$redis_port" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(user|sys):/ { s += $2 } END { printf "%.6f", s }'
}

# script_calls: the commands scripts ran, and the EVALSHA calls.
script_calls() {
	redis-cli -p "$redis_port" info commandstats | tr -d '\r' | awk -F'[:=,]' '
		/^cmdstat_evalsha:/ { e = $3; next }
		/^cmdstat_(eval|info|config\|resetstat|config\|get|ping|hello|client\|setinfo):/ { next }
		/^cmdstat_/ { c += $3 }
		END { print c + 0, e + 0 }'
}

# put FILE KEY VALUE: record a figure for the table.
put() { echo "$2 $3" >>"$1"; }

for size in ${sizes//,/ }; do
	swarms=$(( (peers + size - 1) / size ))
	for round in $(seq "$rounds"); do
		echo "swarms of $size peers, round $round/$rounds"
		figures=$results/size$size-round$round.txt
		: >"$figures"
		put "$figures" load_before "$(cut -d' ' -f1 /proc/loadavg)"
		store=memory
		if ! $memory; then
			redis_port=$(free_port)
			taskset -c "$redis_cpu" redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
				--dir "$work" --logfile "$work/redis.log" &
			redis_pid=$!
			pids+=("$redis_pid")
			for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
			store=redis://127.0.0.1:$redis_port/0
		fi
		port=$(free_port)
		# The load comes from one address: no rate limit.
		taskset -c "$server_cpu" "$work/annuaire" -udp "127.0.0.1:$port" -http "" -log-level warn -rate-limit 0 \
			-store "$store" -conn-id-key 00112233445566778899aabbccddeeff \
			2>"$results/server-size$size-round$round.log" &
		server_pid=$!
		pids+=("$server_pid")
		sleep 1
		lg=(taskset -c "$loadgen_cpu" "$work/loadgen" -udp "127.0.0.1:$port" -swarms "$swarms" -peers "$peers" -json)

		# The fill: Redis's memory per peer, or with the memory store the
		# server's (its resident memory, which the generator reads).
		f=$results/fill-size$size-round$round.json
		if $memory; then
			"${lg[@]}" -duration 1 -warmup 0 -server-pid "$server_pid" >"$f"
			put "$figures" bytes_per_peer "$(grep -o '"bytes_per_peer":[0-9.e+]*' "$f" | cut -d: -f2)"
		else
			mem0=$(info memory used_memory)
			"${lg[@]}" -duration 1 -warmup 0 >"$f"
			mem1=$(info memory used_memory)
			put "$figures" bytes_per_peer "$(awk -v a="$mem0" -v b="$mem1" -v n="$peers" 'BEGIN { printf "%.1f", (b - a) / n }')"
		fi
		put "$figures" prefill_rate "$(grep -o '"prefill_rate":[0-9.e+]*' "$f" | cut -d: -f2)"

		# As fast as replies come. Redis's figures cover the warm-up too:
		# divide by every announce Redis answered.
		if ! $memory; then
			redis-cli -p "$redis_port" config resetstat >/dev/null
			cpu0=$(redis_cpu_s)
		fi
		"${lg[@]}" -prefill=false -warmup "$warmup" -duration "$duration" -server-pid "$server_pid" >"$results/max-size$size-round$round.json"
		if ! $memory; then
			cpu1=$(redis_cpu_s)
			read -r calls evals < <(script_calls)
			put "$figures" redis_cores "$(awk -v a="$cpu0" -v b="$cpu1" -v d="$((duration + warmup))" 'BEGIN { printf "%.2f", (b - a) / d }')"
			put "$figures" redis_us "$(awk -v a="$cpu0" -v b="$cpu1" -v n="$evals" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')"
			put "$figures" cmds "$(awk -v c="$calls" -v n="$evals" 'BEGIN { printf "%.2f", c / n }')"
		fi
		f=$results/max-size$size-round$round.json
		rate=$(grep -o '"rate":[0-9.e+]*' "$f" | cut -d: -f2)
		put "$figures" rate "$rate"
		put "$figures" p50 "$(grep -o '"p50_ms":[0-9.e+]*' "$f" | cut -d: -f2)"
		put "$figures" p99 "$(grep -o '"p99_ms":[0-9.e+]*' "$f" | cut -d: -f2)"
		put "$figures" server_cpu "$(grep -o '"server_cpu":[0-9.e+]*' "$f" | cut -d: -f2)"
		put "$figures" failed "$(grep -o '"\(failures\|timeouts\|errors\)":[0-9]*' "$f" | cut -d: -f2 | awk '{ s += $1 } END { print s + 0 }')"

		# At half that rate.
		half=$(awk -v r="$rate" 'BEGIN { printf "%d", r / 2 }')
		"${lg[@]}" -prefill=false -warmup "$warmup" -duration "$duration" -rate "$half" -inflight 256 >"$results/half-size$size-round$round.json"
		f=$results/half-size$size-round$round.json
		put "$figures" half_rate "$(grep -o '"rate":[0-9.e+]*' "$f" | cut -d: -f2)"
		put "$figures" half_p50 "$(grep -o '"p50_ms":[0-9.e+]*' "$f" | cut -d: -f2)"
		put "$figures" half_p99 "$(grep -o '"p99_ms":[0-9.e+]*' "$f" | cut -d: -f2)"

		put "$figures" load_after "$(cut -d' ' -f1 /proc/loadavg)"
		kill -TERM "$server_pid"
		wait "$server_pid" || true
		if ! $memory; then
			kill -TERM "$redis_pid"
			wait "$redis_pid" || true
		fi
	done
done

# median SIZE KEY: the median over the rounds.
median() {
	for f in "$results/size$1-round"*.txt; do
		awk -v k="$2" '$1 == k { print $2 }' "$f"
	done | sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
if $memory; then
	echo "The memory store. Medians over $rounds round(s): UDP announces, numwant 50, $peers peers; $duration s" \
		"measured after $warmup s of warm-up; server on CPU $server_cpu, load generator on CPU $loadgen_cpu."
else
	echo "Medians over $rounds round(s): UDP announces, numwant 50, $peers peers; $duration s measured after" \
		"$warmup s of warm-up; redis-server on CPU $redis_cpu, server on CPU $server_cpu, load generator on CPU $loadgen_cpu."
fi
printf '\n%-8s %9s %9s %7s %7s %8s %9s %8s %8s %9s %10s %10s %9s\n' \
	"peers/sw" "fill/s" "ann/s" "p50 ms" "p99 ms" "srv CPU" "half/s" "p50 ms" "p99 ms" "failed" "redis CPU" "µs/ann" "cmds/ann"
for size in ${sizes//,/ }; do
	printf '%-8s %9.0f %9.0f %7.2f %7.2f %7.0f%% %9.0f %8.2f %8.2f %9.0f %9.0f%% %10.1f %9.2f\n' "$size" \
		"$(median "$size" prefill_rate)" "$(median "$size" rate)" "$(median "$size" p50)" "$(median "$size" p99)" \
		"$(awk -v c="$(median "$size" server_cpu)" 'BEGIN { print c * 100 }')" \
		"$(median "$size" half_rate)" "$(median "$size" half_p50)" "$(median "$size" half_p99)" \
		"$(median "$size" failed)" "$(awk -v c="$(median "$size" redis_cores)" 'BEGIN { print c * 100 }')" \
		"$(median "$size" redis_us)" "$(median "$size" cmds)"
done
what="Redis B/peer"
$memory && what="RSS B/peer"
printf '\n%-8s %14s %14s\n' "peers/sw" "$what" "load average"
for size in ${sizes//,/ }; do
	printf '%-8s %14.1f %6.2f to %.2f\n' "$size" "$(median "$size" bytes_per_peer)" \
		"$(median "$size" load_before)" "$(median "$size" load_after)"
done
echo
echo "cmds/ann: the commands a script runs per announce, besides its EVALSHA; Redis's CPU covers its"
echo "network work too. One round trip per announce. The load average (1 min, medians at the start and"
echo "the end of a round) tells how busy the machine was with other work: the figures count only"
echo "when it stays well below the number of cores."
[ -z "$out" ] || echo "results: $results"
