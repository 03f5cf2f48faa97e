#!/usr/bin/env bash
# Wall time and peak RSS of `customs scan --input IMAGE.tar` (and, when
# available, `syft scan docker-archive:IMAGE.tar -o json`), RUNS times each,
# plus the number of packages each reports.
#
#   scripts/bench/scan-input.sh [IMAGE.tar]
#
# IMAGE.tar defaults to $BENCH_CACHE/debian-12.tar, built by debian-image.sh
# when missing.
#
# Environment:
#   RUNS=3            runs per tool
#   CUSTOMS=path      customs binary to measure (default: built from this tree)
#   KEEP=DIR          keep the last run's reports as DIR/customs.json and
#                     DIR/syft.json (for compare-packages.sh)
#   SYFT=path         syft binary (default: syft on PATH, else $BENCH_CACHE/bin/syft)
#   INSTALL_PEERS=1   go install syft v1.57.1 into $BENCH_CACHE/bin when missing
#                     (a long compile: ~10+ minutes on 2 cores)
#   BENCH_CACHE       default ~/.cache/customs-bench
set -euo pipefail

# shellcheck source=scripts/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_root
RUNS=${RUNS:-3}
SYFT_VERSION=v1.57.1

bench_image "$@"
bench_need_time

tmp=$(mktemp -d "${TMPDIR:-/tmp}/customs-scan-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

bench_abs KEEP
bench_customs "$tmp"

SYFT=${SYFT:-}
if [[ -z $SYFT ]]; then
	if command -v syft >/dev/null; then
		SYFT=$(command -v syft)
	elif [[ -x $BENCH_CACHE/bin/syft ]]; then
		SYFT=$BENCH_CACHE/bin/syft
	elif [[ ${INSTALL_PEERS:-0} == 1 ]]; then
		echo "installing syft $SYFT_VERSION (slow)..." >&2
		mkdir -p "$BENCH_CACHE/bin"
		GOBIN="$BENCH_CACHE/bin" go install "github.com/anchore/syft/cmd/syft@$SYFT_VERSION"
		SYFT=$BENCH_CACHE/bin/syft
	fi
fi
# No update check or other network access from syft.
export SYFT_CHECK_FOR_APP_UPDATE=false

# count_packages JSONFILE KEY: length of the top-level array KEY (customs:
# packages, syft: artifacts).
count_packages() {
	if command -v jq >/dev/null; then
		jq ".$2 | length" "$1"
	elif command -v python3 >/dev/null; then
		python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))[sys.argv[2]] or []))' "$1" "$2"
	else
		grep -o '"purl": *"' "$1" | wc -l # every package has a purl in both formats
	fi
}

# measure LABEL OUTFILE CMD...: RUNS runs under /usr/bin/time -v; stdout of
# the last run kept in OUTFILE (for the package count).
declare -a summary
measure() {
	local label=$1 out=$2
	shift 2
	local walls=() rsss=()
	for ((i = 1; i <= RUNS; i++)); do
		bench_timed "$label" "$i" "$out" "$@"
		printf '%-8s run %d  wall %6.2f s  cpu %6.2f s  peak RSS %7.1f MiB\n' \
			"$label" "$i" "$WALL" "$CPU" "$(bench_mib "$RSS")"
		walls+=("$WALL")
		rsss+=("$RSS")
	done
	local med maxrss
	med=$(printf '%s\n' "${walls[@]}" | bench_median)
	maxrss=$(printf '%s\n' "${rsss[@]}" | sort -n | tail -n 1)
	summary+=("$(printf '%-8s median wall %6.2f s  max peak RSS %7.1f MiB' "$label" "$med" "$(bench_mib "$maxrss")")")
}

size=$(bench_mb "$(stat -c %s "$IMAGE")")
echo "image: $IMAGE ($size MiB)"
echo "load:  $(uptime)"
echo "cpus:  $(nproc)"
echo

measure customs "$tmp/customs.json" "$CUSTOMS" scan --input "$IMAGE"
summary[-1]+="  packages $(count_packages "$tmp/customs.json" packages)"

if [[ -n $SYFT ]]; then
	# `go install`ed syft reports no version; its build info has it.
	syft_version=$(go version -m "$SYFT" 2>/dev/null | awk '$1 == "mod" { print $3 }')
	[[ -n $syft_version ]] || syft_version=$("$SYFT" version 2>/dev/null | sed -n 's/^Version: *//p')
	measure syft "$tmp/syft.json" "$SYFT" scan -q "docker-archive:$IMAGE" -o json
	summary[-1]+="  packages $(count_packages "$tmp/syft.json" artifacts)  (syft $syft_version)"
else
	echo "(syft not found: SYFT=path, put it on PATH, or INSTALL_PEERS=1)"
fi

if [[ -n ${KEEP:-} ]]; then
	mkdir -p "$KEEP"
	cp "$tmp/customs.json" "$KEEP/customs.json"
	[[ -f $tmp/syft.json ]] && cp "$tmp/syft.json" "$KEEP/syft.json"
	echo "reports kept in $KEEP"
fi

echo
printf '%s\n' "${summary[@]}"
echo "load after: $(uptime)"
