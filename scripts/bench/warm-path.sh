#!/usr/bin/env bash
# What a scan costs when there is nothing left to analyze:
#
#  cold   customs scan --layer-cache EMPTY-DIR --input IMAGE.tar
#  warm   the same with the cache the cold run filled (no layer is
#         decompressed; --input still hashes every layer: a docker-save
#         manifest has no digests and a cache hit needs a verified one)
#  empty  customs scan --input EMPTY.tar: one empty layer, the start-up
#         cost of the process (init, engine, rules, report)
#
# With PULL=1 the three scan images pushed to a local registry (`crane
# registry serve`) instead: a warm pull fetches the manifest and config
# only.
#
# RUNS runs of each (the cold one gets a fresh cache every time), with
# wall time, user+system CPU time and peak RSS, then medians and warm/cold
# (the goal is ≤ 0.05). Then the package init of the binary
# (GODEBUG=inittrace=1: the sum and the ten slowest packages) and, with
# PROFILE=1, `go test -bench RunWarm -cpuprofile` of scancmd (the warm
# path in process, start-up excluded) with its top functions.
#
#   scripts/bench/warm-path.sh [IMAGE.tar]
#
# IMAGE.tar defaults to $BENCH_CACHE/debian-12.tar, built by debian-image.sh
# when missing. EMPTY.tar is made with `crane append` (scratch plus an
# empty tar layer).
#
# Environment:
#   RUNS=5            runs of each kind
#   CUSTOMS=path      customs binary to measure (default: built from this tree)
#   CRANE=path        crane binary (default: crane on PATH, else
#                     $BENCH_CACHE/bin/crane, go installed when missing)
#   PULL=1            scan from a local registry instead of --input
#   PROFILE=1         also profile the warm path with the Go benchmark
#   OUT=DIR           keep the profile and test binary there (default: a
#                     temporary directory, removed)
#   BENCH_CACHE       default ~/.cache/customs-bench
set -euo pipefail

# shellcheck source=scripts/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_root
RUNS=${RUNS:-5}

bench_image "$@"
bench_need_time

tmp=$(mktemp -d "${TMPDIR:-/tmp}/customs-warm-bench.XXXXXX")
reg_pid=
trap '[[ -z $reg_pid ]] || { kill "$reg_pid"; wait "$reg_pid" || true; } 2>/dev/null; rm -rf "$tmp"' EXIT
bench_abs OUT
bench_customs "$tmp"
bench_crane

# The empty image: scratch plus one layer that is an empty tar archive.
tar cf "$tmp/empty-layer.tar" -T /dev/null
"$CRANE" append -f "$tmp/empty-layer.tar" -t customs-bench/empty:latest -o "$tmp/empty.tar" 2>/dev/null

# The scan arguments of the image and of the empty image.
image_args=(--input "$IMAGE")
empty_args=(--input "$tmp/empty.tar")
if [[ ${PULL:-0} == 1 ]]; then
	bench_registry 5056
	"$CRANE" push --insecure "$IMAGE" "$addr/bench/img:tag" >/dev/null 2>&1
	"$CRANE" push --insecure "$tmp/empty.tar" "$addr/bench/empty:tag" >/dev/null 2>&1
	image_args=(--insecure "$addr/bench/img:tag")
	empty_args=(--insecure "$addr/bench/empty:tag")
fi

# Milliseconds matter here: a warm scan is short.
BENCH_WALL_DIGITS=3
# run LABEL I CMD...: one run under /usr/bin/time -v, report in
# $tmp/LABEL.json, figures kept in $tmp/LABEL.{wall,cpu,rss}.
run() {
	local label=$1 i=$2
	shift 2
	bench_run '%-5s run %d  wall %6.3f s  cpu %5.2f s  peak RSS %7.1f MiB\n' "$label" "$i" "$tmp/$label.json" "$@"
}

size=$(bench_mb "$(stat -c %s "$IMAGE")")
echo "image: $IMAGE ($size MiB)"
[[ ${PULL:-0} != 1 ]] || echo "pull:  ${image_args[-1]} (crane registry serve --disk)"
echo "load:  $(uptime)"
echo "cpus:  $(nproc)"
echo

for ((i = 1; i <= RUNS; i++)); do
	rm -rf "$tmp/cache"
	run cold "$i" "$CUSTOMS" scan --layer-cache "$tmp/cache" "${image_args[@]}"
	run warm "$i" "$CUSTOMS" scan --layer-cache "$tmp/cache" "${image_args[@]}"
	run empty "$i" "$CUSTOMS" scan "${empty_args[@]}"
done

# The cache must not change what is found.
bench_same_reports "$tmp/cold.json" "$tmp/warm.json" \
	"the warm report differs from the cold one" "warm = cold"

echo
for m in cold warm empty; do
	bench_summary '%-5s median wall %6.3f s  median cpu %5.2f s  max peak RSS %7.1f MiB\n' "$m"
done
awk -v w="$(bench_median "$tmp/warm.wall")" -v c="$(bench_median "$tmp/cold.wall")" \
	'BEGIN { if (c > 0) printf "ratio warm / cold = %.3f (goal ≤ 0.05)\n", w / c }'

echo
echo "package init (GODEBUG=inittrace=1, empty image):"
GODEBUG=inittrace=1 "$CUSTOMS" scan "${empty_args[@]}" 2>&1 >/dev/null |
	awk '$1 == "init" { ms += $5; kb += $8 / 1024; n++; printf "%8.2f ms %8.0f KiB  %s\n", $5, $8 / 1024, $2 }
		END { printf "%8.2f ms %8.0f KiB  total, %d packages\n", ms, kb, n > "/dev/stderr" }' 2>"$tmp/init.total" |
	sort -rn | head -n 10 || true
cat "$tmp/init.total"

if [[ ${PROFILE:-0} == 1 ]]; then
	out=${OUT:-$tmp/prof}
	mkdir -p "$out"
	echo
	echo "warm path in process (BenchmarkRunWarm, services/customs/internal/scancmd):"
	# 200 iterations, so that building the image and the one cold scan
	# that fills the cache are a small part of the profile.
	(cd services/customs && go test -run '^$' -bench 'RunWarm' -benchtime 200x -benchmem \
		-cpuprofile "$out/warm.cpu.pprof" -o "$out/scancmd.test" ./internal/scancmd/)
	go tool pprof -top -cum -nodecount 30 -ignore 'benchImage|WriteToFile|remote.Write' \
		"$out/scancmd.test" "$out/warm.cpu.pprof" 2>/dev/null | sed -n '1,40p'
	[[ -n ${OUT:-} ]] && echo "profile kept in $out"
fi
echo "load after: $(uptime)"
