#!/usr/bin/env bash
# Compares annuaire with opentracker side by side, the way
# docs/benchmarking.md describes: for each round, each contender in turn (A B A B ...) is started
# fresh with the server pinned to one core and the load generator to
# another, prefilled, warmed up and measured in every mode; the table
# gives the medians over the rounds and the ratio annuaire/opentracker.
#
# Usage:
#   scripts/bench-compare.sh -annuaire-cmd 'annuaire-server -udp {udp} -http {http}' [flags]
#
# Run scripts/bench-compare.sh -h for the flags.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/bench-compare.sh -annuaire-cmd CMD [flags]

Compares annuaire with opentracker in five modes: UDP announce (known peers
re-announcing), UDP scrape, HTTP announce over keep-alive connections, HTTP
announce with a new connection per request, and UDP churn (every announce a
new peer in a random swarm: almost every announce is a join, and swarms
grow; it runs last in each round, since it changes them); and, on request,
HTTPS announces with a new connection per request, with full handshakes
(https-close) or resumed sessions (https-resume). opentracker has no TLS:
in those two modes it is measured over plain HTTP, a new connection per
request, which is what a TLS tracker is up against. Each round starts every
contender fresh, pinned to one core, prefills it, warms it up and measures
it, the load generator pinned to another core; the table gives medians over
the rounds.

  -annuaire-cmd CMD   the command that starts the annuaire server in the
                      foreground; {udp} and {http} are replaced by the
                      host:port to listen on for UDP and HTTP (the same
                      port: TCP and UDP are separate); for the https
                      modes, {https}, {tls-cert} and {tls-key} by another
                      host:port and the files of a P-256 certificate the
                      script makes. It must be a single
                      command (the server's pid is measured), e.g. a built
                      binary or a wrapper that ends with exec. The load
                      comes from one address: give the standalone server
                      -rate-limit 0, or it refuses nearly all of it, and
                      -max-peers-per-addr 0 -max-peers-per-swarm-addr 0,
                      or it keeps only 50,000 of the peers announced.
  -opentracker BIN    opentracker binary (default /usr/bin/opentracker)
  -rounds N           rounds (default 6)
  -duration S         measured seconds per mode (default 10)
  -warmup S           warm-up seconds per mode (default 2)
  -swarms N           swarms (default 10000)
  -peers N            peers the load announces as (default 100000)
  -prefill-peers N    peers announced into each fresh server (default 500000)
  -settle S           seconds between the prefill and reading the server's
                      memory (default 2)
  -modes LIST         comma-separated, from udp-announce, udp-scrape,
                      http-keepalive, http-close, udp-churn, https-close,
                      https-resume (default: the first four)
  -server-cpu LIST    core for the servers (default 0), or a list of them
                      as taskset -c takes it (0,1 or 0-3); the CPU
                      figures are then of one core, so they can pass 100%
  -loadgen-cpu LIST   core for the load generator (default 1), or a list
  -out DIR            keep every run's JSON result in DIR
  -h                  this help

  -serve-opentracker ADDR
                      start opentracker on ADDR with the generator's
                      whitelist, in the foreground: for -annuaire-cmd when
                      checking the script with opentracker against itself:
                      -annuaire-cmd 'scripts/bench-compare.sh -serve-opentracker {udp}'
EOF
}

die() {
	echo "bench-compare: $*" >&2
	exit 2
}

root=$(cd "$(dirname "$0")/.." && pwd)
self="$root/scripts/$(basename "$0")"
# shellcheck source=scripts/bench-lib.sh
. "$root/scripts/bench-lib.sh"

annuaire_cmd=""
opentracker=/usr/bin/opentracker
rounds=6
duration=10
warmup=2
swarms=10000
peers=100000
prefill_peers=500000
settle=2
modes="udp-announce,udp-scrape,http-keepalive,http-close"
server_cpu=0
loadgen_cpu=1
out=""
serve_opentracker=""

parse_flags "annuaire-cmd opentracker rounds duration warmup swarms peers prefill-peers settle modes server-cpu loadgen-cpu out serve-opentracker" "$@"

# -serve-opentracker: a foreground opentracker for the given address, with
# its root directory (and the whitelist) in the comparison's work folder.
if [ -n "$serve_opentracker" ]; then
	[ -n "${BENCH_WORK:-}" ] || die "-serve-opentracker runs under bench-compare.sh, which sets BENCH_WORK"
	dir=$(mktemp -d "$BENCH_WORK/opentracker.XXXXXX")
	chmod 755 "$dir"
	cp "$BENCH_WORK/whitelist.txt" "$dir/whitelist.txt"
	chmod 644 "$dir/whitelist.txt"
	cat >"$dir/opentracker.conf" <<EOF
listen.tcp_udp $serve_opentracker
access.whitelist /whitelist.txt
tracker.rootdir $dir
tracker.user nobody
EOF
	exec "$opentracker" -f "$dir/opentracker.conf"
fi

[ -n "$annuaire_cmd" ] || die "give the annuaire server's command with -annuaire-cmd (see -h)"
case "$annuaire_cmd" in
*'{udp}'* | *'{http}'*) ;;
*) die "-annuaire-cmd has neither {udp} nor {http}: it must listen where it is told" ;;
esac
[ -x "$opentracker" ] || die "$opentracker not found (apt-get install opentracker)"
[ "$(id -u)" -eq 0 ] || die "opentracker must start as root, to chroot into the folder of its whitelist"
for n in "$rounds" "$duration" "$warmup" "$swarms" "$peers" "$prefill_peers" "$settle"; do
	[[ "$n" =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
for n in "$server_cpu" "$loadgen_cpu"; do
	[[ "$n" =~ ^[0-9]+([,-][0-9]+)*$ ]] || die "not a CPU list (taskset -c): $n"
done
[ "$rounds" -ge 1 ] || die "-rounds must be at least 1"
https=false
IFS=, read -r -a mode_list <<<"$modes"
for m in "${mode_list[@]}"; do
	case "$m" in
	udp-announce | udp-scrape | http-keepalive | http-close | udp-churn) ;;
	https-close | https-resume) https=true ;;
	*) die "unknown mode $m" ;;
	esac
done
# Churn grows the swarms: it runs after the modes that measure them as
# prefilled.
ordered=()
for m in "${mode_list[@]}"; do [ "$m" = udp-churn ] || ordered+=("$m"); done
for m in "${mode_list[@]}"; do [ "$m" != udp-churn ] || ordered+=("$m"); done
mode_list=("${ordered[@]}")
for tool in taskset setsid go; do
	command -v "$tool" >/dev/null || die "$tool not found"
done

make_work bench-compare "$root"
chmod 755 "$work"
export BENCH_WORK=$work
results=${out:-$work/results}
mkdir -p "$results"
loadgen=$work/loadgen
"$loadgen" -write-hashes "$work/whitelist.txt" -swarms "$swarms"
if $https; then
	case "$annuaire_cmd" in
	*'{https}'*) ;;
	*) die "the https modes need {https}, {tls-cert} and {tls-key} in -annuaire-cmd" ;;
	esac
	command -v openssl >/dev/null || die "openssl not found: it makes the certificate of the https modes"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
		-addext subjectAltName=IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null ||
		die "openssl could not make a certificate"
fi

contender_cmd() {
	local addr=127.0.0.1:$port
	case "$1" in
	opentracker) echo "$self -opentracker $opentracker -serve-opentracker $addr" ;;
	annuaire)
		local cmd=${annuaire_cmd//\{udp\}/$addr}
		cmd=${cmd//\{https\}/127.0.0.1:$tls_port}
		cmd=${cmd//\{tls-cert\}/$work/cert.pem}
		cmd=${cmd//\{tls-key\}/$work/key.pem}
		echo "${cmd//\{http\}/$addr}"
		;;
	esac
}

# mode_flags WHO MODE: the load generator's flags for one mode.
mode_flags() {
	local addr=127.0.0.1:$port
	case "$1:$2" in
	*:udp-announce) echo "-udp $addr" ;;
	*:udp-scrape) echo "-udp $addr -mode scrape" ;;
	*:http-keepalive) echo "-http http://$addr/announce" ;;
	*:http-close | opentracker:https-*) echo "-http http://$addr/announce -http-close" ;;
	*:https-close) echo "-http https://127.0.0.1:$tls_port/announce -http-close" ;;
	*:https-resume) echo "-http https://127.0.0.1:$tls_port/announce -http-close -tls-resume" ;;
	*:udp-churn) echo "-udp $addr -churn" ;;
	esac
}

status=0
contenders=(opentracker annuaire)
for round in $(seq "$rounds"); do
	for who in "${contenders[@]}"; do
		port=$(free_port)
		tls_port=$(free_port)
		start_server "$(contender_cmd "$who")" "$work/$who-$round.log" "$port"
		# opentracker reads its whitelist once it listens, and refuses
		# every torrent until then.
		[ "$who" != opentracker ] || "$loadgen" -wait-whitelist "127.0.0.1:$port" -swarms "$swarms" || exit 2
		prefill=true
		for mode in "${mode_list[@]}"; do
			file=$results/$who-$mode-$round.json
			echo "round $round/$rounds: $who, $mode"
			# In the background, so that a signal to this script is handled
			# at once: wait returns when a trap is due.
			# shellcheck disable=SC2046 # the flags are words
			taskset -c "$loadgen_cpu" "$loadgen" $(mode_flags "$who" "$mode") -json \
				-swarms "$swarms" -peers "$peers" -prefill-peers "$prefill_peers" -prefill="$prefill" \
				-duration "$duration" -warmup "$warmup" -server-pid "$server_pid" -rss-settle "$settle" >"$file" &
			loadgen_pid=$!
			if ! wait "$loadgen_pid"; then
				echo "bench-compare: $who, $mode, round $round: the load generator failed (see above)" >&2
				status=1
			fi
			loadgen_pid=""
			prefill=false
		done
		stop_server
	done
done

# median WHO MODE KEY [SCALE]: the median over the rounds.
median() {
	median_of "$3" "${4:-1}" "$results/$1-$2-"*.json
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b == 0) print "-"; else printf "%.2fx", a / b }'
}

echo
echo "Medians over $rounds round(s): $duration s measured after $warmup s of warm-up;" \
	"$peers peers over $swarms swarms, $prefill_peers prefilled;" \
	"server on CPU $server_cpu, load generator on CPU $loadgen_cpu."
printf '\n%-15s %-12s %10s %8s %12s %8s %8s %10s\n' mode contender "req/s" "srv CPU" "req/s/CPU" "p50 ms" "p99 ms" malformed
for mode in "${mode_list[@]}"; do
	for who in "${contenders[@]}"; do
		printf '%-15s %-12s %10.0f %7.0f%% %12.0f %8.2f %8.2f %10.0f\n' "$mode" "$who" \
			"$(median "$who" "$mode" rate)" "$(median "$who" "$mode" server_cpu 100)" \
			"$(median "$who" "$mode" rate_per_server_cpu)" "$(median "$who" "$mode" p50_ms)" \
			"$(median "$who" "$mode" p99_ms)" "$(median "$who" "$mode" malformed)"
	done
	printf '%-15s %-12s %10s %8s %12s\n' "" "ratio" \
		"$(ratio "$(median annuaire "$mode" rate)" "$(median opentracker "$mode" rate)")" "" \
		"$(ratio "$(median annuaire "$mode" rate_per_server_cpu)" "$(median opentracker "$mode" rate_per_server_cpu)")"
done

# The server CPU one request costs, in µs, from the medians.
cpu_us() {
	awk -v r="$1" 'BEGIN { if (r == "nan" || r == 0) print "nan"; else printf "%.1f", 1e6 / r }'
}
if [ "${#mode_list[@]}" -gt 1 ] && [[ " ${mode_list[*]} " == *" https-"* ]]; then
	echo
	echo "opentracker has no TLS: it served the https modes over plain HTTP."
	if [[ " ${mode_list[*]} " == *" http-close "* ]]; then
		plain=$(cpu_us "$(median annuaire http-close rate_per_server_cpu)")
		for mode in https-close https-resume; do
			[[ " ${mode_list[*]} " == *" $mode "* ]] || continue
			tls=$(cpu_us "$(median annuaire "$mode" rate_per_server_cpu)")
			awk -v m="$mode" -v p="$plain" -v t="$tls" 'BEGIN {
				printf "annuaire server CPU per request: http-close %s µs, %s %s µs: %.1f µs per handshake\n", p, m, t, t - p }'
		done
	fi
fi

first=${mode_list[0]}
printf '\n%-12s %14s %14s   (prefill of %s peers, %s)\n' contender "peers/s" "RSS B/peer" "$prefill_peers" "$first"
for who in "${contenders[@]}"; do
	printf '%-12s %14.0f %14.1f\n' "$who" "$(median "$who" "$first" prefill_rate)" "$(median "$who" "$first" bytes_per_peer)"
done
printf '%-12s %14s %14s\n' "ratio" \
	"$(ratio "$(median annuaire "$first" prefill_rate)" "$(median opentracker "$first" prefill_rate)")" \
	"$(ratio "$(median annuaire "$first" bytes_per_peer)" "$(median opentracker "$first" bytes_per_peer)")"
echo
echo "ratio = annuaire / opentracker. Near 90-100k UDP or 30k HTTP keep-alive requests/s the load"
echo "generator's core is the limit: compare req/s per server CPU there (docs/benchmarking.md)."
[ -z "$out" ] || echo "results: $results"
exit $status
