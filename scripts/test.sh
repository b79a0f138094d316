#!/usr/bin/env bash
# Runs every check of the project: formatting, vet (for Linux, macOS and
# Windows), and the tests of every module with the race detector, then the
# allocation tests without it (the race detector makes sync.Pool drop
# items, so they skip under it). On a fresh Debian machine it first
# installs what the tests need (it uses sudo when not run as root).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in $(cat scripts/debian-packages.txt); do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "installing: ${need[*]}"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

modules=$(git ls-files '*go.mod' | xargs -n1 dirname)
status=0
for m in $modules; do
	echo "== $m"
	(
		cd "$m"
		unformatted=$(gofmt -l .)
		if [ -n "$unformatted" ]; then
			echo "gofmt would change: $unformatted"
			exit 1
		fi
		if ! go mod tidy -diff >/dev/null; then
			echo "go.mod or go.sum is not tidy: run go mod tidy in $m"
			exit 1
		fi
		# set -e does not hold in a subshell whose status is tested: each
		# step says itself when it fails.
		for goos in linux darwin windows; do
			GOOS=$goos go vet ./... || exit 1
		done
		go test -race -count=1 -timeout 20m ./... || exit 1
		go test -count=1 -timeout 5m -run 'Alloc' ./... || exit 1
	) || status=1
done
exit $status
