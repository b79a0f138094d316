# shellcheck shell=bash
# Functions the benchmark scripts share; sourced, not run. The caller sets
# server_cpu, the core servers are pinned to.

# parse_flags "NAME..." ARG...: sets, for each -NAME VALUE among the
# arguments, the variable NAME with dashes as underscores (-flood-rate
# sets flood_rate); -h calls the caller's usage and exits, anything else
# is refused through the caller's die.
parse_flags() {
	local names=" $1 " name
	shift
	while [ $# -gt 0 ]; do
		case "$1" in
		-h | -help | --help)
			usage
			exit 0
			;;
		esac
		name=${1#-}
		[[ "$1" == -* && "$names" == *" $name "* ]] || die "unknown argument $1 (see -h)"
		[ $# -ge 2 ] || die "$1 needs a value"
		printf -v "${name//-/_}" '%s' "$2"
		shift 2
	done
}

pids=()         # the servers' process groups, killed on exit
loadgen_pid=""  # the load generator running, killed on exit

# make_work NAME ROOT: makes the work folder $work, removed on exit with
# every process started, and builds the load generator into it
# ($work/loadgen) from the checkout at ROOT.
make_work() {
	work=$(mktemp -d "/tmp/$1.XXXXXX")
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	echo "building the load generator"
	(cd "$2" && go build -o "$work/loadgen" ./internal/cmd/loadgen)
}

cleanup() {
	local pid
	[ -z "$loadgen_pid" ] || kill -KILL "$loadgen_pid" 2>/dev/null || true
	for pid in "${pids[@]}"; do
		kill -KILL -- "-$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$work"
}

# free_port prints a loopback port that no socket uses, TCP or UDP.
free_port() {
	local port
	for _ in $(seq 50); do
		port=$((20000 + RANDOM % 20000))
		if command -v ss >/dev/null; then
			[ -z "$(ss -Htuan "( sport = :$port )" 2>/dev/null)" ] && echo "$port" && return
		elif ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port" && return
		fi
	done
	echo "no free port" >&2
	exit 2
}

# start_server CMD LOG PORT: starts CMD in its own process group, pinned to
# core $server_cpu, sets server_pid, and waits until it accepts TCP
# connections on PORT.
server_pid=""
start_server() {
	local cmd=$1 log=$2 port=$3
	# shellcheck disable=SC2154 # server_cpu is the caller's
	setsid taskset -c "$server_cpu" bash -c "exec $cmd" >"$log" 2>&1 </dev/null &
	server_pid=$!
	pids+=("$server_pid")
	for _ in $(seq 200); do
		if ! kill -0 "$server_pid" 2>/dev/null; then
			echo "the server exited: $cmd" >&2
			tail -n 20 "$log" >&2
			exit 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			sleep 0.2 # let it open its UDP socket too
			return
		fi
		sleep 0.05
	done
	echo "the server did not listen on 127.0.0.1:$port within 10 s: $cmd" >&2
	exit 2
}

stop_server() {
	kill -KILL -- "-$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
}

# field FILE KEY: a number from a flat JSON result.
field() {
	grep -o "\"$2\":[-0-9.eE+]*" "$1" 2>/dev/null | head -n1 | cut -d: -f2
}

# median_of KEY SCALE FILE...: the median of KEY over the files, times
# SCALE; nan when no file has it.
median_of() {
	local key=$1 scale=$2 f v
	shift 2
	for f in "$@"; do
		v=$(field "$f" "$key")
		[ -n "$v" ] && echo "$v"
	done | sort -g | awk -v s="$scale" '{ v[NR] = $1 }
		END {
			if (NR == 0) { print "nan"; exit }
			m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			print m * s
		}'
}

# fmt3 FORMAT V...: the values in FORMAT, joined by slashes.
fmt3() {
	local format=$1
	shift
	awk -v f="$format" 'BEGIN {
		for (i = 1; i < ARGC; i++) {
			if (i > 1) printf "/"
			if (ARGV[i] == "nan") printf "-"; else printf f, ARGV[i]
		}
		print ""
	}' "$@"
}

# pct PART WHOLE: PART as a whole percentage of WHOLE.
pct() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b == 0) print "-"; else printf "%.0f%%", 100 * a / b }'
}
