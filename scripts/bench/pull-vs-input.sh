#!/usr/bin/env bash
# Is pulling slower than reading a tarball? Pushes IMAGE.tar to a local
# registry (`crane registry serve`, blobs on disk) and runs, alternately,
#
#   customs scan --input IMAGE.tar
#   customs scan --insecure HOST:PORT/bench/img:tag
#
# RUNS times each under /usr/bin/time -v, printing per run the wall time,
# user+system CPU time and peak RSS, then the medians and the ratio of the
# median wall times (pull / input; the goal is ≤ 1.10). Both reports must
# list the same packages and findings (checked with jq when present).
#
#   scripts/bench/pull-vs-input.sh [IMAGE.tar]
#
# IMAGE.tar defaults to $BENCH_CACHE/debian-12.tar, built by debian-image.sh
# when missing.
#
# Environment:
#   RUNS=5            runs per mode
#   CUSTOMS=path      customs binary to measure (default: built from this tree)
#   CRANE=path        crane binary (default: crane on PATH, else
#                     $BENCH_CACHE/bin/crane, go installed when missing)
#   SCAN_ARGS         extra arguments for both scans, e.g. '--scanners secrets'
#   BENCH_CACHE       default ~/.cache/customs-bench
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO_ROOT=$PWD
BENCH_CACHE=${BENCH_CACHE:-$HOME/.cache/customs-bench}
RUNS=${RUNS:-5}
read -r -a scan_args <<<"${SCAN_ARGS:-}"

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

tmp=$(mktemp -d "${TMPDIR:-/tmp}/customs-pull-bench.XXXXXX")
reg_pid=
stop_registry() {
	if [[ -n $reg_pid ]]; then
		kill "$reg_pid" 2>/dev/null || true
		wait "$reg_pid" 2>/dev/null || true
		reg_pid=
	fi
}
trap 'stop_registry; rm -rf "$tmp"' EXIT

CUSTOMS=${CUSTOMS:-}
[[ -z $CUSTOMS || $CUSTOMS = /* ]] || CUSTOMS="$OLDPWD/$CUSTOMS"
if [[ -z $CUSTOMS ]]; then
	echo "building customs..." >&2
	go build -o "$tmp/customs" ./services/customs/cmd/customs
	CUSTOMS=$tmp/customs
fi

CRANE=${CRANE:-}
if [[ -z $CRANE ]]; then
	if command -v crane >/dev/null; then
		CRANE=$(command -v crane)
	else
		CRANE=$BENCH_CACHE/bin/crane
		if [[ ! -x $CRANE ]]; then
			mkdir -p "$BENCH_CACHE/bin"
			GOBIN="$BENCH_CACHE/bin" go install github.com/google/go-containerregistry/cmd/crane@v0.22.1
		fi
	fi
fi

# A free port from the kernel: crane prints the one it chose only in a log
# line, so ask for one and hand it over.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 5055)
addr=127.0.0.1:$port
mkdir -p "$tmp/blobs"
"$CRANE" registry serve --address "$addr" --disk "$tmp/blobs" >"$tmp/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do
	curl -fsS -o /dev/null "http://$addr/v2/" 2>/dev/null && break
	sleep 0.1
done
ref=$addr/bench/img:tag
"$CRANE" push --insecure "$IMAGE" "$ref" >/dev/null 2>"$tmp/push.log" || {
	cat "$tmp/push.log" >&2
	exit 1
}

to_seconds() { awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }' <<<"$1"; }

# run LABEL OUTFILE CMD...: one run under /usr/bin/time -v; appends the
# wall time to $tmp/LABEL.wall and the peak RSS to $tmp/LABEL.rss.
run() {
	local label=$1 out=$2 i=$3
	shift 3
	if ! /usr/bin/time -v -o "$tmp/time" "$@" >"$out" 2>"$tmp/stderr"; then
		echo "$label run $i failed:" >&2
		tail -n 20 "$tmp/stderr" "$tmp/time" >&2
		return 1
	fi
	local wall rss cpu
	wall=$(to_seconds "$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$tmp/time")")
	rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tmp/time")
	cpu=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$tmp/time")
	printf '%-6s run %d  wall %6.2f s  cpu %6.2f s  peak RSS %7.1f MiB\n' \
		"$label" "$i" "$wall" "$cpu" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')"
	echo "$wall" >>"$tmp/$label.wall"
	echo "$cpu" >>"$tmp/$label.cpu"
	echo "$rss" >>"$tmp/$label.rss"
}

median() { sort -n "$1" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

size=$(awk -v b="$(stat -c %s "$IMAGE")" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "image:    $IMAGE ($size MiB)"
echo "registry: crane registry serve --disk, $ref"
echo "load:     $(uptime)"
echo "cpus:     $(nproc)"
echo

# Alternating runs: a load spike from elsewhere hits both modes alike.
for ((i = 1; i <= RUNS; i++)); do
	run input "$tmp/input.json" "$i" "$CUSTOMS" scan "${scan_args[@]}" --input "$IMAGE"
	run pull "$tmp/pull.json" "$i" "$CUSTOMS" scan "${scan_args[@]}" --insecure "$ref"
done

if command -v jq >/dev/null; then
	# The artifact differs (registry, repository, tags); what was found must not.
	q='([.packages // [] | .[] | .purl] | sort), ([.findings // [] | .[] | [.kind, .rule, .path]] | sort)'
	if [[ $(jq -c "$q" "$tmp/input.json") != "$(jq -c "$q" "$tmp/pull.json")" ]]; then
		echo "reports differ between --input and the pull" >&2
		exit 1
	fi
	echo "reports: same packages and findings ($(jq '.packages // [] | length' "$tmp/pull.json") packages)"
fi

echo
in=$(median "$tmp/input.wall")
pl=$(median "$tmp/pull.wall")
for m in input pull; do
	printf '%-6s median wall %6.2f s  median cpu %6.2f s  max peak RSS %7.1f MiB\n' "$m" \
		"$(median "$tmp/$m.wall")" "$(median "$tmp/$m.cpu")" \
		"$(sort -n "$tmp/$m.rss" | tail -n 1 | awk '{ print $1 / 1024 }')"
done
awk -v a="$pl" -v b="$in" 'BEGIN { if (b > 0) printf "ratio  pull / input = %.2f (goal ≤ 1.10)\n", a / b }'
echo "load after: $(uptime)"
