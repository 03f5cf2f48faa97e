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

# shellcheck source=scripts/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_root
RUNS=${RUNS:-5}
read -r -a scan_args <<<"${SCAN_ARGS:-}"

bench_image "$@"
bench_need_time

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

bench_customs "$tmp"
bench_crane

bench_registry 5055
ref=$addr/bench/img:tag
"$CRANE" push --insecure "$IMAGE" "$ref" >/dev/null 2>"$tmp/push.log" || {
	cat "$tmp/push.log" >&2
	exit 1
}

# run LABEL I OUTFILE CMD...: one run under /usr/bin/time -v, kept in
# $tmp/LABEL.{wall,cpu,rss}.
run() { bench_run '%-6s run %d  wall %6.2f s  cpu %6.2f s  peak RSS %7.1f MiB\n' "$@"; }

size=$(bench_mb "$(stat -c %s "$IMAGE")")
echo "image:    $IMAGE ($size MiB)"
echo "registry: crane registry serve --disk, $ref"
echo "load:     $(uptime)"
echo "cpus:     $(nproc)"
echo

# Alternating runs: a load spike from elsewhere hits both modes alike.
for ((i = 1; i <= RUNS; i++)); do
	run input "$i" "$tmp/input.json" "$CUSTOMS" scan "${scan_args[@]}" --input "$IMAGE"
	run pull "$i" "$tmp/pull.json" "$CUSTOMS" scan "${scan_args[@]}" --insecure "$ref"
done

# The artifact differs (registry, repository, tags); what was found must not.
bench_same_reports "$tmp/input.json" "$tmp/pull.json" \
	"reports differ between --input and the pull" "same packages and findings"

echo
in=$(bench_median "$tmp/input.wall")
pl=$(bench_median "$tmp/pull.wall")
for m in input pull; do
	bench_summary '%-6s median wall %6.2f s  median cpu %6.2f s  max peak RSS %7.1f MiB\n' "$m"
done
awk -v a="$pl" -v b="$in" 'BEGIN { if (b > 0) printf "ratio  pull / input = %.2f (goal ≤ 1.10)\n", a / b }'
echo "load after: $(uptime)"
