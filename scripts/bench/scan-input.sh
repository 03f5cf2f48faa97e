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

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO_ROOT=$PWD
BENCH_CACHE=${BENCH_CACHE:-$HOME/.cache/customs-bench}
RUNS=${RUNS:-3}
SYFT_VERSION=v1.57.1

IMAGE=${1:-$BENCH_CACHE/debian-12.tar}
[[ $IMAGE = /* ]] || IMAGE="$OLDPWD/$IMAGE"
if [[ ! -s $IMAGE ]]; then
	if [[ $# -eq 0 ]]; then
		"$REPO_ROOT/scripts/bench/debian-image.sh" "$IMAGE"
	else
		echo "$IMAGE: no such file" >&2
		exit 1
	fi
fi

if [[ ! -x /usr/bin/time ]]; then
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q time
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/customs-scan-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

CUSTOMS=${CUSTOMS:-}
[[ -z $CUSTOMS || $CUSTOMS = /* ]] || CUSTOMS="$OLDPWD/$CUSTOMS"
[[ -z ${KEEP:-} || $KEEP = /* ]] || KEEP="$OLDPWD/$KEEP"
if [[ -z $CUSTOMS ]]; then
	echo "building customs..." >&2
	go build -o "$tmp/customs" ./services/customs/cmd/customs
	CUSTOMS=$tmp/customs
fi

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

# seconds "h:mm:ss" | "m:ss.cc" → seconds
to_seconds() { awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }' <<<"$1"; }

# measure LABEL OUTFILE CMD...: RUNS runs under /usr/bin/time -v; stdout of
# the last run kept in OUTFILE (for the package count).
declare -a summary
measure() {
	local label=$1 out=$2
	shift 2
	local walls=() rsss=()
	for ((i = 1; i <= RUNS; i++)); do
		if ! /usr/bin/time -v -o "$tmp/time" "$@" >"$out" 2>"$tmp/stderr"; then
			echo "$label run $i failed:" >&2
			tail -n 20 "$tmp/stderr" "$tmp/time" >&2
			return 1
		fi
		local wall rss cpu
		wall=$(to_seconds "$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$tmp/time")")
		rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tmp/time")
		cpu=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$tmp/time")
		printf '%-8s run %d  wall %6.2f s  cpu %6.2f s  peak RSS %7.1f MiB\n' \
			"$label" "$i" "$wall" "$cpu" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')"
		walls+=("$wall")
		rsss+=("$rss")
	done
	local med maxrss
	med=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	maxrss=$(printf '%s\n' "${rsss[@]}" | sort -n | tail -n 1)
	summary+=("$(printf '%-8s median wall %6.2f s  max peak RSS %7.1f MiB' "$label" "$med" "$(awk -v k="$maxrss" 'BEGIN { print k / 1024 }')")")
}

size=$(awk -v b="$(stat -c %s "$IMAGE")" 'BEGIN { printf "%.1f", b / 1048576 }')
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
