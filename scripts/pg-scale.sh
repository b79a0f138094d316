#!/usr/bin/env bash
# Runs the standalone server as a private tracker over PostgreSQL at a
# site's scale and measures it: a throwaway PostgreSQL cluster (initdb and
# pg_ctl of the Debian package, a free loopback port, no system service),
# the users and torrents of the load imported with -passkeys and
# -torrents, every peer announced once (the prefill), then announces at
# -rate for -duration. It prints the load generator's result, and every
# 10 seconds the server's RSS, PostgreSQL's (all its processes), the
# accounting backlog and the records applied per second, read from
# /metrics.
#
# Usage:
#   scripts/pg-scale.sh [flags]
#
# Run scripts/pg-scale.sh -h for the flags.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/pg-scale.sh [flags]

  -users N      users, one peer each (default 2000000)
  -torrents N   torrents (default 700000)
  -rate N       announces per second after the prefill (default 20000)
  -duration S   seconds of the measured run (default 180)
  -inflight N   UDP requests in flight (default 512: a started waits for
                its batch to be durable, so the prefill's rate is about
                this over the commit time)
  -outage S     stop PostgreSQL for S seconds in the middle of the
                measured run, after the prefill (pg_ctl stop -m fast, then
                start; default 0: none)
  -server-flags S  more flags for the server
  -h            this help
EOF
}

die() {
	echo "pg-scale: $*" >&2
	exit 2
}

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench-lib.sh
. "$root/scripts/bench-lib.sh"

users=2000000 torrents=700000 rate=20000 duration=180 outage=0 inflight=512 server_flags=""
parse_flags "users torrents rate duration outage inflight server-flags" "$@"

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$pgbin" ] || die "PostgreSQL is not installed (Debian package postgresql)"

make_work pg-scale "$root"
echo "building the server"
(cd "$root/examples" && CGO_ENABLED=0 go build -o "$work/annuaire" ./standalone)

# initdb refuses to run as root: the cluster then belongs to postgres.
as=()
if [ "$(id -u)" -eq 0 ]; then
	as=(runuser -u postgres --)
	chown postgres "$work"
	chmod 755 "$work"
fi
pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pg_stop() { "${as[@]}" "$pgbin/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null 2>&1 || true; }
trap 'pg_stop; cleanup' EXIT
"${as[@]}" "$pgbin/initdb" -D "$work/pg" -U annuaire -A trust >/dev/null
pg_start() {
	"${as[@]}" "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -t 120 start -o \
		"-c listen_addresses=127.0.0.1 -c port=$pgport -c unix_socket_directories=$work -c shared_buffers=1GB -c max_wal_size=8GB -c checkpoint_timeout=15min -c wal_buffers=64MB" >/dev/null
}
pg_start
dsn="postgres://annuaire@127.0.0.1:$pgport/postgres?sslmode=disable"

echo "writing $users users and $torrents torrents"
"$work/loadgen" -passkeys -peers "$users" -swarms "$torrents" -write-users "$work/users.txt" -write-hashes "$work/hashes.txt"

port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "starting the server: import of the users and torrents"
start=$(date +%s)
# shellcheck disable=SC2086
setsid "$work/annuaire" -db "$dsn" -spool "$work/spool" -passkeys "$work/users.txt" -torrents "$work/hashes.txt" \
	-udp "127.0.0.1:$port" -http "" -metrics "127.0.0.1:$mport" -admin "" -rate-limit 0 -log-level warn $server_flags \
	2>"$work/server.log" &
server=$!
pids+=("$server")
until curl -fs "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1; do
	kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; die "the server exited"; }
	sleep 1
done
echo "server ready after $(($(date +%s) - start)) s"

metric() { curl -fs "http://127.0.0.1:$mport/metrics" | awk -v m="$1" '$1 == m { printf "%d\n", $2 }'; }
rss() { awk '/^VmRSS/ { print int($2 / 1024) }' "/proc/$1/status" 2>/dev/null || echo 0; }
# pgrss prints PostgreSQL's memory: the private memory of all its
# processes, plus the shared memory (buffers) and mapped files the
# largest of them touched, counted once.
pgrss() {
	local pm ps
	pm=$(head -1 "$work/pg/postmaster.pid" 2>/dev/null) || { echo 0; return; }
	ps="$pm $(pgrep -P "$pm" | tr '\n' ' ')"
	for p in $ps; do cat "/proc/$p/status" 2>/dev/null; echo; done | awk '
		/^RssAnon/ { anon += $2 } /^RssFile/ { f = $2 } /^RssShmem/ { sh = $2 }
		/^$/ { if (f + sh > shared) shared = f + sh; f = sh = 0 }
		END { print int((anon + shared) / 1024) }'
}
watch_run() {
	local last_applied last_t now applied
	last_applied=$(metric annuaire_accounting_applied_records_total)
	last_t=$(date +%s)
	while sleep 10; do
		now=$(date +%s)
		applied=$(metric annuaire_accounting_applied_records_total || echo "$last_applied")
		printf '%s  server RSS %s MiB  postgres RSS %s MiB  backlog %s  spooled %s  applied %s/s  load %s\n' \
			"$(date -u +%T)" "$(rss "$server")" "$(pgrss)" "$(metric annuaire_accounting_backlog_records)" \
			"$(metric annuaire_accounting_spooled_records)" "$(( (applied - last_applied) / (now - last_t) ))" \
			"$(cut -d' ' -f1-3 /proc/loadavg)"
		last_applied=$applied last_t=$now
	done
}
watch_run &
watcher=$!

if [ "$outage" -gt 0 ]; then
	(
		# The outage falls in the middle of the measured run: after the
		# prefill's records are applied.
		until [ "$(metric annuaire_accounting_applied_records_total || echo 0)" -ge "$users" ]; do
			kill -0 "$server" 2>/dev/null || exit 0
			sleep 1
		done
		sleep $(((duration - outage) / 2 + 5))
		echo "$(date -u +%T)  stopping PostgreSQL for $outage s"
		pg_stop
		sleep "$outage"
		pg_start
		echo "$(date -u +%T)  PostgreSQL started again"
	) &
fi
"$work/loadgen" -udp "127.0.0.1:$port" -passkeys -peers "$users" -swarms "$torrents" -rate "$rate" -inflight "$inflight" \
	-duration "$duration" -warmup 5 -server-pid "$server"
sleep 15 # the backlog drains
kill "$watcher" 2>/dev/null || true
echo "final: server RSS $(rss "$server") MiB, postgres RSS $(pgrss) MiB, backlog $(metric annuaire_accounting_backlog_records), applied $(metric annuaire_accounting_applied_records_total), flush errors $(metric annuaire_accounting_flush_errors_total)"
kill -TERM "$server"
wait "$server" || true
